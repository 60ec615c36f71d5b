/* resolve.c - name lookups on the loop's thread pool (see resolve.h).
 *
 * libuv runs at most half its pool's threads on getaddrinfo at once (two
 * of the default four), and a lookup that hangs in the resolver holds its
 * thread until the resolver's own timeout, whoever still wants the answer.
 * So callers that ask for the same name while a lookup of it is in flight
 * wait for that one (a lookup_t, with a tk_resolve_t per caller) instead
 * of starting another: a name that hangs takes one thread however often
 * it is retried, and the others still resolve. A lookup lives until
 * libuv's callback, wanted or not; it is listed until then so that the
 * loop's owner can wait for it (tk_resolve_drain) before closing the
 * loop. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/log.h"
#include "tickerd/resolve.h"

typedef struct lookup lookup_t;

/* One caller's wait for a lookup. */
struct tk_resolve {
    lookup_t *lk;
    tk_resolve_t *next;
    tk_resolve_cb cb;
    void *data;
    unsigned turn;
};

/* One uv_getaddrinfo in flight. */
struct lookup {
    uv_getaddrinfo_t req;
    lookup_t *next;        /* in `lookups` */
    tk_resolve_t *waiters; /* none: given up by all */
    bool joinable;         /* false once cancelled or answered */
    char host[256];
};

static lookup_t *lookups; /* every lookup in flight, of every loop */

static bool is_numeric(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The turn-th address of res (modulo their count) as text. */
static int pick(const struct addrinfo *res, unsigned turn, char *ip)
{
    unsigned n = 0;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        n++;
    if (!n) return UV_EAI_NONAME;
    for (unsigned i = 0; i < turn % n; i++)
        res = res->ai_next;
    return uv_ip_name(res->ai_addr, ip, TK_IP_MAX);
}

static void unlist(lookup_t *lk)
{
    for (lookup_t **p = &lookups; *p; p = &(*p)->next) {
        if (*p == lk) {
            *p = lk->next;
            return;
        }
    }
}

/* Every waiter gets the answer, each its own turn. A callback may start
 * lookups (never this one again) or give up other waiters of this one. */
static void on_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    lookup_t *lk = req->data;
    char ip[TK_IP_MAX];
    unlist(lk);
    lk->joinable = false;
    tk_resolve_t *w;
    while ((w = lk->waiters)) {
        lk->waiters = w->next;
        tk_resolve_cb cb = w->cb;
        void *data = w->data;
        int rc = status ? status : pick(res, w->turn, ip);
        free(w);
        cb(data, lk->host, rc ? NULL : ip, rc);
    }
    uv_freeaddrinfo(res);
    free(lk);
}

/* The lookup of host in flight on loop that a new caller can wait for, or
 * a new one (NULL, with *rc set, when it cannot start). */
static lookup_t *lookup_for(uv_loop_t *loop, const char *host, int *rc)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    for (lookup_t *lk = lookups; lk; lk = lk->next)
        if (lk->joinable && lk->req.loop == loop && strcmp(lk->host, host) == 0) return lk;
    lookup_t *lk = calloc(1, sizeof *lk);
    *rc = UV_ENOMEM;
    if (!lk) return NULL;
    *rc = UV_EINVAL;
    if (snprintf(lk->host, sizeof lk->host, "%s", host) >= (int)sizeof lk->host) goto fail;
    lk->req.data = lk;
    if ((*rc = uv_getaddrinfo(loop, &lk->req, on_done, lk->host, NULL, &hints))) goto fail;
    lk->joinable = true;
    lk->next = lookups;
    lookups = lk;
    return lk;
fail:
    free(lk);
    return NULL;
}

int tk_resolve_start(uv_loop_t *loop, const char *host, unsigned turn, tk_resolve_cb cb, void *data,
                     char *ip, tk_resolve_t **req)
{
    int rc = 0;
    *req = NULL;
    if (is_numeric(host)) { /* no thread: a pool busy with slow names cannot hold it up */
        snprintf(ip, TK_IP_MAX, "%s", host);
        return 1;
    }
    tk_resolve_t *w = calloc(1, sizeof *w);
    if (!w) return UV_ENOMEM;
    if (!(w->lk = lookup_for(loop, host, &rc))) {
        free(w);
        return rc;
    }
    w->cb = cb;
    w->data = data;
    w->turn = turn;
    w->next = w->lk->waiters;
    w->lk->waiters = w;
    *req = w;
    return 0;
}

const char *tk_resolve_host(const tk_resolve_t *req)
{
    return req->lk->host;
}

void tk_resolve_cancel(tk_resolve_t *req)
{
    if (!req) return;
    lookup_t *lk = req->lk;
    for (tk_resolve_t **p = &lk->waiters; *p; p = &(*p)->next) {
        if (*p == req) {
            *p = req->next;
            break;
        }
    }
    free(req);
    /* Nobody waits: a lookup still queued is dropped (its callback then
     * comes with UV_ECANCELED); one already running is left to end, and
     * can still be joined. */
    if (!lk->waiters && lk->joinable && uv_cancel((uv_req_t *)&lk->req) == 0) lk->joinable = false;
}

static int in_flight(const uv_loop_t *loop)
{
    int n = 0;
    for (const lookup_t *lk = lookups; lk; lk = lk->next)
        n += lk->req.loop == loop;
    return n;
}

static void on_drain_timer(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run */
}

int tk_resolve_drain(uv_loop_t *loop, uint64_t max_ms)
{
    uv_timer_t t;
    int n = in_flight(loop);
    if (!n) return 0;
    tk_log(TK_LOG_INFO, "waiting up to %llu ms for %d name lookups still in the resolver",
           (unsigned long long)max_ms, n);
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_drain_timer, max_ms, 0);
    while (in_flight(loop) && uv_is_active((uv_handle_t *)&t))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return in_flight(loop);
}

tk_target_t *tk_target_list(const char *list, const char *what, int *n)
{
    tk_span_t bad;
    int count = tk_hostport_list_parse(list, strlen(list), NULL, 0, &bad);
    tk_hostport_t *hp = count > 0 ? calloc((size_t)count, sizeof *hp) : NULL;
    tk_target_t *t = hp ? calloc((size_t)count, sizeof *t) : NULL;
    if (!t) {
        if (count < 0)
            tk_log(TK_LOG_ERROR, "%s: cannot use '%.*s' (host:port)", what, (int)bad.len, bad.s);
        else
            tk_log(TK_LOG_ERROR, "%s: %s", what, count ? "out of memory" : "the list is empty");
        free(hp);
        return NULL;
    }
    tk_hostport_list_parse(list, strlen(list), hp, count, NULL);
    for (int i = 0; i < count; i++) {
        memcpy(t[i].host, hp[i].host.s, hp[i].host.len);
        t[i].host[hp[i].host.len] = 0;
        t[i].port = hp[i].port;
        snprintf(t[i].label, sizeof t[i].label, strchr(t[i].host, ':') ? "[%s]:%d" : "%s:%d",
                 t[i].host, t[i].port);
    }
    free(hp);
    *n = count;
    return t;
}
