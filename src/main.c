/* main.c - command line, configuration and reload, signals, and the order
 * of start-up and shutdown of one tickerd process. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "tickerd/listener.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/net.h"
#include "tickerd/server.h"
#include "tickerd/stream.h"
#include "tickerd/supervisor.h"

#define SHUTDOWN_WAIT_MS 3000

tk_server_t server;

static struct {
    const char *config;
    const char *listen;
    const char *redis;
    const char *stream;
    int check;
} opts;

static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t shutdown_timer, notify_timer;
static int64_t shutdown_started;

int64_t tk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double tk_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tickerd [-c FILE] [--listen ADDR:PORT] [--redis URL] [--stream KEY]\n"
               "               [--check-config] [--version]\n");
}

/* Builds a configuration from the file and the overrides (flags win over
 * TICKERD_REDIS_URL, which wins over the file). Returns NULL with the
 * reason in err. */
static tk_config_t *load_config(char *err, size_t errlen)
{
    tk_config_t *cfg = tk_config_create();
    const char *env = getenv("TICKERD_REDIS_URL");
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if ((opts.config && tk_config_load_file(cfg, opts.config, err, errlen)) ||
        (env && *env && tk_config_set(cfg, "redis", "url", env, err, errlen)) ||
        (opts.redis && tk_config_set(cfg, "redis", "url", opts.redis, err, errlen)) ||
        (opts.listen && tk_config_set(cfg, "server", "listen", opts.listen, err, errlen)) ||
        (opts.stream && tk_config_set(cfg, "stream", "key", opts.stream, err, errlen)) ||
        tk_config_validate(cfg, err, errlen)) {
        tk_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
        {"redis", required_argument, NULL, 'r'},  {"stream", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'C'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opts.config = optarg;
            break;
        case 'l':
            opts.listen = optarg;
            break;
        case 'r':
            opts.redis = optarg;
            break;
        case 's':
            opts.stream = optarg;
            break;
        case 'C':
            opts.check = 1;
            break;
        case 'V':
            printf("tickerd %s\n", TK_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tickerd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* SIGHUP: a new configuration for new connections; what cannot change
 * without a restart is kept and said so. */
static int reload(void)
{
    char err[512];
    tk_config_t *cfg = load_config(err, sizeof err);
    if (!cfg) {
        tk_log(TK_LOG_ERROR, "reload refused, keeping the old configuration: %s", err);
        return -1;
    }
    tk_config_t *old = server.cfg;
    const char *fixed[][2] = {{cfg->listen, old->listen},
                              {cfg->redis_url, old->redis_url},
                              {cfg->stream_key, old->stream_key}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(fixed[i][0], fixed[i][1]))
            tk_log(TK_LOG_WARN, "reload: '%s' takes a restart; still using '%s'", fixed[i][0],
                   fixed[i][1]);
    free(cfg->listen), cfg->listen = strdup(old->listen);
    free(cfg->redis_url), cfg->redis_url = strdup(old->redis_url);
    free(cfg->stream_key), cfg->stream_key = strdup(old->stream_key);
    cfg->history_size = old->history_size;
    cfg->workers = old->workers;
    server.cfg = cfg;
    tk_config_free(old);
    tk_log(TK_LOG_INFO, "configuration reloaded from %s", opts.config ? opts.config : "defaults");
    return 0;
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Shutdown, after every client had its close frame (or the wait ran out):
 * the first of lws's two destroy steps, Redis, our handles; then, one tick
 * later, stop the loop (lws leaves its handles to the second step). */
static void on_shutdown_tick(uv_timer_t *t)
{
    static bool stage2;
    if (stage2) {
        close_handle((uv_handle_t *)t);
        uv_stop(server.loop);
        return;
    }
    if (tk_hub_count() > 0 && tk_now_ms() - shutdown_started < SHUTDOWN_WAIT_MS) return;
    stage2 = true;
    tk_net_stop();
    tk_stream_stop(server.stream);
    server.stream = NULL;
    close_handle((uv_handle_t *)&sig_term);
    close_handle((uv_handle_t *)&sig_int);
    close_handle((uv_handle_t *)&sig_hup);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        if (server.notify) sd_notify(0, "RELOADING=1");
        reload();
        if (server.notify) sd_notify(0, "READY=1");
        return;
    }
    if (server.stopping) return;
    tk_log(TK_LOG_INFO, "%s: closing %d clients and stopping", strsignal(signum), tk_hub_count());
    server.stopping = true;
    if (server.notify) sd_notify(0, "STOPPING=1");
    close_handle((uv_handle_t *)&notify_timer);
    shutdown_started = tk_now_ms();
    tk_hub_close_all(1001, "server shutting down");
    uv_timer_start(&shutdown_timer, on_shutdown_tick, 20, 20);
}

static void on_notify_tick(uv_timer_t *t)
{
    (void)t;
    tk_notify_status();
    sd_notify(0, "WATCHDOG=1");
}

/* Single-process mode: READY now, then STATUS and WATCHDOG on a timer. */
static void start_notify(uv_loop_t *loop)
{
    uint64_t us = 0, every = 5000;
    uv_timer_init(loop, &notify_timer);
    if (!server.notify) return;
    if (sd_watchdog_enabled(0, &us) > 0 && us / 2000 < every) every = us / 2000;
    uv_timer_start(&notify_timer, on_notify_tick, every ? every : 1, every ? every : 1);
    sd_notify(0, "READY=1");
}

static int run(void)
{
    uv_loop_t loop;
    int rc = 1;
    tk_metrics_bind(server.worker);
    uv_loop_init(&loop);
    server.loop = &loop;
    server.history = tk_history_create(server.cfg->history_size);
    if (!server.history || tk_net_start()) goto out;
    if (!(server.stream = tk_stream_start(&loop, server.cfg->redis_url))) {
        tk_net_stop();
        goto drain;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_hup);
    uv_timer_init(&loop, &shutdown_timer);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    start_notify(&loop);
    tk_log(TK_LOG_INFO, "tickerd %s listening on %s, stream %s", TK_VERSION, server.cfg->listen,
           server.cfg->stream_key);
    rc = 0;
drain:
    uv_run(&loop, UV_RUN_DEFAULT);
    tk_net_finish();
    for (int i = 0; i < 10 && uv_run(&loop, UV_RUN_NOWAIT); i++)
        ;
out:
    /* lws 4.1.6 on a foreign loop leaves a few of its handles behind;
     * the process ends here, so that is logged only when debugging. */
    if (uv_loop_close(&loop)) tk_log(TK_LOG_DEBUG, "loop closed with lws handles still open");
    tk_history_free(server.history);
    return rc;
}

static int run_worker(int index)
{
    server.worker = index;
    int rc = run();
    tk_metrics_free();
    tk_config_free(server.cfg);
    return rc;
}

int main(int argc, char **argv)
{
    char err[512];
    if (parse_args(argc, argv)) return 2;
    server.cfg = load_config(err, sizeof err);
    if (!server.cfg) {
        fprintf(stderr, "tickerd: %s\n", err);
        return 2;
    }
    server.config_path = opts.config;
    if (opts.check) {
        printf("%s: ok\n", opts.config ? opts.config : "defaults");
        tk_config_free(server.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (tk_metrics_init(server.cfg->workers)) {
        fprintf(stderr, "tickerd: cannot map shared metrics\n");
        return 1;
    }
    int rc;
    if (tk_listener_probe(server.cfg->listen_host, server.cfg->listen_port)) {
        tk_metrics_free();
        tk_config_free(server.cfg);
        return 1;
    }
    if (server.cfg->workers > 1) {
        rc = tk_supervise(server.cfg->workers, run_worker, reload);
    } else {
        server.notify = true;
        rc = run();
    }
    tk_metrics_free();
    tk_config_free(server.cfg);
    tk_log(TK_LOG_INFO, "stopped");
    return rc;
}
