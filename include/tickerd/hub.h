/* hub.h - the connected clients of both transports, their filters and send
 * queues, and the fan-out of each event to the clients it matches. */
#ifndef TICKERD_HUB_H
#define TICKERD_HUB_H

#include <jansson.h>
#include <uv.h>
#include <stdbool.h>
#include <stdint.h>

#include "tickerd/filter.h"
#include "tickerd/guard.h"
#include "tickerd/history.h"
#include "tickerd/msg.h"

struct lws;

typedef enum {
    TK_CLIENT_PARKED, /* connected before the start-up load finished */
    TK_CLIENT_LIVE,
    TK_CLIENT_CLOSING,
} tk_client_state_t;

/* A client. Lives in the lws per-session data of its connection; the hub
 * owns what it points to (queue, pending request, partial frame). */
typedef struct tk_client {
    struct lws *wsi;
    struct tk_client *prev, *next;
    tk_filter_t filter;
    tk_id_t skip_until; /* live events up to here were already sent */
    tk_msg_t **q;       /* ring of queued messages */
    uint32_t qhead, qlen, qcap;
    uint32_t qbytes;
    tk_sub_req_t *pending; /* the handshake request, while parked */
    tk_grant_t grant;      /* what its token allows */
    uint32_t ip_slot;      /* per-IP count slot + 1; 0 = none */
    uint32_t heard_s;      /* loop time (s) of the last frame received */
    uint32_t rx_second;    /* inbound rate: the current second and */
    uint16_t rx_count;     /* the messages in it */
    char *rx;              /* a partial inbound message */
    uint32_t rxlen;
    uint16_t close_code;
    uint8_t transport;
    uint8_t state;
    uint8_t bad_msgs;
    uint8_t attached;
    struct tk_sse_watch *watch; /* SSE: notices the client leaving (http.c) */
} tk_client_t;

/* Adds a client that passed its handshake. req (malloc'd) is taken over.
 * Sends hello and the replay now, or once the start-up load is done. */
void tk_hub_attach(tk_client_t *c, tk_transport_t t, tk_sub_req_t *req);
/* Removes a client and frees what it holds; safe to call twice. */
void tk_hub_detach(tk_client_t *c);
/* Replaces a client's filter from a subscribe frame: hello, and a replay
 * when the request asks for one. */
void tk_hub_resubscribe(tk_client_t *c, const tk_sub_req_t *req);
/* Starts and stops the heartbeat timer: every heartbeat_s, a ping to each
 * WebSocket client (dropping those silent for 2 x heartbeat_s) and a
 * comment line to each SSE client. */
void tk_hub_start(uv_loop_t *loop);
void tk_hub_stop(void);
/* A frame came from the client. */
void tk_client_heard(tk_client_t *c);

/* Sends a newly read event to every live client it matches. */
void tk_hub_publish(tk_event_t *ev);
/* Several events at once (a burst read from Redis): queue them, so that
 * each writable callback writes many frames in one go. One event alone is
 * written at once to clients with nothing queued. */
void tk_hub_batch(bool on);
/* The start-up load is done: serve parked clients. */
void tk_hub_ready(void);
/* The epoch changed under running clients: a new hello and a replay marked
 * as a gap. */
void tk_hub_epoch_changed(void);
/* Closes every client with code (1001 at shutdown). */
void tk_hub_close_all(uint16_t code, const char *reason);
int tk_hub_count(void);

/* Queues a reference to m. Returns 0, or -1 when the client was closed as
 * a slow consumer. */
int tk_client_send(tk_client_t *c, tk_msg_t *m);
/* Encodes obj (reference stolen) and queues it as a one-off message. */
int tk_client_send_json(tk_client_t *c, const char *type, json_t *obj);
/* Marks a client for closing with code; its next writable callback closes. */
void tk_client_close(tk_client_t *c, uint16_t code);
/* Moves whole queued frames into dst (at most cap bytes). Returns the
 * bytes copied; when the first frame alone exceeds cap, returns 0 and sets
 * *big to it (a reference the caller releases with tk_client_sent). */
size_t tk_client_gather(tk_client_t *c, unsigned char *dst, size_t cap, tk_msg_t **big);
void tk_client_sent(tk_msg_t *m);

#endif
