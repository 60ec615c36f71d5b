/* proxy.c - the PROXY protocol header, X-Forwarded-For and the trusted
 * proxies list (see proxy.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/parse.h"
#include "tickerd/proxy.h"

#define V1_MAX 107 /* "PROXY TCP6 " + two addresses, two ports, CRLF */
#define V2_FIXED 16

static const char v1_sig[] = "PROXY ";
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Whether buf[0..len) agrees with sig[0..n) as far as both go. */
static bool starts_like(const uint8_t *buf, size_t len, const void *sig, size_t n)
{
    return memcmp(buf, sig, len < n ? len : n) == 0;
}

/* An IPv4 or IPv6 literal s[0..len), IPv6 possibly in [brackets], into sa
 * with the given port. Returns 0 or -1. */
static int parse_addr(const char *s, size_t len, uint16_t port, struct sockaddr_storage *sa)
{
    char text[TK_ADDR_STRLEN + 2];
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof text) return -1;
    memcpy(text, s, len);
    text[len] = 0;
    memset(sa, 0, sizeof *sa);
    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* The next space-separated word of a v1 line, advancing *p. */
static tk_span_t next_word(const char **p, const char *end)
{
    const char *s = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    tk_span_t w = {s, (size_t)(*p - s)};
    if (*p < end) (*p)++; /* the one space */
    return w;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n", "PROXY UNKNOWN ...\r\n". */
static int parse_v1(const uint8_t *buf, size_t len, tk_proxy_header_t *h)
{
    const uint8_t *lf = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    if (!lf) return len < V1_MAX ? TK_PROXY_MORE : TK_PROXY_BAD;
    if (lf == buf || lf[-1] != '\r') return TK_PROXY_BAD;
    const char *p = (const char *)buf + 6, *end = (const char *)lf - 1;
    tk_span_t proto = next_word(&p, end);
    h->len = (size_t)(lf - buf) + 1;
    h->has_source = false;
    if (proto.len == 7 && !memcmp(proto.s, "UNKNOWN", 7)) return TK_PROXY_DONE;
    if (proto.len != 4 || (memcmp(proto.s, "TCP4", 4) && memcmp(proto.s, "TCP6", 4)))
        return TK_PROXY_BAD;
    tk_span_t src = next_word(&p, end), dst = next_word(&p, end);
    tk_span_t sport = next_word(&p, end), dport = next_word(&p, end);
    struct sockaddr_storage dst_sa;
    int sp, dp;
    if (p != end || tk_parse_int(sport.s, sport.len, 0, 65535, &sp) ||
        tk_parse_int(dport.s, dport.len, 0, 65535, &dp) || sport.len > 5 || dport.len > 5 ||
        parse_addr(src.s, src.len, (uint16_t)sp, &h->src) ||
        parse_addr(dst.s, dst.len, (uint16_t)dp, &dst_sa))
        return TK_PROXY_BAD;
    int family = proto.s[3] == '4' ? AF_INET : AF_INET6;
    if (h->src.ss_family != family || dst_sa.ss_family != family) return TK_PROXY_BAD;
    h->has_source = true;
    return TK_PROXY_DONE;
}

/* The binary form: signature, version/command, family/protocol, length,
 * then the addresses and TLVs. */
static int parse_v2(const uint8_t *buf, size_t len, tk_proxy_header_t *h)
{
    if (len < V2_FIXED) return TK_PROXY_MORE;
    uint8_t ver_cmd = buf[12], fam = buf[13];
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (ver_cmd >> 4 != 2 || (ver_cmd & 0xf) > 1 || V2_FIXED + body > TK_PROXY_MAX)
        return TK_PROXY_BAD;
    if (len < V2_FIXED + body) return TK_PROXY_MORE;
    h->len = V2_FIXED + body;
    h->has_source = false;
    memset(&h->src, 0, sizeof h->src);
    if ((ver_cmd & 0xf) == 0 || (fam & 0xf) != 1) return TK_PROXY_DONE; /* LOCAL, not TCP */
    const uint8_t *a = buf + V2_FIXED;
    if (fam >> 4 == 1) {
        if (body < 12) return TK_PROXY_BAD;
        struct sockaddr_in *in4 = (struct sockaddr_in *)&h->src;
        in4->sin_family = AF_INET;
        memcpy(&in4->sin_addr, a, 4);
        memcpy(&in4->sin_port, a + 8, 2);
    } else if (fam >> 4 == 2) {
        if (body < 36) return TK_PROXY_BAD;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&h->src;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        memcpy(&in6->sin6_port, a + 32, 2);
    } else {
        return fam >> 4 > 3 ? TK_PROXY_BAD : TK_PROXY_DONE; /* UNSPEC, UNIX */
    }
    h->has_source = true;
    return TK_PROXY_DONE;
}

int tk_proxy_parse(const uint8_t *buf, size_t len, tk_proxy_header_t *h)
{
    if (len == 0) return TK_PROXY_MORE;
    if (starts_like(buf, len, v1_sig, 6)) return len < 6 ? TK_PROXY_MORE : parse_v1(buf, len, h);
    if (starts_like(buf, len, v2_sig, sizeof v2_sig))
        return len < sizeof v2_sig ? TK_PROXY_MORE : parse_v2(buf, len, h);
    return TK_PROXY_NONE;
}

bool tk_proxy_trusted(const char *list, const char *addr)
{
    tk_list_iter_t it;
    tk_span_t el;
    tk_cidr_t c;
    struct sockaddr_storage sa;
    if (!list || !*list || !addr || parse_addr(addr, strlen(addr), 0, &sa)) return false;
    tk_list_init(&it, list, strlen(list));
    while (tk_list_next(&it, &el) > 0)
        if (tk_cidr_parse(el.s, el.len, &c) == 0 && tk_cidr_contains(&c, (struct sockaddr *)&sa))
            return true;
    return false;
}

const char *tk_proxy_addr_string(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *a = NULL;
    int family = sa->sa_family;
    if (family == AF_INET) {
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        a = a6;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            a = a6->s6_addr + 12;
            family = AF_INET;
        }
    }
    if (!a || !inet_ntop(family, a, out, (socklen_t)cap)) snprintf(out, cap, "?");
    return out;
}

int tk_forwarded_client(const char *trusted, const char *xff, size_t len, char *out, size_t cap)
{
    char good[TK_ADDR_STRLEN] = "";
    struct sockaddr_storage sa;
    size_t end = len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        tk_span_t el = tk_trim(xff + start, end - start);
        if (parse_addr(el.s, el.len, 0, &sa)) break; /* forged or garbled: stop */
        tk_proxy_addr_string((struct sockaddr *)&sa, good, sizeof good);
        if (!tk_proxy_trusted(trusted, good) || start == 0) break;
        end = start - 1;
    }
    if (!*good || strlen(good) >= cap) return -1;
    memcpy(out, good, strlen(good) + 1);
    return 0;
}
