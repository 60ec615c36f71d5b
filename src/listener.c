/* listener.c - accept(2) on a SO_REUSEPORT socket, adopt into lws. */
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tickerd/listener.h"
#include "tickerd/log.h"

/* Few accepts per loop turn: lws keeps every connection still in its
 * handshake in a sorted timeout list with O(n) inserts, so taking a whole
 * reconnect storm off the backlog at once makes each handshake slower.
 * Measured on 10,000 reconnects: 1024 a turn 1.47 s, 64 0.64 s, 16 0.58 s
 * (one worker). */
#define ACCEPTS_PER_WAKEUP 16
#define SEND_BUFFER_BYTES 65536

/* Out of descriptors, accept(2) fails at once and the socket stays
 * readable: the loop would spin. Accepting pauses this long instead. */
#define ACCEPT_PAUSE_MS 100

static uv_poll_t poll_handle;
static uv_timer_t pause_timer;
static int listen_fd = -1;
static struct lws_vhost *vhost;
static unsigned long accept_pauses;

static void on_acceptable(uv_poll_t *h, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    (void)t;
    if (listen_fd >= 0) uv_poll_start(&poll_handle, UV_READABLE, on_acceptable);
}

/* EMFILE and its kin: stop watching the listener for a moment, as libuv
 * does for its own listeners, and say so (rate-limited). */
static void pause_accepting(int err)
{
    accept_pauses++;
    tk_log_limited(TK_LOG_WARN, "accept: %s: pausing accepts for %d ms (%lu times so far)",
                   strerror(err), ACCEPT_PAUSE_MS, accept_pauses);
    uv_poll_stop(&poll_handle);
    uv_timer_start(&pause_timer, on_pause_over, ACCEPT_PAUSE_MS, 0);
}

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    if (status < 0) return;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
        if (!lws_adopt_socket_vhost(vhost, fd)) close(fd);
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
    freeaddrinfo(res);
    return fd;
}

int tk_listener_start(uv_loop_t *loop, const char *host, int port, struct lws_vhost *vh)
{
    vhost = vh;
    if ((listen_fd = open_socket(host, port, 1)) < 0) return -1;
    uv_poll_init(loop, &poll_handle, listen_fd);
    uv_timer_init(loop, &pause_timer);
    uv_poll_start(&poll_handle, UV_READABLE, on_acceptable);
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
    close(listen_fd);
    listen_fd = -1;
}

void tk_listener_stop(void)
{
    if (listen_fd >= 0 && !uv_is_closing((uv_handle_t *)&poll_handle)) {
        uv_close((uv_handle_t *)&pause_timer, NULL);
        uv_close((uv_handle_t *)&poll_handle, on_closed);
    }
}
