/* site.h - what the transports need of the worker that runs them, handed
 * to them through the lws context (lws_context_user): the worker owns it
 * and keeps it current (a reload swaps cfg; the stream reader's status
 * sets redis_up). Transports read it and never reach for a global. */
#ifndef TICKERD_SITE_H
#define TICKERD_SITE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"

struct lws;

typedef struct tk_site {
    uv_loop_t *loop;
    const tk_config_t *cfg; /* the current configuration */
    tk_hub_t *hub;
    tk_history_t *history;
    bool stopping;         /* SIGTERM: refuse new clients */
    bool redis_up;         /* this worker's stream connection */
    int64_t redis_down_ms; /* wall time it went down; 0 when up */
} tk_site_t;

/* The site of the context a connection belongs to. */
tk_site_t *tk_site_of(struct lws *wsi);

#endif
