/* supervisor.c - master process: fork, watch, restart, signal, notify.
 *
 * The master never blocks for long: a worker that died is reaped as soon as
 * SIGCHLD arrives and its gauges and per-IP counts are released at once
 * (tk_metrics_release), even when its restart has to wait; that wait is a
 * deadline the main loop sleeps towards.
 *
 * A worker dies one of two ways. One that exits with TK_EXIT_START could not
 * start (bind, TLS): it is tried again after a backoff, and after
 * TK_START_ATTEMPTS failures in a row the master gives up: it stops the
 * other workers and exits TK_EXIT_START with the reason. Any other death is
 * a crash of a worker that had started: it is restarted at once, but not
 * more often than once a second. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/supervisor.h"

#define STOP_WAIT_S 8
#define WORKER_STUCK_MS 3000
#define RESTART_MIN_INTERVAL_MS 1000
#define TICK_MS 1000

typedef struct child {
    pid_t pid;             /* 0: not running */
    int64_t started_ms;    /* monotonic time of the last fork */
    int64_t restart_at_ms; /* monotonic; 0: no restart pending */
    bool ran;              /* a worker ran in this slot: the next is a restart */
    int failures;          /* failed starts in a row */
    char reason[256];      /* why the last one failed */
} child_t;

static child_t *kids; /* [nkids], one per worker slot */
static int nkids;
static int (*probe)(void);
static int gave_up = -1; /* the worker that failed TK_START_ATTEMPTS times */
static uint32_t rnd;     /* xorshift32: the backoff's jitter */
static bool stopping;    /* SIGTERM, or gave up: waiting for the workers */
static time_t stop_started;
static int drain_s;     /* the workers' drain: the wait for them grows by it */
static bool ready_sent; /* READY=1 told: every worker served once */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_notify_status(void)
{
    const char *last = "";
    for (int i = 0; i < tk_metrics->nworkers; i++)
        if (tk_metrics->workers[i].pid && strcmp(tk_metrics->workers[i].last_id, last) > 0)
            last = tk_metrics->workers[i].last_id;
    sd_notifyf(0, "STATUS=%lld clients, last id %s", (long long)tk_metrics_connections(),
               *last ? last : "-");
}

static int alive(void)
{
    int n = 0;
    for (int i = 0; i < nkids; i++)
        n += kids[i].pid > 0;
    return n;
}

/* The pause after the nth failed start in a row: 1 s doubling to the
 * maximum, less a random quarter at most, so that workers failing
 * together do not retry together. */
static int64_t backoff_ms(int failures)
{
    int64_t ms = TK_START_BACKOFF_MS;
    for (int f = 1; f < failures && ms < TK_START_BACKOFF_MAX_MS; f++)
        ms *= 2;
    if (ms > TK_START_BACKOFF_MAX_MS) ms = TK_START_BACKOFF_MAX_MS;
    rnd ^= rnd << 13;
    rnd ^= rnd >> 17;
    rnd ^= rnd << 5;
    return ms - (int64_t)(rnd % (uint32_t)(ms / 4 + 1));
}

/* Worker i could not start (its reason in kids[i].reason; pid 0 when it
 * was never forked): another attempt after the backoff, or, after the
 * last one, gave_up tells the main loop to stop the daemon. */
static void start_failed(int i, pid_t pid)
{
    child_t *k = &kids[i];
    char who[32] = "";
    if (!*k->reason) snprintf(k->reason, sizeof k->reason, "no reason logged");
    if (++k->failures >= TK_START_ATTEMPTS) {
        if (gave_up < 0) gave_up = i;
        return;
    }
    int64_t ms = backoff_ms(k->failures);
    k->restart_at_ms = mono_ms() + ms;
    if (pid) snprintf(who, sizeof who, " (pid %d)", (int)pid);
    tk_log(TK_LOG_ERROR, "worker %d%s could not start (attempt %d of %d): trying again in %.1f s",
           i, who, k->failures, TK_START_ATTEMPTS, (double)ms / 1000);
}

/* Forks worker i. While none of ours holds the listen address, the probe
 * checks that nothing else does first; a failed probe or fork is a failed
 * start. tickerd_worker_restarts_total counts the forks of a slot where a
 * worker ran before. */
static void spawn(int i, int (*worker)(int), const sigset_t *old)
{
    child_t *k = &kids[i];
    k->restart_at_ms = 0;
    k->started_ms = mono_ms();
    *k->reason = 0;
    if (probe && alive() == 0) {
        tk_log_first_error_reset();
        if (probe()) {
            snprintf(k->reason, sizeof k->reason, "%s", tk_log_first_error());
            start_failed(i, 0);
            return;
        }
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, old, NULL);
        free(kids); /* the master's; i is all this worker needs */
        kids = NULL;
        int rc = worker(i);
#if defined(__SANITIZE_ADDRESS__)
        /* _exit skips LeakSanitizer's check at exit: a worker's leaks
         * count as much as a single process's (make asan-test). */
        __lsan_do_leak_check();
#endif
        _exit(rc);
    }
    if (pid < 0) {
        snprintf(k->reason, sizeof k->reason, "fork: %s", strerror(errno));
        tk_log(TK_LOG_ERROR, "worker %d: %s", i, k->reason);
        k->pid = 0;
        start_failed(i, 0);
        return;
    }
    k->pid = pid;
    if (k->ran) __atomic_fetch_add(&tk_metrics->worker_restarts_total, 1, __ATOMIC_RELAXED);
    k->ran = true;
}

static int index_of(pid_t pid)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid == pid) return i;
    return -1;
}

/* Reaps exited workers and releases what they held; unless stopping,
 * schedules the restart of one that crashed, or the next attempt of one
 * that could not start. */
static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = index_of(pid);
        if (i < 0) continue;
        child_t *k = &kids[i];
        const char *why = tk_metrics->workers[i].start_error;
        bool start = WIFEXITED(status) && WEXITSTATUS(status) == TK_EXIT_START;
        if (start) snprintf(k->reason, sizeof k->reason, "%.*s", (int)sizeof k->reason - 1, why);
        k->pid = 0;
        tk_metrics_release(i);
        if (stopping) continue;
        if (start) {
            start_failed(i, pid);
            continue;
        }
        k->failures = 0;
        int64_t at = k->started_ms + RESTART_MIN_INTERVAL_MS, now = mono_ms();
        k->restart_at_ms = at > now ? at : now;
        tk_log(TK_LOG_ERROR, "worker %d (pid %d) %s %d: restarting", i, (int)pid,
               WIFSIGNALED(status) ? "killed by signal" : "exited with",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
}

/* Starts the restarts that are due; returns the ms until the next one
 * (TICK_MS when none is pending). */
static int64_t restart_due(int (*worker)(int), const sigset_t *old)
{
    int64_t wait = TICK_MS;
    for (int i = 0; i < nkids; i++) {
        if (!kids[i].restart_at_ms || kids[i].pid) continue;
        int64_t left = kids[i].restart_at_ms - mono_ms();
        if (left <= 0) {
            spawn(i, worker, old);
            left = kids[i].restart_at_ms ? kids[i].restart_at_ms - mono_ms() : TICK_MS;
        }
        if (left < wait) wait = left;
    }
    return wait;
}

static void signal_all(int sig)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid > 0) kill(kids[i].pid, sig);
}

/* Sends every worker SIGTERM (each stops as the daemon does on SIGTERM,
 * drain included); the main loop waits for them, and kills those left
 * after STOP_WAIT_S. */
static void stop_workers(void)
{
    sd_notify(0, "STOPPING=1");
    signal_all(SIGTERM);
    stopping = true;
    stop_started = time(NULL);
}

/* The signals the master acts on. A reload tells systemd only once it
 * has been told READY: before, it would take READY=1 for the end of the
 * start. */
static void on_signal(int sig, int (*reload)(void))
{
    if (sig == SIGTERM || sig == SIGINT) {
        if (stopping) { /* again: the workers end their drains at once */
            tk_log(TK_LOG_INFO, "%s again: the workers close their clients now", strsignal(sig));
            signal_all(SIGTERM);
            return;
        }
        tk_log(TK_LOG_INFO, "%s: stopping %d workers", strsignal(sig), alive());
        stop_workers();
    } else if (sig == SIGHUP) {
        if (ready_sent) sd_notify(0, "RELOADING=1");
        if (reload() == 0) signal_all(SIGHUP);
        if (ready_sent) sd_notify(0, "READY=1");
    }
}

/* READY=1 once every worker serves; STATUS and WATCHDOG every tick. */
static void notify(int64_t tick_ms, bool watchdog)
{
    static int64_t next;
    if (!ready_sent && tk_metrics_all_ready()) {
        sd_notify(0, "READY=1");
        ready_sent = true;
    }
    if (mono_ms() < next) return;
    tk_notify_status();
    /* Fed only while every worker's loop turns (each stamps the time every
     * second): a stuck worker starves it. */
    if (watchdog && tk_metrics_all_turning(WORKER_STUCK_MS)) sd_notify(0, "WATCHDOG=1");
    next = mono_ms() + tick_ms;
}

static int setup(int n)
{
    if (n < 1 || n > tk_metrics->nworkers) {
        tk_log(TK_LOG_ERROR, "%d workers: the metrics block has %d slots", n, tk_metrics->nworkers);
        return -EINVAL;
    }
    if (!(kids = calloc((size_t)n, sizeof *kids))) {
        tk_log(TK_LOG_ERROR, "out of memory for %d workers", n);
        return -ENOMEM;
    }
    nkids = n;
    gave_up = -1;
    stopping = ready_sent = false;
    rnd = (uint32_t)getpid() ^ (uint32_t)mono_ms();
    if (!rnd) rnd = 1;
    return 0;
}

void tk_supervisor_set_drain(int seconds)
{
    drain_s = seconds > 0 ? seconds : 0;
}

int tk_supervise(int n, int (*worker)(int), int (*reload)(void), int (*probe_fn)(void))
{
    sigset_t set, old;
    siginfo_t info;
    int64_t tick_ms = TICK_MS;
    uint64_t watchdog_us = 0;
    int rc = 0;
    if (setup(n)) return 1;
    probe = probe_fn;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    for (int i = 0; i < n; i++)
        spawn(i, worker, &old);
    if (sd_watchdog_enabled(0, &watchdog_us) > 0 && (int64_t)(watchdog_us / 2000) < tick_ms)
        tick_ms = watchdog_us / 2000 ? (int64_t)(watchdog_us / 2000) : 1;
    int64_t wait = tick_ms;
    for (;;) {
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        on_signal(sigtimedwait(&set, &info, &ts), reload);
        reap();
        if (!stopping) wait = restart_due(worker, &old);
        if (!stopping && gave_up >= 0) {
            tk_log(TK_LOG_ERROR, "worker %d could not start after %d attempts: %s; exiting",
                   gave_up, TK_START_ATTEMPTS, kids[gave_up].reason);
            stop_workers();
            rc = TK_EXIT_START;
        }
        if (stopping) {
            if (alive() == 0) break;
            if (time(NULL) - stop_started > STOP_WAIT_S + drain_s) {
                tk_log(TK_LOG_WARN, "workers did not stop in %d s: killing", STOP_WAIT_S + drain_s);
                signal_all(SIGKILL);
            }
            wait = tick_ms;
            continue;
        }
        if (wait > tick_ms) wait = tick_ms;
        if (!ready_sent && wait > 100) wait = 100; /* watch for READY closely */
        notify(tick_ms, watchdog_us != 0);
    }
    free(kids);
    kids = NULL;
    nkids = 0;
    return rc;
}
