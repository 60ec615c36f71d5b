/* http.c - the plain HTTP side of the server: Server-Sent Events at
 * /v1/events, /v1/items, /healthz, /metrics and the static web client. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/net.h"
#include "tickerd/server.h"
#include "tickerd/stream.h"

#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"

/* The CORS header lines for this request's Origin, per allowed_origins. */
static void cors_headers(struct lws *wsi, char *out, size_t cap)
{
    char origin[200];
    const char *allowed = server.cfg->allowed_origins;
    *out = 0;
    if (!*allowed) {
        snprintf(out, cap, "Access-Control-Allow-Origin: *\r\n");
        return;
    }
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0) return;
    if (tk_origin_listed(allowed, origin))
        snprintf(out, cap, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
}

static int finish(struct lws *wsi, int rc)
{
    if (rc < 0 || lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

static int respond_text(struct lws *wsi, unsigned status, const char *text)
{
    char body[512], ip[64] = "?";
    int n = snprintf(body, sizeof body, "%s\n", text);
    if (status >= 400) {
        lws_get_peer_simple(wsi, ip, sizeof ip);
        tk_log_limited(TK_LOG_INFO, "refused %s: HTTP %u: %s", ip, status, text);
        tk_metrics_refused(status);
    }
    return finish(wsi, tk_http_respond(wsi, status, TEXT_TYPE, body, (size_t)n, NULL));
}

/* Parses and admits the query of an HTTP request; on error answers 400
 * (or the guard's status) and returns NULL. The request is the caller's to
 * free; g gets what its token allows. */
static tk_sub_req_t *parse_query(struct lws *wsi, int *rc, tk_grant_t *g)
{
    char arg[2048], err[256];
    unsigned status = 400;
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) {
        *rc = -1;
        return NULL;
    }
    tk_sub_req_init(req);
    for (int i = 0; lws_hdr_copy_fragment(wsi, arg, sizeof arg, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++)
        if (tk_query_arg(server.cfg, req, arg, err, sizeof err)) goto bad;
    if (tk_sub_req_check(server.cfg, req, err, sizeof err)) goto bad;
    if (!(status = tk_guard_admit(wsi, req, g, err, sizeof err))) return req;
bad:
    free(req);
    *rc = respond_text(wsi, status, err);
    return NULL;
}

/* Daemon-wide: Redis counts as up when every worker's connection is, and
 * as down for as long as the longest-down worker's has been. */
static int serve_health(struct lws *wsi)
{
    char last[TK_ID_STRLEN], body[512];
    int64_t down = 0, conns = 0, now = tk_now_ms();
    for (int i = 0; i < TK_MAX_WORKERS; i++) {
        tk_worker_stats_t *w = &tk_metrics->workers[i];
        if (w->pid && !w->redis_up && w->redis_down_since_ms && now - w->redis_down_since_ms > down)
            down = now - w->redis_down_since_ms;
    }
    conns = tk_metrics_connections();
    bool up = tk_stream_up(server.stream) && down == 0;
    bool ok = up || down <= (int64_t)server.cfg->grace_s * 1000;
    tk_id_format(tk_history_last_id(server.history), last);
    int n =
        snprintf(body, sizeof body,
                 "{\"status\":\"%s\",\"redis\":\"%s\",\"redis_down_s\":%.1f,\"ready\":%s,"
                 "\"connections\":%lld,\"last_id\":\"%s\",\"epoch\":\"%s\",\"version\":\"%s\"}",
                 ok ? "ok" : "unavailable", up ? "up" : "down", (double)down / 1000,
                 server.ready ? "true" : "false", (long long)conns, last, server.epoch, TK_VERSION);
    return finish(wsi, tk_http_respond(wsi, ok ? 200 : 503, JSON_TYPE, body, (size_t)n, NULL));
}

static int serve_metrics(struct lws *wsi)
{
    size_t len;
    char *body = tk_metrics_render(&len);
    if (!body) return -1;
    int rc = tk_http_respond(wsi, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL);
    free(body);
    return finish(wsi, rc);
}

/* /v1/items: the current state, newest `limit` items, oldest first. */
static int serve_items(struct lws *wsi)
{
    int rc = 0;
    char last[TK_ID_STRLEN], etag[64], inm[64], extra[512], cors[300];
    tk_grant_t grant;
    tk_sub_req_t *req = parse_query(wsi, &rc, &grant);
    if (!req) return rc;
    int limit = req->limit >= 0 ? req->limit : 20;
    if (limit > server.cfg->replay_max) limit = server.cfg->replay_max;
    tk_id_format(tk_history_last_id(server.history), last);
    snprintf(etag, sizeof etag, "\"%s\"", last);
    cors_headers(wsi, cors, sizeof cors);
    snprintf(extra, sizeof extra, "ETag: %s\r\n%s", etag, cors);
    if (lws_hdr_copy(wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        strcmp(inm, etag) == 0) {
        free(req);
        return finish(wsi, tk_http_respond(wsi, 304, JSON_TYPE, "", 0, extra));
    }
    tk_state_t **st = malloc(((size_t)limit + 1) * sizeof *st);
    char *body = NULL;
    size_t len = 0;
    FILE *f = st ? open_memstream(&body, &len) : NULL;
    if (f) {
        int n = tk_history_current(server.history, &req->filter, limit, tk_now_ms(), st);
        fprintf(f, "{\"epoch\":\"%s\",\"last_id\":\"%s\",\"items\":[", server.epoch, last);
        for (int i = 0; i < n; i++) {
            char *json = tk_item_encode("item", st[i]->item.id, NULL, &st[i]->item, false, NULL);
            fprintf(f, "%s%s", i ? "," : "", json ? json : "null");
            free(json);
        }
        fputs("]}", f);
        fclose(f);
        rc = finish(wsi, tk_http_respond(wsi, 200, JSON_TYPE, body, len, extra));
    } else {
        rc = -1;
    }
    free(body);
    free(st);
    free(req);
    return rc;
}

/* lws 4.1.6 does not read an HTTP/1.1 connection while a response is in
 * progress (fixed upstream in 4.3), so an SSE client that hangs up leaves
 * its socket readable and the loop spinning until the next write fails.
 * We watch a dup of the socket ourselves: end of stream or an error closes
 * the client at once; stray input is read away. */
struct tk_sse_watch {
    uv_poll_t poll;
    tk_client_t *client; /* NULL once the client is gone */
    int fd;
};

static void on_watch_closed(uv_handle_t *h)
{
    struct tk_sse_watch *w = h->data;
    close(w->fd);
    free(w);
}

static void on_sse_socket(uv_poll_t *h, int status, int events)
{
    struct tk_sse_watch *w = h->data;
    char buf[512];
    (void)events;
    ssize_t n = status < 0 ? 0 : recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;
    uv_poll_stop(h);
    if (w->client) lws_set_timeout(w->client->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void sse_watch(tk_client_t *c)
{
    struct tk_sse_watch *w = calloc(1, sizeof *w);
    if (!w) return;
    w->fd = dup(lws_get_socket_fd(c->wsi));
    if (w->fd < 0 || uv_poll_init(server.loop, &w->poll, w->fd)) {
        if (w->fd >= 0) close(w->fd);
        free(w);
        return;
    }
    w->poll.data = w;
    w->client = c;
    c->watch = w;
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_sse_socket);
}

void tk_sse_unwatch(tk_client_t *c)
{
    struct tk_sse_watch *w = c->watch;
    if (!w) return;
    c->watch = NULL;
    w->client = NULL;
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

/* /v1/events: an SSE stream; Last-Event-ID resumes like since. */
static int serve_events(struct lws *wsi, tk_client_t *c)
{
    int rc = 0;
    char last_event[64], cors[300], head[1024];
    tk_grant_t grant;
    tk_sub_req_t *req = parse_query(wsi, &rc, &grant);
    if (!req) return rc;
    int n = lws_hdr_custom_copy(wsi, last_event, sizeof last_event, "last-event-id:", 14);
    if (n > 0) {
        if (tk_id_parse(last_event, (size_t)n, &req->since)) {
            free(req);
            return respond_text(wsi, 400, "Last-Event-ID is not a stream ID");
        }
        req->has_since = true;
    }
    cors_headers(wsi, cors, sizeof cors);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n%s\r\nretry: 2000\n\n",
                      cors);
    unsigned char buf[LWS_PRE + sizeof head];
    memcpy(buf + LWS_PRE, head, (size_t)hl);
    if (lws_write(wsi, buf + LWS_PRE, (size_t)hl, LWS_WRITE_HTTP) < 0) {
        free(req);
        return -1;
    }
    lws_http_mark_sse(wsi);
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    c->grant = grant;
    sse_watch(c);
    tk_hub_attach(c, TK_TRANSPORT_SSE, req);
    return 0;
}

static const char *mime_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

/* Resolves a URL path under static_dir; NULL when it is not a regular file
 * inside it (.., encoded dots and symlinks out of it included). */
static char *static_path(const char *uri)
{
    char root[PATH_MAX], want[PATH_MAX * 2], real[PATH_MAX];
    struct stat st;
    if (strstr(uri, "..") || strchr(uri, '\\') || uri[0] != '/') return NULL;
    if (!realpath(server.cfg->static_dir, root)) return NULL;
    snprintf(want, sizeof want, "%s%s%s", root, uri,
             uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (!realpath(want, real)) return NULL;
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) || real[rl] != '/') return NULL;
    if (stat(real, &st) || !S_ISREG(st.st_mode)) return NULL;
    return strdup(real);
}

static int serve_static(struct lws *wsi, const char *uri)
{
    char *path = static_path(uri);
    if (!path) return respond_text(wsi, 404, "not found");
    char headers[400];
    /* CORS as for the API: overlays and other sites import ticker.js. */
    cors_headers(wsi, headers, sizeof headers - 32);
    strcat(headers, "Cache-Control: no-cache\r\n");
    int n = lws_serve_http_file(wsi, path, mime_type(path), headers, (int)strlen(headers));
    free(path);
    if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
    return 0;
}

static int on_http(struct lws *wsi, tk_client_t *c, const char *uri)
{
    char *u;
    int ulen;
    if (lws_http_get_uri_and_method(wsi, &u, &ulen) != LWSHUMETH_GET)
        return respond_text(wsi, 405, "only GET is served");
    if (!strcmp(uri, "/healthz")) return serve_health(wsi);
    if (!strcmp(uri, "/metrics")) return serve_metrics(wsi);
    if (!strcmp(uri, "/v1/items")) return serve_items(wsi);
    if (!strcmp(uri, "/v1/events")) return serve_events(wsi, c);
    if (!strcmp(uri, "/v1/ws")) return respond_text(wsi, 426, "WebSocket upgrade required");
    return serve_static(wsi, uri);
}

int tk_http_callback(struct lws *wsi, enum lws_callback_reasons reason, tk_client_t *c, void *in,
                     size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, c, in);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c || !c->attached) return 0;
        if (c->state == TK_CLIENT_CLOSING) return -1;
        return tk_net_write_queue(c, LWS_WRITE_HTTP);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c) tk_sse_unwatch(c);
        if (c) tk_hub_detach(c);
        return 0;
    default:
        return 0;
    }
}
