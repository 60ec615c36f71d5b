/* listener.c - our own listening socket (SO_REUSEPORT, shared by every
 * worker), and the door every accepted connection passes before it is
 * handed to lws: the PROXY header from a trusted proxy is read and taken
 * off, and on plain HTTP the head of the first request is read and held
 * to SPEC §6's limits (head.h), so that an oversized request is answered
 * 414 or 431 here instead of being dropped silently by lws. A body is read
 * here too, whole, and taken out of what lws sees: lws 4.1.6 feeds the
 * head it was handed back to itself as the body, forever (a worker at 100%
 * CPU). Only POST /v1/items takes one (TK_BODY_MAX); lws gets the head
 * without its Content-Length line, and the body waits for the handler
 * (tk_listener_adopting_body). Over TLS only the PROXY header is read: the
 * head is encrypted. */
#include <errno.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tickerd/clock.h"
#include "tickerd/head.h"
#include "tickerd/listener.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/proxy.h"

/* Few accepts per loop turn: lws keeps every connection still in its
 * handshake in a sorted timeout list with O(n) inserts, so taking a whole
 * reconnect storm off the backlog at once makes each handshake slower.
 * Measured on 10,000 reconnects: 1024 a turn 1.47 s, 64 0.64 s, 16 0.58 s
 * (one worker). */
#define ACCEPTS_PER_WAKEUP 16
#define SEND_BUFFER_BYTES 65536
/* TCP_DEFER_ACCEPT: the kernel holds a connection that has sent nothing
 * about this long (rounded up to a SYN-ACK retransmission) before accept
 * returns it anyway. */
#define DEFER_ACCEPT_S 1

/* Out of descriptors, accept(2) fails at once and the socket stays
 * readable: the loop would spin. Accepting pauses this long instead. */
#define ACCEPT_PAUSE_MS 100

/* A head (or PROXY header), and the body after it, not complete this long
 * after the accept is answered 408 (slowloris). */
#define HEAD_TIMEOUT_MS 10000
/* After a refusal, what the client still sends is read and dropped this
 * long, so that closing does not reset the answer away before it is read. */
#define LINGER_MS 2000
#define SWEEP_MS 500

#define DOOR_FIRST_BUF 2048
#define DOOR_MAX_BUF (TK_PROXY_MAX + TK_HEAD_MAX + TK_BODY_MAX + 1)

/* One accepted connection not yet handed to lws. Freed in its poll
 * handle's close callback. */
typedef struct door {
    uv_poll_t poll;           /* data: the door; initialised only when it waits */
    struct door *prev, *next; /* in its door list, oldest first */
    int fd;
    bool watched;   /* poll is initialised */
    bool trusted;   /* the peer is in trusted_proxies */
    bool lingering; /* refused: draining until EOF or the deadline */
    bool adopt;     /* hand to lws once the handle is closed */
    int64_t deadline_ms;
    char client[TK_ADDR_STRLEN];
    size_t off; /* where the request starts: after a PROXY header */
    size_t len, cap;
    char *buf;
    size_t head;         /* the head's length once it is whole, else 0 */
    tk_head_body_t body; /* its framing, once the head is whole */
    char *body_buf;      /* the body taken out for lws's adoption (NULL: none) */
} door_t;

/* Doors with the same timeout, oldest first: so also in deadline order. */
typedef struct door_list {
    door_t *first, *last;
} door_list_t;

static struct {
    uv_poll_t poll;
    uv_timer_t pause_timer, sweep_timer;
    int fd;
    struct lws_vhost *vhost;
    bool tls;
    char *trusted; /* trusted_proxies, ours */
    door_list_t reading, lingering;
    const char *adopting; /* the client of the connection lws is adopting */
    door_t *adopting_door; /* and its door: the body */
    unsigned long accept_pauses;
} L = {.fd = -1};

static void on_acceptable(uv_poll_t *h, int status, int events);
static void on_door(uv_poll_t *h, int status, int events);
static void on_sweep(uv_timer_t *t);

/* --- handing over to lws --- */

const char *tk_listener_adopting(void)
{
    return L.adopting;
}

char *tk_listener_adopting_body(long long *len)
{
    door_t *d = L.adopting_door;
    *len = d && d->head ? d->body.length : -1;
    if (!d || !d->body_buf) return NULL;
    char *b = d->body_buf;
    d->body_buf = NULL;
    return b;
}

/* lws owns fd from here (on failure it closes it itself), and reads
 * data[0..len) before the socket. */
static void adopt(door_t *d, int fd, const char *client, const char *data, size_t len)
{
    L.adopting = client;
    L.adopting_door = d;
    lws_adopt_socket_vhost_readbuf(L.vhost, fd, len ? data : NULL, len);
    L.adopting = NULL;
    L.adopting_door = NULL;
}

/* Takes the body out of the buffer: lws gets the head of a request whose
 * Content-Length says 0 (its digits overwritten: "0" and blanks; without
 * one, lws 4.1.6 would wait for a 100 MiB POST body), then whatever
 * followed the body (a pipelined request). Returns 0, or -ENOMEM. */
static int take_body(door_t *d)
{
    if (!d->head || d->body.length < 0) return 0;
    char *h = d->buf + d->off;
    size_t total = d->len - d->off, blen = (size_t)d->body.length, after = d->head + blen;
    if (!(d->body_buf = malloc(blen + 1))) return -ENOMEM;
    memcpy(d->body_buf, h + d->head, blen);
    d->body_buf[blen] = 0;
    memmove(h + d->head, h + after, total - after);
    d->len = d->off + total - blen;
    char *v = h + d->body.cl_off + d->body.cl_value, *end = h + d->body.cl_off + d->body.cl_len;
    *v++ = '0';
    while (v < end && *v != '\r' && *v != '\n')
        *v++ = ' ';
    return 0;
}

/* --- doors --- */

static door_list_t *list_of(door_t *d)
{
    return d->lingering ? &L.lingering : &L.reading;
}

static void link_door(door_t *d)
{
    door_list_t *l = list_of(d);
    d->prev = l->last;
    d->next = NULL;
    *(l->last ? &l->last->next : &l->first) = d;
    l->last = d;
}

static void unlink_door(door_t *d)
{
    door_list_t *l = list_of(d);
    *(d->prev ? &d->prev->next : &l->first) = d->next;
    *(d->next ? &d->next->prev : &l->last) = d->prev;
    d->prev = d->next = NULL;
}

static void finish_door(door_t *d)
{
    if (d->adopt && take_body(d) == 0)
        adopt(d, d->fd, d->client, d->buf + d->off, d->len - d->off);
    else
        close(d->fd);
    free(d->body_buf);
    free(d->buf);
    free(d);
}

static void on_door_closed(uv_handle_t *h)
{
    finish_door(h->data);
}

/* Ends the door. A poll handle goes first: lws watches the same fd with a
 * handle of its own, and libuv allows one a descriptor. */
static void end_door(door_t *d, bool to_lws)
{
    unlink_door(d);
    d->adopt = to_lws;
    if (d->watched)
        uv_close((uv_handle_t *)&d->poll, on_door_closed);
    else
        finish_door(d);
}

/* Waits for the socket to be readable, and for the sweep. */
static void watch(door_t *d)
{
    if (!d->watched) {
        uv_poll_init_socket(L.poll.loop, &d->poll, d->fd);
        d->poll.data = d;
        d->watched = true;
    }
    uv_poll_start(&d->poll, UV_READABLE, on_door);
    if (!uv_is_active((uv_handle_t *)&L.sweep_timer))
        uv_timer_start(&L.sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
}

static const char *reason_phrase(int status)
{
    return status == 400   ? "Bad Request"
           : status == 405 ? "Method Not Allowed"
           : status == 408 ? "Request Timeout"
           : status == 411 ? "Length Required"
           : status == 413 ? "Content Too Large"
           : status == 414 ? "URI Too Long"
                           : "Request Header Fields Too Large";
}

/* Answers status and closes, politely: the answer, then no more writes,
 * then what the client still sends is dropped until it closes or
 * LINGER_MS passes. */
static void refuse(door_t *d, int status, const char *why)
{
    char msg[512];
    int body = (int)strlen(why) + 1;
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s\n",
                     status, reason_phrase(status), body, why);
    tk_log_refused("refused %s: HTTP %d: %s", d->client, status, why);
    tk_metrics_refused((unsigned)status);
    if (send(d->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ||
        shutdown(d->fd, SHUT_WR) < 0) {
        end_door(d, false);
        return;
    }
    unlink_door(d);
    d->lingering = true;
    d->deadline_ms = tk_now_ms() + LINGER_MS;
    link_door(d);
    watch(d);
}

/* Reads what the socket has into the buffer, growing it up to
 * DOOR_MAX_BUF (TLS: only up to a PROXY header's longest, without taking
 * the bytes: what follows the header is the TLS handshake, lws's to read).
 * Returns bytes added, 0 at EOF, -EAGAIN when nothing came, -errno. */
static ssize_t fill(door_t *d, int flags)
{
    size_t want = L.tls ? TK_PROXY_MAX : DOOR_MAX_BUF;
    if (d->len == d->cap && d->cap < want) {
        size_t cap = d->cap ? d->cap * 2 : DOOR_FIRST_BUF;
        char *b = realloc(d->buf, cap < want ? cap : want);
        if (!b) return -ENOMEM;
        d->buf = b;
        d->cap = cap < want ? cap : want;
    }
    if (d->len == d->cap) return -ENOBUFS;
    ssize_t n = recv(d->fd, d->buf + d->len, d->cap - d->len, flags);
    if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

/* The PROXY header at the start of the buffer, if the peer may send one.
 * Returns 1 when the request starts at d->off, 0 to wait, -1 refused. */
static int read_proxy(door_t *d)
{
    tk_proxy_header_t h;
    int rc = tk_proxy_parse((const uint8_t *)d->buf, d->len, &h);
    if (rc == TK_PROXY_NONE) return 1;
    if (!d->trusted) {
        if (rc == TK_PROXY_MORE) return 0; /* "P" may yet be "POST" */
        if (!L.tls)
            refuse(d, 400, "a PROXY header from an address not in trusted_proxies");
        else
            end_door(d, false);
        return -1;
    }
    if (rc == TK_PROXY_MORE) return 0;
    if (rc == TK_PROXY_BAD) {
        if (!L.tls)
            refuse(d, 400, "malformed PROXY header");
        else
            end_door(d, false);
        return -1;
    }
    if (h.has_source) tk_proxy_addr_string((struct sockaddr *)&h.src, d->client, sizeof d->client);
    d->off = h.len;
    return 1;
}

/* Over TLS: the PROXY header is taken off the socket, nothing more. */
static int advance_tls(door_t *d)
{
    ssize_t n = fill(d, MSG_PEEK);
    if (n == -EAGAIN) return 0;
    if (n <= 0) return -1;
    size_t peeked = d->len + (size_t)n, had = d->len;
    d->len = peeked;
    int rc = read_proxy(d);
    if (rc < 0) return 2;                    /* refuse() or end_door() took it */
    size_t take = rc == 0 ? peeked : d->off; /* MORE: every byte is header */
    d->len = had;
    if (take > had && recv(d->fd, d->buf + had, take - had, 0) != (ssize_t)(take - had)) return -1;
    d->len = take;
    d->off = d->len; /* nothing for lws from the buffer */
    return rc;
}

/* Whether the body the head announces may come: 0, or 2 when refused. */
static int check_body(door_t *d)
{
    tk_head_body_t *b = &d->body;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (tk_head_body(d->buf + d->off, d->head, b))
        refuse(d, 400, "Content-Length is not one whole number");
    else if (b->chunked)
        refuse(d, 411, "a body in chunks (Transfer-Encoding) is not taken: send Content-Length");
    else if (b->needs_length && b->length < 0)
        refuse(d, 411, "a POST, PUT or PATCH request needs a Content-Length");
    else if (b->length <= 0)
        return 0;
    else if (b->bodyless_method)
        refuse(d, 400, "a GET, HEAD or OPTIONS request carries no body");
    else if (!b->publish)
        refuse(d, 405, "only POST /v1/items takes a request body");
    else if (b->length > TK_BODY_MAX)
        refuse(d, 413, "request body over 16384 bytes");
    else {
        if (b->expect_continue && d->len - d->off == d->head)
            (void)!send(d->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        return 0;
    }
    return 2;
}

/* Plain HTTP: the PROXY header, then the whole head of the request, then
 * its body. */
static int advance_plain(door_t *d)
{
    for (;;) {
        ssize_t n = fill(d, 0);
        if (n == -EAGAIN || n == -ENOBUFS) break;
        if (n <= 0) return -1; /* EOF before a whole request, or an error */
        d->len += (size_t)n;
    }
    int rc = read_proxy(d);
    if (rc <= 0) return rc < 0 ? 2 : 0;
    if (!d->head) {
        int head = tk_head_scan(d->buf + d->off, d->len - d->off);
        if (head == -414)
            refuse(d, 414, "request line over 4096 bytes or over 32 query parameters");
        else if (head == -431)
            refuse(d, 431, "request head over 8192 bytes or over 50 header lines");
        if (head <= 0) return head < 0 ? 2 : 0;
        d->head = (size_t)head;
        if (check_body(d)) return 2;
    }
    size_t want = d->head + (d->body.length > 0 ? (size_t)d->body.length : 0);
    return d->len - d->off >= want;
}

/* Moves a door on. Returns 1 when it is ready for lws, 0 to wait, 2 when
 * it was refused (and lingers or is closing), -1 to close it. */
static int advance(door_t *d)
{
    return L.tls ? advance_tls(d) : advance_plain(d);
}

static void drain_lingering(door_t *d)
{
    char sink[4096];
    ssize_t n;
    while ((n = recv(d->fd, sink, sizeof sink, 0)) > 0)
        ;
    if (n == 0 || errno != EWOULDBLOCK) end_door(d, false);
}

static void on_door(uv_poll_t *h, int status, int events)
{
    door_t *d = h->data;
    (void)events;
    if (status < 0) {
        end_door(d, false);
        return;
    }
    if (d->lingering) {
        drain_lingering(d);
        return;
    }
    int rc = advance(d);
    if (rc == 1 || rc < 0) end_door(d, rc == 1);
}

/* Every SWEEP_MS while doors wait: a head not complete in time is
 * answered 408 (over TLS: closed), a lingering close ends. */
static void on_sweep(uv_timer_t *t)
{
    int64_t now = tk_now_ms();
    (void)t;
    while (L.lingering.first && L.lingering.first->deadline_ms <= now)
        end_door(L.lingering.first, false);
    while (L.reading.first && L.reading.first->deadline_ms <= now) {
        if (L.tls)
            end_door(L.reading.first, false);
        else
            refuse(L.reading.first, 408, "request head and body not complete within 10 s");
    }
    if (!L.reading.first && !L.lingering.first) uv_timer_stop(&L.sweep_timer);
}

/* A connection just accepted: handed to lws at once when there is nothing
 * to read first, else through a door. */
static void admit(int fd)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    char client[TK_ADDR_STRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&sa, &salen) == 0)
        tk_proxy_addr_string((struct sockaddr *)&sa, client, sizeof client);
    bool trusted = tk_proxy_trusted(L.trusted, client);
    if (L.tls && !trusted) {
        adopt(NULL, fd, client, NULL, 0);
        return;
    }
    door_t *d = calloc(1, sizeof *d);
    if (!d) {
        close(fd);
        return;
    }
    d->fd = fd;
    d->trusted = trusted;
    memcpy(d->client, client, sizeof client);
    d->deadline_ms = tk_now_ms() + HEAD_TIMEOUT_MS;
    link_door(d);
    int rc = advance(d);
    if (rc == 1 || rc < 0) {
        end_door(d, rc == 1);
        return;
    }
    if (rc == 0) watch(d);
}

/* --- accepting --- */

static void on_pause_over(uv_timer_t *t)
{
    (void)t;
    if (L.fd >= 0) uv_poll_start(&L.poll, UV_READABLE, on_acceptable);
}

/* EMFILE and its kin: stop watching the listener for a moment, as libuv
 * does for its own listeners, count it and say so (rate-limited). */
static void pause_accepting(int err)
{
    L.accept_pauses++;
    TK_COUNT(accept_pauses_total, 1);
    tk_log_limited(TK_LOG_WARN, "accept: %s: pausing accepts for %d ms (%lu times so far)",
                   strerror(err), ACCEPT_PAUSE_MS, L.accept_pauses);
    uv_poll_stop(&L.poll);
    uv_timer_start(&L.pause_timer, on_pause_over, ACCEPT_PAUSE_MS, 0);
}

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    if (status < 0) return;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(L.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                tk_log_limited(TK_LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        /* A bounded kernel send buffer (the kernel doubles it): past it a
         * client that does not read fills its own queue and is closed as a
         * slow consumer, instead of parking megabytes in the kernel. */
        int sndbuf = SEND_BUFFER_BYTES, one = 1;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        /* lws sets TCP_NODELAY only on what its own listener accepts: a
         * headline must not wait for the ACK of the previous one (Nagle). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        admit(fd);
    }
}

static int open_socket(const char *host, int port, int reuseport)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char service[8];
    int one = 1, rc;
    snprintf(service, sizeof service, "%d", port);
    const char *node = !*host || !strcmp(host, "*") ? NULL : host;
    if ((rc = getaddrinfo(node, service, &hints, &res))) {
        tk_log(TK_LOG_ERROR, "listen %s:%d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
                    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof reuseport) ||
                    bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 65535))) {
        tk_log(TK_LOG_ERROR, "listen %s:%d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    /* A connection is accepted once its first bytes are in (or after
     * DEFER_ACCEPT_S without any): the door then reads the request at once
     * instead of watching the socket, which in a reconnect storm cost a
     * poll handle, five epoll_ctl calls and a loop turn per client. */
    int defer = DEFER_ACCEPT_S;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
    freeaddrinfo(res);
    return fd;
}

void tk_listener_set_trusted(const char *trusted_proxies)
{
    free(L.trusted);
    L.trusted = strdup(trusted_proxies ? trusted_proxies : "");
}

int tk_listener_start(uv_loop_t *loop, const tk_listener_opts_t *o, struct lws_vhost *vh)
{
    L.vhost = vh;
    L.tls = o->tls;
    tk_listener_set_trusted(o->trusted_proxies);
    if ((L.fd = open_socket(o->host, o->port, 1)) < 0) return -1;
    uv_poll_init(loop, &L.poll, L.fd);
    uv_timer_init(loop, &L.pause_timer);
    uv_timer_init(loop, &L.sweep_timer);
    uv_poll_start(&L.poll, UV_READABLE, on_acceptable);
    return 0;
}

int tk_listener_probe(const char *host, int port)
{
    int fd = open_socket(host, port, 0);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
    close(L.fd);
    L.fd = -1;
}

void tk_listener_stop(void)
{
    if (L.fd < 0 || uv_is_closing((uv_handle_t *)&L.poll)) return;
    while (L.reading.first)
        end_door(L.reading.first, false);
    while (L.lingering.first)
        end_door(L.lingering.first, false);
    uv_close((uv_handle_t *)&L.pause_timer, NULL);
    uv_close((uv_handle_t *)&L.sweep_timer, NULL);
    uv_close((uv_handle_t *)&L.poll, on_closed);
    free(L.trusted);
    L.trusted = NULL;
}
