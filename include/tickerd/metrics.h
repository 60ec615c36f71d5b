/* metrics.h - counters and gauges of the whole daemon, kept in shared
 * memory, and their Prometheus text exposition.
 *
 * Every worker owns one slot of the shared block and is its only writer:
 * TK_COUNT is a plain add into that slot (a relaxed store, no locked
 * instruction, no cache line shared with another worker). /metrics, the
 * admission limits and the systemd status sum the slots when they read.
 *
 * When a worker dies the master zeroes what it held "now" (its gauges and
 * its per-IP counts, tk_metrics_release) and leaves its counters in the
 * slot; the restarted worker, bound to the same slot, counts on from there,
 * so the daemon-wide counters never go backwards. */
#ifndef TICKERD_METRICS_H
#define TICKERD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/id.h"
#include "tickerd/item.h"
#include "tickerd/msg.h"

#define TK_MAX_WORKERS 256 /* the largest `[server] workers` */
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

/* One worker as the others and the master see it; written by that worker
 * (pid and started_ms by tk_metrics_bind), cleared by the master when it
 * reaps the worker. */
typedef struct tk_worker_stats {
    int64_t pid; /* 0: not running */
    int64_t redis_up;
    int64_t redis_down_since_ms; /* 0 when up */
    int64_t started_ms;
    int64_t ready;     /* listening and the start-up load done */
    int64_t turned_ms; /* wall time its loop last turned (the watchdog) */
    char last_id[48];
    /* Why it could not start, when it exits with TK_EXIT_START
     * (supervisor.h): set by the worker, read by the master as it reaps. */
    char start_error[256];
} tk_worker_stats_t;

/* One worker's figures. Only 64-bit fields, so that readers can sum slots
 * word by word: a new field needs no change to the summing. Gauges come
 * first, before connections_total: tk_metrics_release zeroes exactly those
 * bytes; everything from connections_total on is a counter and is kept. */
typedef struct tk_metrics_slot {
    /* gauges: what this worker holds now */
    int64_t connections[TK_TRANSPORTS];
    /* the audience (/v1/stats): clients whose filter names each language
     * and region, by name-table index; the last entry counts the clients
     * with no such filter ("*") */
    int64_t audience_lang[TK_MAX_LANGS + 1];
    int64_t audience_region[TK_MAX_REGIONS + 1];
    /* counters */
    uint64_t connections_total;
    uint64_t items_ingested_total; /* counted by worker 0 only (stream.c) */
    uint64_t items_rejected_total[TK_REJECT_REASONS];
    uint64_t messages_sent_total;
    uint64_t bytes_sent_total;
    uint64_t slow_consumer_disconnects_total;
    uint64_t redis_reconnects_total;
    uint64_t replay_events_sent_total;
    uint64_t client_errors_total;
    uint64_t gaps_total; /* to be counted once per daemon, like ingested */
    uint64_t refused_total[TK_REFUSE_REASONS];
    uint64_t fanout_bucket[TK_FANOUT_BUCKETS]; /* not cumulative */
    uint64_t fanout_count;
    uint64_t fanout_sum_us;
    uint64_t accept_pauses_total; /* accept(2) out of descriptors: paused */
} __attribute__((aligned(64))) tk_metrics_slot_t;

/* The shared block: this header, then nworkers + 1 slots (the last one is
 * the master's, which counts nothing today: it only keeps TK_COUNT before
 * tk_metrics_bind harmless), then nworkers rows of TK_IP_SLOTS per-IP
 * counts (one page-aligned row per worker). The
 * pointers are valid in every process because the block is mapped before
 * the workers are forked. */
typedef struct tk_metrics {
    int nworkers;
    uint64_t worker_restarts_total; /* written by the master only */
    tk_id_t counted;                /* tk_metrics_first_count: worker 0's */
    uint64_t last_gap;              /* the gap counted last (a hash): once per daemon */
    tk_worker_stats_t workers[TK_MAX_WORKERS];
    tk_metrics_slot_t *slots; /* [nworkers + 1] */
    int32_t *per_ip;          /* [nworkers][TK_IP_SLOTS] */
    size_t size;              /* of the whole mapping */
} tk_metrics_t;

extern tk_metrics_t *tk_metrics;
/* This process's slot (the master's until tk_metrics_bind). */
extern tk_metrics_slot_t *tk_metrics_slot;

/* Maps the shared block for `workers` workers (clamped to 1..TK_MAX_WORKERS),
 * this process on the master's slot; call once, before forking workers.
 * Returns 0 or -errno. */
int tk_metrics_init(int workers);
void tk_metrics_free(void);

/* Binds this process to worker slot `worker` (single-process mode: 0) and
 * publishes its pid and start time in tk_metrics->workers[worker]. Call at
 * the start of a worker, before it counts anything. */
void tk_metrics_bind(int worker);

/* Master only, after reaping worker `worker`: zeroes its gauges and its
 * per-IP counts and its tk_worker_stats_t; its counters are kept. */
void tk_metrics_release(int worker);

/* Adds n to a field of this worker's slot; field is a tk_metrics_slot_t
 * member, n may be negative for a gauge. Not atomic: only this process
 * writes its slot. */
#define TK_COUNT(field, n)                                                                         \
    __atomic_store_n(&tk_metrics_slot->field, tk_metrics_slot->field + (n), __ATOMIC_RELAXED)

void tk_metrics_observe_fanout(double seconds);
/* Counts a refused request by its HTTP status. */
void tk_metrics_refused(unsigned status);

/* A client's share of the audience (tk_metrics_slot_t's audience_*): the
 * languages and regions its filter names (bit i: name-table index i), or
 * any_* when it has no such filter; delta +1 when it starts counting, -1
 * when it stops. O(names in the filter): no scan of clients. */
void tk_metrics_audience(uint32_t langs, bool any_lang, uint64_t regions, bool any_region,
                         int delta);
/* GET /v1/stats (SPEC §3): the audience now, daemon-wide, as JSON (the
 * caller frees it); NULL when out of memory. */
char *tk_metrics_stats_json(size_t *len);

/* Clients connected now, all workers and transports. */
int64_t tk_metrics_connections(void);

/* Per-IP accounting (guard.c): this worker's count for slot (< TK_IP_SLOTS)
 * changes by delta; tk_metrics_ip_count is the daemon-wide count. */
void tk_metrics_ip_add(uint32_t slot, int delta);
int tk_metrics_ip_count(uint32_t slot);

/* Counting stream entries once per daemon. True when this process is
 * worker 0 and no worker 0 before it counted entry id: a restarted worker 0
 * re-reads the last history_size entries at start-up (as does a reload
 * after a reconnect), and those were counted by the one that died. IDs of
 * another epoch (server.epoch) start the count over. Entries reach a
 * worker in ID order; one being counted at the moment worker 0 is killed
 * may be counted twice or not at all. */
bool tk_metrics_first_count(tk_id_t id);

/* Every one of the daemon's workers runs and is ready (/healthz, READY=1). */
bool tk_metrics_all_ready(void);
/* Every running worker's loop turned in the last max_ms (WATCHDOG=1). */
bool tk_metrics_all_turning(int64_t max_ms);

/* Renders the text exposition; returns a malloc'd string (length in *len),
 * NULL when out of memory. */
char *tk_metrics_render(size_t *len);

#endif
