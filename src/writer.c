/* writer.c - a worker's Redis command connection (see writer.h).
 *
 * Commands are pipelined on one connection and answered in order. Each one
 * waiting for its reply is a cmd_t in a list, oldest first, which the
 * writer owns until the command's callback has been called: hiredis hands
 * it back with the reply, or with NULL when the connection goes (then
 * cmd->why says why). One watchdog timer bounds the oldest command in
 * flight; the connect is bounded by the PING sent after AUTH/SELECT. */
#include <errno.h>
#include <hiredis/async.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tickerd/log.h"
#include "tickerd/redis_uv.h"
#include "tickerd/writer.h"

typedef struct cmd {
    struct cmd *prev, *next; /* in flight (w->first..), or failing (w->failing..) */
    tk_writer_t *w;
    redisAsyncContext *ac; /* the connection it was sent on */
    tk_writer_cb cb;       /* NULL: the writer's own (set-up) command */
    void *ud;
    uint64_t deadline_ms;
    const char *why; /* set when its connection was given up */
} cmd_t;

struct tk_writer {
    uv_loop_t *loop;
    char tag[32];
    tk_redis_url_t url;
    tk_writer_where_fn where;
    void *where_ud;
    int timeout_ms;

    redisAsyncContext *ac;
    tk_redis_addr_t addr;
    char addr_s[128];
    bool up; /* the set-up PING has been answered */
    cmd_t *first, *last;
    cmd_t *failing; /* answered "redis down" from the loop: fail_timer */

    uv_timer_t retry, watchdog, fail_timer;
    unsigned attempt;
    uint32_t rnd;
    int open; /* timers that must close before the struct is freed */
    bool stopping;
};

static void connect_now(tk_writer_t *w);

bool tk_writer_up(const tk_writer_t *w)
{
    return w && w->up;
}

/* --- the commands in flight --- */

static void link_cmd(tk_writer_t *w, cmd_t *c)
{
    c->prev = w->last;
    c->next = NULL;
    *(w->last ? &w->last->next : &w->first) = c;
    w->last = c;
}

static void unlink_cmd(tk_writer_t *w, cmd_t *c)
{
    *(c->prev ? &c->prev->next : &w->first) = c->next;
    *(c->next ? &c->next->prev : &w->last) = c->prev;
}

static void on_watchdog(uv_timer_t *t);

/* The watchdog follows the oldest command in flight. */
static void rearm(tk_writer_t *w)
{
    if (!w->first) {
        uv_timer_stop(&w->watchdog);
        return;
    }
    uint64_t now = uv_now(w->loop), at = w->first->deadline_ms;
    uv_timer_start(&w->watchdog, on_watchdog, at > now ? at - now : 0, 0);
}

/* --- connection state --- */

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_reconnect(tk_writer_t *w)
{
    w->up = false;
    if (w->stopping || uv_is_active((uv_handle_t *)&w->retry)) return;
    int ms = tk_redis_backoff_ms(w->attempt, tk_redis_jitter(&w->rnd));
    if (w->attempt < 32) w->attempt++;
    uv_timer_start(&w->retry, on_retry, (uint64_t)ms, 0);
}

/* Gives the connection up (from anywhere, a hiredis callback included:
 * hiredis then frees the context once the callback returns). Its commands
 * come back with NULL replies and fail with why. */
static void drop(tk_writer_t *w, const char *why)
{
    redisAsyncContext *ac = w->ac;
    if (!ac) return;
    for (cmd_t *c = w->first; c; c = c->next)
        if (c->ac == ac) c->why = why;
    w->ac = NULL;
    redisAsyncFree(ac);
    schedule_reconnect(w);
}

static void on_watchdog(uv_timer_t *t)
{
    tk_writer_t *w = t->data;
    if (!w->first) return;
    tk_log(TK_LOG_WARN, "%s: no answer from %s in %d ms: connection dropped", w->tag, w->addr_s,
           w->timeout_ms);
    drop(w, "timed out");
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    cmd_t *c = priv;
    tk_writer_t *w = c->w;
    redisReply *reply = r;
    unlink_cmd(w, c);
    if (reply && ac == w->ac && w->first) /* a reply proves the server alive */
        w->first->deadline_ms = uv_now(w->loop) + (uint64_t)w->timeout_ms;
    rearm(w);
    if (c->cb) {
        c->cb(c->ud, reply, reply ? NULL : c->why ? c->why : "connection lost");
    } else if (reply && ac == w->ac) { /* AUTH, SELECT, PING */
        if (reply->type == REDIS_REPLY_ERROR) {
            tk_log(TK_LOG_ERROR, "%s: %s", w->tag, reply->str);
            drop(w, "redis refused the set-up");
        } else if (reply->type == REDIS_REPLY_STATUS && !strcmp(reply->str, "PONG")) {
            w->up = true;
            w->attempt = 0;
        }
    }
    free(c);
}

/* Sends on the current connection. Returns 0, or -1 (c is not sent). */
static int send_cmd(tk_writer_t *w, cmd_t *c, int argc, const char **argv, const size_t *lens)
{
    c->w = w;
    c->ac = w->ac;
    c->deadline_ms = uv_now(w->loop) + (uint64_t)w->timeout_ms;
    if (!w->ac || redisAsyncCommandArgv(w->ac, on_reply, c, argc, argv, lens) != REDIS_OK)
        return -1;
    link_cmd(w, c);
    if (w->first == c) rearm(w);
    return 0;
}

static int send_own(tk_writer_t *w, int argc, const char **argv)
{
    cmd_t *c = calloc(1, sizeof *c);
    if (c && send_cmd(w, c, argc, argv, NULL) == 0) return 0;
    free(c);
    return -1;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tk_writer_t *w = ac->data;
    if (status == REDIS_OK || ac != w->ac) return;
    tk_log_limited(TK_LOG_WARN, "%s: no connection to %s: %s", w->tag, w->addr_s, ac->errstr);
    for (cmd_t *c = w->first; c; c = c->next)
        if (c->ac == ac) c->why = "redis down";
    w->ac = NULL; /* hiredis frees it after this callback */
    schedule_reconnect(w);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tk_writer_t *w = ac->data;
    if (ac != w->ac) return; /* given up by us */
    tk_log(TK_LOG_WARN, "%s: connection lost: %s", w->tag,
           status == REDIS_OK ? "closed" : ac->errstr);
    w->ac = NULL;
    schedule_reconnect(w);
}

/* Connects to where the stream reader reads, then AUTH, SELECT, PING. */
static void connect_now(tk_writer_t *w)
{
    char err[128];
    tk_redis_cmd_t setup[2];
    if (w->stopping || w->ac) return;
    if (w->where(w->where_ud, &w->addr)) {
        schedule_reconnect(w);
        return;
    }
    tk_redis_addr_string(&w->addr, w->addr_s, sizeof w->addr_s);
    if (!(w->ac = tk_redis_open(w->loop, &w->addr, err, sizeof err))) {
        tk_log_limited(TK_LOG_WARN, "%s: no connection to %s: %s", w->tag, w->addr_s, err);
        schedule_reconnect(w);
        return;
    }
    w->ac->data = w;
    redisAsyncSetConnectCallback(w->ac, on_connect);
    redisAsyncSetDisconnectCallback(w->ac, on_disconnect);
    int n = tk_redis_setup_cmds(&w->url, setup), rc = 0;
    for (int i = 0; i < n; i++)
        rc |= send_own(w, setup[i].argc, setup[i].argv);
    const char *ping[] = {"PING"};
    if (rc || send_own(w, 1, ping)) drop(w, "out of memory");
}

/* --- commands --- */

static void on_fail_timer(uv_timer_t *t)
{
    tk_writer_t *w = t->data;
    while (w->failing) {
        cmd_t *c = w->failing;
        w->failing = c->next;
        c->cb(c->ud, NULL, c->why);
        free(c);
    }
}

/* The command cannot be sent: its callback runs from the loop, soon. */
static void fail_soon(tk_writer_t *w, cmd_t *c, const char *why)
{
    c->why = why;
    c->next = w->failing;
    w->failing = c;
    uv_timer_start(&w->fail_timer, on_fail_timer, 0, 0);
}

/* Before a command: without a connection, one is made at once when the
 * stream reader knows where (it may just have come up: no waiting out the
 * backoff); when the server it reads from moved (a failover), this
 * connection goes and a new one is made. */
static void follow(tk_writer_t *w)
{
    tk_redis_addr_t now;
    if (w->where(w->where_ud, &now)) return;
    if (!w->ac) {
        uv_timer_stop(&w->retry);
        connect_now(w);
        return;
    }
    if (!strcmp(now.ip, w->addr.ip) && now.port == w->addr.port && !strcmp(now.path, w->addr.path))
        return;
    tk_log(TK_LOG_INFO, "%s: the stream is read from elsewhere now: reconnecting", w->tag);
    drop(w, "redis moved");
    uv_timer_stop(&w->retry);
    w->attempt = 0;
    connect_now(w);
}

int tk_writer_command(tk_writer_t *w, int argc, const char **argv, const size_t *lens,
                      tk_writer_cb cb, void *ud)
{
    if (!w || argc < 1 || !argv || !cb) return -EINVAL;
    cmd_t *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->cb = cb;
    c->ud = ud;
    if (w->stopping) {
        fail_soon(w, c, "stopping");
        return 0;
    }
    follow(w);
    if (send_cmd(w, c, argc, argv, lens)) fail_soon(w, c, "redis down");
    return 0;
}

/* --- life cycle --- */

static void on_timer_closed(uv_handle_t *h)
{
    tk_writer_t *w = h->data;
    if (--w->open > 0) return;
    tk_redis_url_clear(&w->url);
    free(w);
}

tk_writer_t *tk_writer_start(uv_loop_t *loop, const tk_config_t *cfg, int worker,
                             tk_writer_where_fn where, void *where_ud)
{
    char err[256];
    tk_writer_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    if (tk_redis_url_parse(cfg->redis_url, &w->url, err, sizeof err)) {
        tk_log(TK_LOG_ERROR, "redis-writer: %s", err);
        free(w);
        return NULL;
    }
    w->loop = loop;
    w->where = where;
    w->where_ud = where_ud;
    w->timeout_ms = cfg->redis_timeout_s * 1000;
    if (worker > 0)
        snprintf(w->tag, sizeof w->tag, "redis-writer[w%d]", worker);
    else
        snprintf(w->tag, sizeof w->tag, "redis-writer");
    w->rnd = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 8) ^ (uint32_t)worker;
    uv_timer_init(loop, &w->retry);
    uv_timer_init(loop, &w->watchdog);
    uv_timer_init(loop, &w->fail_timer);
    w->retry.data = w->watchdog.data = w->fail_timer.data = w;
    w->open = 3;
    connect_now(w);
    return w;
}

void tk_writer_set_config(tk_writer_t *w, const tk_config_t *cfg)
{
    if (w) w->timeout_ms = cfg->redis_timeout_s * 1000;
}

void tk_writer_stop(tk_writer_t *w)
{
    if (!w || w->stopping) return;
    w->stopping = true;
    drop(w, "stopping");
    on_fail_timer(&w->fail_timer);
    uv_close((uv_handle_t *)&w->retry, on_timer_closed);
    uv_close((uv_handle_t *)&w->watchdog, on_timer_closed);
    uv_close((uv_handle_t *)&w->fail_timer, on_timer_closed);
}
