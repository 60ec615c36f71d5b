/* supervisor.c - master process: fork, watch, restart, signal, notify.
 *
 * The master never blocks for long: a worker that died is reaped as soon as
 * SIGCHLD arrives and its gauges and per-IP counts are released at once
 * (tk_metrics_release), even when its restart has to wait for the one-a-
 * second limit; that wait is a deadline the main loop sleeps towards. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

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
} child_t;

static child_t *kids; /* [nkids], one per worker slot */
static int nkids;

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

/* Forks worker i; on failure, tries again in a second. */
static void spawn(int i, int (*worker)(int), const sigset_t *old)
{
    child_t *k = &kids[i];
    k->restart_at_ms = 0;
    k->started_ms = mono_ms();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, old, NULL);
        free(kids); /* the master's; i is all this worker needs */
        kids = NULL;
        _exit(worker(i));
    }
    if (pid < 0) {
        tk_log(TK_LOG_ERROR, "fork of worker %d: %s; trying again in 1 s", i, strerror(errno));
        k->pid = 0;
        k->restart_at_ms = k->started_ms + RESTART_MIN_INTERVAL_MS;
        return;
    }
    k->pid = pid;
}

static int index_of(pid_t pid)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid == pid) return i;
    return -1;
}

/* Reaps exited workers and releases what they held; schedules their
 * restart unless stopping. */
static void reap(int stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = index_of(pid);
        if (i < 0) continue;
        kids[i].pid = 0;
        tk_metrics_release(i);
        if (stopping) continue;
        int64_t at = kids[i].started_ms + RESTART_MIN_INTERVAL_MS, now = mono_ms();
        kids[i].restart_at_ms = at > now ? at : now;
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
            if (kids[i].pid)
                __atomic_fetch_add(&tk_metrics->worker_restarts_total, 1, __ATOMIC_RELAXED);
            left = kids[i].restart_at_ms ? RESTART_MIN_INTERVAL_MS : TICK_MS;
        }
        if (left < wait) wait = left;
    }
    return wait;
}

static int alive(void)
{
    int n = 0;
    for (int i = 0; i < nkids; i++)
        n += kids[i].pid > 0;
    return n;
}

static void signal_all(int sig)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid > 0) kill(kids[i].pid, sig);
}

int tk_supervise(int n, int (*worker)(int), int (*reload)(void))
{
    sigset_t set, old;
    siginfo_t info;
    int64_t tick_ms = TICK_MS, next_watchdog = 0;
    uint64_t watchdog_us = 0;
    int stopping = 0;
    time_t stop_started = 0;
    if (n < 1 || n > tk_metrics->nworkers) {
        tk_log(TK_LOG_ERROR, "%d workers: the metrics block has %d slots", n, tk_metrics->nworkers);
        return 1;
    }
    if (!(kids = calloc((size_t)n, sizeof *kids))) {
        tk_log(TK_LOG_ERROR, "out of memory for %d workers", n);
        return 1;
    }
    nkids = n;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    for (int i = 0; i < n; i++)
        spawn(i, worker, &old);
    bool ready_sent = false; /* READY=1 once every worker serves */
    if (sd_watchdog_enabled(0, &watchdog_us) > 0 && (int64_t)(watchdog_us / 2000) < tick_ms)
        tick_ms = watchdog_us / 2000 ? (int64_t)(watchdog_us / 2000) : 1;
    int64_t wait = tick_ms;
    for (;;) {
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping) {
                tk_log(TK_LOG_INFO, "%s: stopping %d workers", strsignal(sig), n);
                sd_notify(0, "STOPPING=1");
                signal_all(SIGTERM);
                stopping = 1;
                stop_started = time(NULL);
            }
        } else if (sig == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            if (reload() == 0) signal_all(SIGHUP);
            sd_notify(0, "READY=1");
        }
        reap(stopping);
        if (stopping) {
            if (alive() == 0) break;
            if (time(NULL) - stop_started > STOP_WAIT_S) {
                tk_log(TK_LOG_WARN, "workers did not stop in %d s: killing", STOP_WAIT_S);
                signal_all(SIGKILL);
            }
            wait = tick_ms;
            continue;
        }
        wait = restart_due(worker, &old);
        if (wait > tick_ms) wait = tick_ms;
        if (!ready_sent && wait > 100) wait = 100; /* watch for READY closely */
        if (!ready_sent && tk_metrics_all_ready()) {
            sd_notify(0, "READY=1");
            ready_sent = true;
        }
        if (mono_ms() >= next_watchdog) {
            tk_notify_status();
            /* Fed only while every worker's loop turns (each stamps the
             * time every second): a stuck worker starves it. */
            if (watchdog_us && tk_metrics_all_turning(WORKER_STUCK_MS)) sd_notify(0, "WATCHDOG=1");
            next_watchdog = mono_ms() + tick_ms;
        }
    }
    free(kids);
    kids = NULL;
    nkids = 0;
    return 0;
}
