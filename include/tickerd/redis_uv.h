/* redis_uv.h - what every Redis connection of tickerd shares (the stream
 * reader's, the writer's): a hiredis async context on a libuv loop (unlike
 * hiredis 0.14's bundled adapter it passes poll errors on to hiredis, so a
 * refused or broken connection reaches the connect/disconnect callbacks),
 * the set-up commands a URL asks for, and the reconnection backoff. */
#ifndef TICKERD_REDIS_UV_H
#define TICKERD_REDIS_UV_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/resolve.h"

/* Returns 0, or -1 (the context is then the caller's to free). */
int tk_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* Where a connection goes: a numeric address and port, or a unix socket. */
typedef struct tk_redis_addr {
    char ip[TK_IP_MAX]; /* empty for a unix socket */
    int port;
    char path[108]; /* the socket's path; empty for TCP */
} tk_redis_addr_t;

/* "ip:port", "[ip6]:port" or the path, for log lines. */
void tk_redis_addr_string(const tk_redis_addr_t *a, char *out, size_t cap);

/* Starts a non-blocking connect to a (nothing here blocks: the address is
 * numeric) on loop, with TCP keepalive. Returns the context, or NULL with
 * the reason in err (nothing left to free). */
redisAsyncContext *tk_redis_open(uv_loop_t *loop, const tk_redis_addr_t *a, char *err,
                                 size_t errlen);

/* A command a new connection sends before any other. */
typedef struct tk_redis_cmd {
    int argc;
    const char *argv[3]; /* point into the URL and into db */
    char db[16];
} tk_redis_cmd_t;

/* The set-up commands url asks for, in order: AUTH [user] password,
 * SELECT db. Returns how many (0..2) were filled in out; they point into
 * url, which must outlive their sending. */
int tk_redis_setup_cmds(const tk_redis_url_t *url, tk_redis_cmd_t out[2]);

/* The delay before reconnection attempt n (0: the first after a loss):
 * 100 ms doubling to 5 s (SPEC §4), each with +-25 % jitter from rnd,
 * always within [100 ms, 5 s]. Jitter keeps nodes from reconnecting in
 * step. Pure. */
int tk_redis_backoff_ms(unsigned attempt, uint32_t rnd);

/* The next of a xorshift32 sequence kept in *state (never 0). */
uint32_t tk_redis_jitter(uint32_t *state);

#endif
