/* net.h - the libwebsockets server on the worker's libuv loop: one
 * protocol whose callback hands each lws event to the transport it
 * concerns, and the site (tk_site_t) they all read, as the context's user
 * pointer. */
#ifndef TICKERD_NET_H
#define TICKERD_NET_H

#include "tickerd/site.h"

struct lws_context;

/* Creates the lws context on site->loop and starts accepting. Returns the
 * context (the caller owns it) or NULL (logged). site must outlive it. */
struct lws_context *tk_net_start(tk_site_t *site);
/* First step of the two-step shutdown: call from a uv callback. */
void tk_net_stop(struct lws_context *context);
/* Second step, after uv_run has returned. */
void tk_net_finish(struct lws_context *context);

#endif
