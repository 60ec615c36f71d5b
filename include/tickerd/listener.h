/* listener.h - our own listening socket (SO_REUSEPORT, so every worker
 * process binds the same port and the kernel spreads connections), and the
 * door each accepted connection passes before it is handed to
 * libwebsockets: the PROXY header of a trusted proxy, and on plain HTTP
 * the limits on the first request's head (head.h). */
#ifndef TICKERD_LISTENER_H
#define TICKERD_LISTENER_H

#include <stdbool.h>
#include <uv.h>

struct lws_vhost;

typedef struct tk_listener_opts {
    const char *host;
    int port;
    bool tls;                    /* lws speaks TLS on these connections */
    const char *trusted_proxies; /* copied */
} tk_listener_opts_t;

/* Binds host:port and hands what it accepts to vh. Returns 0, or -1 with
 * the reason logged. */
int tk_listener_start(uv_loop_t *loop, const tk_listener_opts_t *o, struct lws_vhost *vh);
/* A new trusted_proxies list (reload), for the connections accepted from
 * now on. */
void tk_listener_set_trusted(const char *trusted_proxies);
/* While lws adopts a connection (its NEW_CLIENT_INSTANTIATED callback
 * runs inside): the client's address, from a PROXY header when a trusted
 * proxy sent one, else the peer's. NULL at any other time. */
const char *tk_listener_adopting(void);
/* While lws adopts a connection: the body of its first request, which the
 * door read and took out of what lws sees (head.h: only POST /v1/items
 * takes one), NUL-terminated and now the caller's to free; NULL when the
 * request has no Content-Length (or over TLS). *len: its Content-Length,
 * -1 when there is none. */
char *tk_listener_adopting_body(long long *len);
/* Fails (logged) when something already listens on host:port. Workers
 * share the port through SO_REUSEPORT, which would also let a second
 * tickerd, or an old one, share it silently: the master checks first. */
int tk_listener_probe(const char *host, int port);
/* Stops accepting, closes the connections still at the door; closes the
 * socket with the loop. */
void tk_listener_stop(void);

#endif
