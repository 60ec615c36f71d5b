/* publish.c - POST /v1/items (see publish.h): token, content type, body,
 * the check every entry gets, then the XADD through the worker's writer;
 * the answer is written when Redis has given its reply. */
#include <errno.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tickerd/clock.h"
#include "tickerd/guard.h"
#include "tickerd/head.h"
#include "tickerd/item.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/publish.h"
#include "tickerd/reply.h"
#include "tickerd/site.h"
#include "tickerd/writer.h"

#define JSON_TYPE "application/json"
#define PUBLISH_MAGIC 0x70756221u

/* The check of the key and the XADD in one step: the first request with a
 * key adds the entry and keeps its ID under the key; any other gets that
 * ID back and adds nothing. Replies {1, id} (added) or {0, id}. */
static const char IDEM_SCRIPT[] =
    "local id = redis.call('GET', KEYS[2])\n"
    "if id then return {0, id} end\n"
    "id = redis.call('XADD', KEYS[1], '*', 'json', ARGV[2])\n"
    "redis.call('SET', KEYS[2], id, 'NX', 'EX', ARGV[1])\n"
    "return {1, id}\n";

/* A publish waiting for Redis. Owned by the writer's callback until it
 * has the answer, then by the session until written; wsi is NULL once the
 * connection is gone (the callback then frees it). */
typedef struct pub_req {
    struct lws *wsi;
    bool done;
    bool replayed; /* an Idempotency-Key seen before: nothing was added */
    unsigned status;
    char body[300];
} pub_req_t;

typedef struct pub_session {
    tk_conn_t conn; /* zero: not a hub client (the other transports check) */
    unsigned magic;
    bool collecting; /* the body comes through LWS_CALLBACK_HTTP_BODY */
    bool too_big;
    char *body;
    size_t len;
    pub_req_t *req;
} pub_session_t;

const size_t tk_publish_session_size = sizeof(pub_session_t);

static pub_session_t *session(void *pss)
{
    pub_session_t *s = pss;
    return s && s->magic == PUBLISH_MAGIC ? s : NULL;
}

/* --- answers --- */

static int finish(struct lws *wsi, int rc)
{
    if (rc < 0 || lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

/* Every answer goes through here. The session's body goes first: after
 * the transaction lws frees the per-session data for the next request,
 * calling nothing of ours. */
static int respond(struct lws *wsi, unsigned status, const char *body, bool replayed)
{
    char extra[512];
    pub_session_t *s = session(lws_wsi_user(wsi));
    if (s) {
        free(s->body);
        s->body = NULL;
        s->collecting = false;
    }
    size_t n = tk_guard_cors(tk_site_of(wsi)->cfg, wsi, extra, sizeof extra);
    if (replayed) snprintf(extra + n, sizeof extra - n, "Idempotent-Replayed: true\r\n");
    return finish(wsi, tk_http_respond(wsi, status, JSON_TYPE, body, strlen(body), extra));
}

/* {"error":code,"message":why}, counted and logged as a refusal. */
static void error_body(char *out, size_t cap, const char *code, const char *why)
{
    json_t *o = json_pack("{s:s,s:s}", "error", code, "message", why);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    snprintf(out, cap, "%s", text ? text : "{\"error\":\"internal\"}");
    free(text);
    json_decref(o);
}

static int refuse(struct lws *wsi, unsigned status, const char *code, const char *why)
{
    char body[512];
    tk_log_refused("refused %s: POST /v1/items: HTTP %u: %s: %s", tk_guard_client(wsi), status,
                   code, why);
    tk_metrics_refused(status);
    error_body(body, sizeof body, code, why);
    return respond(wsi, status, body, false);
}

/* --- Redis --- */

/* The writer's answer: 201 with the ID, or 503. */
static void on_written(void *ud, const redisReply *r, const char *err)
{
    pub_req_t *q = ud;
    const redisReply *id = r;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        q->replayed = r->element[0]->integer == 0;
        id = r->element[1];
    }
    if (id && id->type == REDIS_REPLY_STRING && id->len < 64) {
        q->status = 201;
        snprintf(q->body, sizeof q->body, "{\"id\":\"%.*s\"}", (int)id->len, id->str);
    } else {
        char why[200];
        snprintf(why, sizeof why, "redis: %s",
                 err ? err : r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        tk_log(TK_LOG_WARN, "POST /v1/items: %s", why);
        q->status = 503;
        error_body(q->body, sizeof q->body, "redis_down", why);
    }
    q->done = true;
    if (q->wsi)
        lws_callback_on_writable(q->wsi);
    else
        free(q);
}

/* The Idempotency-Key header into buf ("" when none): 0, or -1 when it is
 * not 1..TK_IDEM_KEY_MAX visible ASCII characters. The session keeps no
 * copy (every connection carries a session): the head is there until the
 * request is answered, so submit() reads it again. */
static int idem_key(struct lws *wsi, char buf[TK_IDEM_KEY_MAX + 1])
{
    buf[0] = 0;
    int n = lws_hdr_custom_length(wsi, "idempotency-key:", 16);
    if (n < 0) return 0; /* none */
    if (n == 0 || n > TK_IDEM_KEY_MAX) return -1;
    if (lws_hdr_custom_copy(wsi, buf, TK_IDEM_KEY_MAX + 1, "idempotency-key:", 16) != n)
        return -1;
    for (int i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] > '~') return -1;
    return 0;
}

/* XADD <stream> * json <body>, or with a key (empty: none) the script. */
static int send_xadd(const tk_config_t *cfg, tk_writer_t *w, pub_session_t *s, const char *key,
                     pub_req_t *q)
{
    char idem[600], ttl[16];
    if (!key[0]) {
        const char *argv[] = {"XADD", cfg->stream_key, "*", "json", s->body};
        size_t lens[] = {4, strlen(cfg->stream_key), 1, 4, s->len};
        return tk_writer_command(w, 5, argv, lens, on_written, q);
    }
    snprintf(idem, sizeof idem, "%s:idem:%s", cfg->stream_key, key);
    snprintf(ttl, sizeof ttl, "%d", TK_IDEM_TTL_S);
    const char *argv[] = {"EVAL", IDEM_SCRIPT, "2", cfg->stream_key, idem, ttl, s->body};
    size_t lens[] = {4,           sizeof IDEM_SCRIPT - 1, 1, strlen(cfg->stream_key),
                     strlen(idem), strlen(ttl),           s->len};
    return tk_writer_command(w, 7, argv, lens, on_written, q);
}

/* The whole body is there: the check every entry gets, then Redis. */
static int submit(struct lws *wsi, pub_session_t *s)
{
    const tk_site_t *site = tk_site_of(wsi);
    tk_reject_t rej = {0};
    tk_id_t now = {(uint64_t)tk_now_ms(), 0};
    if (tk_item_check_json(site->cfg, now, s->body, s->len, &rej))
        return refuse(wsi, 400, tk_reason_names[rej.reason], rej.detail);
    char key[TK_IDEM_KEY_MAX + 1];
    if (idem_key(wsi, key)) /* checked at the head: the head is gone */
        return refuse(wsi, 400, "bad_idempotency_key", "the request's head is gone");
    pub_req_t *q = calloc(1, sizeof *q);
    if (!q) return -1;
    q->wsi = wsi;
    if (!site->writer || send_xadd(site->cfg, site->writer, s, key, q)) {
        free(q);
        return refuse(wsi, 503, "redis_down", "no Redis connection");
    }
    s->req = q;
    return 0;
}

/* --- the request --- */

/* The bearer token of the request (Authorization), or NULL. */
static const char *bearer(struct lws *wsi, char *buf, size_t cap)
{
    int n = lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 7 || strncasecmp(buf, "Bearer ", 7)) return NULL;
    return buf + 7;
}

/* application/json, with parameters (charset) or none. */
static bool json_content(struct lws *wsi)
{
    char type[128];
    int n = lws_hdr_copy(wsi, type, sizeof type, WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (n < 16 || strncasecmp(type, "application/json", 16)) return false;
    return type[16] == 0 || type[16] == ';' || type[16] == ' ';
}

int tk_publish_request(struct lws *wsi, void *pss)
{
    pub_session_t *s = pss;
    const tk_config_t *cfg = tk_site_of(wsi)->cfg;
    tk_peer_t *peer = lws_get_opaque_user_data(wsi);
    char auth[4096], err[256];
    memset(s, 0, sizeof *s);
    s->magic = PUBLISH_MAGIC;
    /* The door's body belongs to this request, whatever its answer. */
    long long door_len = peer ? peer->body_len : -1;
    if (peer) {
        s->body = peer->body;
        s->len = door_len > 0 ? (size_t)door_len : 0;
        peer->body = NULL;
        peer->body_len = -1;
    }
    unsigned status = tk_grant_publish(cfg->jwt_secret, bearer(wsi, auth, sizeof auth),
                                       tk_now_ms() / 1000, err, sizeof err);
    if (status) return refuse(wsi, status, status == 401 ? "unauthorized" : "forbidden", err);
    if (!json_content(wsi))
        return refuse(wsi, 415, "unsupported_media_type", "Content-Type must be application/json");
    char key[TK_IDEM_KEY_MAX + 1];
    if (idem_key(wsi, key))
        return refuse(wsi, 400, "bad_idempotency_key",
                      "Idempotency-Key must be 1..200 visible ASCII characters");
    if (s->body) return submit(wsi, s);
    /* Not read at the door: a later request of the connection, or TLS. */
    char cl[32];
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return refuse(wsi, 411, "length_required", "a body needs a Content-Length");
    if (strtoll(cl, NULL, 10) > TK_BODY_MAX)
        return refuse(wsi, 413, "too_large", "request body over 16384 bytes");
    s->collecting = true;
    return 0;
}

int tk_publish_body(struct lws *wsi, void *pss, const void *in, size_t len)
{
    pub_session_t *s = session(pss);
    if (!s || !s->collecting || s->too_big) return 0;
    if (s->len + len > TK_BODY_MAX) {
        s->too_big = true;
        return 0;
    }
    char *b = realloc(s->body, s->len + len + 1);
    if (!b) return -1;
    memcpy(b + s->len, in, len);
    s->len += len;
    b[s->len] = 0;
    s->body = b;
    return 0;
}

int tk_publish_body_done(struct lws *wsi, void *pss)
{
    pub_session_t *s = session(pss);
    if (!s || !s->collecting) return 0;
    s->collecting = false;
    if (s->too_big) return refuse(wsi, 413, "too_large", "request body over 16384 bytes");
    if (!s->body && !(s->body = calloc(1, 1))) return -1;
    return submit(wsi, s);
}

int tk_publish_writable(struct lws *wsi, void *pss)
{
    pub_session_t *s = session(pss);
    if (!s) return 1;
    pub_req_t *q = s->req;
    if (!q || !q->done) return 0;
    s->req = NULL;
    if (q->status == 201)
        tk_log(TK_LOG_INFO, "POST /v1/items from %s: %s%s", tk_guard_client(wsi), q->body,
               q->replayed ? " (Idempotency-Key seen before: nothing added)" : "");
    else
        tk_metrics_refused(q->status);
    int rc = respond(wsi, q->status, q->body, q->replayed);
    free(q);
    return rc;
}

void tk_publish_closed(void *pss)
{
    pub_session_t *s = session(pss);
    if (!s) return;
    s->magic = 0;
    free(s->body);
    s->body = NULL;
    if (s->req && s->req->done)
        free(s->req);
    else if (s->req)
        s->req->wsi = NULL; /* on_written frees it */
    s->req = NULL;
}
