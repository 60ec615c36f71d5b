/* redis_uv.c - the hiredis <-> libuv event adapter (see redis_uv.h). */
#include <stdlib.h>

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

redisAsyncContext *tk_redis_uv_connect(uv_loop_t *loop, const char *ip, int port, const char *user,
                                       const char *password, redisConnectCallback *on_conn,
                                       redisDisconnectCallback *on_disc, void *data)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (!ac || ac->err || tk_redis_uv_attach(ac, loop)) {
        if (ac) redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    redisAsyncSetConnectCallback(ac, on_conn);
    redisAsyncSetDisconnectCallback(ac, on_disc);
    if (password) {
        const char *argv[] = {"AUTH", user ? user : password, password};
        redisAsyncCommandArgv(ac, NULL, NULL, user ? 3 : 2, argv, NULL);
    }
    return ac;
}
