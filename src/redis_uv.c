/* redis_uv.c - the hiredis <-> libuv event adapter, and what every Redis
 * connection of tickerd shares (see redis_uv.h). */
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/redis_uv.h"

typedef struct redis_poll {
    redisAsyncContext *ac; /* NULL once hiredis has let go */
    uv_poll_t poll;
    int events;
} redis_poll_t;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    redis_poll_t *p = handle->data;
    /* On an error, hand hiredis what it waits for: its read or write then
     * fails with the socket's error and it runs its callbacks. */
    if (status < 0) events = p->events ? p->events : UV_READABLE;
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void update(redis_poll_t *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d)
{
    redis_poll_t *p = d;
    update(p, p->events | UV_READABLE);
}

static void del_read(void *d)
{
    redis_poll_t *p = d;
    update(p, p->events & ~UV_READABLE);
}

static void add_write(void *d)
{
    redis_poll_t *p = d;
    update(p, p->events | UV_WRITABLE);
}

static void del_write(void *d)
{
    redis_poll_t *p = d;
    update(p, p->events & ~UV_WRITABLE);
}

static void on_close(uv_handle_t *handle)
{
    free(handle->data);
}

static void cleanup(void *d)
{
    redis_poll_t *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_close);
}

int tk_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return -1;
    redis_poll_t *p = calloc(1, sizeof *p);
    if (!p) return -1;
    if (uv_poll_init(loop, &p->poll, ac->c.fd)) {
        free(p);
        return -1;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

void tk_redis_addr_string(const tk_redis_addr_t *a, char *out, size_t cap)
{
    if (a->path[0])
        snprintf(out, cap, "%s", a->path);
    else if (strchr(a->ip, ':'))
        snprintf(out, cap, "[%s]:%d", a->ip, a->port);
    else
        snprintf(out, cap, "%s:%d", a->ip, a->port);
}

redisAsyncContext *tk_redis_open(uv_loop_t *loop, const tk_redis_addr_t *a, char *err,
                                 size_t errlen)
{
    bool tcp = !a->path[0];
    redisAsyncContext *ac = tcp ? redisAsyncConnect(a->ip, a->port) : redisAsyncConnectUnix(a->path);
    if (!ac || ac->err) {
        snprintf(err, errlen, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        return NULL;
    }
    if (tk_redis_uv_attach(ac, loop)) {
        snprintf(err, errlen, "out of memory");
        redisAsyncFree(ac);
        return NULL;
    }
    /* Keepalive only on TCP: on a unix socket TCP_KEEPIDLE fails and
     * leaves the context in error ("Operation not supported"). */
    if (tcp && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
        ac->c.err = 0;
        ac->c.errstr[0] = 0;
    }
    return ac;
}

int tk_redis_setup_cmds(const tk_redis_url_t *url, tk_redis_cmd_t out[2])
{
    int n = 0;
    if (url->password) {
        tk_redis_cmd_t *c = &out[n++];
        c->argv[0] = "AUTH";
        c->argv[1] = url->user ? url->user : url->password;
        c->argv[2] = url->password;
        c->argc = url->user ? 3 : 2;
    }
    if (url->db) {
        tk_redis_cmd_t *c = &out[n++];
        snprintf(c->db, sizeof c->db, "%d", url->db);
        c->argv[0] = "SELECT";
        c->argv[1] = c->db;
        c->argc = 2;
    }
    return n;
}

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

int tk_redis_backoff_ms(unsigned attempt, uint32_t rnd)
{
    int base = attempt >= 6 ? BACKOFF_MAX_MS : BACKOFF_MIN_MS << attempt;
    if (base > BACKOFF_MAX_MS) base = BACKOFF_MAX_MS;
    int d = base * (75 + (int)(rnd % 51)) / 100;
    return d < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : d > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d;
}

uint32_t tk_redis_jitter(uint32_t *state)
{
    uint32_t x = *state ? *state : 1; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}
