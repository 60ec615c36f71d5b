/* resolve.h - host names to numeric addresses without blocking the loop.
 * Each call is a new lookup on the loop's thread pool (uv_getaddrinfo),
 * so a name that now points elsewhere is followed on the next connect.
 * The Redis reader (stream.c) and the sentinel client (sentinel.c) both
 * resolve through here, before every connect. */
#ifndef TICKERD_RESOLVE_H
#define TICKERD_RESOLVE_H

#include <uv.h>

#include "tickerd/parse.h"

/* Room for a numeric IPv4 or IPv6 address and its NUL. */
#define TK_IP_MAX 64

typedef struct tk_resolve tk_resolve_t;

/* A lookup's result: ip is the numeric address, valid during the call, or
 * NULL with status a negative libuv error (UV_EAI_NONAME...). host is the
 * name that was looked up. The request is over when this runs: the caller
 * forgets its pointer to it. */
typedef void (*tk_resolve_cb)(void *data, const char *host, const char *ip, int status);

/* Resolves host, a name or a numeric IPv4/IPv6 address. A numeric host
 * needs no lookup: returns 1 with it copied to ip (TK_IP_MAX bytes) and
 * *req NULL; cb is never called. Otherwise returns 0 with *req set: cb is
 * called once from the loop, unless tk_resolve_cancel comes first. The
 * answer comes from a lookup started by this call, or from one of the
 * same name already in flight on this loop (still unanswered, so no older
 * than the call): a name that hangs in the resolver holds one thread of
 * the pool, not one per retry. turn picks among a name's addresses (turn
 * modulo their count), so that a caller that failed on one can try the
 * next. Returns a negative libuv error when the lookup cannot start (cb is
 * never called). */
int tk_resolve_start(uv_loop_t *loop, const char *host, unsigned turn, tk_resolve_cb cb, void *data,
                     char *ip, tk_resolve_t **req);

/* The name a lookup in flight is for. */
const char *tk_resolve_host(const tk_resolve_t *req);

/* Gives up a lookup in flight: its cb will not be called, so whatever cb
 * would have touched may be freed at once. Not from within its own cb (it
 * is over by then). NULL is a no-op. */
void tk_resolve_cancel(tk_resolve_t *req);

/* Before uv_loop_close: lookups given up but still running in the thread
 * pool (a resolver that hangs) keep the loop busy and will post to it when
 * they end. Runs the loop until none of this loop's is left, or max_ms
 * passes. Returns how many are left. */
int tk_resolve_drain(uv_loop_t *loop, uint64_t max_ms);

/* A server as configured, host:port, whose name is resolved again before
 * every connect to it (the sentinels, a cluster's seed nodes). */
typedef struct tk_target {
    char host[TK_HOST_MAX + 1];   /* an IPv6 address without brackets */
    char label[TK_HOST_MAX + 10]; /* "host:port" as configured, for log lines */
    int port;
    unsigned turn; /* which of the name's addresses to try next */
} tk_target_t;

/* The servers of a host:port list (tk_hostport_list_parse). what names
 * the list in log lines ("sentinels"). Returns an array of *n the caller
 * frees, or NULL (logged) when the list is bad, empty or out of memory. */
tk_target_t *tk_target_list(const char *list, const char *what, int *n);

#endif
