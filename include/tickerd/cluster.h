/* cluster.h - finding the master of the stream key's slot in a Redis
 * Cluster: `CLUSTER SLOTS` asked of each seed node in turn, and asked again
 * every second so that a failover is noticed even while the old master's
 * connection hangs. A sibling of sentinel.h with the same interface to
 * stream.c. A seed's name is resolved again, without blocking the loop,
 * every time it is connected to. hiredis 0.14 has no cluster client: the
 * slot lookup is ours. */
#ifndef TICKERD_CLUSTER_H
#define TICKERD_CLUSTER_H

#include <stddef.h>
#include <uv.h>

#include "tickerd/config.h"

#define TK_CLUSTER_SLOTS 16384

typedef struct tk_cluster tk_cluster_t;

/* The master as the cluster names it: host is an address (or a name, with
 * cluster-preferred-endpoint-type hostname), valid during the call, the
 * port checked (1..65535); host is NULL when no node could name it. */
typedef void (*tk_cluster_cb)(void *data, const char *host, int port);

/* The slot of a key, Redis's way: CRC16 (XMODEM) of its hash tag
 * (tk_hash_tag), or of the whole key when it has none, modulo 16384. */
int tk_cluster_keyslot(const char *key, size_t len);

/* nodes: "host:port,..." (tk_hostport_list_parse, as config.c checks it);
 * key: the stream key, whose slot's master is wanted; auth: credentials
 * (may be NULL). A node whose name does not resolve, or that does not
 * answer a lookup, connect or question within timeout_ms, or answers
 * something unusable, is skipped. on_switch is called when the periodic
 * question finds another master than the one named last. Returns NULL
 * (logged) when the list is unusable. */
tk_cluster_t *tk_cluster_create(uv_loop_t *loop, const char *nodes, const char *key,
                                const tk_redis_url_t *auth, int timeout_ms, tk_cluster_cb on_switch,
                                void *data);
/* A reloaded [redis] timeout_s. NULL c is a no-op. */
void tk_cluster_set_timeout(tk_cluster_t *c, int timeout_ms);
/* Asks the nodes for the slot's master, starting with the one that
 * answered last; calls found once (not from within this call unless every
 * node fails at once). */
void tk_cluster_ask(tk_cluster_t *c, tk_cluster_cb found);
/* Disconnects; freed once its handles have closed. */
void tk_cluster_free(tk_cluster_t *c);

#endif
