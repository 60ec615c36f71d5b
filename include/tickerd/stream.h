/* stream.h - the reader of the Redis stream: connection and reconnection
 * with backoff, the epoch, the start-up load (XREVRANGE) and the XREAD
 * BLOCK loop that hands every entry to the history and the hub. */
#ifndef TICKERD_STREAM_H
#define TICKERD_STREAM_H

#include <stdbool.h>

#include "tickerd/id.h"

typedef struct tk_stream tk_stream_t;

/* Starts connecting at once. Returns NULL when url cannot be used. */
tk_stream_t *tk_stream_start(uv_loop_t *loop, const char *url);
/* Disconnects and closes its timers; the struct is freed once they have
 * closed (run the loop). */
void tk_stream_stop(tk_stream_t *s);
bool tk_stream_up(const tk_stream_t *s);
/* Milliseconds since Redis went down, 0 when up. */
int64_t tk_stream_down_ms(const tk_stream_t *s);

/* Turns the fields of one stream entry into an event: validation, history,
 * fan-out, metrics and the one log line of a rejection. Exposed for the
 * load and for tests. live=false during the start-up load. */
void tk_stream_ingest(const char *id, size_t idlen, const char *const *fv, const size_t *fvlen,
                      size_t nfv, bool live);

#endif
