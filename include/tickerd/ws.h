/* ws.h - the WebSocket transport at /v1/ws, one function per lws event
 * that net.c hands it. pss is the connection's per-session data. */
#ifndef TICKERD_WS_H
#define TICKERD_WS_H

#include <stddef.h>

struct lws;

/* Bytes of per-session data a WebSocket connection needs. */
extern const size_t tk_ws_session_size;

/* The upgrade request: 0 to go on, or the refusal's return for lws. It
 * reads the Upgrade header itself (lws's `in` may be freed: ws.c). */
int tk_ws_confirm_upgrade(struct lws *wsi);
int tk_ws_filter(struct lws *wsi, void *pss);
int tk_ws_established(struct lws *wsi, void *pss);
int tk_ws_receive(struct lws *wsi, void *pss, const void *in, size_t len);
int tk_ws_pong(void *pss);
int tk_ws_writable(struct lws *wsi, void *pss);
/* The connection is gone (CLOSED, or WSI_DESTROY: safe on any session). */
void tk_ws_closed(void *pss);

#endif
