/* site.h - what the transports need of the worker that runs them, handed
 * to them through the lws context (lws_context_user): the worker owns it
 * and keeps it current (a reload swaps cfg; the stream reader's status
 * sets redis_up). Transports read it and never reach for a global. */
#ifndef TICKERD_SITE_H
#define TICKERD_SITE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"

struct lws;

typedef struct tk_site {
    uv_loop_t *loop;
    const tk_config_t *cfg; /* the current configuration */
    tk_hub_t *hub;
    tk_history_t *history;
    bool stopping;         /* SIGTERM: refuse new clients */
    bool redis_up;         /* this worker's stream connection */
    int64_t redis_down_ms; /* wall time it went down; 0 when up */
    struct tk_writer *writer; /* the worker's Redis command connection (writer.h) */
} tk_site_t;

/* The site of the context a connection belongs to. */
tk_site_t *tk_site_of(struct lws *wsi);

/* How every transport's per-connection struct starts: the hub's client,
 * then its lws connection (each transport checks its layout with a static
 * assertion). The hub operations below work on that much. */
typedef struct tk_conn {
    tk_client_t client;
    struct lws *wsi;
} tk_conn_t;

bool tk_conn_busy(tk_client_t *c);
size_t tk_conn_room(tk_client_t *c);
void tk_conn_want_write(tk_client_t *c);
/* A client that never reads never becomes writable: lws kills it when this
 * timeout runs out (5 s with a close frame to write, 1 s without). At
 * shutdown the context goes anyway. */
void tk_conn_closing(tk_client_t *c, uint16_t code);
const char *tk_conn_peer(tk_client_t *c, char *buf, size_t cap);
/* WebSocket frames are written raw (server frames are unmasked, built
 * once); SSE blocks as HTTP body. */
int tk_conn_write_raw(tk_client_t *c, unsigned char *data, size_t len);
int tk_conn_write_http(tk_client_t *c, unsigned char *data, size_t len);

#endif
