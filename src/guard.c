/* guard.c - admission control (see guard.h). Counts that several workers
 * share live in the shared metrics block. */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/guard.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/clock.h"
#include "tickerd/head.h"
#include "tickerd/parse.h"

/* A regions/langs claim: an array of names or a comma-separated string
 * (tk_names_from_json's rules), as a mask. Names this process does not
 * know grant nothing: the issuer may know more regions than this node.
 * An empty element or any other type is refused. */
static int claim_mask(jwt_t *jwt, const char *name, tk_name_kind_t kind, uint64_t *mask)
{
    char *json = jwt_get_grants_json(jwt, name);
    if (!json) return 0; /* absent: no narrowing */
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    free(json);
    int rc = tk_names_from_json(kind, TK_ALL64, v, TK_NAMES_SKIP_UNKNOWN, mask, NULL);
    json_decref(v);
    return rc ? -1 : 0;
}

int tk_grant_from_token(const char *secret, const char *token, int64_t now_s, tk_grant_t *g,
                        char *err, size_t errlen)
{
    jwt_t *jwt = NULL;
    uint64_t regions = TK_ALL64, langs = TK_ALL32;
    if (!token || !*token) {
        snprintf(err, errlen, "a token is required");
        return -1;
    }
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) || !jwt) {
        snprintf(err, errlen, "invalid token");
        return -1;
    }
    int rc = -1;
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp"); /* absent: -1 with ENOENT */
    bool has_exp = errno != ENOENT;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        snprintf(err, errlen, "token is not HS256");
    } else if (has_exp && exp <= now_s) {
        snprintf(err, errlen, "token expired");
    } else if (claim_mask(jwt, "regions", TK_NAME_REGION, &regions) ||
               claim_mask(jwt, "langs", TK_NAME_LANG, &langs)) {
        snprintf(err, errlen, "token claims regions/langs must be lists of names");
    } else {
        g->regions = regions;
        g->langs = (uint32_t)langs;
        g->exp_s = has_exp ? exp : 0;
        errno = 0;
        g->publish = jwt_get_grant_bool(jwt, "publish") == 1 && errno != ENOENT;
        rc = 0;
    }
    jwt_free(jwt);
    return rc;
}

int tk_grant_apply(const tk_grant_t *g, tk_sub_req_t *req, char *err, size_t errlen)
{
    tk_filter_t *f = &req->filter;
    if (f->regions == TK_ALL64)
        f->regions = g->regions;
    else if (f->regions & ~g->regions) {
        snprintf(err, errlen, "the token does not allow these regions");
        return -1;
    }
    if (f->langs == TK_ALL32)
        f->langs = g->langs;
    else if (f->langs & ~g->langs) {
        snprintf(err, errlen, "the token does not allow these languages");
        return -1;
    }
    return 0;
}

bool tk_origin_listed(const char *allowed, const char *origin)
{
    tk_list_iter_t it;
    tk_span_t el;
    size_t n = strlen(origin);
    /* Scheme and host are case-insensitive (RFC 6454). An empty element
     * ends the list: config.c refuses such a list at load. */
    tk_list_init(&it, allowed, strlen(allowed));
    while (tk_list_next(&it, &el) > 0)
        if (el.len == n && !strncasecmp(el.s, origin, n)) return true;
    return false;
}

/* A peer with conn and, unless it is NULL or conn itself, client. */
static tk_peer_t *peer_alloc(const char *conn, const char *client)
{
    size_t cl = strlen(conn) + 1, kl = client && strcmp(client, conn) ? strlen(client) + 1 : 0;
    tk_peer_t *p = malloc(sizeof *p + cl + kl);
    if (!p) return NULL;
    memcpy(p->addrs, conn, cl);
    if (kl) memcpy(p->addrs + cl, client, kl);
    p->client_at = kl ? (uint16_t)cl : 0;
    p->body = NULL;
    p->body_len = -1;
    return p;
}

tk_peer_t *tk_peer_new(const char *conn)
{
    char addr[TK_ADDR_STRLEN];
    snprintf(addr, sizeof addr, "%s", conn && *conn ? conn : "?");
    return peer_alloc(addr, NULL);
}

void tk_peer_free(tk_peer_t *p)
{
    if (p) free(p->body);
    free(p);
}

size_t tk_guard_cors(const tk_config_t *cfg, struct lws *wsi, char *out, size_t cap)
{
    char origin[TK_ORIGIN_MAX + 1];
    int n = 0;
    *out = 0;
    if (!*cfg->allowed_origins)
        n = snprintf(out, cap, "Access-Control-Allow-Origin: *\r\n");
    else if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) > 0 &&
             tk_origin_listed(cfg->allowed_origins, origin))
        n = snprintf(out, cap, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void tk_guard_identify(const tk_config_t *cfg, struct lws *wsi)
{
    tk_peer_t *p = lws_get_opaque_user_data(wsi);
    char xff[TK_HEAD_MAX], client[TK_ADDR_STRLEN];
    if (!p) return;
    const char *conn = p->addrs;
    snprintf(client, sizeof client, "%s", conn);
    if (tk_proxy_trusted(cfg->trusted_proxies, conn)) {
        int n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
        if (n > 0) tk_forwarded_client(cfg->trusted_proxies, xff, (size_t)n, client, sizeof client);
    }
    if (!strcmp(client, tk_guard_client(wsi))) return; /* the common case: no copy */
    tk_peer_t *np = peer_alloc(conn, client);
    if (!np) { /* out of memory: the client stays the connection's address */
        p->client_at = 0;
        return;
    }
    np->body = p->body;
    np->body_len = p->body_len;
    free(p);
    lws_set_opaque_user_data(wsi, np);
}

const char *tk_guard_client(struct lws *wsi)
{
    tk_peer_t *p = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    return p ? p->addrs + p->client_at : "?";
}

/* An Origin too long to compare is refused, never skipped. */
static bool origin_allowed(const char *allowed, struct lws *wsi)
{
    char origin[TK_ORIGIN_MAX + 1];
    if (!*allowed) return true;
    int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (n < 0) return false;
    if (n == 0) return true; /* not a browser: origins do not apply */
    return tk_origin_listed(allowed, origin);
}

/* The token from the query, else from Authorization: Bearer. */
static const char *find_token(struct lws *wsi, tk_sub_req_t *req)
{
    char auth[sizeof req->token + 16];
    if (req->token[0]) return req->token;
    if (lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
        !strncasecmp(auth, "Bearer ", 7) && strlen(auth + 7) < sizeof req->token) {
        memcpy(req->token, auth + 7, strlen(auth + 7) + 1);
        return req->token;
    }
    return NULL;
}

uint32_t tk_guard_ip_slot(struct lws *wsi)
{
    uint32_t h = 2166136261u;
    for (const char *p = tk_guard_client(wsi); *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % TK_IP_SLOTS;
}

void tk_guard_ip_add(uint32_t slot, int delta)
{
    tk_metrics_ip_add(slot, delta);
}

unsigned tk_guard_admit(const tk_config_t *cfg, bool stopping, struct lws *wsi, tk_sub_req_t *req,
                        tk_grant_t *g, char *err, size_t errlen)
{
    int64_t conns = 0;
    g->regions = TK_ALL64;
    g->langs = TK_ALL32;
    g->exp_s = 0;
    g->publish = false;
    if (!origin_allowed(cfg->allowed_origins, wsi)) {
        snprintf(err, errlen, "origin not allowed");
        return 403;
    }
    conns = tk_metrics_connections();
    if (stopping) {
        snprintf(err, errlen, "shutting down");
        return 503;
    }
    if (conns >= cfg->max_connections) {
        snprintf(err, errlen, "server full, try again later");
        return 503;
    }
    if (cfg->max_per_ip && tk_metrics_ip_count(tk_guard_ip_slot(wsi)) >= cfg->max_per_ip) {
        snprintf(err, errlen, "too many connections from this address");
        return 429;
    }
    if (!*cfg->jwt_secret) return 0;
    if (tk_grant_from_token(cfg->jwt_secret, find_token(wsi, req), tk_now_ms() / 1000, g, err,
                            errlen))
        return 401;
    return tk_grant_apply(g, req, err, errlen) ? 403 : 0;
}

unsigned tk_grant_publish(const char *secret, const char *token, int64_t now_s, char *err,
                          size_t errlen)
{
    tk_grant_t g;
    if (!*secret) {
        snprintf(err, errlen, "publishing needs auth: set [auth] jwt_secret");
        return 403;
    }
    if (tk_grant_from_token(secret, token, now_s, &g, err, errlen)) return 401;
    if (!g.publish) {
        snprintf(err, errlen, "the token has no publish claim");
        return 403;
    }
    return 0;
}
