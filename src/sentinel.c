/* sentinel.c - master discovery and failover notices (see sentinel.h). Two
 * kinds of connection: a short one per question, and one subscription to
 * +switch-master that moves to the next sentinel when it drops. */
#include <hiredis/async.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/log.h"
#include "tickerd/redis_uv.h"
#include "tickerd/sentinel.h"

#define MAX_SENTINELS 16
#define SUB_RETRY_MS 1000

typedef struct addr {
    char ip[64];
    int port;
} addr_t;

struct tk_sentinel {
    uv_loop_t *loop;
    addr_t addrs[MAX_SENTINELS];
    int n;
    char *master;
    char *user, *password;
    tk_sentinel_cb on_switch, found;
    void *data;
    int asking; /* index of the sentinel being asked, -1 when idle */
    redisAsyncContext *ask_ac, *sub_ac;
    int sub_next;
    uv_timer_t sub_retry;
    uv_timer_t ask_timer; /* a sentinel that does not answer is skipped */
    int timeout_ms;
    int open_timers;
    bool closing;
};

static void ask_next(tk_sentinel_t *s);
static void subscribe_next(tk_sentinel_t *s);

static redisAsyncContext *open_ctx(tk_sentinel_t *s, const addr_t *a,
                                   redisDisconnectCallback *on_disc, redisConnectCallback *on_conn)
{
    redisAsyncContext *ac = redisAsyncConnect(a->ip, a->port);
    if (!ac || ac->err || tk_redis_uv_attach(ac, s->loop)) {
        if (ac) redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_conn);
    redisAsyncSetDisconnectCallback(ac, on_disc);
    if (s->password) {
        const char *argv[] = {"AUTH", s->user ? s->user : s->password, s->password};
        redisAsyncCommandArgv(ac, NULL, NULL, s->user ? 3 : 2, argv, NULL);
    }
    return ac;
}

static void finish_ask(tk_sentinel_t *s, const char *ip, int port)
{
    uv_timer_stop(&s->ask_timer);
    tk_sentinel_cb found = s->found;
    s->found = NULL;
    s->asking = -1;
    if (found) found(s->data, ip, port);
}

static void on_ask_reply(redisAsyncContext *ac, void *r, void *priv)
{
    tk_sentinel_t *s = priv;
    redisReply *reply = r;
    if (!reply || s->ask_ac != ac) return;
    s->ask_ac = NULL;
    redisAsyncDisconnect(ac);
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        char ip[64];
        snprintf(ip, sizeof ip, "%s", reply->element[0]->str);
        finish_ask(s, ip, atoi(reply->element[1]->str ? reply->element[1]->str : "0"));
        return;
    }
    tk_log(TK_LOG_WARN, "sentinel %s:%d does not know master '%s'", s->addrs[s->asking].ip,
           s->addrs[s->asking].port, s->master);
    ask_next(s);
}

static void on_ask_connect(const redisAsyncContext *ac, int status)
{
    tk_sentinel_t *s = ac->data;
    if (status == REDIS_OK) return;
    tk_log(TK_LOG_WARN, "sentinel %s:%d: %s", s->addrs[s->asking].ip, s->addrs[s->asking].port,
           ac->errstr);
    if (s->ask_ac == ac) {
        s->ask_ac = NULL;
        if (!s->closing) ask_next(s);
    }
}

static void on_ask_disconnect(const redisAsyncContext *ac, int status)
{
    tk_sentinel_t *s = ac->data;
    if (s->ask_ac != ac) return; /* answered: we hung up */
    s->ask_ac = NULL;
    if (!s->closing) ask_next(s);
}

/* The connect or the answer took longer than timeout_ms: the next one. */
static void on_ask_timeout(uv_timer_t *t)
{
    tk_sentinel_t *s = t->data;
    if (!s->ask_ac) return;
    tk_log(TK_LOG_WARN, "sentinel %s:%d: no answer in %d ms", s->addrs[s->asking].ip,
           s->addrs[s->asking].port, s->timeout_ms);
    redisAsyncContext *ac = s->ask_ac;
    s->ask_ac = NULL; /* its disconnect callback then leaves it alone */
    redisAsyncFree(ac);
    ask_next(s);
}

static void ask_next(tk_sentinel_t *s)
{
    uv_timer_stop(&s->ask_timer);
    while (++s->asking < s->n) {
        const addr_t *a = &s->addrs[s->asking];
        if (!(s->ask_ac = open_ctx(s, a, on_ask_disconnect, on_ask_connect))) continue;
        const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->master};
        redisAsyncCommandArgv(s->ask_ac, on_ask_reply, s, 3, argv, NULL);
        uv_timer_start(&s->ask_timer, on_ask_timeout, (uint64_t)s->timeout_ms, 0);
        return;
    }
    finish_ask(s, NULL, 0);
}

void tk_sentinel_ask(tk_sentinel_t *s, tk_sentinel_cb found)
{
    if (s->found) return; /* a question is already out */
    s->found = found;
    s->asking = -1;
    ask_next(s);
}

/* "+switch-master" payload: "<name> <old-ip> <old-port> <new-ip> <new-port>". */
static void on_switch_message(redisAsyncContext *ac, void *r, void *priv)
{
    tk_sentinel_t *s = priv;
    redisReply *reply = r;
    char name[256], old_ip[64], new_ip[64];
    int old_port, new_port;
    (void)ac;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (sscanf(reply->element[2]->str, "%255s %63s %d %63s %d", name, old_ip, &old_port, new_ip,
               &new_port) != 5 ||
        strcmp(name, s->master))
        return;
    tk_log(TK_LOG_WARN, "sentinel: master '%s' moved from %s:%d to %s:%d", name, old_ip, old_port,
           new_ip, new_port);
    s->on_switch(s->data, new_ip, new_port);
}

static void on_sub_retry(uv_timer_t *t)
{
    subscribe_next(t->data);
}

static void sub_lost(tk_sentinel_t *s)
{
    s->sub_ac = NULL;
    if (!s->closing) uv_timer_start(&s->sub_retry, on_sub_retry, SUB_RETRY_MS, 0);
}

static void on_sub_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) sub_lost(ac->data);
}

static void on_sub_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    sub_lost(ac->data);
}

static void subscribe_next(tk_sentinel_t *s)
{
    if (s->closing || s->sub_ac) return;
    const addr_t *a = &s->addrs[s->sub_next++ % s->n];
    if (!(s->sub_ac = open_ctx(s, a, on_sub_disconnect, on_sub_connect))) {
        uv_timer_start(&s->sub_retry, on_sub_retry, SUB_RETRY_MS, 0);
        return;
    }
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    redisAsyncCommandArgv(s->sub_ac, on_switch_message, s, 2, argv, NULL);
}

static int parse_list(tk_sentinel_t *s, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy) return -1;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *colon = strrchr(tok, ':');
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
        if (!colon || s->n == MAX_SENTINELS) goto bad;
        *colon = 0;
        if (getaddrinfo(tok, NULL, &hints, &res)) goto bad;
        getnameinfo(res->ai_addr, res->ai_addrlen, s->addrs[s->n].ip, sizeof s->addrs[s->n].ip,
                    NULL, 0, NI_NUMERICHOST);
        freeaddrinfo(res);
        s->addrs[s->n++].port = atoi(colon + 1);
        continue;
    bad:
        tk_log(TK_LOG_ERROR, "sentinels: cannot use '%s' (host:port)", tok);
        free(copy);
        return -1;
    }
    free(copy);
    return s->n ? 0 : -1;
}

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
    uv_timer_init(loop, &s->sub_retry);
    uv_timer_init(loop, &s->ask_timer);
    s->sub_retry.data = s->ask_timer.data = s;
    s->open_timers = 2;
    if (!s->master || parse_list(s, sentinels)) {
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
    if (s->ask_ac) {
        redisAsyncContext *ac = s->ask_ac;
        s->ask_ac = NULL;
        redisAsyncFree(ac);
    }
    if (s->sub_ac) {
        redisAsyncContext *ac = s->sub_ac;
        s->sub_ac = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&s->sub_retry, on_closed);
    uv_close((uv_handle_t *)&s->ask_timer, on_closed);
}
