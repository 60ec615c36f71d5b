/* tickerctl.c - the editors' command line: publish, update and retract
 * items (validated exactly as the daemon validates them, then XADDed), and
 * tail the ticker over WebSocket. */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "tickerd/config.h"
#include "tickerd/item.h"

#define MAX_FIELDS 24

static struct {
    const char *config, *redis, *stream, *server;
    int json;
    const char *names[MAX_FIELDS], *values[MAX_FIELDS];
    int nfields;
    const char *query[8];
    int nquery;
} opt;

static tk_config_t *cfg;
static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
    fprintf(f, "usage: tickerctl [-c FILE] [--redis URL] [--stream KEY] COMMAND ...\n"
               "  publish --text T [--lang L] [--region R,..] [--priority P] [--category C]\n"
               "          [--url U] [--source S] [--ttl SECONDS] [--pin]  prints the new ID\n"
               "  post [FILE]     a JSON object with the stream's keys (stdin without FILE),\n"
               "                  as POST /v1/items takes it; prints the new ID\n"
               "  pin ID | unpin ID                                     keeps ID first, or not\n"
               "  update ID [the same fields]                           a correction of ID\n"
               "  retract ID [--region R,.. --lang L]                   kills ID\n"
               "  tail [--server HOST:PORT] [--region R] [--lang L] [--priority P]\n"
               "       [--category C] [--json]                          prints items live\n"
               "exit status: 0 ok, 1 Redis or network error, 2 bad usage or rejected item\n");
}

static int add_field(const char *name, const char *value)
{
    if (opt.nfields == MAX_FIELDS) return -1;
    opt.names[opt.nfields] = name;
    opt.values[opt.nfields++] = value;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"redis", required_argument, NULL, 'R'},
                                             {"stream", required_argument, NULL, 'S'},
                                             {"server", required_argument, NULL, 'H'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"text", required_argument, NULL, 'f'},
                                             {"lang", required_argument, NULL, 'f'},
                                             {"region", required_argument, NULL, 'f'},
                                             {"priority", required_argument, NULL, 'f'},
                                             {"category", required_argument, NULL, 'f'},
                                             {"url", required_argument, NULL, 'f'},
                                             {"source", required_argument, NULL, 'f'},
                                             {"ttl", required_argument, NULL, 'f'},
                                             {"pin", no_argument, NULL, 'P'},
                                             {NULL, 0, NULL, 0}};
    int ch, idx;
    while ((ch = getopt_long(argc, argv, "+c:h", longopts, &idx)) != -1) {
        switch (ch) {
        case 'c':
            opt.config = optarg;
            break;
        case 'R':
            opt.redis = optarg;
            break;
        case 'S':
            opt.stream = optarg;
            break;
        case 'H':
            opt.server = optarg;
            break;
        case 'j':
            opt.json = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'f':
            if (add_field(longopts[idx].name, optarg)) return -1;
            break;
        case 'P':
            if (add_field("pin", "1")) return -1;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static tk_config_t *load_config(void)
{
    char err[512];
    tk_config_t *c = tk_config_create();
    const char *env = getenv("TICKERD_REDIS_URL");
    if (!c || (opt.config && tk_config_load_file(c, opt.config, err, sizeof err)) ||
        (env && *env && tk_config_set(c, "redis", "url", env, err, sizeof err)) ||
        (opt.redis && tk_config_set(c, "redis", "url", opt.redis, err, sizeof err)) ||
        (opt.stream && tk_config_set(c, "stream", "key", opt.stream, err, sizeof err)) ||
        tk_config_validate(c, err, sizeof err)) {
        fprintf(stderr, "tickerctl: %s\n", c ? err : "out of memory");
        tk_config_free(c);
        return NULL;
    }
    return c;
}

static redisContext *redis_connect(void)
{
    tk_redis_url_t u;
    char err[256];
    struct timeval tv = {5, 0};
    if (tk_redis_url_parse(cfg->redis_url, &u, err, sizeof err)) {
        fprintf(stderr, "tickerctl: %s\n", err);
        return NULL;
    }
    redisContext *rc = u.path ? redisConnectUnixWithTimeout(u.path, tv)
                              : redisConnectWithTimeout(u.host, u.port, tv);
    redisReply *r = NULL;
    if (!rc || rc->err) goto fail;
    if (u.password) {
        r = u.user ? redisCommand(rc, "AUTH %s %s", u.user, u.password)
                   : redisCommand(rc, "AUTH %s", u.password);
        if (!r || r->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(r);
    }
    if (u.db) {
        r = redisCommand(rc, "SELECT %d", u.db);
        if (!r || r->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(r);
    }
    tk_redis_url_clear(&u);
    return rc;
fail:
    fprintf(stderr, "tickerctl: redis %s: %s\n", cfg->redis_url,
            r && r->type == REDIS_REPLY_ERROR ? r->str
            : rc                              ? rc->errstr
                                              : "out of memory");
    if (r) freeReplyObject(r);
    if (rc) redisFree(rc);
    tk_redis_url_clear(&u);
    return NULL;
}

/* The ID the entry is expected to get: now. */
static tk_id_t next_id(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (tk_id_t){(uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000 + 1, 0};
}

static int rejected(const tk_reject_t *rej)
{
    fprintf(stderr, "tickerctl: rejected: %s: %s\n", tk_reason_names[rej->reason], rej->detail);
    return 2;
}

/* XADD key * argv..., prints the ID. Returns the exit status. */
static int xadd(int argc, const char **argv, const size_t *lens)
{
    redisContext *rc = redis_connect();
    if (!rc) return 1;
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    int status = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        printf("%s\n", r->str);
    } else {
        fprintf(stderr, "tickerctl: XADD: %s\n", r ? r->str : rc->errstr);
        status = 1;
    }
    if (r) freeReplyObject(r);
    redisFree(rc);
    return status;
}

/* post: the body of POST /v1/items, checked by the same function, XADDed
 * the same way (the entry's one `json` field). */
static int cmd_post(const char *path)
{
    FILE *f = path && strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        perror(path);
        return 2;
    }
    char *body = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap && !(body = realloc(body, cap = cap ? cap * 2 : 4096))) break;
        n = fread(body + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (f != stdin) fclose(f);
    if (!body) return 1;
    tk_reject_t rej = {0};
    int status;
    if (tk_item_check_json(cfg, next_id(), body, len, &rej)) {
        status = rejected(&rej);
    } else {
        const char *argv[] = {"XADD", cfg->stream_key, "*", "json", body};
        size_t lens[] = {4, strlen(cfg->stream_key), 1, 4, len};
        status = xadd(5, argv, lens);
    }
    free(body);
    return status;
}

/* Validates the fields as the daemon will, then XADDs them. */
static int cmd_write(const char *op, const char *ref)
{
    tk_field_t fields[MAX_FIELDS + 2];
    size_t n = 0;
    if (strcmp(op, "publish")) {
        add_field("op", op);
        add_field("ref", ref);
    }
    for (int i = 0; i < opt.nfields; i++)
        fields[n++] =
            (tk_field_t){opt.names[i], strlen(opt.names[i]), opt.values[i], strlen(opt.values[i])};
    tk_reject_t rej = {0};
    if (tk_item_check(cfg, next_id(), fields, n, &rej)) return rejected(&rej);
    const char *argv[3 + 2 * MAX_FIELDS] = {"XADD", cfg->stream_key, "*"};
    int argc = 3;
    for (int i = 0; i < opt.nfields; i++) {
        argv[argc++] = opt.names[i];
        argv[argc++] = opt.values[i];
    }
    return xadd(argc, argv, NULL);
}

/* tail: one WebSocket client on lws's own loop. */
static void print_frame(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (opt.json) {
        printf("%.*s\n", (int)len, text);
    } else if (type && (!strcmp(type, "item") || !strcmp(type, "update"))) {
        json_t *regions = json_object_get(o, "region");
        char where[256] = "";
        size_t i;
        json_t *r;
        json_array_foreach(regions, i, r)
        {
            if (i) strncat(where, ",", sizeof where - strlen(where) - 1);
            strncat(where, json_string_value(r), sizeof where - strlen(where) - 1);
        }
        printf("%s %-7s %s [%s] %s%s: %s\n", json_string_value(json_object_get(o, "id")), type,
               json_string_value(json_object_get(o, "lang")), *where ? where : "global",
               json_string_value(json_object_get(o, "priority")),
               json_is_true(json_object_get(o, "replay")) ? " (replay)" : "",
               json_string_value(json_object_get(o, "text")));
    } else if (type && !strcmp(type, "retract")) {
        printf("%s retract %s\n", json_string_value(json_object_get(o, "id")),
               json_string_value(json_object_get(o, "ref")));
    } else if (type && !strcmp(type, "error")) {
        fprintf(stderr, "server error: %s\n", json_string_value(json_object_get(o, "message")));
    }
    fflush(stdout);
    json_decref(o);
}

static char *rxbuf;
static size_t rxlen;
static int tail_status;

static int tail_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fprintf(stderr, "tickerctl: cannot subscribe: %s\n", in ? (char *)in : "connection error");
        tail_status = 1;
        interrupted = 1;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        char *grown = realloc(rxbuf, rxlen + len + 1);
        if (!grown) return -1;
        rxbuf = grown;
        memcpy(rxbuf + rxlen, in, len);
        rxlen += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            print_frame(rxbuf, rxlen);
            rxlen = 0;
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (interrupted) break;
        fprintf(stderr, "tickerctl: connection closed\n");
        tail_status = 1;
        interrupted = 1;
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int cmd_tail(void)
{
    static const struct lws_protocols protocols[] = {{"tickerd", tail_callback, 0, 0, 0, NULL, 0},
                                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    const char *server = opt.server ? opt.server : cfg->listen;
    char host[256], path[1024] = "/v1/ws?replay=0";
    const char *colon = strrchr(server, ':');
    if (!colon || (size_t)(colon - server) >= sizeof host) {
        fprintf(stderr, "tickerctl: --server is HOST:PORT\n");
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - server), server);
    if (!strcmp(host, "*") || !*host) strcpy(host, "127.0.0.1");
    for (int i = 0; i < opt.nfields; i++) {
        if (!strcmp(opt.names[i], "text")) continue;
        size_t l = strlen(path);
        snprintf(path + l, sizeof path - l, "&%s=%s", opt.names[i], opt.values[i]);
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) return 1;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = ctx;
    ci.address = host;
    ci.port = atoi(colon + 1);
    ci.path = path;
    ci.host = ci.origin = host;
    ci.protocol = NULL;
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    if (!lws_client_connect_via_info(&ci)) tail_status = 1, interrupted = 1;
    while (!interrupted && lws_service(ctx, 0) >= 0)
        ;
    lws_context_destroy(ctx);
    free(rxbuf);
    return tail_status;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) || optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind++];
    const char *ref = NULL;
    bool pin = !strcmp(cmd, "pin"), unpin = !strcmp(cmd, "unpin");
    if (!strcmp(cmd, "update") || !strcmp(cmd, "retract") || pin || unpin) {
        if (optind >= argc) {
            fprintf(stderr, "tickerctl: %s needs the ID of the item\n", cmd);
            return 2;
        }
        ref = argv[optind++];
    }
    const char *file = !strcmp(cmd, "post") && optind < argc ? argv[optind++] : NULL;
    if (parse_args(argc, argv) || optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!(cfg = load_config())) return 2;
    int rc;
    if ((pin || unpin) && add_field("pin", pin ? "1" : "0")) {
        usage(stderr);
        rc = 2;
    } else if (pin || unpin) {
        rc = cmd_write("update", ref);
    } else if (!strcmp(cmd, "post")) {
        rc = cmd_post(file);
    } else if (!strcmp(cmd, "publish") || ref)
        rc = cmd_write(cmd, ref);
    else if (!strcmp(cmd, "tail"))
        rc = cmd_tail();
    else {
        fprintf(stderr, "tickerctl: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    tk_config_free(cfg);
    return rc;
}
