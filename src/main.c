/* main.c - the command line, the configuration (file, environment, flags),
 * and the choice between one worker in this process or a supervisor of
 * several (supervisor.c); everything on a worker's loop is worker.c's. */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/listener.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/supervisor.h"
#include "tickerd/worker.h"

static struct {
    const char *config;
    const char *listen;
    const char *redis;
    const char *stream;
    int check;
} opts;

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
    tk_log_configure((tk_log_level_t)cfg->log_level, cfg->log_format == TK_LOG_FORMAT_JSON);
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

static tk_config_t *master_cfg;

/* Descriptors a worker keeps for itself: listener, Redis, lws, logs. */
#define FDS_RESERVED 64

/* Raises the soft descriptor limit to the hard one (the workers inherit
 * it), and warns when the workers together cannot hold max_connections. */
static void raise_fd_limit(const tk_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    if (rl.rlim_cur == RLIM_INFINITY) return;
    long long per = (long long)rl.rlim_cur - FDS_RESERVED, all = per * cfg->workers;
    if (all < cfg->max_connections)
        tk_log(TK_LOG_WARN,
               "%d workers of %llu descriptors each hold about %lld clients, under "
               "max_connections = %d: raise LimitNOFILE or workers",
               cfg->workers, (unsigned long long)rl.rlim_cur, all > 0 ? all : 0,
               cfg->max_connections);
}

/* SIGHUP in the master: check the file, so that a bad one is said once, and
 * keep it for the workers started from now on (a restarted worker binds the
 * same address as the others); each running worker loads it for itself. */
static int reload(void)
{
    char err[512];
    tk_config_t *cfg = load_config(err, sizeof err);
    if (!cfg) {
        tk_log(TK_LOG_ERROR, "reload refused, keeping the old configuration: %s", err);
        return -1;
    }
    tk_worker_keep_fixed(cfg, master_cfg);
    tk_config_free(master_cfg);
    master_cfg = cfg;
    tk_supervisor_set_drain(cfg->drain_s);
    tk_log(TK_LOG_INFO, "configuration reloaded from %s (the workers load it too)",
           opts.config ? opts.config : "defaults");
    return 0;
}

/* In the forked worker: the master's configuration is its own copy. */
static int run_worker(int index)
{
    int rc = tk_worker_run(index, master_cfg, load_config, false);
    tk_metrics_free();
    return rc;
}

/* Nothing else may hold the listen address (listener.h); the reason is
 * logged. */
static int probe(void)
{
    return tk_listener_probe(master_cfg->listen_host, master_cfg->listen_port);
}

/* A start that failed ends a single process at once. */
static int start_failed(const char *why)
{
    tk_log(TK_LOG_ERROR, "could not start: %s; exiting", *why ? why : "no reason logged");
    return TK_EXIT_START;
}

/* One process, the only worker: takes cfg over. */
static int run_single(tk_config_t *cfg)
{
    tk_log_first_error_reset();
    if (tk_listener_probe(cfg->listen_host, cfg->listen_port)) {
        tk_config_free(cfg);
        return start_failed(tk_log_first_error());
    }
    int rc = tk_worker_run(0, cfg, load_config, true);
    return rc == TK_EXIT_START ? start_failed(tk_metrics->workers[0].start_error) : rc;
}

int main(int argc, char **argv)
{
    char err[512];
    if (parse_args(argc, argv)) return 2;
    tk_config_t *cfg = load_config(err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "tickerd: %s\n", err);
        return 2;
    }
    if (opts.check) {
        printf("%s: ok\n", opts.config ? opts.config : "defaults");
        tk_config_free(cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg);
    if (tk_metrics_init(cfg->workers)) {
        fprintf(stderr, "tickerd: cannot map shared metrics\n");
        return 1;
    }
    int rc;
    if (cfg->workers > 1) {
        master_cfg = cfg;
        tk_supervisor_set_drain(cfg->drain_s);
        rc = tk_supervise(cfg->workers, run_worker, reload, probe);
        tk_config_free(master_cfg);
    } else {
        rc = run_single(cfg);
    }
    tk_metrics_free();
    if (rc != TK_EXIT_START) tk_log(TK_LOG_INFO, "stopped");
    return rc;
}
