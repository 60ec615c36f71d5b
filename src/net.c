/* net.c - the libwebsockets context on our libuv loop, the one protocol
 * callback and its dispatch to ws.c and http.c, and the queue writer both
 * transports share. */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tickerd/guard.h"
#include "tickerd/head.h"
#include "tickerd/http.h"
#include "tickerd/listener.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/net.h"
#include "tickerd/publish.h"
#include "tickerd/poll.h"
#include "tickerd/screens.h"
#include "tickerd/site.h"
#include "tickerd/ws.h"

/* lws keeps a receive buffer this big per connection: client messages are
 * small, and ws.c joins the chunks of a longer one. Not less: lws needs a
 * control frame's whole payload (up to 125 bytes: a ping's, a close
 * reason) in it. */
#define RX_CHUNK_BYTES 128

static lws_retry_bo_t retry_policy;

/* listener.c holds a connection's first request to head.h's limits and
 * answers 414/431 itself. A later request on a kept-alive connection, or
 * one over TLS, meets only lws's header store (TK_LWS_HEADER_DATA), and
 * lws drops one that overflows it without telling us: its log line (see
 * log_lws) sets this, and the close of that connection, which follows at
 * once, logs the refusal with the client's address. */
static bool header_overflow;

/* Logs and counts the request lws dropped: 414 when the request line
 * itself did not fit (lws never finished the URI), 431 when the headers did
 * not. lws 4.1.6 has already shut the socket for writing by now, so the
 * client gets no answer (docs/operations.md). */
static void log_header_overflow(struct lws *wsi)
{
    const char *ip = tk_guard_client(wsi);
    bool uri = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 &&
               lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0 &&
               lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) <= 0 &&
               lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0;
    header_overflow = false;
    tk_log_refused("refused %s: request line and headers over %d bytes (%s, %d)", ip,
                   TK_LWS_HEADER_DATA, uri ? "the request line alone" : "headers", uri ? 414 : 431);
    tk_metrics_refused(uri ? 414 : 431);
}

/* Who the connection is from (guard.h), kept from the adoption: the
 * listener knows the client a PROXY header named, and by the time lws
 * reports a request it dropped, the client may have reset the connection.
 * Freed in LWS_CALLBACK_WSI_DESTROY. */
static void remember_peer(struct lws *wsi)
{
    char ip[TK_ADDR_STRLEN] = "";
    const char *conn = tk_listener_adopting();
    if (!conn) conn = lws_get_peer_simple(wsi, ip, sizeof ip);
    tk_peer_t *p = tk_peer_new(conn);
    long long len;
    char *body = tk_listener_adopting_body(&len);
    if (p) {
        p->body = body;
        p->body_len = len;
    } else {
        free(body);
    }
    lws_set_opaque_user_data(wsi, p);
}

/* The one place that knows lws's callback reasons: each goes to the
 * transport it concerns. */
static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        tk_guard_identify(tk_site_of(wsi)->cfg, wsi);
        return tk_ws_confirm_upgrade(wsi); /* never `in`: CVE-2025-11677 */
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return tk_ws_filter(wsi, user);
    case LWS_CALLBACK_ESTABLISHED:
        return tk_ws_established(wsi, user);
    case LWS_CALLBACK_RECEIVE:
        return tk_ws_receive(wsi, user, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        return tk_ws_pong(user);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return tk_ws_writable(wsi, user);
    case LWS_CALLBACK_CLOSED:
        tk_ws_closed(user);
        return 0;
    case LWS_CALLBACK_HTTP:
        tk_guard_identify(tk_site_of(wsi)->cfg, wsi);
        return tk_http_request(wsi, user, in);
    case LWS_CALLBACK_HTTP_BODY:
        return tk_publish_body(wsi, user, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return tk_publish_body_done(wsi, user);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (tk_poll_owns(user)) return tk_poll_writable(wsi, user);
        return tk_http_writable(wsi, user);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return tk_http_file_done(wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (header_overflow) log_header_overflow(wsi);
        tk_http_closed(user);
        tk_poll_closed(user);
        return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        remember_peer(wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        tk_peer_free(lws_get_opaque_user_data(wsi));
        lws_set_opaque_user_data(wsi, NULL);
        tk_ws_closed(user);
        tk_http_closed(user);
        tk_poll_closed(user);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static struct lws_protocols protocols[] = {
    /* tx_packet_size: 0 would cap a send at the receive buffer size. */
    {"tickerd", callback, 0, RX_CHUNK_BYTES, 0, NULL, LWS_PRE + 65536},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* lws's own errors, through our log; lws_http_mark_sse() complains on
 * every HTTP/1.1 stream that it is not h2, which is expected here. */
static void log_lws(int level, const char *line)
{
    if (strstr(line, "not h2 substream")) return;
    /* adopt_socket_readbuf says at error level that it serves what
     * listener.c read: every connection does that. */
    if (strstr(line, "calling service") || strstr(line, "deferring handling ah")) return;
    if (strstr(line, "Ran out of header data space")) {
        header_overflow = true;
        return;
    }
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        n--;
    tk_log_limited(level == LLL_ERR ? TK_LOG_ERROR : TK_LOG_WARN, "lws: %.*s", (int)n, line);
}

int tk_net_start(tk_site_t *site, struct lws_context **pcontext)
{
    struct lws_context_creation_info info;
    struct lws_context *context;
    void *loops[1] = {site->loop};
    struct rlimit rl;
    const tk_config_t *cfg = site->cfg;

    lws_set_log_level(LLL_ERR | LLL_WARN, log_lws);
    size_t pss = tk_ws_session_size > tk_sse_session_size ? tk_ws_session_size : tk_sse_session_size;
    pss = pss > tk_publish_session_size ? pss : tk_publish_session_size;
    pss = pss > tk_poll_session_size ? pss : tk_poll_session_size;
    protocols[0].per_session_data_size =
        pss > tk_screens_session_size ? pss : tk_screens_session_size;
    memset(&info, 0, sizeof info);
    /* lws listens on nothing: listener.c accepts on a SO_REUSEPORT socket
     * that every worker binds, and hands the connections to this vhost. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (*cfg->tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.alpn = "http/1.1"; /* responses are written as HTTP/1.1 */
    }
    info.foreign_loops = loops;
    /* lws keeps this pointer and clears what it points to when the context
     * goes: it must outlive the context (the worker's own field). */
    info.pcontext = pcontext;
    info.user = site;
    info.max_http_header_data = TK_LWS_HEADER_DATA;
    info.max_http_header_pool = 1024;
    info.timeout_secs = 10;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        info.fd_limit_per_thread = (unsigned)rl.rlim_cur;
    /* No lws validity timers (all zero; NULL would mean lws's 300 s
     * default): lws keeps timers in a sorted list, and one insert per
     * connection and per pong is O(connections) each. hub.c pings every
     * client from a single timer instead. */
    memset(&retry_policy, 0, sizeof retry_policy);
    info.retry_and_idle_policy = &retry_policy;
    if (!(context = *pcontext = lws_create_context(&info))) {
        tk_log(TK_LOG_ERROR, "cannot start libwebsockets (see its errors above)");
        return -1;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(context, "default");
    tk_listener_opts_t lo = {cfg->listen_host, cfg->listen_port, *cfg->tls_cert != 0,
                             cfg->trusted_proxies};
    if (!vh || tk_listener_start(site->loop, &lo, vh)) {
        lws_context_destroy(context);
        return -1;
    }
    return 0;
}

void tk_net_stop(struct lws_context *context)
{
    tk_listener_stop();
    tk_poll_stop();
    if (context) lws_context_destroy(context);
}

void tk_net_finish(struct lws_context *context)
{
    if (context) lws_context_destroy(context);
}
