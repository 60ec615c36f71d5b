/* redis_uv.h - attaches a hiredis async context to a libuv loop. Unlike
 * hiredis 0.14's bundled adapter it passes poll errors on to hiredis, so a
 * refused or broken connection reaches the connect/disconnect callbacks. */
#ifndef TICKERD_REDIS_UV_H
#define TICKERD_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns 0, or -1 (the context is then the caller's to free). */
int tk_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* A context to a numeric address, attached to loop: hiredis has started a
 * non-blocking connect. ac->data is data, the callbacks are set, and AUTH
 * (user may be NULL) is queued first when password is not NULL, its reply
 * unread: a refusal shows in the replies after it. Returns NULL when the
 * connect cannot start. The caller frees it with redisAsyncFree. */
redisAsyncContext *tk_redis_uv_connect(uv_loop_t *loop, const char *ip, int port, const char *user,
                                       const char *password, redisConnectCallback *on_conn,
                                       redisDisconnectCallback *on_disc, void *data);

#endif
