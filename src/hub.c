/* hub.c - clients, their queues, replay on connect and the fan-out of live
 * events. Every queued message is a reference to a frame shared by all the
 * clients that get it; nothing is encoded or copied per client. */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/hub.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/server.h"

static tk_client_t *clients; /* doubly linked, newest first */
static int nclients;
static bool batching; /* a burst is being fanned out: queue, write in batches */
static uv_timer_t heartbeat;
static tk_msg_t *ws_ping, *sse_comment;

int tk_hub_count(void)
{
    return nclients;
}

static void fanout_done(tk_msg_t *m)
{
    if (m->stamp_ms && --m->pending == 0)
        tk_metrics_observe_fanout(tk_now_s() - (double)m->stamp_ms / 1000.0);
}

void tk_client_sent(tk_msg_t *m)
{
    fanout_done(m);
    tk_msg_unref(m);
}

static void drop_queue(tk_client_t *c)
{
    while (c->qlen) {
        tk_client_sent(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    free(c->q);
    c->q = NULL;
    c->qcap = c->qhead = c->qbytes = 0;
}

/* The client's address, for log lines. */
static const char *peer(tk_client_t *c, char *buf, size_t cap)
{
    buf[0] = 0;
    lws_get_peer_simple(c->wsi, buf, cap);
    return buf[0] ? buf : "?";
}

void tk_client_close(tk_client_t *c, uint16_t code)
{
    if (c->state == TK_CLIENT_CLOSING) return;
    c->state = TK_CLIENT_CLOSING;
    c->close_code = code;
    /* A client that never reads never becomes writable: lws kills it. At
     * shutdown the context goes anyway (and 50,000 timers cost). Outside
     * lws's callbacks a timer is only looked at when lws services some
     * socket: asking for writable makes sure it does. */
    if (!server.stopping) lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, code ? 10 : 1);
    lws_callback_on_writable(c->wsi);
}

static int grow_queue(tk_client_t *c)
{
    uint32_t cap = c->qcap ? c->qcap * 2 : 8;
    tk_msg_t **q = malloc(cap * sizeof *q);
    if (!q) return -1;
    for (uint32_t i = 0; i < c->qlen; i++)
        q[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = q;
    c->qcap = cap;
    c->qhead = 0;
    return 0;
}

int tk_client_send(tk_client_t *c, tk_msg_t *m)
{
    if (c->state == TK_CLIENT_CLOSING || !m) return -1;
    if (c->qbytes + m->len > (uint32_t)server.cfg->max_queue_bytes) {
        char ip[64];
        tk_log_limited(TK_LOG_WARN, "client %s: send queue over %d bytes: closing (1013)",
                       peer(c, ip, sizeof ip), server.cfg->max_queue_bytes);
        TK_COUNT(slow_consumer_disconnects_total, 1);
        drop_queue(c);
        tk_client_close(c, 1013);
        return -1;
    }
    if (c->qlen == c->qcap && grow_queue(c)) return -1;
    c->q[(c->qhead + c->qlen) % c->qcap] = tk_msg_ref(m);
    if (m->stamp_ms) m->pending++;
    c->qlen++;
    c->qbytes += m->len;
    if (c->qlen == 1) lws_callback_on_writable(c->wsi);
    return 0;
}

/* The live path: a client with nothing queued and nothing half-written
 * gets the frame written at once. Arming POLLOUT and waiting for the
 * writable callback would cost two epoll_ctl calls and a loop turn per
 * delivery; a partial write is kept by lws, which then asks for writable
 * itself. Anything else is queued. */
static int push(tk_client_t *c, tk_msg_t *m)
{
    if (batching || c->qlen || c->state != TK_CLIENT_LIVE || lws_partial_buffered(c->wsi))
        return tk_client_send(c, m);
    enum lws_write_protocol proto =
        c->transport == TK_TRANSPORT_WS ? LWS_WRITE_RAW : LWS_WRITE_HTTP;
    if (lws_write(c->wsi, m->data, m->len, proto) < 0) {
        tk_client_close(c, 0);
        return -1;
    }
    TK_COUNT(messages_sent_total, 1);
    TK_COUNT(bytes_sent_total, m->len);
    return 0;
}

int tk_client_send_json(tk_client_t *c, const char *type, json_t *obj)
{
    json_t *o = json_pack("{s:s}", "type", type); /* "type" first, for readers */
    if (!o || !obj || json_object_update(o, obj)) {
        json_decref(o);
        json_decref(obj);
        return -1;
    }
    json_decref(obj);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return -1;
    tk_msg_t *m = tk_msg_frame(c->transport, type, NULL, s, strlen(s));
    free(s);
    if (!m) return -1;
    int rc = tk_client_send(c, m);
    tk_msg_unref(m);
    return rc;
}

size_t tk_client_gather(tk_client_t *c, unsigned char *dst, size_t cap, tk_msg_t **big)
{
    size_t n = 0;
    *big = NULL;
    while (c->qlen) {
        tk_msg_t *m = c->q[c->qhead];
        if (n + m->len > cap) {
            if (n == 0) {
                *big = m; /* the caller writes it whole and releases it */
                c->qhead = (c->qhead + 1) % c->qcap;
                c->qlen--;
                c->qbytes -= m->len;
            }
            break;
        }
        memcpy(dst + n, m->data, m->len);
        n += m->len;
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        c->qbytes -= m->len;
        TK_COUNT(messages_sent_total, 1);
        tk_client_sent(m);
    }
    if (*big) TK_COUNT(messages_sent_total, 1);
    if (c->qlen == 0 && c->qcap > 64) { /* give back a queue a burst grew */
        free(c->q);
        c->q = NULL;
        c->qcap = c->qhead = 0;
    }
    return n;
}

static void send_hello(tk_client_t *c)
{
    char last[TK_ID_STRLEN];
    tk_id_format(tk_history_last_id(server.history), last);
    json_t *o =
        json_pack("{s:i, s:s, s:s, s:o, s:i, s:s}", "protocol", 1, "server", "tickerd/" TK_VERSION,
                  "epoch", server.epoch, "filter", tk_filter_to_json(&c->filter), "heartbeat_s",
                  server.cfg->heartbeat_s, "last_id", last);
    if (o) tk_client_send_json(c, "hello", o);
}

/* Sends the replay a request asks for, then the marker. */
static void send_replay(tk_client_t *c, const tk_sub_req_t *req)
{
    int max = server.cfg->replay_max, n = 0;
    bool gap = false;
    bool epoch_ok = !req->has_epoch || strcmp(req->epoch, server.epoch) == 0;
    int64_t now = tk_now_ms();
    void **out = max ? malloc((size_t)max * sizeof *out) : NULL;
    if (max && !out) return;
    if (req->has_since && epoch_ok) {
        n = tk_history_since(server.history, req->since, &c->filter, max, now, (tk_event_t **)out,
                             &gap);
        for (int i = 0; i < n; i++)
            tk_client_send(c, tk_event_msg(out[i], c->transport, true));
        if (tk_id_cmp(req->since, c->skip_until) > 0) c->skip_until = req->since;
    } else {
        int want = req->replay >= 0 ? req->replay : server.cfg->replay_default;
        gap = !epoch_ok;
        n = tk_history_current(server.history, &c->filter, want < max ? want : max, now,
                               (tk_state_t **)out);
        for (int i = 0; i < n; i++)
            tk_client_send(c, tk_state_msg(out[i], c->transport));
    }
    free(out);
    TK_COUNT(replay_events_sent_total, (uint64_t)n);
    tk_client_send_json(c, "replay", json_pack("{s:i, s:b}", "count", n, "gap", gap));
}

static void start(tk_client_t *c, const tk_sub_req_t *req)
{
    c->filter = req->filter;
    c->state = TK_CLIENT_LIVE;
    c->skip_until = tk_history_last_id(server.history);
    send_hello(c);
    send_replay(c, req);
}

void tk_hub_attach(tk_client_t *c, tk_transport_t t, tk_sub_req_t *req)
{
    c->transport = (uint8_t)t;
    c->next = clients;
    if (clients) clients->prev = c;
    clients = c;
    c->attached = 1;
    tk_client_heard(c);
    c->ip_slot = tk_guard_ip_slot(c->wsi) + 1;
    tk_guard_ip_add(c->ip_slot - 1, 1);
    nclients++;
    TK_COUNT(connections[t], 1);
    TK_COUNT(connections_total, 1);
    if (!server.ready) {
        c->state = TK_CLIENT_PARKED;
        c->pending = req;
        return;
    }
    start(c, req);
    free(req);
}

void tk_hub_detach(tk_client_t *c)
{
    if (c->attached) {
        c->attached = 0;
        if (c->prev) c->prev->next = c->next;
        if (c->next) c->next->prev = c->prev;
        if (clients == c) clients = c->next;
        c->prev = c->next = NULL;
        nclients--;
        TK_COUNT(connections[c->transport], -1);
        tk_guard_ip_add(c->ip_slot - 1, -1);
        drop_queue(c);
    }
    free(c->pending);
    c->pending = NULL;
    free(c->rx);
    c->rx = NULL;
}

void tk_hub_resubscribe(tk_client_t *c, const tk_sub_req_t *req)
{
    if (c->state != TK_CLIENT_LIVE) return;
    c->filter = req->filter;
    send_hello(c);
    if (req->replay >= 0 || req->has_since) send_replay(c, req);
}

void tk_hub_publish(tk_event_t *ev)
{
    tk_msg_t *msg[TK_TRANSPORTS] = {NULL, NULL};
    for (tk_client_t *c = clients, *next; c; c = next) {
        next = c->next;
        if (c->state != TK_CLIENT_LIVE || tk_id_cmp(ev->id, c->skip_until) <= 0) continue;
        if (!tk_filter_match_any(&c->filter, ev->keys, ev->nkeys)) continue;
        tk_msg_t *m = msg[c->transport];
        if (!m) {
            m = msg[c->transport] = tk_event_msg(ev, c->transport, false);
            if (!m) continue;
            m->stamp_ms = (int64_t)ev->id.ms;
            m->pending++; /* held until the loop is done */
        }
        push(c, m);
    }
    for (int t = 0; t < TK_TRANSPORTS; t++)
        if (msg[t]) fanout_done(msg[t]);
}

void tk_hub_batch(bool on)
{
    batching = on;
}

void tk_hub_ready(void)
{
    for (tk_client_t *c = clients; c; c = c->next) {
        if (c->state != TK_CLIENT_PARKED) continue;
        start(c, c->pending);
        free(c->pending);
        c->pending = NULL;
    }
}

void tk_hub_epoch_changed(void)
{
    tk_sub_req_t req;
    tk_sub_req_init(&req);
    strcpy(req.epoch, "-");
    req.has_epoch = true; /* never equal: the replay is reported as a gap */
    for (tk_client_t *c = clients; c; c = c->next) {
        if (c->state != TK_CLIENT_LIVE) continue;
        req.filter = c->filter;
        c->skip_until = tk_history_last_id(server.history);
        send_hello(c);
        send_replay(c, &req);
    }
}

void tk_hub_close_all(uint16_t code, const char *reason)
{
    (void)reason;
    for (tk_client_t *c = clients; c; c = c->next)
        tk_client_close(c, code);
}

void tk_client_heard(tk_client_t *c)
{
    c->heard_s = (uint32_t)(uv_now(server.loop) / 1000);
}

static void on_heartbeat(uv_timer_t *t)
{
    uint32_t now = (uint32_t)(uv_now(t->loop) / 1000);
    uint32_t silent_max = 2 * (uint32_t)server.cfg->heartbeat_s;
    for (tk_client_t *c = clients, *next; c; c = next) {
        next = c->next;
        if (c->state != TK_CLIENT_LIVE) continue;
        if (c->transport == TK_TRANSPORT_SSE) {
            push(c, sse_comment);
        } else if (now - c->heard_s > silent_max) {
            char ip[64];
            tk_log_limited(TK_LOG_INFO, "client %s silent for %u s: dropped",
                           peer(c, ip, sizeof ip), now - c->heard_s);
            drop_queue(c);
            tk_client_close(c, 0); /* code 0: closed without a close frame */
        } else {
            push(c, ws_ping);
        }
    }
    /* heartbeat_s may have changed on reload */
    uint64_t ms = (uint64_t)server.cfg->heartbeat_s * 1000;
    if (uv_timer_get_repeat(t) != ms) uv_timer_set_repeat(t, ms);
}

void tk_hub_start(uv_loop_t *loop)
{
    /* A payload, because lws 4.1.6 reports no RECEIVE_PONG for an empty pong. */
    static const char ping[] = {(char)0x89, 2, 't', 'k'};
    ws_ping = tk_msg_raw(ping, sizeof ping);
    sse_comment = tk_msg_raw(":\n\n", 3);
    uint64_t ms = (uint64_t)server.cfg->heartbeat_s * 1000;
    uv_timer_init(loop, &heartbeat);
    uv_timer_start(&heartbeat, on_heartbeat, ms, ms);
}

void tk_hub_stop(void)
{
    uv_close((uv_handle_t *)&heartbeat, NULL);
    tk_msg_unref(ws_ping);
    tk_msg_unref(sse_comment);
    ws_ping = sse_comment = NULL;
}
