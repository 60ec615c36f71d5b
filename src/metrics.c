/* metrics.c - the shared metrics block (one slot per worker, see metrics.h)
 * and its Prometheus text format (version 0.0.4). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tickerd/config.h"
#include "tickerd/clock.h"
#include "tickerd/metrics.h"

tk_metrics_t *tk_metrics;
tk_metrics_slot_t *tk_metrics_slot;
static int32_t *ip_row; /* this worker's row of per-IP counts */
static int bound = -1;  /* this worker's index; -1: not bound (master) */

#define SLOT_WORDS (sizeof(tk_metrics_slot_t) / sizeof(uint64_t))
#define IP_ROW_BYTES ((size_t)TK_IP_SLOTS * sizeof(int32_t))

_Static_assert(sizeof(tk_metrics_slot_t) % sizeof(uint64_t) == 0, "slots are summed by words");
_Static_assert(offsetof(tk_metrics_slot_t, connections_total) % sizeof(uint64_t) == 0,
               "gauges end on a word");

static const double fanout_bounds[TK_FANOUT_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const char *const refuse_names[TK_REFUSE_REASONS] = {
    "bad_request", "not_found", "unauthorized", "forbidden", "too_many_per_ip", "over_capacity"};

static const char *const transport_names[TK_TRANSPORTS] = {"websocket", "sse", "poll"};

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

int tk_metrics_init(int workers)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (workers < 1) workers = 1;
    if (workers > TK_MAX_WORKERS) workers = TK_MAX_WORKERS;
    /* Page-aligned parts: each per-IP row can be dropped on its own. */
    size_t head = round_up(sizeof(tk_metrics_t), page);
    size_t slots = round_up((size_t)(workers + 1) * sizeof(tk_metrics_slot_t), page);
    size_t rows = (size_t)workers * IP_ROW_BYTES;
    size_t size = head + slots + rows;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -errno;
    tk_metrics = p;
    tk_metrics->nworkers = workers;
    tk_metrics->slots = (tk_metrics_slot_t *)((char *)p + head);
    tk_metrics->per_ip = (int32_t *)((char *)p + head + slots);
    tk_metrics->size = size;
    tk_metrics_slot = &tk_metrics->slots[workers]; /* the master's */
    ip_row = NULL;
    return 0;
}

void tk_metrics_free(void)
{
    if (tk_metrics) munmap(tk_metrics, tk_metrics->size);
    tk_metrics = NULL;
    tk_metrics_slot = NULL;
    ip_row = NULL;
    bound = -1;
}

/* Rows start page-aligned and are a whole number of pages long (256 KiB). */
static int32_t *row_of(int worker)
{
    return tk_metrics->per_ip + (size_t)worker * TK_IP_SLOTS;
}

void tk_metrics_bind(int worker)
{
    if (worker < 0 || worker >= tk_metrics->nworkers) worker = 0;
    bound = worker;
    tk_metrics_slot = &tk_metrics->slots[worker];
    ip_row = row_of(worker);
    tk_worker_stats_t *w = &tk_metrics->workers[worker];
    w->started_ms = w->turned_ms = tk_now_ms();
    w->ready = 0;
    __atomic_store_n(&w->pid, (int64_t)getpid(), __ATOMIC_RELEASE);
}

bool tk_metrics_all_ready(void)
{
    for (int i = 0; i < tk_metrics->nworkers; i++) {
        const tk_worker_stats_t *w = &tk_metrics->workers[i];
        if (!__atomic_load_n(&w->pid, __ATOMIC_ACQUIRE) ||
            !__atomic_load_n(&w->ready, __ATOMIC_RELAXED))
            return false;
    }
    return true;
}

bool tk_metrics_all_turning(int64_t max_ms)
{
    int64_t now = tk_now_ms();
    for (int i = 0; i < tk_metrics->nworkers; i++) {
        const tk_worker_stats_t *w = &tk_metrics->workers[i];
        if (__atomic_load_n(&w->pid, __ATOMIC_ACQUIRE) &&
            now - __atomic_load_n(&w->turned_ms, __ATOMIC_RELAXED) > max_ms)
            return false;
    }
    return true;
}

void tk_metrics_release(int worker)
{
    if (worker < 0 || worker >= tk_metrics->nworkers) return;
    tk_metrics_slot_t *s = &tk_metrics->slots[worker];
    int64_t *g = (int64_t *)s;
    for (size_t k = 0; k < offsetof(tk_metrics_slot_t, connections_total) / sizeof *g; k++)
        __atomic_store_n(&g[k], 0, __ATOMIC_RELAXED);
    /* The row is page-aligned shared memory: dropping its pages reads back
     * as zeros and gives the memory back. Where that is refused, clear
     * what is set (without touching the pages that are not). */
    int32_t *row = row_of(worker);
    if (madvise(row, IP_ROW_BYTES, MADV_REMOVE)) {
        for (size_t i = 0; i < TK_IP_SLOTS; i++)
            if (__atomic_load_n(&row[i], __ATOMIC_RELAXED))
                __atomic_store_n(&row[i], 0, __ATOMIC_RELAXED);
    }
    tk_worker_stats_t *w = &tk_metrics->workers[worker];
    __atomic_store_n(&w->pid, 0, __ATOMIC_RELEASE);
    w->redis_up = 0;
    w->redis_down_since_ms = 0;
    w->ready = 0;
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

void tk_metrics_audience(uint32_t langs, bool any_lang, uint64_t regions, bool any_region,
                         int delta)
{
    if (any_lang) TK_COUNT(audience_lang[TK_MAX_LANGS], delta);
    for (; !any_lang && langs; langs &= langs - 1)
        TK_COUNT(audience_lang[__builtin_ctz(langs)], delta);
    if (any_region) TK_COUNT(audience_region[TK_MAX_REGIONS], delta);
    for (; !any_region && regions; regions &= regions - 1)
        TK_COUNT(audience_region[__builtin_ctzll(regions)], delta);
}

int64_t tk_metrics_connections(void)
{
    int64_t n = 0;
    for (int i = 0; i <= tk_metrics->nworkers; i++)
        for (int t = 0; t < TK_TRANSPORTS; t++)
            n += __atomic_load_n(&tk_metrics->slots[i].connections[t], __ATOMIC_RELAXED);
    return n;
}

void tk_metrics_ip_add(uint32_t slot, int delta)
{
    if (!ip_row) return; /* not a worker */
    slot %= TK_IP_SLOTS;
    __atomic_store_n(&ip_row[slot], ip_row[slot] + delta, __ATOMIC_RELAXED);
}

int tk_metrics_ip_count(uint32_t slot)
{
    int n = 0;
    slot %= TK_IP_SLOTS;
    for (int i = 0; i < tk_metrics->nworkers; i++)
        n += __atomic_load_n(&row_of(i)[slot], __ATOMIC_RELAXED);
    return n;
}

/* Only worker 0 reads and writes `counted`, and only one worker 0 lives
 * at a time (the master reaps it before it starts the next). */
bool tk_metrics_first_count(tk_id_t id)
{
    tk_metrics_t *m = tk_metrics;
    if (bound != 0) return false;
    if (tk_id_cmp(id, m->counted) <= 0) return false;
    m->counted = id;
    return true;
}

/* The daemon-wide figures: every slot summed, word by word. Each slot only
 * grows (counters) while it is read, so two scrapes never see a counter go
 * backwards. */
static void sum_slots(tk_metrics_slot_t *out)
{
    uint64_t *o = (uint64_t *)out;
    memset(out, 0, sizeof *out);
    for (int i = 0; i <= tk_metrics->nworkers; i++) {
        const uint64_t *w = (const uint64_t *)&tk_metrics->slots[i];
        for (size_t k = 0; k < SLOT_WORDS; k++)
            o[k] += __atomic_load_n(&w[k], __ATOMIC_RELAXED);
    }
}

/* One audience table: each name's count, then "*". fmt gets the label
 * value and the count. */
static void audience(FILE *f, tk_name_kind_t kind, const int64_t *counts, int max, const char *fmt,
                     const char *sep)
{
    const char *name;
    bool first = true;
    for (int i = 0; i <= max; i++) {
        if (i < max && !(name = tk_name_of(kind, i))) continue;
        fprintf(f, "%s", first ? "" : sep);
        fprintf(f, fmt, i < max ? name : "*", (long long)counts[i]);
        first = false;
    }
}

char *tk_metrics_stats_json(size_t *len)
{
    tk_metrics_slot_t m;
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    if (!f) return NULL;
    sum_slots(&m);
    int64_t conns = 0;
    for (int t = 0; t < TK_TRANSPORTS; t++)
        conns += m.connections[t];
    fprintf(f, "{\"connections\":%lld,\"by_lang\":{", (long long)conns);
    audience(f, TK_NAME_LANG, m.audience_lang, TK_MAX_LANGS, "\"%s\":%lld", ",");
    fputs("},\"by_region\":{", f);
    audience(f, TK_NAME_REGION, m.audience_region, TK_MAX_REGIONS, "\"%s\":%lld", ",");
    fputs("},\"by_transport\":{", f);
    for (int t = 0; t < TK_TRANSPORTS; t++)
        fprintf(f, "%s\"%s\":%lld", t ? "," : "", transport_names[t], (long long)m.connections[t]);
    fputs("}}", f);
    if (fclose(f)) {
        free(out);
        return NULL;
    }
    return out;
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    family(f, name, "counter", help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void redis_gauges(FILE *f)
{
    int64_t up = 1;
    for (int i = 0; i < tk_metrics->nworkers; i++)
        if (__atomic_load_n(&tk_metrics->workers[i].pid, __ATOMIC_ACQUIRE) &&
            !tk_metrics->workers[i].redis_up)
            up = 0;
    family(f, "tickerd_redis_up", "gauge", "Whether every worker's Redis connection is up.");
    fprintf(f, "tickerd_redis_up %lld\n", (long long)up);
}

/* Buckets are kept apart and made cumulative here. The slots are read
 * while workers write, so a finite bucket may already hold an observation
 * that the count does not: +Inf (and _count) is never less than them. */
static void fanout_histogram(FILE *f, const tk_metrics_slot_t *m)
{
    uint64_t cum = 0;
    family(f, "tickerd_fanout_seconds", "histogram",
           "Time from an item's stream ID to its last write to a subscriber.");
    for (int b = 0; b < TK_FANOUT_BUCKETS; b++) {
        cum += m->fanout_bucket[b];
        fprintf(f, "tickerd_fanout_seconds_bucket{le=\"%g\"} %llu\n", fanout_bounds[b],
                (unsigned long long)cum);
    }
    uint64_t count = m->fanout_count > cum ? m->fanout_count : cum;
    fprintf(f, "tickerd_fanout_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)count);
    fprintf(f, "tickerd_fanout_seconds_sum %.6f\n", (double)m->fanout_sum_us / 1e6);
    fprintf(f, "tickerd_fanout_seconds_count %llu\n", (unsigned long long)count);
}

char *tk_metrics_render(size_t *len)
{
    char *out = NULL;
    tk_metrics_slot_t m;
    FILE *f = open_memstream(&out, len);
    if (!f) return NULL;
    sum_slots(&m);
    family(f, "tickerd_build_info", "gauge", "Always 1; the version of this tickerd.");
    fprintf(f, "tickerd_build_info{version=\"%s\"} 1\n", TK_VERSION);
    family(f, "tickerd_connections", "gauge", "Clients connected now.");
    for (int t = 0; t < TK_TRANSPORTS; t++)
        fprintf(f, "tickerd_connections{transport=\"%s\"} %lld\n", transport_names[t],
                (long long)m.connections[t]);
    counter(f, "tickerd_connections_total", "Clients accepted since start.", m.connections_total);
    family(f, "tickerd_subscribers", "gauge",
           "Clients whose filter names this language or region (*: no such filter).");
    audience(f, TK_NAME_LANG, m.audience_lang, TK_MAX_LANGS,
             "tickerd_subscribers{lang=\"%s\"} %lld\n", "");
    audience(f, TK_NAME_REGION, m.audience_region, TK_MAX_REGIONS,
             "tickerd_subscribers{region=\"%s\"} %lld\n", "");
    counter(f, "tickerd_accept_pauses_total",
            "Times accepting paused for 100 ms: out of file descriptors.", m.accept_pauses_total);
    counter(f, "tickerd_items_ingested_total", "Stream entries accepted.", m.items_ingested_total);
    family(f, "tickerd_items_rejected_total", "counter", "Stream entries rejected, by reason.");
    for (int r = 1; r < TK_REJECT_REASONS; r++)
        fprintf(f, "tickerd_items_rejected_total{reason=\"%s\"} %llu\n", tk_reason_names[r],
                (unsigned long long)m.items_rejected_total[r]);
    counter(f, "tickerd_messages_sent_total", "Messages written to clients.",
            m.messages_sent_total);
    counter(f, "tickerd_bytes_sent_total", "Bytes of messages written to clients.",
            m.bytes_sent_total);
    counter(f, "tickerd_slow_consumer_disconnects_total",
            "Clients closed as slow consumers (close code 1013).",
            m.slow_consumer_disconnects_total);
    redis_gauges(f);
    counter(f, "tickerd_redis_reconnects_total", "Redis reconnection attempts.",
            m.redis_reconnects_total);
    fanout_histogram(f, &m);
    counter(f, "tickerd_replay_events_sent_total", "Events sent as replay on connect or resume.",
            m.replay_events_sent_total);
    counter(f, "tickerd_gaps_total", "Gaps found in the stream, once per daemon.", m.gaps_total);
    counter(f, "tickerd_client_errors_total", "Malformed or unknown client messages.",
            m.client_errors_total);
    family(f, "tickerd_refused_total", "counter", "Requests refused, by reason.");
    for (int r = 0; r < TK_REFUSE_REASONS; r++)
        fprintf(f, "tickerd_refused_total{reason=\"%s\"} %llu\n", refuse_names[r],
                (unsigned long long)m.refused_total[r]);
    counter(f, "tickerd_worker_restarts_total", "Workers that died and were restarted.",
            __atomic_load_n(&tk_metrics->worker_restarts_total, __ATOMIC_RELAXED));
    if (fclose(f)) {
        free(out);
        return NULL;
    }
    return out;
}
