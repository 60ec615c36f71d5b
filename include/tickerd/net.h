/* net.h - the libwebsockets server on our libuv loop: one protocol whose
 * callback hands WebSocket reasons to ws.c and HTTP reasons to http.c. */
#ifndef TICKERD_NET_H
#define TICKERD_NET_H

#include <libwebsockets.h>

#include "tickerd/hub.h"

/* Creates the lws context on server.loop. Returns 0 or -1 (logged). */
int tk_net_start(void);
/* First step of the two-step shutdown: call from a uv callback. */
void tk_net_stop(void);
/* Second step, after uv_run has returned. */
void tk_net_finish(void);

/* Transport callbacks, dispatched by net.c. */
int tk_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, tk_client_t *c, void *in,
                   size_t len);
int tk_http_callback(struct lws *wsi, enum lws_callback_reasons reason, tk_client_t *c, void *in,
                     size_t len);

/* Stops watching an SSE client's socket (safe when there is no watch). */
void tk_sse_unwatch(tk_client_t *c);

/* Writes as many queued frames as one write takes; shared by ws and sse.
 * Returns -1 when the connection must close. */
int tk_net_write_queue(tk_client_t *c, enum lws_write_protocol proto);

/* Writes a whole HTTP/1.1 response: status, content type, body and
 * optional extra header lines ("Name: value\r\n"...). Returns 0 or -1;
 * the caller completes the transaction. */
int tk_http_respond(struct lws *wsi, unsigned status, const char *type, const char *body,
                    size_t len, const char *extra_headers);

#endif
