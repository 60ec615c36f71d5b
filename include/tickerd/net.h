/* net.h - the libwebsockets server on our libuv loop: one protocol whose
 * callback hands each lws event to the transport it concerns. */
#ifndef TICKERD_NET_H
#define TICKERD_NET_H

/* Creates the lws context on server.loop. Returns 0 or -1 (logged). */
int tk_net_start(void);
/* First step of the two-step shutdown: call from a uv callback. */
void tk_net_stop(void);
/* Second step, after uv_run has returned. */
void tk_net_finish(void);

#endif
