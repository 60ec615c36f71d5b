/* screens.h - GET /v1/items/<id>/screens (SPEC §7): the kill confirmation
 * of a retracted item, read from the record every node writes to Redis,
 * through the worker's command connection (tk_site_t.writer). The
 * request waits for the replies; a client that leaves first is forgotten. */
#ifndef TICKERD_SCREENS_H
#define TICKERD_SCREENS_H

#include <stdbool.h>
#include <stddef.h>

struct lws;
/* Bytes of per-session data a /screens request needs. */
extern const size_t tk_screens_session_size;

/* True when uri is /v1/items/<anything>/screens. */
bool tk_screens_path(const char *uri);
/* Starts the answer to uri; the connection's per-session data pss holds
 * the request while it waits. cors: header lines for the answer. Returns
 * what an lws HTTP callback returns. */
int tk_screens_serve(struct lws *wsi, void *pss, const char *uri, const char *cors);
/* The connection's writable callback: writes the answer once it is there.
 * Returns 1 when pss is not a /screens request, else what the callback
 * returns. */
int tk_screens_writable(struct lws *wsi, void *pss);
/* The connection is gone (safe on any session): a request still waiting
 * for Redis is dropped when the reply comes. */
void tk_screens_closed(void *pss);

#endif
