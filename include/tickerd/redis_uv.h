/* redis_uv.h - attaches a hiredis async context to a libuv loop. Unlike
 * hiredis 0.14's bundled adapter it passes poll errors on to hiredis, so a
 * refused or broken connection reaches the connect/disconnect callbacks. */
#ifndef TICKERD_REDIS_UV_H
#define TICKERD_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns 0, or -1 (the context is then the caller's to free). */
int tk_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
