/* server.h - the process-wide state of one tickerd worker, in the manner of
 * Redis's `server`: one loop, one configuration, one history, one stream
 * reader, one lws context. */
#ifndef TICKERD_SERVER_H
#define TICKERD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tickerd/config.h"
#include "tickerd/clock.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"
#include "tickerd/site.h"

struct lws_context;
struct tk_stream;

typedef struct tk_server {
    uv_loop_t *loop;
    tk_config_t *cfg;
    const char *config_path; /* NULL: defaults only */
    tk_history_t *history;
    tk_hub_t *hub;
    tk_site_t site; /* what the transports see of this worker */
    struct lws_context *lws;
    struct tk_stream *stream;
    char epoch[65]; /* empty until read from Redis */
    bool ready;     /* the start-up load is done: clients can be served */
    bool stopping;
    int worker;  /* 0..workers-1 */
    bool notify; /* this process speaks to systemd (single-process mode) */
} tk_server_t;

extern tk_server_t server;

#endif
