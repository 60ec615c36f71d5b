/* listener.h - our own listening socket (SO_REUSEPORT, so every worker
 * process binds the same port and the kernel spreads connections), whose
 * accepted sockets are handed to libwebsockets. */
#ifndef TICKERD_LISTENER_H
#define TICKERD_LISTENER_H

#include <uv.h>

struct lws_vhost;

/* Binds host:port. Returns 0, or -1 with the reason logged. */
int tk_listener_start(uv_loop_t *loop, const char *host, int port, struct lws_vhost *vh);
/* Fails (logged) when something already listens on host:port. Workers
 * share the port through SO_REUSEPORT, which would also let a second
 * tickerd, or an old one, share it silently: the master checks first. */
int tk_listener_probe(const char *host, int port);
/* Stops accepting; closes the socket with the loop. */
void tk_listener_stop(void);

#endif
