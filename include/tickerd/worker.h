/* worker.h - one tickerd worker process (or the only process): its loop
 * and everything on it, from start-up to a clean stop. */
#ifndef TICKERD_WORKER_H
#define TICKERD_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "tickerd/config.h"

/* Builds a fresh configuration (file and overrides) for a reload, or NULL
 * with the reason in err. */
typedef tk_config_t *(*tk_config_loader_t)(char *err, size_t errlen);

/* Runs worker index with cfg (taken over) until SIGTERM/SIGINT; SIGHUP
 * reloads through load. notify: this process speaks to systemd. Returns
 * the exit code. */
int tk_worker_run(int index, tk_config_t *cfg, tk_config_loader_t load, bool notify);

/* A reload keeps what cannot change without a restart (listen, Redis URL
 * and sentinels, stream key, TLS files, history_size, workers) from old,
 * with a log line for each that differs. */
void tk_worker_keep_fixed(tk_config_t *cfg, const tk_config_t *old);

#endif
