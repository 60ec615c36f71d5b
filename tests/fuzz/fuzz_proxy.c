/* fuzz_proxy.c - what arrives before lws sees a connection: the PROXY
 * v1/v2 parser and the request-head scanner (listener.c's door), and the
 * X-Forwarded-For walk, on the same bytes. Checks the promises of proxy.h
 * and head.h: a complete header never claims more bytes than it was given,
 * "more" only below the limits, and an address out is always a
 * well-formed, NUL-terminated one. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/head.h"
#include "tickerd/proxy.h"

static void check_proxy(const uint8_t *data, size_t size)
{
    tk_proxy_header_t h;
    int rc = tk_proxy_parse(data, size, &h);
    if (rc == TK_PROXY_DONE) {
        if (h.len == 0 || h.len > size || h.len > TK_PROXY_MAX) abort();
        if (h.has_source && h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6) abort();
        /* the same header with anything after it parses the same */
        tk_proxy_header_t again;
        if (tk_proxy_parse(data, h.len, &again) != TK_PROXY_DONE || again.len != h.len) abort();
    } else if (rc == TK_PROXY_MORE) {
        if (size >= TK_PROXY_MAX) abort();
    } else if (rc != TK_PROXY_NONE && rc != TK_PROXY_BAD) {
        abort();
    }
}

static void check_head(const uint8_t *data, size_t size)
{
    int rc = tk_head_scan((const char *)data, size);
    if (rc > 0 && ((size_t)rc > size || rc > TK_HEAD_MAX)) abort();
    if (rc == 0 && size >= TK_HEAD_MAX) abort();
    if (rc < 0 && rc != -414 && rc != -431) abort();
}

static void check_forwarded(const uint8_t *data, size_t size)
{
    char out[TK_ADDR_STRLEN];
    unsigned char bin[16];
    memset(out, 'x', sizeof out);
    if (tk_forwarded_client("10.0.0.0/8, 2001:db8::/32", (const char *)data, size, out,
                            sizeof out) == 0) {
        if (!memchr(out, 0, sizeof out)) abort();
        if (inet_pton(AF_INET, out, bin) != 1 && inet_pton(AF_INET6, out, bin) != 1) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_proxy(data, size);
    check_head(data, size);
    check_forwarded(data, size);
    return 0;
}
