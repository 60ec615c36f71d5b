/* http.h - the plain HTTP side (SSE at /v1/events, /v1/items, /healthz,
 * /metrics, static files), one function per lws event that net.c hands
 * it. pss is the connection's per-session data. */
#ifndef TICKERD_HTTP_H
#define TICKERD_HTTP_H

#include <stddef.h>

struct lws;

/* Bytes of per-session data an SSE connection needs. */
extern const size_t tk_sse_session_size;

int tk_http_request(struct lws *wsi, void *pss, const char *uri);
int tk_http_writable(struct lws *wsi, void *pss);
int tk_http_file_done(struct lws *wsi);
/* The connection is gone (CLOSED_HTTP, or WSI_DESTROY: safe on any session). */
void tk_http_closed(void *pss);

#endif
