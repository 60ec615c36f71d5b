/* screens.c - GET /v1/items/<id>/screens: the original's ID -> the
 * retract's ID (<stream>:kill:ref:<id>) -> its record (<stream>:kill:<rid>,
 * every node's screens) -> the answer of kill.c. Two Redis commands on the
 * worker's command connection; the answer is written from the connection's
 * writable callback once the last reply is in. */
#include <hiredis/hiredis.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/guard.h"
#include "tickerd/item.h"
#include "tickerd/kill.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/reply.h"
#include "tickerd/screens.h"
#include "tickerd/site.h"
#include "tickerd/writer.h"

#define PREFIX "/v1/items/"
#define SCREENS_MAGIC 0x6b696c6cu
#define SUFFIX "/screens"

typedef struct screens_req screens_req_t;

/* The per-session data of a /screens request: marked, since every kind of
 * session shares the lws allocation (publish.c does the same). */
typedef struct screens_session {
    tk_conn_t conn; /* zero: not a hub client (the other transports check) */
    unsigned magic;
    screens_req_t *req;
} screens_session_t;

const size_t tk_screens_session_size = sizeof(screens_session_t);

static screens_session_t *session(void *pss)
{
    screens_session_t *s = pss;
    return s && s->magic == SCREENS_MAGIC && !s->conn.client.ops ? s : NULL;
}

/* One request. Owned by its session until the connection goes; then by
 * the reply in flight, which frees it. */
struct screens_req {
    struct lws *wsi; /* NULL once the connection is gone */
    tk_site_t *site;
    tk_id_t ref, rid;
    bool in_flight;
    unsigned status; /* 0 until the answer is ready */
    char *body;
    size_t len;
    char cors[400];
};

bool tk_screens_path(const char *uri)
{
    size_t n = strlen(uri), p = strlen(PREFIX), s = strlen(SUFFIX);
    return n > p + s && !strncmp(uri, PREFIX, p) && !strcmp(uri + n - s, SUFFIX);
}

static void req_free(screens_req_t *q)
{
    free(q->body);
    free(q);
}

/* The answer is ready (body taken over): written when the socket allows. */
static void answer(screens_req_t *q, unsigned status, char *body, size_t len)
{
    q->status = status;
    q->body = body;
    q->len = len;
    lws_callback_on_writable(q->wsi);
}

static void answer_text(screens_req_t *q, unsigned status, const char *fmt, const char *arg)
{
    char *text = NULL;
    int n = asprintf(&text, fmt, arg);
    answer(q, status, n < 0 ? NULL : text, n < 0 ? 0 : (size_t)n);
}

/* 503 with what Redis said, or why it said nothing. */
static void redis_trouble(screens_req_t *q, const redisReply *r, const char *err)
{
    const char *why = r && r->type == REDIS_REPLY_ERROR ? r->str : err ? err : "down";
    answer_text(q, 503, "redis: %s\n", why);
}

static int command(screens_req_t *q, const char *verb, const char *key,
                   void (*cb)(void *, const redisReply *, const char *))
{
    const char *argv[2] = {verb, key};
    size_t len[2] = {strlen(verb), strlen(key)};
    q->in_flight = tk_writer_command(q->site->writer, 2, argv, len, cb, q) == 0;
    return q->in_flight ? 0 : -1;
}

/* Whether the reply still has a connection to answer; frees q if not. */
static bool still_wanted(screens_req_t *q)
{
    q->in_flight = false;
    if (q->wsi) return true;
    req_free(q);
    return false;
}

static void on_record(void *ud, const redisReply *r, const char *err)
{
    screens_req_t *q = ud;
    int pending;
    if (!still_wanted(q)) return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        redis_trouble(q, r, err);
        return;
    }
    json_t *o = tk_kill_summary_reply(q->ref, q->rid, r, &pending);
    size_t len = 0;
    char *body = o ? tk_json_dump(o, &len) : NULL;
    json_decref(o);
    if (body)
        answer(q, 200, body, len);
    else
        answer_text(q, 503, "%s\n", "out of memory");
}

static void on_ref(void *ud, const redisReply *r, const char *err)
{
    screens_req_t *q = ud;
    char key[512], id[TK_ID_STRLEN];
    if (!still_wanted(q)) return;
    tk_id_format(q->ref, id);
    if (r && r->type == REDIS_REPLY_NIL) {
        answer_text(q, 404, "no retract of %s recorded\n", id);
    } else if (!r || r->type != REDIS_REPLY_STRING) {
        redis_trouble(q, r, err);
    } else if (tk_id_parse(r->str, r->len, &q->rid)) {
        answer_text(q, 503, "a kill record of %s is not a stream ID\n", id);
    } else if (tk_kill_key(q->site->cfg->stream_key, q->rid, key, sizeof key) < 0 ||
               command(q, "HGETALL", key, on_record)) {
        answer_text(q, 503, "%s\n", "redis: down");
    }
}

static int respond_now(struct lws *wsi, unsigned status, const char *text)
{
    tk_log_refused("refused %s: HTTP %u: %s", tk_guard_client(wsi), status, text);
    tk_metrics_refused(status);
    if (tk_http_respond(wsi, status, "text/plain; charset=utf-8", text, strlen(text), NULL) ||
        lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

int tk_screens_serve(struct lws *wsi, void *pss, const char *uri, const char *cors)
{
    screens_session_t *s = pss;
    tk_site_t *site = tk_site_of(wsi);
    const char *id = uri + strlen(PREFIX);
    size_t n = strlen(id) - strlen(SUFFIX);
    char key[512];
    tk_id_t ref;
    if (tk_id_parse(id, n, &ref)) return respond_now(wsi, 400, "not an item ID\n");
    if (!site->writer) return respond_now(wsi, 503, "no Redis command connection\n");
    screens_req_t *q = calloc(1, sizeof *q);
    if (!q) return -1;
    *q = (screens_req_t){.wsi = wsi, .site = site, .ref = ref};
    snprintf(q->cors, sizeof q->cors, "%s", cors);
    if (tk_kill_ref_key(site->cfg->stream_key, ref, key, sizeof key) < 0 ||
        command(q, "GET", key, on_ref)) {
        req_free(q);
        return respond_now(wsi, 503, "redis: down\n");
    }
    memset(s, 0, sizeof *s);
    s->magic = SCREENS_MAGIC;
    s->req = q;
    return 0;
}

int tk_screens_writable(struct lws *wsi, void *pss)
{
    screens_session_t *s = session(pss);
    if (!s) return 1;
    screens_req_t *q = s->req;
    if (!q || !q->status) return 0; /* still waiting for Redis */
    const char *type = q->status == 200 ? "application/json" : "text/plain; charset=utf-8";
    int rc = tk_http_respond(wsi, q->status, type, q->body ? q->body : "", q->len, q->cors);
    s->req = NULL;
    s->magic = 0; /* the next request on the connection is another's */
    req_free(q);
    return rc < 0 || lws_http_transaction_completed(wsi) ? -1 : 0;
}

void tk_screens_closed(void *pss)
{
    screens_session_t *s = session(pss);
    if (!s) return;
    screens_req_t *q = s->req;
    s->req = NULL;
    s->magic = 0;
    if (q && q->in_flight)
        q->wsi = NULL; /* the reply frees it */
    else if (q)
        req_free(q);
}
