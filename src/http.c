/* http.c - the plain HTTP side of the server: Server-Sent Events at
 * /v1/events, /v1/items and the feeds, /healthz, /metrics and the static
 * web client. */
#include <errno.h>
#include <libwebsockets.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/clock.h"
#include "tickerd/feed.h"
#include "tickerd/guard.h"
#include "tickerd/http.h"
#include "tickerd/hub.h"
#include "tickerd/item.h"
#include "tickerd/publish.h"
#include "tickerd/poll.h"
#include "tickerd/reply.h"
#include "tickerd/request.h"
#include "tickerd/screens.h"
#include "tickerd/site.h"

#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"

/* The CORS header lines for this request's Origin, per allowed_origins. */
static void cors_headers(struct lws *wsi, char *out, size_t cap)
{
    tk_guard_cors(tk_site_of(wsi)->cfg, wsi, out, cap);
}

static int finish(struct lws *wsi, int rc)
{
    if (rc < 0 || lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

static int respond_text(struct lws *wsi, unsigned status, const char *text)
{
    return finish(wsi, tk_http_text(wsi, status, text, NULL));
}

/* Parses and admits the query of an HTTP request; on error answers 400
 * (or the guard's status) and returns NULL. The request is the caller's to
 * free; g gets what its token allows. */
static tk_sub_req_t *parse_query(struct lws *wsi, int *rc, tk_grant_t *g)
{
    char err[256];
    unsigned status = 400;
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) {
        *rc = -1;
        return NULL;
    }
    if (tk_request_query(wsi, tk_site_of(wsi)->cfg, req, err, sizeof err)) goto bad;
    if (!(status = tk_guard_admit(tk_site_of(wsi)->cfg, tk_site_of(wsi)->stopping, wsi, req, g, err,
                                  sizeof err)))
        return req;
bad:
    free(req);
    *rc = respond_text(wsi, status, err);
    return NULL;
}

/* Daemon-wide: 503 "starting" until every worker listens and has loaded
 * the history; Redis counts as up when every worker's connection is, and as
 * down for as long as the longest-down worker's has been. */
static int serve_health(struct lws *wsi)
{
    const tk_site_t *site = tk_site_of(wsi);
    char last[TK_ID_STRLEN], body[512];
    int64_t down = 0, conns = 0, now = tk_now_ms();
    for (int i = 0; i < TK_MAX_WORKERS; i++) {
        tk_worker_stats_t *w = &tk_metrics->workers[i];
        if (w->pid && !w->redis_up && w->redis_down_since_ms && now - w->redis_down_since_ms > down)
            down = now - w->redis_down_since_ms;
    }
    conns = tk_metrics_connections();
    bool up = site->redis_up && down == 0;
    bool ready = tk_metrics_all_ready();
    bool ok = ready && !site->stopping && (up || down <= (int64_t)site->cfg->grace_s * 1000);
    tk_id_format(tk_history_last_id(site->history), last);
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"redis\":\"%s\",\"redis_down_s\":%.1f,\"ready\":%s,"
                     "\"connections\":%lld,\"last_id\":\"%s\",\"epoch\":\"%s\",\"version\":\"%s\"}",
                     ok               ? "ok"
                     : site->stopping ? "draining"
                     : ready          ? "unavailable"
                                      : "starting",
                     up ? "up" : "down", (double)down / 1000, ready ? "true" : "false",
                     (long long)conns, last, tk_hub_epoch(site->hub), TK_VERSION);
    return finish(wsi, tk_http_respond(wsi, ok ? 200 : 503, JSON_TYPE, body, (size_t)n, NULL));
}

/* /v1/stats: the audience now, daemon-wide (SPEC §3). */
static int serve_stats(struct lws *wsi)
{
    char cors[400];
    size_t len = 0;
    char *body = tk_metrics_stats_json(&len);
    if (!body) return -1;
    cors_headers(wsi, cors, sizeof cors);
    int rc = finish(wsi, tk_http_respond(wsi, 200, JSON_TYPE, body, len, cors));
    free(body);
    return rc;
}

/* /v1/lists: what this daemon accepts, for forms (SPEC §3). */
static int serve_lists(struct lws *wsi)
{
    char cors[400];
    json_t *lists = tk_item_lists_json(tk_site_of(wsi)->cfg);
    char *body = lists ? json_dumps(lists, JSON_COMPACT) : NULL;
    json_decref(lists);
    if (!body) return -1;
    cors_headers(wsi, cors, sizeof cors);
    int rc = finish(wsi, tk_http_respond(wsi, 200, JSON_TYPE, body, strlen(body), cors));
    free(body);
    return rc;
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

/* "scheme://host[:port]" of the request, for the feeds' links: its Host
 * when that is a plain host[:port], else the listen address. */
static void request_base(struct lws *wsi, char *out, size_t cap)
{
    static const char host_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-_:[]";
    const tk_config_t *cfg = tk_site_of(wsi)->cfg;
    char host[256];
    int n = lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
    if (n <= 0 || strspn(host, host_chars) != (size_t)n)
        snprintf(host, sizeof host, "%s", cfg->listen);
    snprintf(out, cap, "%s://%s", cfg->tls_cert && *cfg->tls_cert ? "https" : "http", host);
}

/* /v1/items, /v1/feed.json, /v1/feed.rss: the newest `limit` current items
 * the query (narrowed by the token) asks for, as fmt, under an ETag that
 * changes whenever the document would; 304 when If-None-Match names it. */
static int serve_current(struct lws *wsi, tk_feed_format_t fmt)
{
    const tk_site_t *site = tk_site_of(wsi);
    int rc = 0;
    char base[300], etag[TK_FEED_ETAG_LEN], inm[1024], extra[512], cors[400];
    tk_grant_t grant;
    tk_sub_req_t *req = parse_query(wsi, &rc, &grant);
    if (!req) return rc;
    tk_feed_t f = {.epoch = tk_hub_epoch(site->hub),
                   .last_id = tk_history_last_id(site->history),
                   .base = base,
                   .stream_key = site->cfg->stream_key,
                   .filter = &req->filter};
    f.limit = req->limit >= 0 ? req->limit : TK_FEED_DEFAULT_LIMIT;
    if (f.limit > site->cfg->replay_max) f.limit = site->cfg->replay_max;
    tk_state_t **st = malloc(((size_t)f.limit + TK_PINNED_MAX) * sizeof *st);
    if (!st) {
        free(req);
        return -1;
    }
    f.items = st;
    f.n = tk_history_current(site->history, &req->filter, f.limit, tk_now_ms(), st);
    request_base(wsi, base, sizeof base);
    tk_feed_etag(fmt, &f, etag);
    cors_headers(wsi, cors, sizeof cors);
    snprintf(extra, sizeof extra, "ETag: %s\r\n%s", etag, cors);
    if (lws_hdr_copy(wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        tk_etag_match(inm, etag)) {
        rc = finish(wsi, tk_http_respond(wsi, 304, tk_feed_type(fmt), "", 0, extra));
    } else {
        size_t len;
        char *body = tk_feed_render(fmt, &f, &len);
        rc =
            body ? finish(wsi, tk_http_respond(wsi, 200, tk_feed_type(fmt), body, len, extra)) : -1;
        free(body);
    }
    free(st);
    free(req);
    return rc;
}

/* One SSE connection: the hub's client and what only this transport
 * needs. Lives in the lws per-session data. */
typedef struct sse_session {
    tk_client_t client; /* first: the hub hands it back */
    struct lws *wsi;
    uint32_t ip_slot; /* per-IP count slot + 1; 0 = none */
    struct sse_watch *watch;
} sse_session_t;

const size_t tk_sse_session_size = sizeof(sse_session_t);

/* lws 4.1.6 does not read an HTTP/1.1 connection while a response is in
 * progress (fixed upstream in 4.3), so an SSE client that hangs up leaves
 * its socket readable and the loop spinning until the next write fails.
 * We watch a dup of the socket ourselves: end of stream or an error closes
 * the client at once; stray input is read away. */
struct sse_watch {
    uv_poll_t poll;
    sse_session_t *session; /* NULL once the client is gone */
    int fd;
};

static void on_watch_closed(uv_handle_t *h)
{
    struct sse_watch *w = h->data;
    close(w->fd);
    free(w);
}

static void on_sse_socket(uv_poll_t *h, int status, int events)
{
    struct sse_watch *w = h->data;
    char buf[512];
    (void)events;
    ssize_t n = status < 0 ? 0 : recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;
    uv_poll_stop(h);
    if (w->session) lws_set_timeout(w->session->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void sse_watch(sse_session_t *s)
{
    struct sse_watch *w = calloc(1, sizeof *w);
    if (!w) return;
    w->fd = dup(lws_get_socket_fd(s->wsi));
    if (w->fd < 0 || uv_poll_init(tk_site_of(s->wsi)->loop, &w->poll, w->fd)) {
        if (w->fd >= 0) close(w->fd);
        free(w);
        return;
    }
    w->poll.data = w;
    w->session = s;
    s->watch = w;
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_sse_socket);
}

static void sse_unwatch(sse_session_t *s)
{
    struct sse_watch *w = s->watch;
    if (!w) return;
    s->watch = NULL;
    w->session = NULL;
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

_Static_assert(offsetof(sse_session_t, wsi) == offsetof(tk_conn_t, wsi),
               "a session starts as a tk_conn_t");

static const tk_transport_ops_t sse_ops = {
    TK_TRANSPORT_SSE,   tk_conn_write_http, tk_conn_busy, tk_conn_room,
    tk_conn_want_write, tk_conn_closing,    tk_conn_peer, NULL,
};

/* /v1/events: an SSE stream; Last-Event-ID resumes like since. */
static int serve_events(struct lws *wsi, sse_session_t *s)
{
    int rc = 0;
    char last_event[64], cors[400], head[1024];
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
    memset(s, 0, sizeof *s);
    s->wsi = wsi;
    s->ip_slot = tk_guard_ip_slot(wsi) + 1;
    tk_guard_ip_add(s->ip_slot - 1, 1);
    sse_watch(s);
    s->client.expires_s = grant.exp_s; /* the token holds for the whole stream */
    tk_hub_attach(tk_site_of(wsi)->hub, &s->client, &sse_ops, req);
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
static char *static_path(const char *dir, const char *uri)
{
    char root[PATH_MAX], want[PATH_MAX * 2], real[PATH_MAX];
    struct stat st;
    if (strstr(uri, "..") || strchr(uri, '\\') || uri[0] != '/') return NULL;
    if (!realpath(dir, root)) return NULL;
    snprintf(want, sizeof want, "%s%s%s", root, uri,
             uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (!realpath(want, real)) return NULL;
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) || real[rl] != '/') return NULL;
    if (stat(real, &st) || !S_ISREG(st.st_mode)) return NULL;
    return strdup(real);
}

/* A static file under dir; csp: a Content-Security-Policy for it, or NULL.
 * The headers are the same for the demo and the console. */
static int serve_file(struct lws *wsi, const char *dir, const char *uri, const char *csp)
{
    char *path = static_path(dir, uri);
    if (!path) return respond_text(wsi, 404, "not found");
    char headers[700];
    /* CORS as for the API: overlays and other sites import ticker.js. */
    cors_headers(wsi, headers, 400);
    strcat(headers, "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n");
    if (csp) snprintf(headers + strlen(headers), sizeof headers - strlen(headers), "%s", csp);
    int n = lws_serve_http_file(wsi, path, mime_type(path), headers, (int)strlen(headers));
    free(path);
    if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
    return 0;
}

static int serve_static(struct lws *wsi, const char *uri)
{
    return serve_file(wsi, tk_site_of(wsi)->cfg->static_dir, uri, NULL);
}

/* The console holds a token that can publish: its pages may load and
 * connect to their own origin only, and may not be framed. */
#define CONSOLE_CSP                                                                                \
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; object-src 'none'; "       \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"                              \
    "Referrer-Policy: no-referrer\r\n"

/* /console/...: the editors' console, from the directory "console" beside
 * static_dir (clients/console beside clients/web); /console redirects. */
static int serve_console(struct lws *wsi, const char *uri)
{
    const char *dir = tk_site_of(wsi)->cfg->static_dir;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    while (n && dir[n - 1] != '/')
        n--;
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%.*sconsole", (int)n, dir);
    if (!uri[8])
        return finish(wsi, tk_http_respond(wsi, 301, TEXT_TYPE, "", 0, "Location: /console/\r\n"));
    return serve_file(wsi, root, uri + 8, CONSOLE_CSP);
}

/* A CORS preflight: 204 naming what a page on an allowed origin may send
 * (the Authorization header, for a bearer token), 403 for another origin. */
static int serve_preflight(struct lws *wsi)
{
    char origin[TK_ORIGIN_MAX + 1], head[700];
    const char *allowed = tk_site_of(wsi)->cfg->allowed_origins;
    int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (n < 0) return respond_text(wsi, 403, "Origin header too long");
    if (n == 0) return respond_text(wsi, 400, "a preflight needs an Origin header");
    if (*allowed && !tk_origin_listed(allowed, origin))
        return respond_text(wsi, 403, "origin not allowed");
    snprintf(head, sizeof head,
             "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
             "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n"
             "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key\r\n"
             "Access-Control-Max-Age: 600\r\n",
             origin);
    return finish(wsi, tk_http_respond(wsi, 204, TEXT_TYPE, "", 0, head));
}

int tk_http_request(struct lws *wsi, void *pss, const char *uri)
{
    char *u;
    int ulen;
    int method = lws_http_get_uri_and_method(wsi, &u, &ulen);
    if (method == LWSHUMETH_OPTIONS) return serve_preflight(wsi);
    if (method == LWSHUMETH_POST && !strcmp(uri, "/v1/items")) return tk_publish_request(wsi, pss);
    if (method != LWSHUMETH_GET && method != LWSHUMETH_HEAD)
        return respond_text(wsi, 405, "only GET, HEAD and OPTIONS are served here");
    if (method == LWSHUMETH_HEAD && !strcmp(uri, "/v1/events")) {
        char cors[400], head[512];
        cors_headers(wsi, cors, sizeof cors);
        snprintf(head, sizeof head, "%s", cors);
        return finish(wsi, tk_http_respond(wsi, 200, "text/event-stream", "", 0, head));
    }
    if (!strcmp(uri, "/healthz")) return serve_health(wsi);
    if (!strcmp(uri, "/metrics")) return serve_metrics(wsi);
    if (!strcmp(uri, "/v1/stats")) return serve_stats(wsi);
    if (!strcmp(uri, "/v1/lists")) return serve_lists(wsi);
    if (!strcmp(uri, "/v1/items")) return serve_current(wsi, TK_FEED_ITEMS);
    if (!strcmp(uri, "/v1/feed.json")) return serve_current(wsi, TK_FEED_JSON);
    if (!strcmp(uri, "/v1/feed.rss")) return serve_current(wsi, TK_FEED_RSS);
    if (!strcmp(uri, "/v1/events")) return serve_events(wsi, pss);
    if (!strcmp(uri, "/v1/poll")) return tk_poll_request(wsi, pss);
    if (!strcmp(uri, "/v1/ws")) return respond_text(wsi, 426, "WebSocket upgrade required");
    if (tk_screens_path(uri)) {
        char cors[400];
        cors_headers(wsi, cors, sizeof cors);
        return tk_screens_serve(wsi, pss, uri, cors);
    }
    if (!strncmp(uri, "/console", 8) && (!uri[8] || uri[8] == '/')) return serve_console(wsi, uri);
    return serve_static(wsi, uri);
}

int tk_http_writable(struct lws *wsi, void *pss)
{
    sse_session_t *s = pss;
    int rc = tk_publish_writable(wsi, pss);
    if (rc != 1) return rc;
    if ((rc = tk_screens_writable(wsi, pss)) != 1) return rc;
    if (!s || s->client.ops != &sse_ops || !s->client.attached) return 0;
    return tk_client_writable(&s->client) ? -1 : 0; /* SSE has no close frame */
}

int tk_http_file_done(struct lws *wsi)
{
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void tk_http_closed(void *pss)
{
    sse_session_t *s = pss;
    tk_publish_closed(pss);
    tk_screens_closed(pss);
    if (!s || s->client.ops != &sse_ops) return;
    sse_unwatch(s);
    if (s->client.attached) tk_guard_ip_add(s->ip_slot - 1, -1);
    tk_hub_detach(&s->client);
}
