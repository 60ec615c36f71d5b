/* worker.c - one tickerd worker: its loop, its current configuration, the
 * history, the hub, the stream reader and the lws context, and the wiring
 * stream -> item -> history -> hub. Signals, reload and the order of
 * shutdown. Nothing below it reaches up here: it hands each module what it
 * needs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "tickerd/clock.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"
#include "tickerd/killrec.h"
#include "tickerd/listener.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/net.h"
#include "tickerd/resolve.h"
#include "tickerd/site.h"
#include "tickerd/stream.h"
#include "tickerd/writer.h"
#include "tickerd/supervisor.h"
#include "tickerd/worker.h"

#define SHUTDOWN_WAIT_MS 3000
/* A drain closes its share of the clients this often: over drain_s, every
 * second sees the same number of closes, give or take one tick's. */
#define DRAIN_TICK_MS 50
/* Name lookups given up but still in the resolver post to the loop when
 * they end: it is closed after them (glibc's default worst case is 2 x 5 s). */
#define RESOLVE_WAIT_MS 10000

typedef struct tk_worker {
    uv_loop_t loop;
    int index;
    bool notify; /* this process speaks to systemd (single-process mode) */
    tk_config_t *cfg;
    tk_config_loader_t load;
    tk_history_t *history;
    tk_hub_t *hub;
    tk_stream_t *stream;
    tk_writer_t *writer; /* writes go to the server the stream is read from */
    tk_killrec_t *killrec; /* kill confirmation's record, through the writer */
    struct lws_context *lws;
    tk_site_t site; /* what the transports see of this worker */
    bool stopping;
    bool draining; /* SIGTERM with drain_s: closing clients bit by bit */
    int drain_total, drained;
    bool stage2;
    bool reloading;     /* a gap(reload) came: the load that follows is a gap */
    bool redis_ever_up; /* reconnects count only after a first connection */
    int64_t shutdown_started;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t shutdown_timer, notify_timer, drain_timer;
    uv_timer_t embargo_timer; /* one for every held item: the soonest */
} tk_worker_t;

/* --- configuration --- */

/* The hub's share of the configuration. */
static void hub_limits(const tk_config_t *cfg, tk_hub_limits_t *lim)
{
    lim->max_queue_bytes = (uint64_t)cfg->max_queue_bytes;
    lim->slow_timeout_ms = (int64_t)cfg->slow_timeout_s * 1000;
    lim->heartbeat_s = cfg->heartbeat_s;
    lim->replay_default = cfg->replay_default;
    lim->replay_max = cfg->replay_max;
}

/* Keeps in cfg the string key *slot of old, saying so when they differ. */
static void keep_string(char **slot, const char *old, const char *key)
{
    if (strcmp(*slot, old) == 0) return;
    tk_log(TK_LOG_WARN, "reload: %s = '%s' takes a restart; still using '%s'", key, *slot, old);
    free(*slot);
    *slot = strdup(old);
}

static void keep_int(int *slot, int old, const char *key)
{
    if (*slot == old) return;
    tk_log(TK_LOG_WARN, "reload: %s = %d takes a restart; still using %d", key, *slot, old);
    *slot = old;
}

void tk_worker_keep_fixed(tk_config_t *cfg, const tk_config_t *old)
{
    keep_string(&cfg->listen, old->listen, "listen");
    free(cfg->listen_host); /* parts of listen, said above */
    cfg->listen_host = strdup(old->listen_host);
    cfg->listen_port = old->listen_port;
    keep_string(&cfg->redis_url, old->redis_url, "[redis] url");
    keep_string(&cfg->sentinels, old->sentinels, "[redis] sentinels");
    keep_string(&cfg->master_name, old->master_name, "[redis] master_name");
    keep_string(&cfg->cluster_nodes, old->cluster_nodes, "[redis] cluster_nodes");
    keep_string(&cfg->stream_key, old->stream_key, "[stream] key");
    keep_string(&cfg->tls_cert, old->tls_cert, "tls_cert");
    keep_string(&cfg->tls_key, old->tls_key, "tls_key");
    keep_int(&cfg->history_size, old->history_size, "[stream] history_size");
    keep_int(&cfg->workers, old->workers, "workers");
}

/* SIGHUP: a new configuration for every module that reads one. */
static void reload(tk_worker_t *w)
{
    char err[512];
    tk_config_t *cfg = w->load(err, sizeof err);
    if (!cfg) {
        tk_log(TK_LOG_ERROR, "reload refused, keeping the old configuration: %s", err);
        return;
    }
    tk_worker_keep_fixed(cfg, w->cfg);
    tk_hub_limits_t lim;
    hub_limits(cfg, &lim);
    tk_hub_set_limits(w->hub, &lim);
    tk_history_set_max_live(w->history, cfg->max_live_items);
    tk_stream_set_config(w->stream, cfg);
    tk_writer_set_config(w->writer, cfg);
    tk_listener_set_trusted(cfg->trusted_proxies);
    w->site.cfg = cfg;
    tk_config_free(w->cfg);
    w->cfg = cfg;
    tk_log(TK_LOG_INFO, "configuration reloaded");
}

/* --- embargoes: held items released on this node's clock --- */

/* Releases what is due at now_ms; to the clients when live (else they get
 * it in the replay that follows a load). */
static void release_due(tk_worker_t *w, int64_t now_ms, bool live)
{
    tk_event_t *ev;
    while ((ev = tk_history_release(w->history, now_ms)))
        if (live && w->hub) tk_hub_publish(w->hub, ev);
}

static void on_embargo_due(uv_timer_t *t);

/* The one timer, for the soonest publish_at held (the clock may have moved
 * by the time it fires: on_embargo_due asks again). */
static void arm_embargo(tk_worker_t *w)
{
    int64_t next = tk_history_next_release(w->history);
    if (next == INT64_MAX || w->stage2) {
        uv_timer_stop(&w->embargo_timer);
        return;
    }
    /* Due already (this clock is ahead of the last entry's, or a release
     * found no memory): in 1 ms. */
    int64_t wait = next - tk_now_ms();
    uv_timer_start(&w->embargo_timer, on_embargo_due, wait > 0 ? (uint64_t)wait : 1, 0);
}

static void on_embargo_due(uv_timer_t *t)
{
    tk_worker_t *w = t->data;
    release_due(w, tk_now_ms(), tk_hub_is_ready(w->hub) && !w->reloading);
    arm_embargo(w);
}

/* --- the stream's reports: stream -> item -> history -> hub --- */

static void on_entry(void *ud, const char *id, size_t idlen, const char *const *fv,
                     const size_t *fvlen, size_t nfv, bool live)
{
    tk_worker_t *w = ud;
    tk_id_t sid;
    tk_item_t item;
    tk_reject_t rej = {0};
    tk_field_t stack[32], *fields = stack;
    size_t n = nfv / 2;
    if (tk_id_parse(id, idlen, &sid)) return;
    tk_worker_stats_t *stats = &tk_metrics->workers[w->index];
    if (idlen < sizeof stats->last_id) { /* for STATUS= and tickerctl */
        memcpy(stats->last_id, id, idlen);
        stats->last_id[idlen] = 0;
    }
    /* What was due by this entry's time goes first, as on every node. */
    release_due(w, (int64_t)sid.ms, live);
    int rc;
    if (n > 32 && !(fields = malloc(n * sizeof *fields))) {
        /* rejected like any entry that cannot be read: never a silent loss */
        rej.reason = TK_REJECT_BAD_ENTRY;
        snprintf(rej.detail, sizeof rej.detail, "out of memory for its %zu fields", n);
        rc = -1;
    } else {
        for (size_t i = 0; i < n; i++)
            fields[i] = (tk_field_t){fv[2 * i], fvlen[2 * i], fv[2 * i + 1], fvlen[2 * i + 1]};
        rc = tk_item_parse(w->cfg, sid, fields, n, &item, &rej);
        if (fields != stack) free(fields);
    }
    tk_event_t *ev = rc == 0 ? tk_history_add(w->history, &item, &rej) : NULL;
    if (rc == 0) arm_embargo(w);
    if (!ev && rc == 0 && rej.reason == TK_REJECT_NONE) { /* held, or a held item corrected */
        if (tk_metrics_first_count(sid)) TK_COUNT(items_ingested_total, 1);
        return;
    }
    if (!ev) {
        if (rc == 0) tk_item_clear(&item);
        if (rej.reason == TK_REJECT_OUT_OF_ORDER) return; /* already have it */
        /* Every worker reads every entry, and a restarted one reads the
         * last history_size again: worker 0 speaks, once per entry. */
        if (!tk_metrics_first_count(sid)) return;
        tk_log(TK_LOG_WARN, "entry %.*s rejected: %s: %s", (int)idlen, id,
               tk_reason_names[rej.reason], rej.detail);
        TK_COUNT(items_rejected_total[rej.reason], 1);
        return;
    }
    if (tk_metrics_first_count(sid)) TK_COUNT(items_ingested_total, 1);
    if (!live) return;
    /* A live retract: what the hub routes to labelled screens is recorded
     * with it, in one write (killrec.c). */
    bool kill = ev->op == TK_OP_RETRACT && w->killrec;
    if (kill) tk_killrec_begin(w->killrec, ev);
    tk_hub_publish(w->hub, ev);
    if (kill) tk_killrec_end(w->killrec);
}

static void on_batch(void *ud, bool begin)
{
    tk_worker_t *w = ud;
    tk_hub_batch(w->hub, begin);
}

static void on_epoch(void *ud, const char *epoch, bool changed)
{
    tk_worker_t *w = ud;
    (void)changed; /* the gap(reload) that follows resets the history */
    tk_hub_set_epoch(w->hub, epoch);
}

/* tickerd_gaps_total counts a gap once per daemon: every worker finds the
 * same one (they read the same Redis), so a worker counts it only when it
 * is not the one counted last (key: where the gap leaves the stream). */
static void count_gap(const char *where, tk_id_t at)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *where; where++)
        h = (h ^ (unsigned char)*where) * 1099511628211ULL;
    h = (h ^ at.ms) * 1099511628211ULL;
    h = (h ^ at.seq) * 1099511628211ULL;
    if (__atomic_exchange_n(&tk_metrics->last_gap, h, __ATOMIC_RELAXED) != h)
        TK_COUNT(gaps_total, 1);
}

/* Entries may be missing. Lost ones (trimmed while away): the horizon moves
 * and clients resync now. A stream that no longer matches what was read (a
 * new epoch, a failover to a replica behind, a restore): the history goes,
 * and clients resync once the reload that follows is in. */
static void on_gap(void *ud, const char *why, const tk_id_t *horizon, bool reload)
{
    tk_worker_t *w = ud;
    (void)why; /* logged by the stream */
    if (reload) {
        tk_history_reset(w->history);
        w->reloading = true;
        return;
    }
    tk_history_set_horizon(w->history, *horizon);
    count_gap("lost", *horizon);
    tk_hub_resync(w->hub, true);
}

static void on_loaded(void *ud, const tk_id_t *horizon)
{
    tk_worker_t *w = ud;
    if (horizon) tk_history_set_horizon(w->history, *horizon);
    /* Released now, before clients are served (or resynced) the state. */
    release_due(w, tk_now_ms(), tk_hub_is_ready(w->hub) && !w->reloading);
    arm_embargo(w);
    if (!tk_hub_is_ready(w->hub)) {
        tk_hub_ready(w->hub);
        __atomic_store_n(&tk_metrics->workers[w->index].ready, 1, __ATOMIC_RELAXED);
        if (w->notify) sd_notify(0, "READY=1"); /* single process: serving now */
    } else if (w->reloading) {
        count_gap(tk_hub_epoch(w->hub), tk_history_last_id(w->history));
        tk_hub_resync(w->hub, true);
    }
    w->reloading = false;
}

static void on_status(void *ud, bool up)
{
    tk_worker_t *w = ud;
    tk_worker_stats_t *stats = &tk_metrics->workers[w->index];
    if (up && w->redis_ever_up) TK_COUNT(redis_reconnects_total, 1);
    if (up) w->redis_ever_up = true;
    w->site.redis_up = up;
    w->site.redis_down_ms = up ? 0 : tk_now_ms();
    stats->redis_up = up;
    stats->redis_down_since_ms = w->site.redis_down_ms;
}

static const tk_stream_events_t stream_events = {
    on_entry, on_batch, on_loaded, on_epoch, on_gap, on_status,
};

/* --- signals and shutdown --- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Shutdown, after every client had its close frame (or the wait ran out):
 * the first of lws's two destroy steps, Redis, our handles; then, one tick
 * later, stop the loop (lws leaves its handles to the second step). */
static void on_shutdown_tick(uv_timer_t *t)
{
    tk_worker_t *w = t->data;
    if (w->stage2) {
        close_handle((uv_handle_t *)t);
        uv_stop(&w->loop);
        return;
    }
    if (tk_hub_count(w->hub) > 0 && tk_now_ms() - w->shutdown_started < SHUTDOWN_WAIT_MS) return;
    w->stage2 = true;
    tk_net_stop(w->lws);
    tk_hub_free(w->hub);
    w->hub = NULL;
    tk_killrec_free(w->killrec);
    w->killrec = NULL;
    tk_writer_stop(w->writer);
    w->writer = w->site.writer = NULL;
    tk_stream_stop(w->stream);
    w->stream = NULL;
    close_handle((uv_handle_t *)&w->sig_term);
    close_handle((uv_handle_t *)&w->sig_int);
    close_handle((uv_handle_t *)&w->sig_hup);
    close_handle((uv_handle_t *)&w->drain_timer);
    close_handle((uv_handle_t *)&w->embargo_timer);
}

/* The last step of a stop: whoever is left is closed now, then the
 * shutdown ticks wait for their close frames. */
static void close_the_rest(tk_worker_t *w)
{
    w->draining = false;
    uv_timer_stop(&w->drain_timer);
    w->shutdown_started = tk_now_ms();
    tk_hub_close_all(w->hub, 1001);
    uv_timer_start(&w->shutdown_timer, on_shutdown_tick, 20, 20);
}

/* A drain closes clients at an even pace over drain_s: by each tick, the
 * share of the clients there were at the start that the time gone says. */
static void on_drain_tick(uv_timer_t *t)
{
    tk_worker_t *w = t->data;
    int64_t gone = tk_now_ms() - w->shutdown_started, window = (int64_t)w->cfg->drain_s * 1000;
    if (gone >= window) {
        close_the_rest(w);
        return;
    }
    int due = (int)((int64_t)w->drain_total * gone / window) - w->drained;
    if (due > 0) w->drained += tk_hub_close_some(w->hub, due, 1001);
}

/* SIGTERM: new clients are refused (503) and /healthz says draining; the
 * clients are closed at once, or spread over drain_s. A second SIGTERM
 * ends a drain at once. */
static void stop(tk_worker_t *w, int signum)
{
    if (w->draining) {
        tk_log(TK_LOG_INFO, "%s again: closing the %d clients left now", strsignal(signum),
               tk_hub_count(w->hub));
        close_the_rest(w);
        return;
    }
    if (w->stopping) return;
    w->stopping = w->site.stopping = true;
    if (w->notify) sd_notify(0, "STOPPING=1");
    close_handle((uv_handle_t *)&w->notify_timer);
    int polls = tk_hub_answer_oneshots(w->hub); /* waiting long-polls: at once, empty */
    if (w->cfg->drain_s == 0 || tk_hub_count(w->hub) == polls) {
        tk_log(TK_LOG_INFO, "%s: closing %d clients and stopping", strsignal(signum),
               tk_hub_count(w->hub));
        close_the_rest(w);
        return;
    }
    tk_log(TK_LOG_INFO, "%s: draining %d clients over %d s, then stopping", strsignal(signum),
           tk_hub_count(w->hub), w->cfg->drain_s);
    w->draining = true;
    w->drain_total = tk_hub_count(w->hub) - polls;
    w->drained = 0;
    w->shutdown_started = tk_now_ms();
    uv_timer_start(&w->drain_timer, on_drain_tick, DRAIN_TICK_MS, DRAIN_TICK_MS);
}

static void on_signal(uv_signal_t *h, int signum)
{
    tk_worker_t *w = h->data;
    if (signum == SIGHUP) {
        /* Before READY=1 (on_loaded), READY=1 would end systemd's start. */
        bool tell = w->notify && tk_hub_is_ready(w->hub);
        if (tell) sd_notify(0, "RELOADING=1");
        reload(w);
        if (tell) sd_notify(0, "READY=1");
        return;
    }
    stop(w, signum);
}

/* Every second: this loop turns (the master feeds systemd's watchdog only
 * while every worker's does); in single-process mode, STATUS and WATCHDOG
 * straight to systemd. */
static void on_notify_tick(uv_timer_t *t)
{
    tk_worker_t *w = t->data;
    __atomic_store_n(&tk_metrics->workers[w->index].turned_ms, tk_now_ms(), __ATOMIC_RELAXED);
    if (!w->notify) return;
    tk_notify_status();
    sd_notify(0, "WATCHDOG=1");
}

/* READY=1 comes once the start-up load is done (on_loaded). */
static void start_notify(tk_worker_t *w)
{
    uint64_t us = 0, every = 1000;
    uv_timer_init(&w->loop, &w->notify_timer);
    w->notify_timer.data = w;
    if (w->notify && sd_watchdog_enabled(0, &us) > 0 && us / 2000 < every) every = us / 2000;
    uv_timer_start(&w->notify_timer, on_notify_tick, every ? every : 1, every ? every : 1);
}

static void start_signals(tk_worker_t *w)
{
    uv_signal_t *sigs[] = {&w->sig_term, &w->sig_int, &w->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    uv_timer_init(&w->loop, &w->shutdown_timer);
    w->shutdown_timer.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->embargo_timer);
    w->embargo_timer.data = w;
}

/* --- the worker --- */

static tk_worker_t *volatile abandoned; /* see abandon() */

/* Runs what is due on the loop, the close callbacks included, without
 * waiting. */
static void turn(tk_worker_t *w)
{
    for (int i = 0; i < 10 && uv_run(&w->loop, UV_RUN_NOWAIT); i++)
        ;
}

/* A start that failed: its reason (the first error this worker logged)
 * goes where the master finds it, and the exit status says so. */
static int start_failed(tk_worker_t *w)
{
    tk_worker_stats_t *stats = &tk_metrics->workers[w->index];
    snprintf(stats->start_error, sizeof stats->start_error, "%s", tk_log_first_error());
    return TK_EXIT_START;
}

/* Kill confirmation's record (killrec.c) is written through the writer;
 * without memory for it the worker serves on, and its screens go
 * unrecorded (logged). */
static void start_kill_record(tk_worker_t *w)
{
    if (!(w->killrec = tk_killrec_create(w->cfg->stream_key, w->writer))) {
        tk_log(TK_LOG_ERROR, "out of memory for kill confirmation: screens go unrecorded");
        return;
    }
    tk_kill_hooks_t hooks = tk_killrec_hooks(w->killrec);
    tk_hub_set_kill_hooks(w->hub, &hooks);
}

/* The writer connects where the stream reader reads. */
static int writer_where(void *stream, tk_redis_addr_t *out)
{
    return tk_stream_address(stream, out);
}

/* lws, the listener, the hub, the stream reader, the writer. Returns 0, or
 * start_failed() with what did start taken down but for lws's last step
 * (tk_net_finish); w->lws NULL then: lws is gone, see abandon(). The hub
 * comes after lws so that nothing of ours waits on the loop then. */
static int start(tk_worker_t *w)
{
    const tk_config_t *cfg = w->cfg;
    tk_hub_limits_t lim;
    hub_limits(cfg, &lim);
    w->history = tk_history_create(cfg->history_size, cfg->max_live_items);
    w->site = (tk_site_t){
        .loop = &w->loop, .cfg = w->cfg, .history = w->history, .redis_down_ms = tk_now_ms()};
    if (!w->history) {
        tk_log(TK_LOG_ERROR, "out of memory for the history");
        return start_failed(w);
    }
    if (tk_net_start(&w->site, &w->lws)) {
        if (w->lws) turn(w); /* the listener failed: net.c took lws's first step */
        return start_failed(w);
    }
    w->hub = w->site.hub = tk_hub_create(&w->loop, w->history, &lim);
    if (!w->hub || !(w->stream = tk_stream_start(&w->loop, cfg, w->index, &stream_events, w)) ||
        !(w->writer = w->site.writer =
              tk_writer_start(&w->loop, cfg, w->index, writer_where, w->stream))) {
        if (!w->hub) tk_log(TK_LOG_ERROR, "out of memory for the hub");
        tk_stream_stop(w->stream);
        w->stream = NULL;
        tk_net_stop(w->lws);
        tk_hub_free(w->hub);
        w->hub = NULL;
        turn(w);
        return start_failed(w);
    }
    start_kill_record(w);
    return 0;
}

/* lws 4.1.6 could not set up its context (TLS: the vhost) and took it down
 * at once, leaving handles on our loop whose close callbacks are in the
 * event library it unloaded (kept loaded, they crash in lws): the loop
 * must never turn or close again. It stays, with what lws left on it, for
 * the little that is left of this process. */
static int abandon(tk_worker_t *w, int rc)
{
    abandoned = w;
    tk_history_free(w->history);
    w->history = NULL;
    tk_config_free(w->cfg);
    w->cfg = NULL;
    return rc;
}

int tk_worker_run(int index, tk_config_t *cfg, tk_config_loader_t load, bool notify)
{
    tk_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        tk_config_free(cfg);
        return 1;
    }
    uv_loop_init(&w->loop);
    w->index = index;
    w->notify = notify;
    w->cfg = cfg;
    w->load = load;
    tk_metrics_bind(index);
    tk_log_first_error_reset();
    *tk_metrics->workers[index].start_error = 0;
    /* Down until the stream says up (it reports changes only). */
    tk_metrics->workers[index].redis_up = 0;
    tk_metrics->workers[index].redis_down_since_ms = tk_now_ms();
    int rc = start(w);
    if (rc && !w->lws) return abandon(w, rc);
    if (rc == 0) {
        start_signals(w);
        start_notify(w);
        tk_log(TK_LOG_INFO, "tickerd %s listening on %s, stream %s", TK_VERSION, cfg->listen,
               cfg->stream_key);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    tk_net_finish(w->lws);
    turn(w);
    tk_resolve_drain(&w->loop, RESOLVE_WAIT_MS);
    /* lws 4.1.6 on a foreign loop leaves a few of its handles behind; the
     * process ends here, so that is logged only when debugging. */
    if (uv_loop_close(&w->loop)) tk_log(TK_LOG_DEBUG, "loop closed with lws handles still open");
    tk_history_free(w->history);
    tk_config_free(w->cfg);
    free(w);
    return rc;
}
