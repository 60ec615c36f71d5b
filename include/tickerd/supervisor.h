/* supervisor.h - the master process of a multi-worker tickerd: starts
 * `workers` processes, restarts one that dies, passes SIGHUP and SIGTERM
 * on, and speaks to systemd (READY, STATUS, WATCHDOG, STOPPING). */
#ifndef TICKERD_SUPERVISOR_H
#define TICKERD_SUPERVISOR_H

/* Runs worker(i) in each of n child processes until told to stop.
 * reload() is called in the master on SIGHUP before the workers get it.
 * Returns the exit status for the master. */
int tk_supervise(int n, int (*worker)(int index), int (*reload)(void));

/* sd_notify STATUS line with the daemon-wide figures. */
void tk_notify_status(void);

#endif
