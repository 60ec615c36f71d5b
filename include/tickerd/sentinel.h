/* sentinel.h - finding the Redis master through Redis Sentinel: asking
 * `SENTINEL get-master-addr-by-name` of each sentinel in turn, and
 * following failovers announced on `+switch-master`. A sentinel's name is
 * resolved again, without blocking the loop, every time it is connected
 * to. */
#ifndef TICKERD_SENTINEL_H
#define TICKERD_SENTINEL_H

#include <uv.h>

#include "tickerd/config.h"

typedef struct tk_sentinel tk_sentinel_t;

/* The master as a sentinel names it: host is an address (or a name, with
 * the sentinels' announce-hostnames), valid during the call, the port
 * checked (1..65535); host is NULL when no sentinel could name it. */
typedef void (*tk_sentinel_cb)(void *data, const char *host, int port);

/* sentinels: "host:port,[ipv6]:port,..." (tk_hostport_list_parse, as
 * config.c checks it); auth: credentials for them (may be NULL). A
 * sentinel whose name does not resolve, or that does not answer a lookup,
 * connect or question within timeout_ms, or answers something unusable,
 * is skipped. on_switch is called on every +switch-master of master_name.
 * Returns NULL (logged) when the list is unusable. */
tk_sentinel_t *tk_sentinel_create(uv_loop_t *loop, const char *sentinels, const char *master_name,
                                  const tk_redis_url_t *auth, int timeout_ms,
                                  tk_sentinel_cb on_switch, void *data);
/* A reloaded [redis] timeout_s. NULL s is a no-op. */
void tk_sentinel_set_timeout(tk_sentinel_t *s, int timeout_ms);
/* Asks the sentinels for the master, starting with the one that answered
 * last; calls found once (not from within this call unless every sentinel
 * fails at once). */
void tk_sentinel_ask(tk_sentinel_t *s, tk_sentinel_cb found);
/* Disconnects; freed once its handles have closed. */
void tk_sentinel_free(tk_sentinel_t *s);

#endif
