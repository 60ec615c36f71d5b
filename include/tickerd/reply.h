/* reply.h - writing on an lws connection: the one writer of whole HTTP/1.1
 * responses for every transport and endpoint, and how much a socket takes. */
#ifndef TICKERD_REPLY_H
#define TICKERD_REPLY_H

#include <stddef.h>

struct lws;

/* Writes status, content type, body and optional extra header lines
 * ("Name: value\r\n"...; Cache-Control: no-cache unless they have their
 * own). Returns 0 or -1; the caller completes the transaction. */
int tk_http_respond(struct lws *wsi, unsigned status, const char *type, const char *body,
                    size_t len, const char *extra_headers);

/* A one-line text/plain answer; a refusal (status >= 400) is logged with
 * the client's address and counted. Returns 0 or -1, as above. */
int tk_http_text(struct lws *wsi, unsigned status, const char *text, const char *extra_headers);

/* About how many bytes the socket of wsi takes now without lws having to
 * keep a copy of the rest: half its send buffer (the kernel counts its own
 * overhead against the rest) less what is queued. SIZE_MAX when unknown. */
size_t tk_socket_room(struct lws *wsi);

#endif
