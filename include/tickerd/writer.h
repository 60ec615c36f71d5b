/* writer.h - a worker's Redis command connection, for what tickerd writes
 * (POST /v1/items's XADD, kill confirmation's records): the stream
 * reader's connection is held by XREAD BLOCK, and replies come back in
 * order, so writes need their own. One async hiredis connection on the
 * worker's loop, to the server the stream reader reads from (asked on
 * every connect and before every command, so a sentinel failover is
 * followed), AUTH/SELECT from the URL, a connect timeout and a per-command
 * timeout ([redis] timeout_s), reconnection with backoff. */
#ifndef TICKERD_WRITER_H
#define TICKERD_WRITER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/redis_uv.h"

typedef struct tk_writer tk_writer_t;

/* Where the server is now: returns 0 and fills *out, or -1 when it is not
 * known (then commands fail at once with "redis down"). */
typedef int (*tk_writer_where_fn)(void *ud, tk_redis_addr_t *out);

/* The result of one command: reply (valid only during the call; it may be
 * an error reply) or, with reply NULL, err: why there is none ("redis
 * down", "timed out", "connection lost", "stopping"). */
typedef void (*tk_writer_cb)(void *ud, const redisReply *reply, const char *err);

/* Starts connecting (when where knows an address). cfg is read now, never
 * kept; worker names the process in log lines. Returns NULL (logged) when
 * the URL cannot be used or memory runs out. */
tk_writer_t *tk_writer_start(uv_loop_t *loop, const tk_config_t *cfg, int worker,
                             tk_writer_where_fn where, void *where_ud);
/* A reloaded configuration: [redis] timeout_s. NULL w is a no-op. */
void tk_writer_set_config(tk_writer_t *w, const tk_config_t *cfg);
/* Sends argv[0..argc) (binary-safe: lens, or NULL for C strings; copied
 * before it returns). cb is called exactly once, from the loop and never
 * from inside this call: with the reply, or with an error when Redis is
 * down or the command takes over timeout_s (the connection is then
 * dropped and made again). Returns 0; -EINVAL/-ENOMEM (cb not called). */
int tk_writer_command(tk_writer_t *w, int argc, const char **argv, const size_t *lens,
                      tk_writer_cb cb, void *ud);
/* True while the connection is set up and takes commands. */
bool tk_writer_up(const tk_writer_t *w);
/* Disconnects: every command still waiting gets cb(err "stopping") now;
 * the struct is freed once its timers have closed (run the loop). */
void tk_writer_stop(tk_writer_t *w);

#endif
