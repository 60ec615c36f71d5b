/* supervisor.c - master process: fork, watch, restart, signal, notify. */
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
#define RESTART_MIN_INTERVAL_S 1

static pid_t pids[TK_MAX_WORKERS];
static time_t started[TK_MAX_WORKERS];

void tk_notify_status(void)
{
    int64_t conns = 0;
    const char *last = "";
    for (int t = 0; t < TK_TRANSPORTS; t++)
        conns += __atomic_load_n(&tk_metrics->connections[t], __ATOMIC_RELAXED);
    for (int i = 0; i < TK_MAX_WORKERS; i++)
        if (tk_metrics->workers[i].pid && strcmp(tk_metrics->workers[i].last_id, last) > 0)
            last = tk_metrics->workers[i].last_id;
    sd_notifyf(0, "STATUS=%lld clients, last id %s", (long long)conns, *last ? last : "-");
}

static pid_t spawn(int i, int (*worker)(int), const sigset_t *old)
{
    if (time(NULL) - started[i] < RESTART_MIN_INTERVAL_S) sleep(RESTART_MIN_INTERVAL_S);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, old, NULL);
        _exit(worker(i));
    }
    if (pid < 0) tk_log(TK_LOG_ERROR, "fork: %s", strerror(errno));
    started[i] = time(NULL);
    return pid;
}

static int index_of(pid_t pid, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid) return i;
    return -1;
}

/* Reaps exited workers; restarts them unless stopping. Returns how many
 * are still running. */
static int reap(int n, int stopping, int (*worker)(int), const sigset_t *old)
{
    int status, alive = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = index_of(pid, n);
        if (i < 0) continue;
        tk_metrics->workers[i].pid = 0;
        pids[i] = 0;
        if (stopping) continue;
        tk_log(TK_LOG_ERROR, "worker %d (pid %d) %s %d: restarting", i, (int)pid,
               WIFSIGNALED(status) ? "killed by signal" : "exited with",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        pids[i] = spawn(i, worker, old);
    }
    for (int i = 0; i < n; i++)
        alive += pids[i] > 0;
    return alive;
}

static void signal_all(int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], sig);
}

int tk_supervise(int n, int (*worker)(int), int (*reload)(void))
{
    sigset_t set, old;
    siginfo_t info;
    struct timespec tick = {1, 0};
    uint64_t watchdog_us = 0;
    int stopping = 0;
    time_t stop_started = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    for (int i = 0; i < n; i++)
        pids[i] = spawn(i, worker, &old);
    sd_notify(0, "READY=1");
    if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us / 2 < 1000000)
        tick = (struct timespec){0, (long)(watchdog_us / 2 * 1000)};
    for (;;) {
        int sig = sigtimedwait(&set, &info, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping) {
                tk_log(TK_LOG_INFO, "%s: stopping %d workers", strsignal(sig), n);
                sd_notify(0, "STOPPING=1");
                signal_all(n, SIGTERM);
                stopping = 1;
                stop_started = time(NULL);
            }
        } else if (sig == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            if (reload() == 0) signal_all(n, SIGHUP);
            sd_notify(0, "READY=1");
        }
        if (reap(n, stopping, worker, &old) == 0 && stopping) break;
        if (stopping && time(NULL) - stop_started > STOP_WAIT_S) {
            tk_log(TK_LOG_WARN, "workers did not stop in %d s: killing", STOP_WAIT_S);
            signal_all(n, SIGKILL);
        }
        if (!stopping) {
            tk_notify_status();
            if (watchdog_us) sd_notify(0, "WATCHDOG=1");
        }
    }
    return 0;
}
