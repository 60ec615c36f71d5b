/* history.h - what tickerd remembers of the stream, in two parts. No I/O.
 *
 * The event log: every accepted event (publish, update, retract) in stream
 * order, numbered by a sequence that never goes back. It answers since=,
 * and it is every client's send queue: a client's backlog is a position in
 * it (hub.c). It keeps the last `history_size` events, and older ones for
 * as long as the hub says a client still needs them.
 *
 * The live store: the current state of every item still live (updates
 * applied), up to `max_live_items`, each released at its expiry. It answers
 * replay=N and /v1/items, and routes corrections however many events ago
 * the original came.
 *
 * Held items (embargo.h): a publish whose publish_at is after its own
 * stream-ID time is in neither until its release, which is an event of the
 * log of its own whose key (tk_event_t.id) sorts just before publish_at:
 * tk_history_release_key(). */
#ifndef TICKERD_HISTORY_H
#define TICKERD_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "tickerd/filter.h"
#include "tickerd/item.h"
#include "tickerd/msg.h"

/* The current state of a live item. Owned by the store; valid until the
 * next add, expire or reset. */
typedef struct tk_state {
    tk_item_t item; /* id = the original's ID */
    bool retracted;
    int nkeys; /* every version it has had, for routing corrections */
    tk_match_key_t *keys;
    tk_msg_t *replay_msg[TK_TRANSPORTS]; /* cached "replay":true frames */
    struct tk_state *older, *newer;      /* the store's ID order */
    struct tk_state *chain;              /* the store's hash bucket */
    uint32_t heap_at;                    /* place in the expiry heap */
} tk_state_t;

/* One accepted event. Owned by the log; valid while its seq is retained. */
typedef struct tk_event {
    uint64_t seq; /* position in the log */
    uint64_t end; /* log bytes up to and including this event */
    tk_id_t id;   /* its key: the stream ID, or a release's key */
    tk_op_t op;
    tk_id_t ref;        /* update/retract/release: the original's ID */
    bool released;      /* an embargoed item going live (op publish) */
    bool late;          /* its key sorts before an event logged earlier */
    int64_t expires_ms; /* this version's expiry; 0 for a retract */
    int nkeys;          /* the clients this event goes to */
    tk_match_key_t *keys;
    char *json; /* the live frame's JSON */
    size_t json_len;
    tk_msg_t *msg[TK_TRANSPORTS][2]; /* [transport][replay], built lazily */
} tk_event_t;

typedef struct tk_history tk_history_t;

/* history_size events for since=, max_live items for replay. NULL when out
 * of memory. */
tk_history_t *tk_history_create(int history_size, int max_live);
void tk_history_free(tk_history_t *h);
/* Drops every event and item (a new epoch). Sequence numbers go on. */
void tk_history_reset(tk_history_t *h);
/* A new bound on live items (reload); takes effect on the next add. */
void tk_history_set_max_live(tk_history_t *h, int max_live);

/* Adds an accepted item (its strings are moved into the history; item is
 * left empty). Returns the new event, or NULL with rej filled (an update
 * of an unknown or retracted item, an ID not after the last one). A
 * retract of an item the store does not hold is accepted and goes to every
 * client. NULL with rej->reason TK_REJECT_NONE: accepted with nothing to
 * send (a publish held until its publish_at, an update or retract of a
 * held item). */
tk_event_t *tk_history_add(tk_history_t *h, tk_item_t *item, tk_reject_t *rej);

/* Releases the soonest held item due at now_ms (publish_at <= now_ms): it
 * goes live with ts = publish_at and its release is logged. Returns that
 * event, or NULL when none is due (or, out of memory, it stays held).
 * Call it until NULL: with the wall clock from the timer, and with an
 * entry's stream-ID time before that entry is added, so that every node
 * logs a release at the same place in the stream. */
tk_event_t *tk_history_release(tk_history_t *h, int64_t now_ms);
/* The soonest publish_at held (INT64_MAX: none), and how many are held. */
int64_t tk_history_next_release(const tk_history_t *h);
int tk_history_held_count(const tk_history_t *h);
/* The key of item's release at publish_at: a stream-ID-shaped position
 * that no entry has, (publish_at - 1)-(2^63 + ...), after every entry
 * before publish_at and before every entry at or after it, ordered by the
 * item's ID among releases due at the same ms. */
tk_id_t tk_history_release_key(int64_t publish_at_ms, tk_id_t item);

/* Releases the items expired at now_ms. */
void tk_history_expire(tk_history_t *h, int64_t now_ms);

/* Marks that events up to and including id may be missing (a start-up load
 * that did not reach the start of the stream). */
void tk_history_set_horizon(tk_history_t *h, tk_id_t id);

/* The live item id (or the item an update id corrected), or NULL. */
tk_state_t *tk_history_find(const tk_history_t *h, tk_id_t id);

/* A replay and the current state carry at most this many pinned items, the
 * newest ones, on top of the n others. */
#define TK_PINNED_MAX 16

/* The newest n matching live items (not retracted, not expired at now_ms)
 * that are not pinned, and with them the matching pinned ones (up to
 * TK_PINNED_MAX), oldest first, into out (room for n + TK_PINNED_MAX).
 * Returns how many. */
int tk_history_current(const tk_history_t *h, const tk_filter_t *f, int n, int64_t now_ms,
                       tk_state_t **out);

/* Every matching event after since, oldest first, into out (room for max);
 * *gap is set when events may be missing (since before the horizon, or more
 * than max matched: then the newest max are given). "After": everything
 * logged after the event whose key is since, when this log holds it
 * (late events included), else every event whose key is greater. */
int tk_history_since(const tk_history_t *h, tk_id_t since, const tk_filter_t *f, int max,
                     int64_t now_ms, tk_event_t **out, bool *gap);

/* The same from the other end, for a long-poll that pages: the oldest max
 * matching events after since; *more is set when others match after
 * them, *gap only when since is before the horizon. */
int tk_history_after(const tk_history_t *h, tk_id_t since, const tk_filter_t *f, int max,
                     int64_t now_ms, tk_event_t **out, bool *gap, bool *more);

/* The greatest key logged or ID of an entry held (hello's last_id). */
tk_id_t tk_history_last_id(const tk_history_t *h);
/* Events retained, and live items held. */
int tk_history_count(const tk_history_t *h);
int tk_history_live_count(const tk_history_t *h);

/* The log as a queue. Sequence numbers run from first (the oldest event
 * retained) to next (the one the next add gets). at() is NULL outside. */
uint64_t tk_history_first_seq(const tk_history_t *h);
uint64_t tk_history_next_seq(const tk_history_t *h);
tk_event_t *tk_history_at(const tk_history_t *h, uint64_t seq);
/* Log bytes before seq (for seq at or before first: of the oldest kept;
 * for next: all of them). A client at seq is end - this behind. */
uint64_t tk_history_bytes_before(const tk_history_t *h, uint64_t seq);
uint64_t tk_history_bytes_end(const tk_history_t *h);
/* Drops the oldest events beyond the last history_size, but none at or
 * after keep (the oldest position a client still needs). */
void tk_history_trim(tk_history_t *h, uint64_t keep);
/* Bytes of the events kept beyond the last history_size. */
uint64_t tk_history_extra_bytes(const tk_history_t *h);

/* The frame of an event or a state for a transport, built on first use and
 * cached; the history keeps its reference. */
tk_msg_t *tk_event_msg(tk_event_t *ev, tk_transport_t t, bool replay);
tk_msg_t *tk_state_msg(tk_state_t *st, tk_transport_t t);

#endif
