/* parse.h - the one way tickerd reads a list, a number, a keyword or an
 * address out of text, whatever the text came from: the config file, a
 * stream entry, a query string, a subscribe frame, a token claim or a
 * Redis reply. Pure functions over (pointer, length) spans: no allocation,
 * no state, no NUL needed.
 *
 * The rules, the same for every input:
 *   - Trimming: ASCII whitespace (space, \t, \n, \v, \f, \r) around a value
 *     and around each list element is ignored; whitespace inside is kept.
 *   - Lists are comma-separated. A list that is empty or only whitespace has
 *     no elements (what that means is the caller's: "global" for an entry's
 *     region, an error for a query or a config list). An element that is
 *     empty after trimming ("a,,b", "a,", ",a", ",") is an error everywhere.
 *     Duplicates are allowed; for names they count once.
 *   - Numbers are whole decimal numbers: digits only, no sign, no base
 *     prefix, no fraction or exponent; leading zeros are fine. The value
 *     must lie in the caller's range; overflow is out of range.
 *   - Keywords (priorities, ops, log levels) and names (tk_name_* in
 *     config.h) match ASCII case-insensitively and are reported in their
 *     canonical lower-case form. */
#ifndef TICKERD_PARSE_H
#define TICKERD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* A piece of someone else's text. */
typedef struct tk_span {
    const char *s;
    size_t len;
} tk_span_t;

/* True for the six ASCII whitespace characters, in any locale. */
bool tk_is_space(int c);

/* s[0..len) without the ASCII whitespace around it. */
tk_span_t tk_trim(const char *s, size_t len);

/* Iterates over the elements of a comma-separated list. Initialise with
 * tk_list_init(), then call tk_list_next() until it returns 0 or an
 * error. The iterator points into the caller's text. */
typedef struct tk_list_iter {
    const char *p, *end;
    bool done;
} tk_list_iter_t;

void tk_list_init(tk_list_iter_t *it, const char *s, size_t len);

/* Returns 1 with the next element, trimmed, in *el; 0 when the list has
 * no more elements (at once for an empty or blank list); -EINVAL when the
 * next element is empty, with *el an empty span where it is. After an
 * error the iterator is finished. */
int tk_list_next(tk_list_iter_t *it, tk_span_t *el);

/* Parses s[0..len), trimmed, as a whole decimal number in min..max
 * (callers pass min <= max). Returns 0 with *out set; -EINVAL when it is
 * not a whole decimal number (empty, a sign, "0x", "1.5", "1e3", "12abc");
 * -ERANGE when it is one but outside min..max, however many digits it has.
 * *out is not touched on error. */
int tk_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);

/* The same for an int; min must be >= 0 (a sign is never accepted). */
int tk_parse_int(const char *s, size_t len, int min, int max, int *out);

/* Finds s[0..len), trimmed, among the n lower-case words, ignoring ASCII
 * case. Returns its index or -1. */
int tk_keyword(const char *s, size_t len, const char *const *words, int n);

/* Parses s[0..len) exactly (no trimming, no whitespace) as a TCP port:
 * digits only, 1..65535. Returns 0 with *port set, -EINVAL (not digits),
 * or -ERANGE (0, or over 65535). */
int tk_parse_port(const char *s, size_t len, int *port);

/* The longest host name tk_hostport_parse takes (a DNS name's limit). */
#define TK_HOST_MAX 255

/* A host and a port; host points into the caller's text, without the
 * brackets of an IPv6 address. */
typedef struct tk_hostport {
    tk_span_t host;
    int port;
} tk_hostport_t;

/* Parses "HOST:PORT" or "[IPV6]:PORT", trimmed. HOST is a name or an IPv4
 * address of letters, digits, '.', '-' and '_'; an IPv6 address goes in
 * brackets (a bare one would be ambiguous). The port is required
 * (tk_parse_port). Returns 0 with *out set; -EINVAL when it is not
 * host:port (whitespace inside, no port, an empty or bad host); -ERANGE
 * when the port is out of range; -ENAMETOOLONG when the host is longer
 * than TK_HOST_MAX. *out is not touched on error. */
int tk_hostport_parse(const char *s, size_t len, tk_hostport_t *out);

/* Parses a comma-separated list (tk_list_next) of host:port
 * (tk_hostport_parse), storing the first max elements in out (out may be
 * NULL when max is 0: the list is only checked and counted). Returns how
 * many elements the list has, which may be more than max (0 for an empty
 * or blank list); on the first bad element, its error (-EINVAL for an
 * empty element too) with *bad set to it (may be NULL). */
int tk_hostport_list_parse(const char *s, size_t len, tk_hostport_t *out, int max, tk_span_t *bad);

/* An address a server names in a reply (a sentinel, a cluster node): 1..
 * TK_HOST_MAX printable ASCII bytes, no space. */
bool tk_host_usable(const char *h, size_t len);

/* The hash tag of a Redis Cluster key, by Redis's rule: what lies between
 * the key's first '{' and the first '}' after it, when that is not empty.
 * Returns true with *tag set; false when the key has none (Redis then
 * hashes the whole key, and "{}" counts as none). */
bool tk_hash_tag(const char *key, size_t len, tk_span_t *tag);

/* An IPv4 or IPv6 network: addr holds 4 or 16 bytes, host bits zero. */
typedef struct tk_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned bits;
    uint8_t addr[16];
} tk_cidr_t;

/* Parses "ADDR" or "ADDR/BITS", trimmed: an IPv4 dotted quad or an IPv6
 * address (no zone), BITS a whole number 0..32 or 0..128. A bare address
 * is a /32 or /128. Host bits past the prefix are cleared (10.1.2.3/8 is
 * 10.0.0.0/8). Returns 0, or -EINVAL. */
int tk_cidr_parse(const char *s, size_t len, tk_cidr_t *out);

/* True when the peer's address is in c. An IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 clients) is
 * matched as the IPv4 address. */
bool tk_cidr_contains(const tk_cidr_t *c, const struct sockaddr *peer);

#endif
