/* metrics.h - counters and gauges of the whole daemon, kept in shared
 * memory so that every worker adds to the same figures, and their
 * Prometheus text exposition. */
#ifndef TICKERD_METRICS_H
#define TICKERD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/item.h"
#include "tickerd/msg.h"

#define TK_MAX_WORKERS 64
#define TK_FANOUT_BUCKETS 14
#define TK_IP_SLOTS 65536

typedef enum {
    TK_REFUSE_BAD_REQUEST,
    TK_REFUSE_NOT_FOUND,
    TK_REFUSE_UNAUTHORIZED,
    TK_REFUSE_FORBIDDEN,
    TK_REFUSE_TOO_MANY_PER_IP,
    TK_REFUSE_OVER_CAPACITY,
    TK_REFUSE_REASONS
} tk_refuse_t;

typedef struct tk_worker_stats {
    int64_t pid;
    int64_t redis_up;
    int64_t redis_down_since_ms; /* 0 when up */
    int64_t started_ms;
    char last_id[48];
} tk_worker_stats_t;

typedef struct tk_metrics {
    int64_t connections[TK_TRANSPORTS];
    uint64_t connections_total;
    uint64_t items_ingested_total;
    uint64_t items_rejected_total[TK_REJECT_REASONS];
    uint64_t messages_sent_total;
    uint64_t bytes_sent_total;
    uint64_t slow_consumer_disconnects_total;
    uint64_t redis_reconnects_total;
    uint64_t replay_events_sent_total;
    uint64_t client_errors_total;
    uint64_t refused_total[TK_REFUSE_REASONS];
    uint64_t fanout_bucket[TK_FANOUT_BUCKETS]; /* not cumulative */
    uint64_t fanout_count;
    uint64_t fanout_sum_us;
    tk_worker_stats_t workers[TK_MAX_WORKERS];
    int32_t per_ip[TK_IP_SLOTS]; /* clients per source-address hash */
} tk_metrics_t;

extern tk_metrics_t *tk_metrics;

/* Maps the shared block; call once before forking workers. */
int tk_metrics_init(void);
void tk_metrics_free(void);

#define TK_COUNT(field, n) __atomic_fetch_add(&tk_metrics->field, (n), __ATOMIC_RELAXED)

void tk_metrics_observe_fanout(double seconds);
/* Counts a refused request by its HTTP status. */
void tk_metrics_refused(unsigned status);

/* Renders the text exposition; returns a malloc'd string (length in *len). */
char *tk_metrics_render(size_t *len);

#endif
