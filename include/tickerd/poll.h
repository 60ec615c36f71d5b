/* poll.h - the long-poll transport at GET /v1/poll: one request, one
 * answer, a one-shot client of the hub in between. net.c hands it the lws
 * events of its connections; pss is the connection's per-session data. */
#ifndef TICKERD_POLL_H
#define TICKERD_POLL_H

#include <stdbool.h>
#include <stddef.h>

struct lws;

/* Bytes of per-session data a long-poll needs. */
extern const size_t tk_poll_session_size;

/* A GET or HEAD /v1/poll: refused, answered now, or left waiting. */
int tk_poll_request(struct lws *wsi, void *pss);
/* True when pss holds a long-poll (its writable callback is ours). */
bool tk_poll_owns(void *pss);
int tk_poll_writable(struct lws *wsi, void *pss);
/* The connection is gone: safe on any session. */
void tk_poll_closed(void *pss);
/* Shutdown: the worker's watch of waiting polls goes (run the loop). */
void tk_poll_stop(void);

#endif
