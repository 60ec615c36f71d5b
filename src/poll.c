/* poll.c - the long-poll transport at GET /v1/poll (SPEC §3). Each request
 * is parsed and admitted like /v1/ws and /v1/events (request.c, guard.c)
 * and becomes a one-shot client of the hub, which decides when it is
 * answered and with what (hub.c: the same filter, since, epoch and gap
 * rules as the other transports). This file writes the answer: one JSON
 * body of the events' shared poll frames.
 *
 * A waiting poll holds no lws header table (it is read, then given back),
 * no timer and no handle: its CORS lines, when they name an origin, are
 * kept in a small string of its own, freed with the session, and its
 * socket is in the one epoll set of hang-ups below. */
#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tickerd/guard.h"
#include "tickerd/hub.h"
#include "tickerd/poll.h"
#include "tickerd/reply.h"
#include "tickerd/request.h"
#include "tickerd/site.h"

#define JSON_TYPE "application/json"
#define NO_STORE "Cache-Control: no-store\r\n"

/* One long-poll: the hub's client and what only this transport needs.
 * Lives in the lws per-session data, from the request to its answer. */
typedef struct poll_session {
    tk_client_t client; /* first: the hub hands it back */
    struct lws *wsi;
    uint32_t ip_slot; /* per-IP count slot + 1; 0 = none */
    bool answered;
    bool watched; /* its socket is in the hang-up set */
    char *cors; /* the answer's CORS lines (malloc'd); NULL: none */
} poll_session_t;

const size_t tk_poll_session_size = sizeof(poll_session_t);

_Static_assert(offsetof(poll_session_t, wsi) == offsetof(tk_conn_t, wsi),
               "a session starts as a tk_conn_t");

static long answer(tk_client_t *c, const tk_answer_t *a);

static const tk_transport_ops_t poll_ops = {
    TK_TRANSPORT_POLL, tk_conn_write_http, tk_conn_busy, tk_conn_room,
    tk_conn_want_write, tk_conn_closing,   tk_conn_peer, answer,
};

/* --- hang-ups while waiting ---
 * lws 4.1.6 reads nothing from a connection whose request is still being
 * answered (LRS_DEFERRING_ACTION): a client that hangs up would leave its
 * socket readable, the loop spinning, and the poll counted until its
 * wait_s. Every waiting poll's socket is also in one epoll set of this
 * worker's, watched by one uv_poll: end of stream or an error closes the
 * poll at once, stray input is read away. */
static struct {
    int epfd; /* -1 until the first poll */
    uv_poll_t poll;
} hangups = {.epfd = -1};

static void close_poll(poll_session_t *s);
static void release(poll_session_t *s);

static void check_socket(poll_session_t *s)
{
    char buf[512];
    ssize_t n;
    while ((n = recv(lws_get_socket_fd(s->wsi), buf, sizeof buf, MSG_DONTWAIT)) > 0)
        ;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close_poll(s);
}

static void on_hangups(uv_poll_t *h, int status, int events)
{
    struct epoll_event ev[64];
    (void)h, (void)status, (void)events;
    int n = epoll_wait(hangups.epfd, ev, 64, 0);
    for (int i = 0; i < n; i++)
        check_socket(ev[i].data.ptr);
}

static int watch(poll_session_t *s)
{
    if (hangups.epfd < 0) {
        int fd = epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0) return -1;
        if (uv_poll_init(tk_site_of(s->wsi)->loop, &hangups.poll, fd)) {
            close(fd);
            return -1;
        }
        hangups.epfd = fd;
        uv_poll_start(&hangups.poll, UV_READABLE, on_hangups);
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
    if (epoll_ctl(hangups.epfd, EPOLL_CTL_ADD, lws_get_socket_fd(s->wsi), &ev)) return -1;
    s->watched = true;
    return 0;
}

static void unwatch(poll_session_t *s)
{
    if (!s->watched) return;
    s->watched = false;
    epoll_ctl(hangups.epfd, EPOLL_CTL_DEL, lws_get_socket_fd(s->wsi), NULL);
}

static void on_hangups_closed(uv_handle_t *h)
{
    (void)h;
    close(hangups.epfd);
    hangups.epfd = -1;
}

void tk_poll_stop(void)
{
    if (hangups.epfd >= 0 && !uv_is_closing((uv_handle_t *)&hangups.poll))
        uv_close((uv_handle_t *)&hangups.poll, on_hangups_closed);
}

/* --- the transport --- */

bool tk_poll_owns(void *pss)
{
    poll_session_t *s = pss;
    return s && s->client.ops == &poll_ops;
}

/* The extra header lines of an answer: no-store and the CORS lines. */
static void answer_headers(const poll_session_t *s, char *out, size_t cap)
{
    snprintf(out, cap, NO_STORE "%s", s->cors ? s->cors : "");
}

/* {"epoch":…,"last_id":…,"events":[…],"gap":…} into one malloc'd buffer. */
static char *answer_body(const tk_answer_t *a, size_t *len)
{
    char last[TK_ID_STRLEN], tail[32];
    json_t *epoch = json_string(a->epoch);
    char *e = epoch ? json_dumps(epoch, JSON_ENCODE_ANY) : NULL;
    json_decref(epoch);
    if (!e) return NULL;
    tk_id_format(a->last_id, last);
    size_t total = strlen(e) + strlen(last) + 64, off = 0;
    for (int i = 0; i < a->n; i++)
        total += a->events[i]->len + 1;
    char *body = malloc(total);
    if (body) {
        off = (size_t)snprintf(body, total, "{\"epoch\":%s,\"last_id\":\"%s\",\"events\":[", e, last);
        for (int i = 0; i < a->n; i++) {
            if (i) body[off++] = ',';
            memcpy(body + off, a->events[i]->data, a->events[i]->len);
            off += a->events[i]->len;
        }
        int tl = snprintf(tail, sizeof tail, "],\"gap\":%s}", a->gap ? "true" : "false");
        memcpy(body + off, tail, (size_t)tl);
        *len = off + (size_t)tl;
    }
    free(e);
    return body;
}

static long answer(tk_client_t *c, const tk_answer_t *a)
{
    poll_session_t *s = (poll_session_t *)c;
    char extra[400];
    size_t len = 0;
    char *body = answer_body(a, &len);
    if (!body) return -1;
    answer_headers(s, extra, sizeof extra);
    int rc = tk_http_respond(s->wsi, 200, JSON_TYPE, body, len, extra);
    free(body);
    if (rc < 0) return -1;
    s->answered = true;
    return (long)len;
}

static int finish(struct lws *wsi, int rc)
{
    if (rc < 0 || lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

/* Parses and admits the request; on error answers it (400, or the
 * guard's 401/403/429/503) and returns NULL. */
static tk_sub_req_t *admit(struct lws *wsi, tk_grant_t *g, const char *cors, int *rc)
{
    char err[256], extra[450];
    unsigned status = 400;
    const tk_site_t *site = tk_site_of(wsi);
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) {
        *rc = -1;
        return NULL;
    }
    if (!tk_request_query(wsi, site->cfg, req, err, sizeof err) &&
        !(status = tk_guard_admit(site->cfg, site->stopping, wsi, req, g, err, sizeof err)))
        return req;
    free(req);
    snprintf(extra, sizeof extra, NO_STORE "%s", cors);
    *rc = finish(wsi, tk_http_text(wsi, status, err, extra));
    return NULL;
}

int tk_poll_request(struct lws *wsi, void *pss)
{
    poll_session_t *s = pss;
    char cors[400], *u;
    int ulen, rc = 0;
    tk_grant_t grant;
    const tk_site_t *site = tk_site_of(wsi);
    tk_guard_cors(site->cfg, wsi, cors, sizeof cors);
    tk_sub_req_t *req = admit(wsi, &grant, cors, &rc);
    if (!req) return rc;
    if (lws_http_get_uri_and_method(wsi, &u, &ulen) == LWSHUMETH_HEAD) {
        /* HEAD waits for nothing: the headers an answer would carry. */
        char extra[450];
        free(req);
        snprintf(extra, sizeof extra, NO_STORE "%s", cors);
        return finish(wsi, tk_http_respond(wsi, 200, JSON_TYPE, "", 0, extra));
    }
    memset(s, 0, sizeof *s);
    s->wsi = wsi;
    if (*cors && !(s->cors = strdup(cors))) {
        free(req);
        return -1;
    }
    s->ip_slot = tk_guard_ip_slot(wsi) + 1;
    tk_guard_ip_add(s->ip_slot - 1, 1);
    s->client.expires_s = grant.exp_s; /* a wait outliving the token ends 401 */
    if (watch(s)) {
        free(req);
        release(s);
        return -1;
    }
    /* Everything is read: the header table goes back to lws's pool, and
     * the wait is ours, not an lws timeout. */
    lws_http_headers_detach(wsi);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    tk_hub_attach_oneshot(site->hub, &s->client, &poll_ops, req,
                          req->wait_s >= 0 ? req->wait_s : TK_WAIT_DEFAULT_S);
    return 0;
}

static void release(poll_session_t *s)
{
    unwatch(s);
    if (s->client.attached) tk_guard_ip_add(s->ip_slot - 1, -1);
    tk_hub_detach(&s->client);
    free(s->cors);
    s->cors = NULL;
}

/* The hub answers the poll here; a token that expired while it waited is
 * answered 401, any other close drops the connection. */
int tk_poll_writable(struct lws *wsi, void *pss)
{
    poll_session_t *s = pss;
    char extra[450];
    if (!s->client.attached) return 0;
    int rc = tk_client_writable(&s->client);
    if (rc == 0) return 0;
    if (rc == 1 && !s->answered && s->client.close_code == 1008) {
        answer_headers(s, extra, sizeof extra);
        s->answered = tk_http_text(wsi, 401, "token expired", extra) == 0;
    }
    bool keep = rc == 1 && s->answered;
    release(s);
    return keep ? finish(wsi, 0) : -1;
}

/* The client hung up: the hub lets go of it, its writable callback drops
 * the connection. */
static void close_poll(poll_session_t *s)
{
    unwatch(s);
    tk_client_close(&s->client, 0);
}

void tk_poll_closed(void *pss)
{
    if (tk_poll_owns(pss)) release(pss);
}
