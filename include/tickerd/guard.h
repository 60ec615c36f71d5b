/* guard.h - who may connect and what they may subscribe to: allowed
 * origins, HS256 JWT tokens and their region/lang claims, the connection
 * limits (total and per IP) and the inbound message rate. */
#ifndef TICKERD_GUARD_H
#define TICKERD_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "tickerd/config.h"
#include "tickerd/filter.h"
#include "tickerd/proxy.h"

struct lws;

/* What a token allows: masks over the name tables (all bits = any). */
typedef struct tk_grant {
    uint64_t regions;
    uint32_t langs;
    int64_t exp_s; /* the token's exp (unix s); 0: none, or no token */
    bool publish;  /* the `publish` claim is true: POST /v1/items allowed */
} tk_grant_t;

/* Whether a request may publish (POST /v1/items, SPEC §3): auth must be on
 * and the token's `publish` claim true. Returns 0, or the status to refuse
 * with (401 no or bad token, 403 no claim or auth off) and the reason. */
unsigned tk_grant_publish(const char *secret, const char *token, int64_t now_s, char *err,
                          size_t errlen);

/* Checks a token against secret and now (seconds). Returns 0 and fills g,
 * or -1 with the reason in err. Pure: unit-testable. */
int tk_grant_from_token(const char *secret, const char *token, int64_t now_s, tk_grant_t *g,
                        char *err, size_t errlen);

/* Narrows req's filter to g: absent lists become the grant; lists asking
 * for more than the grant are refused (-1, reason in err). */
int tk_grant_apply(const tk_grant_t *g, tk_sub_req_t *req, char *err, size_t errlen);

/* The longest Origin compared (one longer is refused, never skipped); the
 * guard, the CORS headers and the preflight use the same buffer size. */
#define TK_ORIGIN_MAX 255

/* True when origin is one of the comma/space-separated allowed list. */
bool tk_origin_listed(const char *allowed, const char *origin);

/* The CORS header lines ("Name: value\r\n"...) for the Origin of wsi's
 * request, per cfg's allowed_origins, in out (empty: none). Returns their
 * length. */
size_t tk_guard_cors(const tk_config_t *cfg, struct lws *wsi, char *out, size_t cap);

/* Who a connection is from, kept on the lws connection (its opaque user
 * data) from its adoption to LWS_CALLBACK_WSI_DESTROY. conn: the
 * connection's address (the peer's, or the client a trusted proxy's PROXY
 * header named, listener.c); client: the current request's client (conn,
 * or the one a trusted conn's X-Forwarded-For names). Every log line,
 * max_per_ip and the refusals use client. The addresses are kept at their
 * length, not in TK_ADDR_STRLEN arrays: every idle connection holds one
 * (docs/performance.md, memory per connection). */
typedef struct tk_peer {
    /* The body of the connection's first request, read by listener.c
     * (tk_listener_adopting_body), until its handler takes it; NULL when
     * none. body_len: that request's Content-Length, -1 when it had none. */
    char *body;
    long long body_len;
    uint16_t client_at; /* where client starts in addrs; 0: client is conn */
    char addrs[];       /* conn, NUL, then client and NUL when it differs */
} tk_peer_t;

/* A peer for a new connection from conn; NULL when out of memory. */
tk_peer_t *tk_peer_new(const char *conn);
void tk_peer_free(tk_peer_t *p);

/* At the start of each request on wsi: its client, per trusted_proxies
 * and X-Forwarded-For (proxy.h: tk_forwarded_client). The peer may move
 * (it grows to hold a client other than conn). */
void tk_guard_identify(const tk_config_t *cfg, struct lws *wsi);

/* The client of wsi's current request, as text ("?" when unknown). */
const char *tk_guard_client(struct lws *wsi);

/* Admission of an HTTP/WebSocket request under cfg (stopping: refuse all
 * with 503): origin (one too long to compare is refused), token (query `token` or
 * Authorization: Bearer), limits. Returns 0 or the HTTP status to refuse
 * with (401, 403, 429, 503) and the reason in err; fills g. */
unsigned tk_guard_admit(const tk_config_t *cfg, bool stopping, struct lws *wsi, tk_sub_req_t *req,
                        tk_grant_t *g, char *err, size_t errlen);

/* Per-IP accounting of admitted clients; the slot is kept by the client. */
uint32_t tk_guard_ip_slot(struct lws *wsi);
void tk_guard_ip_add(uint32_t slot, int delta);

#endif
