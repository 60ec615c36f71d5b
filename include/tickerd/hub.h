/* hub.h - the connected clients of every transport, their filters, and the
 * delivery of each event to the clients it matches.
 *
 * A client's backlog is a position (cursor) in the shared event log of
 * history.h, not a queue of copies: fan-out writes a frame at once to a
 * client that is caught up, and a client that is behind catches up from
 * the log in its writable callback, many frames a write. A client's own
 * frames (hello, pong, error, the replay and its marker) wait in a small
 * queue of references of its own. The hub never calls lws: it talks to
 * each transport through a table of operations. */
#ifndef TICKERD_HUB_H
#define TICKERD_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/filter.h"
#include "tickerd/history.h"
#include "tickerd/kill.h"
#include "tickerd/msg.h"

typedef struct tk_hub tk_hub_t;
typedef struct tk_client tk_client_t;

/* The one answer of a one-shot client (long-poll). */
typedef struct tk_answer {
    const char *epoch;
    tk_id_t last_id; /* the newest ID it covers: the client's next since */
    bool gap;
    int n;
    tk_msg_t *const *events; /* their poll frames (bare JSON), oldest first */
} tk_answer_t;

/* What the hub needs of a transport. */
typedef struct tk_transport_ops {
    tk_transport_t kind;
    /* Writes len bytes of whole frames; data has tk_msg_pre bytes of
     * headroom before it. The transport keeps what the socket did not take.
     * Returns 0, or -1 when the connection is gone. */
    int (*write)(tk_client_t *c, unsigned char *data, size_t len);
    /* True while an earlier write is still partly unsent. */
    bool (*busy)(tk_client_t *c);
    /* About how many bytes a write may carry now without the transport
     * keeping a copy of the rest (SIZE_MAX: no idea). The hub gathers no
     * more, so a client that stops reading pins a frame, not a buffer. */
    size_t (*room)(tk_client_t *c);
    /* Asks for a writable callback (tk_client_writable). */
    void (*want_write)(tk_client_t *c);
    /* The hub closes c with code (0: no close frame): the transport bounds
     * the wait for its last writable callback. */
    void (*closing)(tk_client_t *c, uint16_t code);
    /* The client's address for log lines. */
    const char *(*peer)(tk_client_t *c, char *buf, size_t cap);
    /* One-shot clients only: writes the whole answer (the references are
     * the hub's). Returns the bytes written, or -1. */
    long (*answer)(tk_client_t *c, const tk_answer_t *a);
} tk_transport_ops_t;

/* The hub's share of the configuration. */
typedef struct tk_hub_limits {
    uint64_t max_queue_bytes; /* a client further behind is a slow consumer */
    int64_t slow_timeout_ms;  /* ... as is one owed frames that takes nothing */
    int heartbeat_s;
    int replay_default, replay_max;
} tk_hub_limits_t;

typedef enum {
    TK_CLIENT_PARKED, /* connected before the start-up load finished */
    TK_CLIENT_LIVE,
    TK_CLIENT_CLOSING,
} tk_client_state_t;

/* A client: embedded in the transport's per-connection struct. The hub
 * owns what it points to (queue, pending request). */
struct tk_client {
    const tk_transport_ops_t *ops;
    tk_hub_t *hub;
    tk_client_t *prev, *next;           /* every client */
    tk_client_t *owed_prev, *owed_next; /* clients with frames owed */
    tk_filter_t filter;
    tk_filter_t counted; /* the filter it counts in the audience with */
    uint64_t cursor;     /* the next event of the log to consider (while not
                            owed, the hub's considered if that is later) */
    tk_id_t skip_until;  /* events up to here were sent by a since= replay */
    tk_id_t last_sent;   /* for the gap frame */
    tk_msg_t **q;        /* own frames: a ring of references */
    uint32_t qhead, qlen, qcap;
    tk_sub_req_t *pending;    /* the handshake request, while parked */
    tk_screen_t *screen;      /* a labelled client's retracts (SPEC §7); NULL: none */
    int64_t progress_ms;      /* loop time the client last took bytes */
    int64_t expires_s;        /* wall time its token expires (1008); 0: never */
    const char *close_reason; /* for the close frame; NULL: the code's own */
    uint32_t heard_s;         /* loop time (s) of the last frame received */
    uint32_t fan_slot;        /* its entry in the hub's fan-out table + 1; 0: none */
    uint16_t close_code;
    uint8_t transport;
    uint8_t state;
    uint8_t attached;
    uint8_t owed;
    uint8_t in_audience; /* counted holds */
    /* one-shot clients (long-poll): since is last_sent */
    uint8_t oneshot;
    uint8_t oneshot_gap;     /* its answer says gap:true */
    int16_t oneshot_replay;  /* answered with this replay; -1: with since */
    int64_t oneshot_wait_ms; /* loop time it is answered by, matched or not */
};

/* Kill confirmation: what the hub reports of labelled clients (the worker
 * records it in Redis). Unlabelled clients cost nothing here. */
typedef struct tk_kill_hooks {
    /* The retract ev was routed to the screen (sent now, or owed). */
    void (*sent)(void *ud, const tk_screen_t *s, const tk_kill_sent_t *k);
    /* The screen acked what k says was sent; at_ms its wall time. */
    void (*acked)(void *ud, const tk_screen_t *s, const tk_kill_sent_t *k, int64_t at_ms);
    void *ud;
} tk_kill_hooks_t;

/* Creates a hub over history. loop may be NULL (unit tests): then no timer
 * runs, and tk_hub_tick() and tk_hub_set_time() drive it. */
tk_hub_t *tk_hub_create(uv_loop_t *loop, tk_history_t *history, const tk_hub_limits_t *lim);
/* Closes every client (code 0) and the timer; frees the hub once the timer
 * has closed (run the loop), or at once without a loop. */
void tk_hub_free(tk_hub_t *hub);
void tk_hub_set_limits(tk_hub_t *hub, const tk_hub_limits_t *lim);
/* Who hears of retracts sent to labelled clients and of their acks. */
void tk_hub_set_kill_hooks(tk_hub_t *hub, const tk_kill_hooks_t *hooks);
void tk_hub_set_epoch(tk_hub_t *hub, const char *epoch);
const char *tk_hub_epoch(const tk_hub_t *hub);
int tk_hub_count(const tk_hub_t *hub);

/* Adds a client that passed its handshake. req (malloc'd) is taken over.
 * Sends hello and the replay now, or once the start-up load is done. */
void tk_hub_attach(tk_hub_t *hub, tk_client_t *c, const tk_transport_ops_t *ops, tk_sub_req_t *req);
/* Adds a one-shot client (long-poll): it is answered once (ops->answer),
 * through its writable callback, with every event after req's since that
 * it matches, as soon as there is one, or empty after wait_s (to the
 * second of the hub's tick); without since (or with another epoch) at
 * once with the current state, as replay=N would send it. Once answered,
 * tk_client_writable returns 1 and the transport detaches it. req is
 * taken over. */
void tk_hub_attach_oneshot(tk_hub_t *hub, tk_client_t *c, const tk_transport_ops_t *ops,
                           tk_sub_req_t *req, int wait_s);
/* Removes a client and frees what it holds; safe to call twice. */
void tk_hub_detach(tk_client_t *c);
/* Replaces a client's filter from a subscribe frame: hello, and a replay
 * when the request asks for one. */
void tk_hub_resubscribe(tk_client_t *c, const tk_sub_req_t *req);

/* A newly read event, already in the history: to every client it matches. */
void tk_hub_publish(tk_hub_t *hub, tk_event_t *ev);
/* Around a burst read from Redis: frames are then written in batches from
 * each client's writable callback instead of one write per event. */
void tk_hub_batch(tk_hub_t *hub, bool on);
/* The start-up load is done: serve parked clients. */
void tk_hub_ready(tk_hub_t *hub);
bool tk_hub_is_ready(const tk_hub_t *hub);
/* Events may be missing (a new epoch, entries lost in Redis): each client
 * gets a gap frame when gap_frame is set, then a new hello, the current
 * state as a replay and a marker with gap:true. */
void tk_hub_resync(tk_hub_t *hub, bool gap_frame);
/* Closes every client with code (1001 at shutdown). */
void tk_hub_close_all(tk_hub_t *hub, uint16_t code);
/* Closes up to n of the clients not closing yet (a drain spreads its
 * closes this way). Returns how many it closed. */
int tk_hub_close_some(tk_hub_t *hub, int n, uint16_t code);
/* A drain begins: every waiting one-shot client is answered now, empty
 * (closed 1001). Returns how many. */
int tk_hub_answer_oneshots(tk_hub_t *hub);
/* Once a second: slow consumers, expired tokens, the heartbeat, trimming
 * the log. */
void tk_hub_tick(tk_hub_t *hub);
/* Unit tests: the loop time in ms, when the hub has no loop. */
void tk_hub_set_time(tk_hub_t *hub, int64_t ms);

/* An ack frame: the client took the retracted item ref off display.
 * Returns 0 when it is reported, -ENOENT when it is ignored (an unlabelled
 * client, or no retract of ref pending for it: never sent, or acked). */
int tk_client_ack(tk_client_t *c, tk_id_t ref);

/* A frame came from the client. */
void tk_client_heard(tk_client_t *c);
/* Encodes obj (reference stolen) as {"type":type,...} and queues it as one
 * of the client's own frames. Returns 0 or -1. */
int tk_client_send_json(tk_client_t *c, const char *type, json_t *obj);
/* Closes c with code (0: drop without a close frame); its next writable
 * callback finishes it. */
void tk_client_close(tk_client_t *c, uint16_t code);
/* The same with the close frame's reason text (a static string). */
void tk_client_close_why(tk_client_t *c, uint16_t code, const char *reason);
/* The transport's writable callback: writes what the client is owed.
 * Returns 0, -1 when the connection must be dropped, or 1 when the client
 * is closing and everything before its close frame is out: the transport
 * writes the close frame (tk_client_t.close_code) and closes. */
int tk_client_writable(tk_client_t *c);

#endif
