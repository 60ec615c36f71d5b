/* stream.h - the reader of the Redis stream: connection and reconnection
 * with backoff, the epoch, the start-up load (XREVRANGE) and the XREAD
 * BLOCK loop. It reports what it reads through callbacks and knows nothing
 * of items, history or clients. */
#ifndef TICKERD_STREAM_H
#define TICKERD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/id.h"

typedef struct tk_stream tk_stream_t;

/* What the reader reports, each with the ud given to tk_stream_start. */
typedef struct tk_stream_events {
    /* One stream entry as field/value strings (valid only during the
     * call); live is false during a (re)load. */
    void (*entry)(void *ud, const char *id, size_t idlen, const char *const *fv,
                  const size_t *fvlen, size_t nfv, bool live);
    /* Around the entries of one XREAD reply of more than one entry. */
    void (*batch)(void *ud, bool begin);
    /* The load did not reach the start of the stream: entries up to and
     * including id are missing. */
    void (*horizon)(void *ud, tk_id_t id);
    /* The load is done (reload: after a new epoch); live reading starts. */
    void (*loaded)(void *ud, bool reload);
    /* The epoch was read; changed: it differs from the last one, old IDs
     * mean nothing and a reload follows. */
    void (*epoch)(void *ud, const char *epoch, bool changed);
    /* Redis went up or down (down_since_ms: wall time, 0 when up). */
    void (*status)(void *ud, bool up, int64_t down_since_ms);
} tk_stream_events_t;

/* Starts connecting at once to cfg's Redis. worker names the metrics slot
 * and log lines. Returns NULL when the URL cannot be used. */
tk_stream_t *tk_stream_start(uv_loop_t *loop, const tk_config_t *cfg, int worker,
                             const tk_stream_events_t *ev, void *ud);
/* A reloaded configuration (what may change without a restart). */
void tk_stream_set_config(tk_stream_t *s, const tk_config_t *cfg);
/* Disconnects and closes its timers; the struct is freed once they have
 * closed (run the loop). */
void tk_stream_stop(tk_stream_t *s);
bool tk_stream_up(const tk_stream_t *s);

#endif
