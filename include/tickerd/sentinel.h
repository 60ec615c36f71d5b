/* sentinel.h - finding the Redis master through Redis Sentinel: asking
 * `SENTINEL get-master-addr-by-name` of each sentinel in turn, and
 * following failovers announced on `+switch-master`. */
#ifndef TICKERD_SENTINEL_H
#define TICKERD_SENTINEL_H

#include <uv.h>

#include "tickerd/config.h"

typedef struct tk_sentinel tk_sentinel_t;

/* ip is NULL when no sentinel could name the master. */
typedef void (*tk_sentinel_cb)(void *data, const char *ip, int port);

/* sentinels: "host:port,host:port..."; auth: credentials for them (may be
 * NULL). A sentinel that does not answer a question within timeout_ms is
 * skipped. on_switch is called on every +switch-master of master_name.
 * Returns NULL (logged) when the list is unusable. */
tk_sentinel_t *tk_sentinel_create(uv_loop_t *loop, const char *sentinels, const char *master_name,
                                  const tk_redis_url_t *auth, int timeout_ms,
                                  tk_sentinel_cb on_switch, void *data);
/* A reloaded [redis] timeout_s. NULL s is a no-op. */
void tk_sentinel_set_timeout(tk_sentinel_t *s, int timeout_ms);
/* Asks the sentinels for the master; calls found once. */
void tk_sentinel_ask(tk_sentinel_t *s, tk_sentinel_cb found);
/* Disconnects; freed once its handles have closed. */
void tk_sentinel_free(tk_sentinel_t *s);

#endif
