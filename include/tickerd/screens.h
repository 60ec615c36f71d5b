/* screens.h - GET /v1/items/<id>/screens (SPEC §7): the kill confirmation
 * of a retracted item, read from the record every node writes to Redis,
 * through the worker's command connection (tk_site_t.redis_command). The
 * request waits for the replies; a client that leaves first is forgotten. */
#ifndef TICKERD_SCREENS_H
#define TICKERD_SCREENS_H

#include <stdbool.h>
#include <stddef.h>

struct lws;
typedef struct tk_screens_req tk_screens_req_t;

/* True when uri is /v1/items/<anything>/screens. */
bool tk_screens_path(const char *uri);
/* Starts the answer to uri; *slot (the connection's, NULL before) holds
 * the request while it waits. cors: header lines for the answer. Returns
 * what an lws HTTP callback returns. */
int tk_screens_serve(struct lws *wsi, tk_screens_req_t **slot, const char *uri, const char *cors);
/* The connection's writable callback: writes the answer once it is there.
 * Returns 1 when *slot is not ours to write (nothing pending), else what
 * the callback returns. */
int tk_screens_writable(struct lws *wsi, tk_screens_req_t **slot);
/* The connection is gone: a request still waiting for Redis is dropped
 * when the reply comes. */
void tk_screens_closed(tk_screens_req_t **slot);

#endif
