/* parse.c - lists, numbers, keywords, host:port and networks out of text,
 * with one set of rules for every input (see parse.h). Pure. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "tickerd/parse.h"

bool tk_is_space(int c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* \t \n \v \f \r */
}

tk_span_t tk_trim(const char *s, size_t len)
{
    while (len && tk_is_space((unsigned char)*s))
        s++, len--;
    while (len && tk_is_space((unsigned char)s[len - 1]))
        len--;
    return (tk_span_t){s, len};
}

void tk_list_init(tk_list_iter_t *it, const char *s, size_t len)
{
    tk_span_t all = tk_trim(s, len);
    it->p = all.s;
    it->end = all.s + all.len;
    it->done = all.len == 0; /* a blank list has no elements */
}

int tk_list_next(tk_list_iter_t *it, tk_span_t *el)
{
    if (it->done) return 0;
    const char *comma = memchr(it->p, ',', (size_t)(it->end - it->p));
    const char *stop = comma ? comma : it->end;
    *el = tk_trim(it->p, (size_t)(stop - it->p));
    if (el->len == 0) {
        el->s = it->p;
        it->done = true;
        return -EINVAL;
    }
    if (comma)
        it->p = comma + 1; /* "a," goes on to an empty last element */
    else
        it->done = true;
    return 1;
}

int tk_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    tk_span_t t = tk_trim(s, len);
    uint64_t v = 0;
    bool over = false;
    if (t.len == 0) return -EINVAL;
    for (size_t i = 0; i < t.len; i++) {
        unsigned d = (unsigned char)t.s[i] - '0';
        if (d > 9) return -EINVAL;
        /* Keep reading past an overflow: "99999999999999999999x" is not a
         * number at all, and says so. */
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (over || v < min || v > max) return -ERANGE;
    *out = v;
    return 0;
}

int tk_parse_int(const char *s, size_t len, int min, int max, int *out)
{
    uint64_t v;
    if (max < 0) max = -1; /* nothing in range; still tell garbage apart */
    int rc = tk_parse_u64(s, len, min > 0 ? (uint64_t)min : 0, max >= 0 ? (uint64_t)max : 0, &v);
    if (rc == 0 && max < 0) rc = -ERANGE;
    if (rc) return rc;
    *out = (int)v;
    return 0;
}

int tk_keyword(const char *s, size_t len, const char *const *words, int n)
{
    tk_span_t t = tk_trim(s, len);
    for (int i = 0; i < n; i++)
        if (strlen(words[i]) == t.len && strncasecmp(words[i], t.s, t.len) == 0) return i;
    return -1;
}

int tk_parse_port(const char *s, size_t len, int *port)
{
    /* tk_parse_int trims: a port inside other text must not. */
    if (len == 0 || tk_is_space((unsigned char)s[0]) || tk_is_space((unsigned char)s[len - 1]))
        return -EINVAL;
    return tk_parse_int(s, len, 1, 65535, port);
}

static bool is_host_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* The host of "[IPV6]:PORT" in t; *colon is set to the colon after it. */
static int bracketed_host(tk_span_t t, tk_span_t *host, const char **colon)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a;
    const char *rb = memchr(t.s, ']', t.len);
    if (!rb || rb + 1 == t.s + t.len || rb[1] != ':') return -EINVAL;
    *host = (tk_span_t){t.s + 1, (size_t)(rb - t.s - 1)};
    *colon = rb + 1;
    if (host->len == 0 || host->len >= sizeof buf) return -EINVAL;
    memcpy(buf, host->s, host->len);
    buf[host->len] = 0;
    return inet_pton(AF_INET6, buf, &a) == 1 ? 0 : -EINVAL;
}

int tk_hostport_parse(const char *s, size_t len, tk_hostport_t *out)
{
    tk_span_t t = tk_trim(s, len), host;
    const char *colon;
    int port, rc;
    if (t.len == 0) return -EINVAL;
    if (t.s[0] == '[') {
        if ((rc = bracketed_host(t, &host, &colon))) return rc;
    } else {
        /* One colon: more is a bare IPv6 address (or garbage). */
        colon = memchr(t.s, ':', t.len);
        if (!colon || memchr(colon + 1, ':', (size_t)(t.s + t.len - colon - 1))) return -EINVAL;
        host = (tk_span_t){t.s, (size_t)(colon - t.s)};
        for (size_t i = 0; i < host.len; i++)
            if (!is_host_char((unsigned char)host.s[i])) return -EINVAL;
        if (host.len == 0) return -EINVAL;
        if (host.len > TK_HOST_MAX) return -ENAMETOOLONG;
    }
    if ((rc = tk_parse_port(colon + 1, (size_t)(t.s + t.len - colon - 1), &port))) return rc;
    out->host = host;
    out->port = port;
    return 0;
}

int tk_hostport_list_parse(const char *s, size_t len, tk_hostport_t *out, int max, tk_span_t *bad)
{
    tk_list_iter_t it;
    tk_span_t el;
    tk_hostport_t hp;
    int n = 0, rc;
    tk_list_init(&it, s, len);
    while ((rc = tk_list_next(&it, &el)) > 0) {
        if ((rc = tk_hostport_parse(el.s, el.len, &hp))) break;
        if (n < max) out[n] = hp;
        n++;
    }
    if (rc < 0) {
        if (bad) *bad = el;
        return rc;
    }
    return n;
}

int tk_cidr_parse(const char *s, size_t len, tk_cidr_t *out)
{
    char buf[INET6_ADDRSTRLEN + 1];
    tk_span_t t = tk_trim(s, len);
    const char *slash = memchr(t.s, '/', t.len);
    size_t alen = slash ? (size_t)(slash - t.s) : t.len;
    tk_cidr_t c = {0};
    if (alen == 0 || alen >= sizeof buf) return -EINVAL;
    memcpy(buf, t.s, alen);
    buf[alen] = 0;
    if (inet_pton(AF_INET, buf, c.addr) == 1) {
        c.family = AF_INET;
        c.bits = 32;
    } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
        c.family = AF_INET6;
        c.bits = 128;
    } else {
        return -EINVAL;
    }
    if (slash) {
        int bits;
        size_t blen = t.len - alen - 1;
        /* "/ 8" is not a prefix: no whitespace inside the entry. */
        if (blen == 0 || tk_is_space((unsigned char)slash[1]) ||
            tk_parse_int(slash + 1, blen, 0, (int)c.bits, &bits))
            return -EINVAL;
        c.bits = (unsigned)bits;
    }
    unsigned nbytes = c.family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < nbytes; i++) {
        unsigned keep = c.bits > i * 8 ? c.bits - i * 8 : 0;
        if (keep < 8) c.addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    *out = c;
    return 0;
}

bool tk_cidr_contains(const tk_cidr_t *c, const struct sockaddr *peer)
{
    const uint8_t *a;
    int family;
    if (!peer) return false;
    if (peer->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
        family = AF_INET;
    } else if (peer->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        a = a6->s6_addr;
        family = AF_INET6;
        if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED(a6)) {
            a += 12;
            family = AF_INET;
        }
    } else {
        return false;
    }
    if (family != c->family) return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full)) return false;
    return rest == 0 || ((a[full] ^ c->addr[full]) & (0xff00u >> rest) & 0xff) == 0;
}

bool tk_hash_tag(const char *key, size_t len, tk_span_t *tag)
{
    const char *open = memchr(key, '{', len);
    if (!open) return false;
    size_t rest = len - (size_t)(open - key) - 1;
    const char *close = memchr(open + 1, '}', rest);
    if (!close || close == open + 1) return false;
    *tag = (tk_span_t){open + 1, (size_t)(close - open - 1)};
    return true;
}

bool tk_host_usable(const char *h, size_t len)
{
    if (len == 0 || len > TK_HOST_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f) return false;
    return true;
}
