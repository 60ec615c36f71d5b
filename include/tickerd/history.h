/* history.h - the bounded event history and the current state of every item
 * in it: what replay=N and since= are answered from. No I/O. */
#ifndef TICKERD_HISTORY_H
#define TICKERD_HISTORY_H

#include <stdbool.h>

#include "tickerd/filter.h"
#include "tickerd/item.h"
#include "tickerd/msg.h"

/* The current state of a published item (updates applied). Owned by the
 * publish event that created it. */
typedef struct tk_state {
    tk_item_t item; /* id = the original's ID */
    bool retracted;
    int nkeys; /* every version it has had, for routing corrections */
    tk_match_key_t *keys;
    tk_msg_t *replay_msg[TK_TRANSPORTS]; /* cached "replay":true frames */
} tk_state_t;

typedef struct tk_event {
    tk_id_t id;
    tk_op_t op;
    tk_id_t ref;
    int64_t expires_ms; /* 0: never (retract) */
    tk_state_t *state;  /* publish only: owned */
    int nkeys;          /* the clients this event goes to */
    tk_match_key_t *keys;
    char *json; /* the live frame's JSON */
    size_t json_len;
    tk_msg_t *msg[TK_TRANSPORTS][2]; /* [transport][replay], built lazily */
} tk_event_t;

typedef struct tk_history tk_history_t;

tk_history_t *tk_history_create(int capacity);
void tk_history_free(tk_history_t *h);
/* Drops every event (a new epoch); capacity may change. */
void tk_history_reset(tk_history_t *h, int capacity);

/* Adds an accepted item (its strings are moved into the history; item is
 * left empty). Returns the new event, owned by the history and valid until
 * it is evicted, or NULL with rej filled (unknown or retracted ref, an ID
 * not after the last one). */
tk_event_t *tk_history_add(tk_history_t *h, tk_item_t *item, tk_reject_t *rej);

/* Marks that events up to and including id may be missing (a start-up load
 * that did not reach the start of the stream). */
void tk_history_set_horizon(tk_history_t *h, tk_id_t id);

/* The newest n matching live items (not retracted, not expired at now_ms),
 * oldest first, into out (room for n). Returns how many. */
int tk_history_current(const tk_history_t *h, const tk_filter_t *f, int n, int64_t now_ms,
                       tk_state_t **out);

/* Every matching event after since, oldest first, into out (room for max);
 * *gap is set when events may be missing (since before the horizon, or more
 * than max matched: then the newest max are given). */
int tk_history_since(const tk_history_t *h, tk_id_t since, const tk_filter_t *f, int max,
                     int64_t now_ms, tk_event_t **out, bool *gap);

tk_id_t tk_history_last_id(const tk_history_t *h);
int tk_history_count(const tk_history_t *h);

/* The frame of an event or a state for a transport, built on first use and
 * cached; the history keeps its reference. */
tk_msg_t *tk_event_msg(tk_event_t *ev, tk_transport_t t, bool replay);
tk_msg_t *tk_state_msg(tk_state_t *st, tk_transport_t t);

#endif
