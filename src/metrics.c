/* metrics.c - the shared metrics block and its Prometheus text format
 * (version 0.0.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tickerd/metrics.h"

tk_metrics_t *tk_metrics;

static const double fanout_bounds[TK_FANOUT_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const char *const refuse_names[TK_REFUSE_REASONS] = {
    "bad_request", "not_found", "unauthorized", "forbidden", "too_many_per_ip", "over_capacity"};

static const char *const transport_names[TK_TRANSPORTS] = {"websocket", "sse"};

int tk_metrics_init(void)
{
    void *p =
        mmap(NULL, sizeof(tk_metrics_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    tk_metrics = p;
    return 0;
}

void tk_metrics_free(void)
{
    if (tk_metrics) munmap(tk_metrics, sizeof(tk_metrics_t));
    tk_metrics = NULL;
}

void tk_metrics_observe_fanout(double seconds)
{
    int b = 0;
    while (b < TK_FANOUT_BUCKETS && seconds > fanout_bounds[b])
        b++;
    if (b < TK_FANOUT_BUCKETS) TK_COUNT(fanout_bucket[b], 1);
    TK_COUNT(fanout_count, 1);
    TK_COUNT(fanout_sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0));
}

void tk_metrics_refused(unsigned status)
{
    tk_refuse_t r = status == 401   ? TK_REFUSE_UNAUTHORIZED
                    : status == 403 ? TK_REFUSE_FORBIDDEN
                    : status == 404 ? TK_REFUSE_NOT_FOUND
                    : status == 429 ? TK_REFUSE_TOO_MANY_PER_IP
                    : status == 503 ? TK_REFUSE_OVER_CAPACITY
                                    : TK_REFUSE_BAD_REQUEST;
    TK_COUNT(refused_total[r], 1);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
            (unsigned long long)v);
}

static void redis_gauges(FILE *f)
{
    int64_t up = 1;
    for (int i = 0; i < TK_MAX_WORKERS; i++)
        if (tk_metrics->workers[i].pid && !tk_metrics->workers[i].redis_up) up = 0;
    fprintf(f,
            "# HELP tickerd_redis_up Whether every worker's Redis connection is up.\n"
            "# TYPE tickerd_redis_up gauge\ntickerd_redis_up %lld\n",
            (long long)up);
}

static void fanout_histogram(FILE *f)
{
    uint64_t cum = 0;
    fprintf(f, "# HELP tickerd_fanout_seconds Time from an item's stream ID to its last write to "
               "a subscriber.\n# TYPE tickerd_fanout_seconds histogram\n");
    for (int b = 0; b < TK_FANOUT_BUCKETS; b++) {
        cum += load(&tk_metrics->fanout_bucket[b]);
        fprintf(f, "tickerd_fanout_seconds_bucket{le=\"%g\"} %llu\n", fanout_bounds[b],
                (unsigned long long)cum);
    }
    fprintf(f, "tickerd_fanout_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)load(&tk_metrics->fanout_count));
    fprintf(f, "tickerd_fanout_seconds_sum %.6f\n", (double)load(&tk_metrics->fanout_sum_us) / 1e6);
    fprintf(f, "tickerd_fanout_seconds_count %llu\n",
            (unsigned long long)load(&tk_metrics->fanout_count));
}

char *tk_metrics_render(size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    if (!f) return NULL;
    tk_metrics_t *m = tk_metrics;
    fprintf(f, "# HELP tickerd_connections Clients connected now.\n"
               "# TYPE tickerd_connections gauge\n");
    for (int t = 0; t < TK_TRANSPORTS; t++)
        fprintf(f, "tickerd_connections{transport=\"%s\"} %lld\n", transport_names[t],
                (long long)__atomic_load_n(&m->connections[t], __ATOMIC_RELAXED));
    counter(f, "tickerd_connections_total", "Clients accepted since start.",
            load(&m->connections_total));
    counter(f, "tickerd_items_ingested_total", "Stream entries accepted.",
            load(&m->items_ingested_total));
    fprintf(f, "# HELP tickerd_items_rejected_total Stream entries rejected, by reason.\n"
               "# TYPE tickerd_items_rejected_total counter\n");
    for (int r = 1; r < TK_REJECT_REASONS; r++)
        fprintf(f, "tickerd_items_rejected_total{reason=\"%s\"} %llu\n", tk_reason_names[r],
                (unsigned long long)load(&m->items_rejected_total[r]));
    counter(f, "tickerd_messages_sent_total", "Messages written to clients.",
            load(&m->messages_sent_total));
    counter(f, "tickerd_bytes_sent_total", "Bytes of messages written to clients.",
            load(&m->bytes_sent_total));
    counter(f, "tickerd_slow_consumer_disconnects_total",
            "Clients closed because their send queue passed max_queue_bytes.",
            load(&m->slow_consumer_disconnects_total));
    redis_gauges(f);
    counter(f, "tickerd_redis_reconnects_total", "Redis reconnection attempts.",
            load(&m->redis_reconnects_total));
    fanout_histogram(f);
    counter(f, "tickerd_replay_events_sent_total", "Events sent as replay on connect or resume.",
            load(&m->replay_events_sent_total));
    counter(f, "tickerd_client_errors_total", "Malformed or unknown client messages.",
            load(&m->client_errors_total));
    fprintf(f, "# HELP tickerd_refused_total Requests refused, by reason.\n"
               "# TYPE tickerd_refused_total counter\n");
    for (int r = 0; r < TK_REFUSE_REASONS; r++)
        fprintf(f, "tickerd_refused_total{reason=\"%s\"} %llu\n", refuse_names[r],
                (unsigned long long)load(&m->refused_total[r]));
    if (fclose(f)) {
        free(out);
        return NULL;
    }
    return out;
}
