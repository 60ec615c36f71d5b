/* reply.h - writing a whole HTTP/1.1 response on an lws connection: the
 * one response writer of every transport and endpoint. */
#ifndef TICKERD_REPLY_H
#define TICKERD_REPLY_H

#include <stddef.h>

struct lws;

/* Writes status, content type, body and optional extra header lines
 * ("Name: value\r\n"...). Returns 0 or -1; the caller completes the
 * transaction. */
int tk_http_respond(struct lws *wsi, unsigned status, const char *type, const char *body,
                    size_t len, const char *extra_headers);

#endif
