/* supervisor.h - the master process of a multi-worker tickerd: starts
 * `workers` processes, restarts one that dies, retries one that cannot
 * start and gives up on it, passes SIGHUP and SIGTERM on, and speaks to
 * systemd (READY, STATUS, WATCHDOG, STOPPING). */
#ifndef TICKERD_SUPERVISOR_H
#define TICKERD_SUPERVISOR_H

/* The exit status of a worker that could not start (its listener, lws and
 * TLS, its stream reader), with its reason in its tk_worker_stats_t's
 * start_error; and of the daemon when it gives up starting one. Any other
 * death of a worker is a crash. */
#define TK_EXIT_START 3

/* How often, and for how long, a worker that cannot start is tried: the
 * first attempt and then one after each pause of 1 s doubling to 8 s (each
 * shortened by a random 0-25 %), so the last failure comes at most 31 s
 * after the first, well within systemd's start timeout. */
#define TK_START_ATTEMPTS 7
#define TK_START_BACKOFF_MS 1000
#define TK_START_BACKOFF_MAX_MS 8000

/* Runs worker(i) in each of n child processes until told to stop.
 * reload() is called in the master on SIGHUP before the workers get it.
 * probe() (may be NULL) is called before a worker is forked while no other
 * worker runs: it fails (with its reason logged) when something else holds
 * the listen address, and that counts as a failed start of the worker.
 * Returns the exit status for the master: 0 after SIGTERM/SIGINT,
 * TK_EXIT_START when a worker failed to start TK_START_ATTEMPTS times in a
 * row, 1 when the workers cannot be set up at all. */
int tk_supervise(int n, int (*worker)(int index), int (*reload)(void), int (*probe)(void));
/* The workers' [server] drain_s (at start and after each reload): a stop
 * waits that much longer for them before it kills them. */
void tk_supervisor_set_drain(int seconds);

/* sd_notify STATUS line with the daemon-wide figures. */
void tk_notify_status(void);

#endif
