/* publish.h - POST /v1/items (SPEC §3): a JSON object with the stream's
 * keys, from a token whose `publish` claim is true, checked by the same
 * function as every stream entry (tk_item_check_json) and XADDed through
 * the worker's writer, as the entry's one `json` field; with an
 * Idempotency-Key, the key and the entry are written in one Lua script, so
 * that one key adds one entry however many nodes it reaches. */
#ifndef TICKERD_PUBLISH_H
#define TICKERD_PUBLISH_H

#include <stddef.h>

struct lws;

/* The longest Idempotency-Key taken (1..this, visible ASCII); kept in
 * Redis as <stream>:idem:<key> for TK_IDEM_TTL_S. */
#define TK_IDEM_KEY_MAX 200
#define TK_IDEM_TTL_S 86400

/* The per-connection state of a publish, in lws's per-session data. */
extern const size_t tk_publish_session_size;

/* LWS_CALLBACK_HTTP for POST /v1/items. The body is the one listener.c
 * read at the door, or (a later request of a kept-alive connection, TLS)
 * comes through tk_publish_body. Returns what the callback returns. */
int tk_publish_request(struct lws *wsi, void *pss);
/* LWS_CALLBACK_HTTP_BODY and _BODY_COMPLETION. */
int tk_publish_body(struct lws *wsi, void *pss, const void *in, size_t len);
int tk_publish_body_done(struct lws *wsi, void *pss);
/* LWS_CALLBACK_HTTP_WRITEABLE: writes the answer once Redis gave it.
 * Returns 1 when pss is not a publish (the caller's then), else what the
 * callback returns. */
int tk_publish_writable(struct lws *wsi, void *pss);
/* The connection is gone: an XADD in flight is left to finish alone. */
void tk_publish_closed(void *pss);

#endif
