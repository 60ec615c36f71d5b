/* net.h - the libwebsockets server on the worker's libuv loop: one
 * protocol whose callback hands each lws event to the transport it
 * concerns, and the site (tk_site_t) they all read, as the context's user
 * pointer. */
#ifndef TICKERD_NET_H
#define TICKERD_NET_H

#include "tickerd/site.h"

struct lws_context;

/* Creates the lws context on site->loop into *pcontext (the caller owns it;
 * lws clears *pcontext when it goes, so pcontext must outlive it, as must
 * site) and starts accepting. Returns 0, or -1 (logged). */
int tk_net_start(tk_site_t *site, struct lws_context **pcontext);
/* First step of the two-step shutdown: call from a uv callback. */
void tk_net_stop(struct lws_context *context);
/* Second step, after uv_run has returned. */
void tk_net_finish(struct lws_context *context);

#endif
