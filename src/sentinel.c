/* sentinel.c - master discovery and failover notices (see sentinel.h). Two
 * kinds of connection: a short one per question, and one subscription to
 * +switch-master that moves to the next sentinel when it drops.
 *
 * Each sentinel is kept as configured (host and port) and its name is
 * resolved again before every connect to it (resolve.h: on the thread
 * pool, never blocking the loop), so a sentinel that moved is followed. A
 * sentinel whose name does not resolve, that does not answer within
 * timeout_ms, or that answers something unusable is skipped like one that
 * is down. */
#include <hiredis/async.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/log.h"
#include "tickerd/parse.h"
#include "tickerd/redis_uv.h"
#include "tickerd/resolve.h"
#include "tickerd/sentinel.h"

#define SUB_RETRY_MS 1000

typedef enum {
    SUB_WAITING,    /* for sub_timer, to subscribe on the next sentinel */
    SUB_RESOLVING,  /* sub_timer bounds the lookup */
    SUB_CONNECTING, /* sub_timer bounds the connect and the SUBSCRIBE */
    SUB_UP,         /* subscribed */
} sub_state_t;

struct tk_sentinel {
    uv_loop_t *loop;
    tk_target_t *addrs;
    int n;
    char *master;
    char *user, *password;
    tk_sentinel_cb on_switch, found;
    void *data;
    int timeout_ms;

    /* The question goes to each sentinel in turn, starting with the one
     * that answered last. ask_timer bounds the lookup, then the answer. */
    int first;
    int tried;  /* sentinels asked this time */
    int asking; /* the one being asked, -1 when idle */
    tk_resolve_t *ask_resolving;
    redisAsyncContext *ask_ac;
    uv_timer_t ask_timer;

    sub_state_t sub_state;
    int sub_at; /* the sentinel the subscription is on, or being made on */
    unsigned sub_next;
    tk_resolve_t *sub_resolving;
    redisAsyncContext *sub_ac;
    uv_timer_t sub_timer;

    int open_timers;
    bool closing;
};

static void ask_next(tk_sentinel_t *s);
static void subscribe_next(tk_sentinel_t *s);

/* ---- replies (pure) ------------------------------------------------------- */

/* SENTINEL get-master-addr-by-name's answer: [host, port]. Returns 0 with
 * host (TK_HOST_MAX + 1 bytes) and *port set; 1 when the sentinel does not
 * know the master (nil) or refuses (an error); -1 for anything else. */
static int parse_master_addr(const redisReply *r, char *host, int *port)
{
    if (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_ERROR) return 1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return -1;
    const redisReply *h = r->element[0], *p = r->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING ||
        !tk_host_usable(h->str, h->len) || tk_parse_port(p->str, p->len, port))
        return -1;
    memcpy(host, h->str, h->len);
    host[h->len] = 0;
    return 0;
}

/* A +switch-master payload, "<name> <old-host> <old-port> <new-host>
 * <new-port>", one space between words. Returns 0 with the five words in w
 * and the new master in host (TK_HOST_MAX + 1 bytes) and *port; -1 when it
 * is not one. */
static int parse_switch(const char *msg, size_t len, tk_span_t w[5], char *host, int *port)
{
    const char *p = msg, *end = msg + len;
    int old_port;
    for (int i = 0; i < 5; i++) {
        const char *sp = i < 4 ? memchr(p, ' ', (size_t)(end - p)) : end;
        if (!sp || sp == p) return -1;
        w[i] = (tk_span_t){p, (size_t)(sp - p)};
        p = sp + (i < 4);
    }
    if (!tk_host_usable(w[1].s, w[1].len) || !tk_host_usable(w[3].s, w[3].len) ||
        tk_parse_port(w[2].s, w[2].len, &old_port) || tk_parse_port(w[4].s, w[4].len, port))
        return -1;
    memcpy(host, w[3].s, w[3].len);
    host[w[3].len] = 0;
    return 0;
}

/* ---- connections -------------------------------------------------------------- */

/* A context to a numeric address, AUTH queued when the URL had a
 * password. NULL on failure. */
static redisAsyncContext *open_ctx(tk_sentinel_t *s, const char *ip, int port,
                                   redisDisconnectCallback *on_disc, redisConnectCallback *on_conn)
{
    return tk_redis_uv_connect(s->loop, ip, port, s->user, s->password, on_conn, on_disc, s);
}

/* Frees a context we give up; its callbacks then find it is not ours. */
static void drop_ctx(redisAsyncContext **acp)
{
    redisAsyncContext *ac = *acp;
    *acp = NULL;
    if (ac) redisAsyncFree(ac);
}

/* ---- asking for the master ------------------------------------------------- */

static void finish_ask(tk_sentinel_t *s, const char *host, int port)
{
    uv_timer_stop(&s->ask_timer);
    tk_sentinel_cb found = s->found;
    s->found = NULL;
    s->asking = -1;
    if (found) found(s->data, host, port);
}

static void on_ask_reply(redisAsyncContext *ac, void *r, void *priv)
{
    tk_sentinel_t *s = priv;
    redisReply *reply = r;
    char host[TK_HOST_MAX + 1];
    int port;
    if (!reply || s->ask_ac != ac) return;
    s->ask_ac = NULL;
    redisAsyncDisconnect(ac);
    const char *label = s->addrs[s->asking].label;
    int rc = parse_master_addr(reply, host, &port);
    if (rc == 0) {
        s->first = s->asking;
        finish_ask(s, host, port);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR)
        tk_log_limited(TK_LOG_WARN, "sentinel %s: %s", label, reply->str);
    else if (rc > 0)
        tk_log_limited(TK_LOG_WARN, "sentinel %s does not know master '%s'", label, s->master);
    else
        tk_log_limited(TK_LOG_WARN, "sentinel %s: unusable answer for master '%s': skipped", label,
                       s->master);
    ask_next(s);
}

static void on_ask_connect(const redisAsyncContext *ac, int status)
{
    tk_sentinel_t *s = ac->data;
    if (status == REDIS_OK || s->ask_ac != ac) return;
    tk_target_t *a = &s->addrs[s->asking];
    tk_log_limited(TK_LOG_WARN, "sentinel %s: %s", a->label, ac->errstr);
    a->turn++;
    s->ask_ac = NULL; /* hiredis frees it after this callback */
    ask_next(s);
}

static void on_ask_disconnect(const redisAsyncContext *ac, int status)
{
    tk_sentinel_t *s = ac->data;
    if (s->ask_ac != ac) return; /* answered: we hung up */
    s->ask_ac = NULL;
    ask_next(s);
}

/* The lookup, or the connect and the answer, took longer than timeout_ms:
 * the next sentinel. */
static void on_ask_timeout(uv_timer_t *t)
{
    tk_sentinel_t *s = t->data;
    if (s->asking < 0) return;
    tk_target_t *a = &s->addrs[s->asking];
    if (s->ask_resolving) {
        tk_log_limited(TK_LOG_WARN, "sentinel %s: resolving %s took over %d ms: skipped", a->label,
                       a->host, s->timeout_ms);
        tk_resolve_cancel(s->ask_resolving);
        s->ask_resolving = NULL;
    } else if (s->ask_ac) {
        tk_log_limited(TK_LOG_WARN, "sentinel %s: no answer in %d ms", a->label, s->timeout_ms);
        a->turn++;
        drop_ctx(&s->ask_ac);
    } else {
        return;
    }
    ask_next(s);
}

/* Sends the question to the sentinel being asked, at ip. Returns 0 or -1. */
static int ask_at(tk_sentinel_t *s, const char *ip)
{
    tk_target_t *a = &s->addrs[s->asking];
    if (!(s->ask_ac = open_ctx(s, ip, a->port, on_ask_disconnect, on_ask_connect))) {
        tk_log_limited(TK_LOG_WARN, "sentinel %s: cannot connect to %s", a->label, ip);
        return -1;
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->master};
    redisAsyncCommandArgv(s->ask_ac, on_ask_reply, s, 3, argv, NULL);
    uv_timer_start(&s->ask_timer, on_ask_timeout, (uint64_t)s->timeout_ms, 0);
    return 0;
}

static void log_unresolved(const tk_target_t *a, int status)
{
    tk_log_limited(TK_LOG_WARN, "sentinel %s: cannot resolve %s: %s: skipped", a->label, a->host,
                   uv_strerror(status));
}

static void on_ask_resolved(void *data, const char *host, const char *ip, int status)
{
    tk_sentinel_t *s = data;
    const tk_target_t *a = &s->addrs[s->asking];
    s->ask_resolving = NULL;
    uv_timer_stop(&s->ask_timer);
    if (!ip) {
        log_unresolved(a, status);
        ask_next(s);
        return;
    }
    tk_log(TK_LOG_DEBUG, "sentinel %s: %s is %s", a->label, host, ip);
    if (ask_at(s, ip)) ask_next(s);
}

static void ask_next(tk_sentinel_t *s)
{
    char ip[TK_IP_MAX];
    uv_timer_stop(&s->ask_timer);
    if (s->closing) return;
    while (s->tried < s->n) {
        s->asking = (s->first + s->tried++) % s->n;
        const tk_target_t *a = &s->addrs[s->asking];
        int rc =
            tk_resolve_start(s->loop, a->host, a->turn, on_ask_resolved, s, ip, &s->ask_resolving);
        if (rc == 0) {
            uv_timer_start(&s->ask_timer, on_ask_timeout, (uint64_t)s->timeout_ms, 0);
            return;
        }
        if (rc == 1 && ask_at(s, ip) == 0) return;
        if (rc < 0) log_unresolved(a, rc);
    }
    finish_ask(s, NULL, 0);
}

void tk_sentinel_ask(tk_sentinel_t *s, tk_sentinel_cb found)
{
    if (s->found) return; /* a question is already out */
    s->found = found;
    s->tried = 0;
    ask_next(s);
}

/* ---- the +switch-master subscription ------------------------------------------ */

static void on_sub_retry(uv_timer_t *t)
{
    subscribe_next(t->data);
}

/* Lost, or never made: the next sentinel in SUB_RETRY_MS. */
static void sub_wait(tk_sentinel_t *s)
{
    s->sub_state = SUB_WAITING;
    if (!s->closing) uv_timer_start(&s->sub_timer, on_sub_retry, SUB_RETRY_MS, 0);
}

/* Subscription messages: the SUBSCRIBE confirmation, then each
 * +switch-master. */
static void on_switch_message(redisAsyncContext *ac, void *r, void *priv)
{
    tk_sentinel_t *s = priv;
    redisReply *reply = r;
    char host[TK_HOST_MAX + 1];
    tk_span_t w[5];
    int port;
    if (!reply || ac != s->sub_ac || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *label = s->addrs[s->sub_at].label;
    if (strcmp(reply->element[0]->str, "subscribe") == 0) {
        s->sub_state = SUB_UP;
        uv_timer_stop(&s->sub_timer);
        tk_log(TK_LOG_DEBUG, "sentinel %s: subscribed to +switch-master", label);
        return;
    }
    const redisReply *m = reply->element[2];
    if (m->type != REDIS_REPLY_STRING) return;
    if (parse_switch(m->str, m->len, w, host, &port)) {
        tk_log_limited(TK_LOG_WARN, "sentinel %s: unusable +switch-master '%.100s': ignored", label,
                       m->str);
        return;
    }
    if (w[0].len != strlen(s->master) || memcmp(w[0].s, s->master, w[0].len)) return;
    tk_log(TK_LOG_WARN, "sentinel: master '%s' moved from %.*s:%.*s to %s:%d", s->master,
           (int)w[1].len, w[1].s, (int)w[2].len, w[2].s, host, port);
    s->on_switch(s->data, host, port);
}

static void on_sub_connect(const redisAsyncContext *ac, int status)
{
    tk_sentinel_t *s = ac->data;
    if (status == REDIS_OK || ac != s->sub_ac) return;
    s->addrs[s->sub_at].turn++;
    s->sub_ac = NULL; /* hiredis frees it after this callback */
    sub_wait(s);
}

static void on_sub_disconnect(const redisAsyncContext *ac, int status)
{
    tk_sentinel_t *s = ac->data;
    if (ac != s->sub_ac) return; /* given up by us */
    tk_log_limited(TK_LOG_WARN, "sentinel %s: +switch-master subscription lost: %s",
                   s->addrs[s->sub_at].label, status == REDIS_OK ? "closed" : ac->errstr);
    s->sub_ac = NULL;
    sub_wait(s);
}

/* The lookup, or the connect and SUBSCRIBE, took longer than timeout_ms:
 * the next sentinel, at once. */
static void on_sub_timeout(uv_timer_t *t)
{
    tk_sentinel_t *s = t->data;
    tk_target_t *a = &s->addrs[s->sub_at];
    if (s->sub_state == SUB_RESOLVING) {
        tk_log_limited(TK_LOG_WARN, "sentinel %s: resolving %s took over %d ms: skipped", a->label,
                       a->host, s->timeout_ms);
        tk_resolve_cancel(s->sub_resolving);
        s->sub_resolving = NULL;
    } else if (s->sub_state == SUB_CONNECTING) {
        tk_log_limited(TK_LOG_WARN, "sentinel %s: SUBSCRIBE unanswered in %d ms", a->label,
                       s->timeout_ms);
        a->turn++;
        drop_ctx(&s->sub_ac);
    } else {
        return;
    }
    s->sub_state = SUB_WAITING;
    subscribe_next(s);
}

static void subscribe_at(tk_sentinel_t *s, const char *ip)
{
    tk_target_t *a = &s->addrs[s->sub_at];
    if (!(s->sub_ac = open_ctx(s, ip, a->port, on_sub_disconnect, on_sub_connect))) {
        sub_wait(s);
        return;
    }
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    redisAsyncCommandArgv(s->sub_ac, on_switch_message, s, 2, argv, NULL);
    s->sub_state = SUB_CONNECTING;
    uv_timer_start(&s->sub_timer, on_sub_timeout, (uint64_t)s->timeout_ms, 0);
}

static void on_sub_resolved(void *data, const char *host, const char *ip, int status)
{
    tk_sentinel_t *s = data;
    const tk_target_t *a = &s->addrs[s->sub_at];
    s->sub_resolving = NULL;
    uv_timer_stop(&s->sub_timer);
    if (!ip) {
        log_unresolved(a, status);
        sub_wait(s);
        return;
    }
    tk_log(TK_LOG_DEBUG, "sentinel %s: %s is %s", a->label, host, ip);
    subscribe_at(s, ip);
}

static void subscribe_next(tk_sentinel_t *s)
{
    char ip[TK_IP_MAX];
    if (s->closing || s->sub_state != SUB_WAITING) return;
    s->sub_at = (int)(s->sub_next++ % (unsigned)s->n);
    const tk_target_t *a = &s->addrs[s->sub_at];
    int rc = tk_resolve_start(s->loop, a->host, a->turn, on_sub_resolved, s, ip, &s->sub_resolving);
    if (rc == 1) {
        subscribe_at(s, ip);
    } else if (rc < 0) {
        log_unresolved(a, rc);
        sub_wait(s);
    } else {
        s->sub_state = SUB_RESOLVING;
        uv_timer_start(&s->sub_timer, on_sub_timeout, (uint64_t)s->timeout_ms, 0);
    }
}

/* ---- life cycle ------------------------------------------------------------------ */

tk_sentinel_t *tk_sentinel_create(uv_loop_t *loop, const char *sentinels, const char *master_name,
                                  const tk_redis_url_t *auth, int timeout_ms,
                                  tk_sentinel_cb on_switch, void *data)
{
    tk_sentinel_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->on_switch = on_switch;
    s->data = data;
    s->asking = -1;
    s->master = strdup(master_name);
    if (auth && auth->password) s->password = strdup(auth->password);
    if (auth && auth->user) s->user = strdup(auth->user);
    s->timeout_ms = timeout_ms;
    uv_timer_init(loop, &s->sub_timer);
    uv_timer_init(loop, &s->ask_timer);
    s->sub_timer.data = s->ask_timer.data = s;
    s->open_timers = 2;
    s->sub_state = SUB_WAITING;
    if (!s->master || !(s->addrs = tk_target_list(sentinels, "sentinels", &s->n))) {
        tk_sentinel_free(s);
        return NULL;
    }
    subscribe_next(s);
    return s;
}

void tk_sentinel_set_timeout(tk_sentinel_t *s, int timeout_ms)
{
    if (s) s->timeout_ms = timeout_ms;
}

static void on_closed(uv_handle_t *h)
{
    tk_sentinel_t *s = h->data;
    if (--s->open_timers > 0) return;
    free(s->addrs);
    free(s->master);
    free(s->user);
    free(s->password);
    free(s);
}

void tk_sentinel_free(tk_sentinel_t *s)
{
    if (!s) return;
    s->closing = true;
    s->found = NULL;
    /* Lookups given up call nothing back: s may go once the timers close. */
    tk_resolve_cancel(s->ask_resolving);
    tk_resolve_cancel(s->sub_resolving);
    s->ask_resolving = s->sub_resolving = NULL;
    drop_ctx(&s->ask_ac);
    drop_ctx(&s->sub_ac);
    uv_close((uv_handle_t *)&s->sub_timer, on_closed);
    uv_close((uv_handle_t *)&s->ask_timer, on_closed);
}
