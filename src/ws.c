/* ws.c - the WebSocket transport at GET /v1/ws: the handshake (query
 * checked before the upgrade, refused with HTTP 400/404), client messages
 * (subscribe, ping), the writer and the close codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/net.h"
#include "tickerd/server.h"

#define MAX_BAD_MESSAGES 10
#define MAX_MESSAGES_PER_S 20

/* Reads the path and query of the request into a new request and admits
 * it (origin, token, limits). Returns the HTTP status to refuse with (0 =
 * accepted) and the reason in err. */
static unsigned parse_handshake(struct lws *wsi, tk_sub_req_t **out, tk_grant_t *g, char *err,
                                size_t errlen)
{
    unsigned status = 400;
    char path[256], arg[2048];
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0 ||
        strcmp(path, "/v1/ws") != 0) {
        snprintf(err, errlen, "no WebSocket endpoint at this path (use /v1/ws)");
        return 404;
    }
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) return 503;
    tk_sub_req_init(req);
    for (int i = 0; lws_hdr_copy_fragment(wsi, arg, sizeof arg, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (tk_query_arg(server.cfg, req, arg, err, errlen)) goto bad;
    }
    if (tk_sub_req_check(server.cfg, req, err, errlen)) goto bad;
    if ((status = tk_guard_admit(wsi, req, g, err, errlen))) goto bad;
    *out = req;
    return 0;
bad:
    free(req);
    return status;
}

static int refuse(struct lws *wsi, unsigned status, const char *why)
{
    char body[512], ip[64] = "?";
    int n = snprintf(body, sizeof body, "%s\n", why);
    lws_get_peer_simple(wsi, ip, sizeof ip);
    tk_log_limited(TK_LOG_INFO, "refused %s: HTTP %u: %s", ip, status, why);
    tk_metrics_refused(status);
    if (tk_http_respond(wsi, status, "text/plain; charset=utf-8", body, (size_t)n, NULL)) return -1;
    return 1; /* lws completes the transaction */
}

static void send_error(tk_client_t *c, const char *code, const char *message)
{
    TK_COUNT(client_errors_total, 1);
    tk_client_send_json(c, "error", json_pack("{s:s, s:s}", "code", code, "message", message));
    if (++c->bad_msgs >= MAX_BAD_MESSAGES) tk_client_close(c, 1008);
}

/* A subscribe frame may bring a new token; either way the filter must stay
 * within what the client's token allows. */
static int regrant(tk_client_t *c, tk_sub_req_t *req, char *err, size_t errlen)
{
    tk_grant_t g = c->grant;
    if (*server.cfg->jwt_secret && req->token[0] &&
        tk_grant_from_token(server.cfg->jwt_secret, req->token, tk_now_ms() / 1000, &g, err,
                            errlen))
        return -1;
    if (tk_grant_apply(&g, req, err, errlen)) return -1;
    c->grant = g;
    return 0;
}

/* Too many messages in one second count as bad input. */
static bool rate_exceeded(tk_client_t *c)
{
    uint32_t now = (uint32_t)(tk_now_ms() / 1000);
    if (now != c->rx_second) {
        c->rx_second = now;
        c->rx_count = 0;
    }
    return ++c->rx_count > MAX_MESSAGES_PER_S;
}

/* One complete text message from the client. */
static void on_message(tk_client_t *c, const char *text, size_t len)
{
    char err[256];
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (rate_exceeded(c)) {
        send_error(c, "rate_limited", "too many messages per second");
    } else if (!json_is_object(o)) {
        send_error(c, "bad_request", "not a JSON object");
    } else if (!type) {
        send_error(c, "bad_request", "no \"type\"");
    } else if (strcmp(type, "ping") == 0) {
        c->bad_msgs = 0;
        tk_client_send_json(c, "pong", json_object());
    } else if (strcmp(type, "subscribe") == 0) {
        tk_sub_req_t *req = malloc(sizeof *req);
        if (req && !tk_subscribe_parse(server.cfg, o, req, err, sizeof err) &&
            !tk_sub_req_check(server.cfg, req, err, sizeof err)) {
            if (regrant(c, req, err, sizeof err)) {
                send_error(c, "forbidden", err);
            } else {
                c->bad_msgs = 0;
                tk_hub_resubscribe(c, req);
            }
        } else {
            send_error(c, "bad_request", req ? err : "out of memory");
        }
        free(req);
    } else {
        snprintf(err, sizeof err, "unknown message type '%.40s'", type);
        send_error(c, "unknown_type", err);
    }
    json_decref(o);
}

static int on_receive(tk_client_t *c, struct lws *wsi, const char *in, size_t len)
{
    size_t max = (size_t)server.cfg->max_frame_bytes;
    if (c->state == TK_CLIENT_CLOSING) return 0;
    if (lws_frame_is_binary(wsi)) {
        send_error(c, "bad_request", "binary frames are not accepted");
        return 0;
    }
    bool whole = lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
                 !lws_remaining_packet_payload(wsi) && !c->rxlen;
    if (whole && len <= max) {
        on_message(c, in, len);
        return 0;
    }
    if (c->rxlen + len > max) {
        free(c->rx);
        c->rx = NULL;
        c->rxlen = 0;
        TK_COUNT(client_errors_total, 1);
        tk_client_close(c, 1009);
        return 0;
    }
    char *grown = realloc(c->rx, c->rxlen + len);
    if (!grown) return -1;
    c->rx = grown;
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += (uint32_t)len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        on_message(c, c->rx, c->rxlen);
        free(c->rx);
        c->rx = NULL;
        c->rxlen = 0;
    }
    return 0;
}

static const char *close_text(uint16_t code)
{
    switch (code) {
    case 1001:
        return "server shutting down";
    case 1008:
        return "too many bad messages";
    case 1009:
        return "message too big";
    case 1013:
        return "slow consumer: reconnect with since";
    default:
        return "";
    }
}

/* Writes the close frame itself: Debian's lws 4.1.6 on libuv drops the one
 * lws_close_reason() would queue when the callback returns -1. */
static int write_close(struct lws *wsi, uint16_t code)
{
    if (!code) return -1; /* dropped: no close handshake with a dead peer */
    unsigned char buf[LWS_PRE + 128], *q = buf + LWS_PRE;
    const char *text = close_text(code);
    size_t n = strlen(text);
    q[0] = 0x88;
    q[1] = (unsigned char)(2 + n);
    q[2] = (unsigned char)(code >> 8);
    q[3] = (unsigned char)code;
    memcpy(q + 4, text, n);
    lws_write(wsi, q, 4 + n, LWS_WRITE_RAW);
    return -1;
}

int tk_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, tk_client_t *c, void *in,
                   size_t len)
{
    char err[256];
    tk_sub_req_t *req = NULL;
    tk_grant_t grant;
    unsigned status;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (strcmp(in, "websocket") != 0) return refuse(wsi, 400, "only WebSocket upgrades");
        if (server.stopping) return refuse(wsi, 503, "shutting down");
        status = parse_handshake(wsi, &req, &grant, err, sizeof err);
        free(req);
        return status ? refuse(wsi, status, err) : 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Checked above; parsed again here, where lws gives the session. */
        if (parse_handshake(wsi, &req, &grant, err, sizeof err)) return -1;
        memset(c, 0, sizeof *c);
        c->pending = req;
        c->grant = grant;
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        c->wsi = wsi;
        req = c->pending;
        c->pending = NULL;
        tk_hub_attach(c, TK_TRANSPORT_WS, req);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        tk_client_heard(c); /* any message shows the client is alive */
        return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        tk_client_heard(c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        /* What was queued before the close goes out first (the error
         * frames that led to a 1008, say); a slow consumer's queue was
         * dropped. PENDING_TIMEOUT_CLOSE_SEND bounds the wait. */
        if (c->state == TK_CLIENT_CLOSING && !c->qlen) return write_close(wsi, c->close_code);
        if (tk_net_write_queue(c, LWS_WRITE_RAW)) return -1;
        if (c->state == TK_CLIENT_CLOSING && !c->qlen) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLOSED:
        tk_hub_detach(c);
        return 0;
    default:
        return 0;
    }
}
