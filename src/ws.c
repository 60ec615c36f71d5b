/* ws.c - the WebSocket transport at GET /v1/ws: the handshake (query
 * checked before the upgrade, refused with HTTP 400/404), client messages
 * (subscribe, ping), the writer and the close codes. */
#include <libwebsockets.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/clock.h"
#include "tickerd/guard.h"
#include "tickerd/hub.h"
#include "tickerd/reply.h"
#include "tickerd/request.h"
#include "tickerd/site.h"
#include "tickerd/ws.h"

#define MAX_BAD_MESSAGES 10
#define MAX_MESSAGES_PER_S 20

/* One WebSocket connection: the hub's client and what only this transport
 * needs. Lives in the lws per-session data. */
typedef struct ws_session {
    tk_client_t client; /* first: the hub hands it back */
    struct lws *wsi;
    tk_sub_req_t *handshake; /* parsed at FILTER, taken at ESTABLISHED */
    tk_grant_t grant;        /* what its token allows */
    uint32_t ip_slot;        /* per-IP count slot + 1; 0 = none */
    uint32_t rx_second;      /* inbound rate: the current second and */
    uint16_t rx_count;       /* the messages in it */
    uint8_t bad_msgs;
    char *rx; /* a partial inbound message */
    uint32_t rxlen;
} ws_session_t;

const size_t tk_ws_session_size = sizeof(ws_session_t);

_Static_assert(offsetof(ws_session_t, wsi) == offsetof(tk_conn_t, wsi),
               "a session starts as a tk_conn_t");

static const tk_transport_ops_t ws_ops = {
    TK_TRANSPORT_WS, tk_conn_write_raw, tk_conn_busy, tk_conn_room, tk_conn_want_write, tk_conn_closing, tk_conn_peer, NULL,
};

/* Reads the path and query of the request into a new request and admits
 * it (origin, token, limits). Returns the HTTP status to refuse with (0 =
 * accepted) and the reason in err. */
static unsigned parse_handshake(struct lws *wsi, tk_sub_req_t **out, tk_grant_t *g, char *err,
                                size_t errlen)
{
    unsigned status = 400;
    char path[256];
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0 ||
        strcmp(path, "/v1/ws") != 0) {
        snprintf(err, errlen, "no WebSocket endpoint at this path (use /v1/ws)");
        return 404;
    }
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) return 503;
    if (tk_request_query(wsi, tk_site_of(wsi)->cfg, req, err, errlen)) goto bad;
    if ((status = tk_guard_admit(tk_site_of(wsi)->cfg, tk_site_of(wsi)->stopping, wsi, req, g, err,
                                 errlen)))
        goto bad;
    *out = req;
    return 0;
bad:
    free(req);
    return status;
}

static int refuse(struct lws *wsi, unsigned status, const char *why)
{
    if (tk_http_text(wsi, status, why, NULL)) return -1;
    return 1; /* lws completes the transaction */
}

static void send_error(ws_session_t *s, const char *code, const char *message)
{
    TK_COUNT(client_errors_total, 1);
    tk_client_send_json(&s->client, "error",
                        json_pack("{s:s, s:s}", "code", code, "message", message));
    if (++s->bad_msgs >= MAX_BAD_MESSAGES) tk_client_close(&s->client, 1008);
}

/* A subscribe frame may bring a new token; either way the filter must stay
 * within what the client's token allows. */
static int regrant(ws_session_t *s, tk_sub_req_t *req, char *err, size_t errlen)
{
    tk_grant_t g = s->grant;
    if (*tk_site_of(s->wsi)->cfg->jwt_secret && req->token[0] &&
        tk_grant_from_token(tk_site_of(s->wsi)->cfg->jwt_secret, req->token, tk_now_ms() / 1000, &g,
                            err, errlen))
        return -1;
    if (tk_grant_apply(&g, req, err, errlen)) return -1;
    s->grant = g;
    s->client.expires_s = g.exp_s;
    return 0;
}

/* {"type":"auth","token":...}: a fresh token for the same subscription.
 * It must allow the filter in force; on any error the old token stays. */
static void on_auth(ws_session_t *s, json_t *o)
{
    char err[256];
    const tk_config_t *cfg = tk_site_of(s->wsi)->cfg;
    const char *token = json_string_value(json_object_get(o, "token"));
    tk_grant_t g;
    tk_sub_req_t req;
    if (!*cfg->jwt_secret) {
        send_error(s, "bad_request", "auth is off: no token needed");
        return;
    }
    if (!token) {
        send_error(s, "bad_request", "auth needs a \"token\" string");
        return;
    }
    if (tk_grant_from_token(cfg->jwt_secret, token, tk_now_ms() / 1000, &g, err, sizeof err)) {
        send_error(s, "unauthorized", err);
        return;
    }
    tk_sub_req_init(&req);
    req.filter = s->client.filter;
    if ((req.filter.regions & ~g.regions) || (req.filter.langs & ~g.langs)) {
        send_error(s, "forbidden", "the new token does not allow the current filter");
        return;
    }
    s->grant = g;
    s->client.expires_s = g.exp_s;
    s->bad_msgs = 0;
    tk_client_send_json(&s->client, "auth",
                        g.exp_s ? json_pack("{s:I}", "exp", (json_int_t)g.exp_s)
                                : json_pack("{s:n}", "exp"));
}

/* Too many messages in one second count as bad input. */
static bool rate_exceeded(ws_session_t *s)
{
    uint32_t now = (uint32_t)(tk_now_ms() / 1000);
    if (now != s->rx_second) {
        s->rx_second = now;
        s->rx_count = 0;
    }
    return ++s->rx_count > MAX_MESSAGES_PER_S;
}

static void on_subscribe(ws_session_t *s, json_t *o)
{
    char err[256];
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) {
        send_error(s, "internal", "out of memory");
    } else if (tk_subscribe_parse(tk_site_of(s->wsi)->cfg, o, req, err, sizeof err) ||
               tk_sub_req_check(tk_site_of(s->wsi)->cfg, req, err, sizeof err)) {
        send_error(s, "bad_request", err);
    } else if (regrant(s, req, err, sizeof err)) {
        send_error(s, "forbidden", err);
    } else {
        s->bad_msgs = 0;
        tk_hub_resubscribe(&s->client, req);
    }
    free(req);
}

/* {"type":"ack","ref":"<original id>"} (SPEC §7): a malformed one is an
 * error; one that acks nothing pending for this client (unlabelled, never
 * sent, acked already) is ignored without an answer. */
static void on_ack(ws_session_t *s, json_t *o)
{
    json_t *ref = json_object_get(o, "ref");
    tk_id_t id;
    if (!json_is_string(ref) || tk_id_parse(json_string_value(ref), json_string_length(ref), &id)) {
        send_error(s, "bad_request", "ack needs \"ref\": a stream ID");
        return;
    }
    s->bad_msgs = 0;
    tk_client_ack(&s->client, id);
}

/* One complete text message from the client. */
static void on_message(ws_session_t *s, const char *text, size_t len)
{
    char err[256];
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (rate_exceeded(s)) {
        send_error(s, "rate_limited", "too many messages per second");
    } else if (!json_is_object(o)) {
        send_error(s, "bad_request", "not a JSON object");
    } else if (!type) {
        send_error(s, "bad_request", "no \"type\"");
    } else if (strcmp(type, "ping") == 0) {
        s->bad_msgs = 0;
        tk_client_send_json(&s->client, "pong", json_object());
    } else if (strcmp(type, "subscribe") == 0) {
        on_subscribe(s, o);
    } else if (strcmp(type, "auth") == 0) {
        on_auth(s, o);
    } else if (strcmp(type, "ack") == 0) {
        on_ack(s, o);
    } else {
        snprintf(err, sizeof err, "unknown message type '%.40s'", type);
        send_error(s, "unknown_type", err);
    }
    json_decref(o);
}

static void drop_rx(ws_session_t *s)
{
    free(s->rx);
    s->rx = NULL;
    s->rxlen = 0;
}

/* lws hands a message over in chunks of its receive buffer. A text message
 * is joined; a binary one is counted once as a bad message and skipped. A
 * message over max_frame_bytes closes with 1009, whatever its kind. */
int tk_ws_receive(struct lws *wsi, void *pss, const void *in, size_t len)
{
    ws_session_t *s = pss;
    size_t max = (size_t)tk_site_of(wsi)->cfg->max_frame_bytes;
    bool last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    tk_client_heard(&s->client); /* any message shows the client is alive */
    if (s->client.state == TK_CLIENT_CLOSING) return 0;
    if (s->rxlen + len > max) {
        drop_rx(s);
        TK_COUNT(client_errors_total, 1);
        tk_client_close(&s->client, 1009);
        return 0;
    }
    if (lws_frame_is_binary(wsi)) {
        if (s->rxlen == 0) send_error(s, "bad_request", "binary frames are not accepted");
        s->rxlen = last ? 0 : s->rxlen + (uint32_t)len; /* counted, not kept */
        return 0;
    }
    if (last && !s->rxlen) {
        on_message(s, in, len);
        return 0;
    }
    char *grown = realloc(s->rx, s->rxlen + len);
    if (!grown) {
        tk_client_close(&s->client, 1011);
        return 0;
    }
    s->rx = grown;
    memcpy(s->rx + s->rxlen, in, len);
    s->rxlen += (uint32_t)len;
    if (last) {
        on_message(s, s->rx, s->rxlen);
        drop_rx(s);
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
    case 1011:
        return "server out of memory";
    case 1013:
        return "slow consumer: reconnect with since";
    default:
        return "";
    }
}

/* Writes the close frame itself: Debian's lws 4.1.6 on libuv drops the one
 * lws_close_reason() would queue when the callback returns -1. The hub
 * calls for it only once the socket has taken everything before it. */
static int write_close(struct lws *wsi, uint16_t code, const char *reason)
{
    if (!code) return -1; /* dropped: no close handshake with a dead peer */
    unsigned char buf[LWS_PRE + 128], *q = buf + LWS_PRE;
    const char *text = reason ? reason : close_text(code);
    size_t n = strlen(text);
    q[0] = 0x88;
    q[1] = (unsigned char)(2 + n);
    q[2] = (unsigned char)(code >> 8);
    q[3] = (unsigned char)code;
    memcpy(q + 4, text, n);
    lws_write(wsi, q, 4 + n, LWS_WRITE_RAW);
    return -1;
}

/* CVE-2025-11677 (Debian's lws 4.1.6 has no fix): for an Upgrade other
 * than websocket or h2c on a keep-alive connection, lws answers 403, frees
 * the request's headers and still calls us, with `in` pointing into the
 * freed headers. So `in` is never read: the header is copied again, and
 * when lws has dropped the headers (the copy fails) or answered already,
 * the connection just closes. See docs/operations.md. */
int tk_ws_confirm_upgrade(struct lws *wsi)
{
    char err[256], up[16];
    tk_sub_req_t *req = NULL;
    tk_grant_t grant;
    if (lws_hdr_copy(wsi, up, sizeof up, WSI_TOKEN_UPGRADE) <= 0) return -1;
    if (strcasecmp(up, "websocket") != 0)
        return strcasecmp(up, "h2c") == 0 ? refuse(wsi, 400, "only WebSocket upgrades") : -1;
    if (tk_site_of(wsi)->stopping) return refuse(wsi, 503, "shutting down");
    unsigned status = parse_handshake(wsi, &req, &grant, err, sizeof err);
    free(req);
    return status ? refuse(wsi, status, err) : 0;
}

/* Checked at CONFIRM_UPGRADE; parsed again here, where lws gives the
 * session. */
int tk_ws_filter(struct lws *wsi, void *pss)
{
    ws_session_t *s = pss;
    char err[256];
    tk_sub_req_t *req = NULL;
    tk_grant_t grant;
    if (parse_handshake(wsi, &req, &grant, err, sizeof err)) return -1;
    memset(s, 0, sizeof *s);
    s->client.ops = &ws_ops; /* marks the session as ours until it closes */
    s->handshake = req;
    s->grant = grant;
    return 0;
}

int tk_ws_established(struct lws *wsi, void *pss)
{
    ws_session_t *s = pss;
    tk_sub_req_t *req = s->handshake;
    s->handshake = NULL;
    s->wsi = wsi;
    s->ip_slot = tk_guard_ip_slot(wsi) + 1;
    tk_guard_ip_add(s->ip_slot - 1, 1);
    s->client.expires_s = s->grant.exp_s;
    tk_hub_attach(tk_site_of(wsi)->hub, &s->client, &ws_ops, req);
    return 0;
}

int tk_ws_pong(void *pss)
{
    ws_session_t *s = pss;
    tk_client_heard(&s->client);
    return 0;
}

int tk_ws_writable(struct lws *wsi, void *pss)
{
    ws_session_t *s = pss;
    int rc = tk_client_writable(&s->client);
    return rc > 0 ? write_close(wsi, s->client.close_code, s->client.close_reason) : rc;
}

/* CLOSED, and WSI_DESTROY for a connection that never got that far. */
void tk_ws_closed(void *pss)
{
    ws_session_t *s = pss;
    if (!s || s->client.ops != &ws_ops) return;
    if (s->client.attached) tk_guard_ip_add(s->ip_slot - 1, -1);
    tk_hub_detach(&s->client);
    free(s->handshake);
    s->handshake = NULL;
    drop_rx(s);
}
