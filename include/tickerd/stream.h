/* stream.h - the reader of the Redis stream: connection and reconnection
 * with backoff, the epoch, the start-up load (XREVRANGE) and the XREAD
 * BLOCK loop. It knows nothing of items, history or clients: what it reads
 * and what happens to the connection are reported through the callbacks of
 * tk_stream_events_t, all called from the loop. */
#ifndef TICKERD_STREAM_H
#define TICKERD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/id.h"
#include "tickerd/redis_uv.h"

typedef struct tk_stream tk_stream_t;

/* What the reader reports. Every pointer handed to a callback is valid only
 * during the call. No callback may stop the stream. */
typedef struct tk_stream_events {
    /* One stream entry, in ID order: nfv strings field, value, field, ...
     * (nfv is even). live is false while a load (start-up or reload) is
     * delivered, true for entries read by XREAD. */
    void (*entry)(void *ud, const char *id, size_t idlen, const char *const *fv,
                  const size_t *fvlen, size_t nfv, bool live);
    /* begin=true before the entries of an XREAD reply that holds more than
     * one, begin=false after them. */
    void (*batch)(void *ud, bool begin);
    /* A load is delivered (the start-up one, or the reload announced by
     * gap(reload=true)); XREAD follows. horizon: entries up to and including
     * it may be missing from the load (the entry just before the loaded
     * ones, or the newest entry Redis says was deleted); NULL when nothing
     * is missing. */
    void (*loaded)(void *ud, const tk_id_t *horizon);
    /* The epoch (<key>:epoch), when first read and whenever it changes.
     * changed: it differs from the one reported before, so old IDs mean
     * nothing; gap(reload=true) and the reload follow. */
    void (*epoch)(void *ud, const char *epoch, bool changed);
    /* tickerd may have missed entries. reload=false: entries up to and
     * including *horizon were lost (trimmed while tickerd was away);
     * reading goes on after the last entry read. reload=true: what was read
     * no longer matches Redis (a new epoch; a stream behind the last ID
     * read: failover to a replica that lacks entries, a restore, a stream
     * recreated); forget it: the stream is loaded again at once (entry with
     * live=false..., then loaded) and read from there. horizon is NULL then. */
    void (*gap)(void *ud, const char *why, const tk_id_t *horizon, bool reload);
    /* The connection is up (set-up done, epoch read) or down. Only changes
     * are reported; the stream starts down. */
    void (*status)(void *ud, bool up);
} tk_stream_events_t;

/* Starts connecting at once to cfg's Redis (url, sentinels). cfg is read
 * now and by tk_stream_set_config, never kept. worker names this process in
 * log lines (0 in single-process mode). ev is copied; any callback may be
 * NULL. Returns NULL (logged) when the URL or sentinels cannot be used. */
tk_stream_t *tk_stream_start(uv_loop_t *loop, const tk_config_t *cfg, int worker,
                             const tk_stream_events_t *ev, void *ud);
/* A reloaded configuration: takes what may change without a restart
 * ([redis] timeout_s). NULL s is a no-op. */
void tk_stream_set_config(tk_stream_t *s, const tk_config_t *cfg);
/* Disconnects and closes its timers; the struct is freed once they have
 * closed (run the loop). Calls no callback. */
void tk_stream_stop(tk_stream_t *s);
bool tk_stream_up(const tk_stream_t *s);
/* Milliseconds since Redis went down (loop time), 0 when up. */
int64_t tk_stream_down_ms(const tk_stream_t *s);
/* The server the reader reads from now (the master the sentinels named,
 * the URL's address as resolved, or its unix socket), for other
 * connections that must reach the same server (writer.h). Returns 0, or
 * -1 while the reader is down (the address is not known to work). */
int tk_stream_address(const tk_stream_t *s, tk_redis_addr_t *out);

#endif
