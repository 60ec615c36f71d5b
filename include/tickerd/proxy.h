/* proxy.h - who the client is behind a load balancer (SPEC §6): the PROXY
 * protocol header (v1 text, v2 binary) that precedes a connection's bytes,
 * X-Forwarded-For, and whether a peer is trusted to send either. Pure
 * functions over bytes: no I/O, no allocation, fuzzed (tests/fuzz). */
#ifndef TICKERD_PROXY_H
#define TICKERD_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest PROXY header read: v1 is at most 107 bytes; v2 is 16 bytes
 * and its addresses (at most 216 for AF_UNIX) and TLVs, which proxies keep
 * short. A longer v2 header is refused. */
#define TK_PROXY_MAX 512

/* An address as text: IPv6 with room for an IPv4 tail. */
#define TK_ADDR_STRLEN 46

typedef struct tk_proxy_header {
    size_t len;                  /* bytes the header takes */
    bool has_source;             /* false: LOCAL, UNKNOWN or not TCP */
    struct sockaddr_storage src; /* the client, when has_source */
} tk_proxy_header_t;

enum {
    TK_PROXY_NONE = -2, /* the bytes do not start a PROXY header */
    TK_PROXY_BAD = -1,  /* they start one that is malformed or too long */
    TK_PROXY_MORE = 0,  /* a prefix of one: every byte so far is header */
    TK_PROXY_DONE = 1,  /* *h filled; the connection's data starts at h->len */
};

/* Reads a PROXY v1 or v2 header at the start of buf[0..len). On
 * TK_PROXY_MORE none of the len bytes belongs to what follows the header,
 * so a reader may consume them all and wait for more. */
int tk_proxy_parse(const uint8_t *buf, size_t len, tk_proxy_header_t *h);

/* True when the address (text, as tk_proxy_addr_string gives it) is in the
 * comma-separated list of addresses and CIDRs (the [server] trusted_proxies
 * string, checked at load; parse.h rules). An IPv4 peer seen as
 * ::ffff:a.b.c.d matches IPv4 entries. An empty list trusts no one, and a
 * malformed entry matches no one. Parses the list on each call. */
bool tk_proxy_trusted(const char *list, const char *addr);

/* The client named by an X-Forwarded-For value xff[0..len) received from
 * a trusted peer: walking from the right (the hop nearest to us), the
 * first address that is not itself trusted. When every entry is trusted,
 * the leftmost. An entry that is not an IP address ends the walk: the last
 * good address before it is the answer, so that no forged text is ever
 * believed. Returns 0 with the address in out (normalised text), or -1
 * when there is no usable entry (out untouched). */
int tk_forwarded_client(const char *trusted, const char *xff, size_t len, char *out, size_t cap);

/* Formats an AF_INET/AF_INET6 address as text (IPv4-mapped IPv6 as plain
 * IPv4). Returns out, or "?" for another family. */
const char *tk_proxy_addr_string(const struct sockaddr *sa, char *out, size_t cap);

#endif
