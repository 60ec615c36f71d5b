/* test_proxy.c - who the client is behind a proxy (proxy.c: PROXY v1/v2
 * headers, X-Forwarded-For, trusted_proxies) and the limits on a request's
 * head (head.c), each at its edges. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "tickerd/config.h"
#include "tickerd/head.h"
#include "tickerd/proxy.h"

static char err[256];
static tk_config_t *cfg;

static bool trusted(const char *list, const char *ip)
{
    return tk_proxy_trusted(list, ip);
}

static void test_proxy_trusted(void **state)
{
    /* /32 and /128: that address, not its neighbours. */
    assert_true(trusted("192.0.2.7/32", "192.0.2.7"));
    assert_false(trusted("192.0.2.7/32", "192.0.2.8"));
    assert_false(trusted("192.0.2.7/32", "192.0.2.6"));
    assert_true(trusted("192.0.2.7", "192.0.2.7"));
    assert_true(trusted("2001:db8::7/128", "2001:db8::7"));
    assert_false(trusted("2001:db8::7/128", "2001:db8::8"));
    assert_false(trusted("2001:db8::7", "2001:db8::6"));
    /* /0: every address of its family. */
    assert_true(trusted("0.0.0.0/0", "203.0.113.9"));
    assert_true(trusted("0.0.0.0/0", "255.255.255.255"));
    assert_false(trusted("0.0.0.0/0", "2001:db8::1"));
    assert_true(trusted("::/0", "2001:db8::1"));
    assert_false(trusted("::/0", "203.0.113.9"));
    /* A prefix: its ends in, one address outside each end out. */
    assert_true(trusted("10.0.0.0/8", "10.0.0.0"));
    assert_true(trusted("10.0.0.0/8", "10.255.255.255"));
    assert_false(trusted("10.0.0.0/8", "11.0.0.0"));
    assert_false(trusted("10.0.0.0/8", "9.255.255.255"));
    assert_true(trusted("2001:db8:1::/48", "2001:db8:1:ffff:ffff:ffff:ffff:ffff"));
    assert_false(trusted("2001:db8:1::/48", "2001:db8:2::"));
    assert_false(trusted("2001:db8:1::/48", "2001:db8:0:ffff:ffff:ffff:ffff:ffff"));
    /* A list: any entry will do; whitespace around entries is fine. */
    const char *list = " 10.0.0.0/8 , 192.0.2.7,2001:db8::/32 ";
    assert_true(trusted(list, "10.1.2.3"));
    assert_true(trusted(list, "192.0.2.7"));
    assert_true(trusted(list, "2001:db8::1"));
    assert_false(trusted(list, "192.0.2.8"));
    assert_false(trusted(list, "172.16.0.1"));
    assert_false(trusted(list, "::1"));
    /* An IPv4 client on a dual-stack listener. */
    assert_true(trusted(list, "::ffff:10.1.2.3"));
    assert_false(trusted(list, "::ffff:11.1.2.3"));
    /* Nothing listed, nothing trusted; a bad entry matches no one. */
    assert_false(trusted("", "10.0.0.1"));
    assert_false(trusted("   ", "10.0.0.1"));
    assert_false(trusted("10.0.0.0/33", "10.0.0.1"));
    assert_false(trusted("lb.internal", "10.0.0.1"));
    assert_true(trusted("lb.internal, 10.0.0.1", "10.0.0.1"));
    assert_false(tk_proxy_trusted(NULL, NULL));
    assert_false(tk_proxy_trusted(NULL, "10.0.0.1"));
    assert_false(tk_proxy_trusted("0.0.0.0/0", NULL));
    assert_false(tk_proxy_trusted("0.0.0.0/0", "?"));
    assert_false(tk_proxy_trusted("0.0.0.0/0", ""));
    /* Every list the config accepts is read the same way here. */
    assert_int_equal(tk_config_set(cfg, "server", "trusted_proxies", list, err, sizeof err), 0);
    assert_true(trusted(cfg->trusted_proxies, "10.9.9.9"));
}

/* --- PROXY v1 --- */

static int v1(const char *line, tk_proxy_header_t *h)
{
    return tk_proxy_parse((const uint8_t *)line, strlen(line), h);
}

static const char *source(const tk_proxy_header_t *h, char *buf)
{
    return tk_proxy_addr_string((const struct sockaddr *)&h->src, buf, TK_ADDR_STRLEN);
}

static void test_proxy_v1(void **state)
{
    tk_proxy_header_t h;
    char a[TK_ADDR_STRLEN];
    const char *tcp4 = "PROXY TCP4 203.0.113.7 192.0.2.1 40001 8080\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(v1(tcp4, &h), TK_PROXY_DONE);
    assert_int_equal(h.len, strlen("PROXY TCP4 203.0.113.7 192.0.2.1 40001 8080\r\n"));
    assert_true(h.has_source);
    assert_string_equal(source(&h, a), "203.0.113.7");
    assert_int_equal(ntohs(((struct sockaddr_in *)&h.src)->sin_port), 40001);
    assert_int_equal(v1("PROXY TCP6 2001:db8::7 2001:db8::1 0 65535\r\n", &h), TK_PROXY_DONE);
    assert_string_equal(source(&h, a), "2001:db8::7");
    assert_int_equal(v1("PROXY UNKNOWN\r\n", &h), TK_PROXY_DONE);
    assert_false(h.has_source);
    assert_int_equal(v1("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", &h),
                     TK_PROXY_DONE);
    /* Every prefix of a header is "more", never "none" or "bad". */
    for (size_t n = 0; n < strlen("PROXY TCP4 203.0.113.7 192.0.2.1 40001 8080\r\n"); n++)
        assert_int_equal(tk_proxy_parse((const uint8_t *)tcp4, n, &h), TK_PROXY_MORE);
    /* The longest line, 107 bytes with its CRLF, and one over. */
    char line[200];
    snprintf(line, sizeof line, "PROXY UNKNOWN %0*d\r\n", 91, 0);
    assert_int_equal(strlen(line), 107);
    assert_int_equal(v1(line, &h), TK_PROXY_DONE);
    snprintf(line, sizeof line, "PROXY UNKNOWN %0*d\r\n", 92, 0);
    assert_int_equal(v1(line, &h), TK_PROXY_BAD);
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY ", 6);
    assert_int_equal(tk_proxy_parse((const uint8_t *)line, 106, &h), TK_PROXY_MORE);
    assert_int_equal(tk_proxy_parse((const uint8_t *)line, 107, &h), TK_PROXY_BAD);
    /* Malformed. */
    const char *bad[] = {
        "PROXY TCP4 203.0.113.7 192.0.2.1 40001 8080\n",     /* no CR */
        "PROXY TCP4 203.0.113.7 192.0.2.1 40001 65536\r\n",  /* port over */
        "PROXY TCP4 203.0.113.7 192.0.2.1 -1 8080\r\n",      /* sign */
        "PROXY TCP4 203.0.113.7 192.0.2.1 0x10 8080\r\n",    /* base */
        "PROXY TCP4 203.0.113.7 192.0.2.1 000040001 80\r\n", /* too many digits */
        "PROXY TCP4 203.0.113.7 192.0.2.1 40001\r\n",        /* a field short */
        "PROXY TCP4 203.0.113.7 192.0.2.1 40001 80 x\r\n",   /* one over */
        "PROXY TCP4 203.0.113.7  192.0.2.1 40001 80\r\n",    /* two spaces */
        "PROXY TCP4 2001:db8::7 192.0.2.1 40001 80\r\n",     /* family mismatch */
        "PROXY TCP6 203.0.113.7 192.0.2.1 40001 80\r\n",
        "PROXY TCP4 203.0.113.256 192.0.2.1 40001 80\r\n",
        "PROXY UDP4 203.0.113.7 192.0.2.1 40001 80\r\n",
        "PROXY tcp4 203.0.113.7 192.0.2.1 40001 80\r\n",
        "PROXY \r\n",
        "PROXY TCP4 203.0.113.7 192.0.2.1 40001 \r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (v1(bad[i], &h) != TK_PROXY_BAD) fail_msg("accepted: %s", bad[i]);
    }
    /* Not a PROXY header at all. */
    assert_int_equal(v1("GET / HTTP/1.1\r\n", &h), TK_PROXY_NONE);
    assert_int_equal(v1("POST /v1/items HTTP/1.1\r\n", &h), TK_PROXY_NONE);
    assert_int_equal(v1("proxy TCP4\r\n", &h), TK_PROXY_NONE);
    assert_int_equal(v1("P", &h), TK_PROXY_MORE);
    assert_int_equal(v1("PO", &h), TK_PROXY_NONE);
}

/* --- PROXY v2 --- */

static size_t v2(uint8_t *b, uint8_t ver_cmd, uint8_t fam, size_t body)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    memcpy(b, sig, 12);
    b[12] = ver_cmd;
    b[13] = fam;
    b[14] = (uint8_t)(body >> 8);
    b[15] = (uint8_t)body;
    memset(b + 16, 0, body);
    return 16 + body;
}

static void test_proxy_v2(void **state)
{
    uint8_t b[1024];
    tk_proxy_header_t h;
    char a[TK_ADDR_STRLEN];
    size_t n = v2(b, 0x21, 0x11, 12);
    uint8_t addr4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0x9c, 0x41, 0x1f, 0x90};
    memcpy(b + 16, addr4, 12);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_DONE);
    assert_int_equal(h.len, 28);
    assert_true(h.has_source);
    assert_string_equal(source(&h, a), "203.0.113.7");
    assert_int_equal(ntohs(((struct sockaddr_in *)&h.src)->sin_port), 40001);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(tk_proxy_parse(b, k, &h), TK_PROXY_MORE);
    /* TCP6, with TLVs after the addresses. */
    n = v2(b, 0x21, 0x21, 36 + 20);
    inet_pton(AF_INET6, "2001:db8::7", b + 16);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_DONE);
    assert_int_equal(h.len, 16 + 56);
    assert_string_equal(source(&h, a), "2001:db8::7");
    /* LOCAL (health checks of the proxy itself), UNSPEC, UNIX, UDP: no
     * source; the connection's own address stands. */
    n = v2(b, 0x20, 0x00, 0);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_DONE);
    assert_false(h.has_source);
    n = v2(b, 0x21, 0x31, 216);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_DONE);
    assert_false(h.has_source);
    n = v2(b, 0x21, 0x12, 12);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_DONE);
    assert_false(h.has_source);
    /* The longest header read, and one over. */
    n = v2(b, 0x21, 0x11, TK_PROXY_MAX - 16);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_DONE);
    assert_int_equal(h.len, TK_PROXY_MAX);
    n = v2(b, 0x21, 0x11, TK_PROXY_MAX - 15);
    assert_int_equal(tk_proxy_parse(b, 16, &h), TK_PROXY_BAD);
    /* Malformed: version, command, family, addresses shorter than the
     * family's. */
    n = v2(b, 0x11, 0x11, 12);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_BAD);
    n = v2(b, 0x22, 0x11, 12);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_BAD);
    n = v2(b, 0x21, 0x41, 12);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_BAD);
    n = v2(b, 0x21, 0x11, 11);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_BAD);
    n = v2(b, 0x21, 0x21, 35);
    assert_int_equal(tk_proxy_parse(b, n, &h), TK_PROXY_BAD);
    /* A signature that goes wrong part-way. */
    v2(b, 0x21, 0x11, 12);
    b[11] = 'X';
    assert_int_equal(tk_proxy_parse(b, 28, &h), TK_PROXY_NONE);
    assert_int_equal(tk_proxy_parse((const uint8_t *)"\r\n\r\n", 4, &h), TK_PROXY_MORE);
    assert_int_equal(tk_proxy_parse((const uint8_t *)"\r\nX", 3, &h), TK_PROXY_NONE);
}

/* --- X-Forwarded-For --- */

static const char *client(const char *list, const char *xff)
{
    static char out[TK_ADDR_STRLEN];
    return tk_forwarded_client(list, xff, strlen(xff), out, sizeof out) ? NULL : out;
}

static void test_forwarded_for(void **state)
{
    const char *lb = "127.0.0.1, 10.0.0.0/8";
    assert_string_equal(client(lb, "203.0.113.7"), "203.0.113.7");
    assert_string_equal(client(lb, " 203.0.113.7 "), "203.0.113.7");
    /* The rightmost address not trusted is the client; what is left of it
     * is the client's to forge. */
    assert_string_equal(client(lb, "198.51.100.1, 203.0.113.7, 10.0.0.2"), "203.0.113.7");
    assert_string_equal(client(lb, "evil, 203.0.113.7"), "203.0.113.7");
    /* Every hop trusted: the leftmost. */
    assert_string_equal(client(lb, "10.0.0.3, 10.0.0.2"), "10.0.0.3");
    /* Garbage ends the walk at the last good hop, never believed. */
    assert_string_equal(client(lb, "203.0.113.7, evil, 10.0.0.2"), "10.0.0.2");
    assert_null(client(lb, "evil"));
    assert_null(client(lb, ""));
    assert_null(client(lb, ","));
    assert_null(client(lb, "203.0.113.7,"));
    assert_string_equal(client(lb, "203.0.113.7,,10.0.0.2"), "10.0.0.2");
    assert_null(client(lb, "203.0.113.7:4000"));
    /* IPv6, bracketed or not; IPv4-mapped as IPv4. */
    assert_string_equal(client(lb, "2001:db8::7"), "2001:db8::7");
    assert_string_equal(client(lb, "[2001:db8::7]"), "2001:db8::7");
    assert_string_equal(client(lb, "::ffff:203.0.113.7"), "203.0.113.7");
    /* The answer must fit. */
    char small[8];
    assert_int_equal(tk_forwarded_client(lb, "203.0.113.7", 11, small, sizeof small), -1);
    /* A value without its end: len counts, not the NUL. */
    assert_string_equal(client(lb, "203.0.113.7"), "203.0.113.7");
    char out[TK_ADDR_STRLEN];
    assert_int_equal(tk_forwarded_client(lb, "203.0.113.7, 10.0.0.2", 11, out, sizeof out), 0);
    assert_string_equal(out, "203.0.113.7");
}

/* --- the head of a request --- */

/* "GET /<pad> HTTP/1.1" of exactly len bytes, without its line end. */
static char *request_line(size_t len, char *buf)
{
    const char *tail = " HTTP/1.1";
    size_t fixed = 5 + strlen(tail);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', len - fixed);
    memcpy(buf + len - strlen(tail), tail, strlen(tail));
    buf[len] = 0;
    return buf;
}

static int scan(const char *s)
{
    return tk_head_scan(s, strlen(s));
}

static void test_head_request_line(void **state)
{
    char *line = malloc(TK_HEAD_MAX * 2), *req = malloc(TK_HEAD_MAX * 2);
    for (size_t len = TK_REQUEST_LINE_MAX - 1; len <= TK_REQUEST_LINE_MAX + 1; len++) {
        request_line(len, line);
        int want = len <= TK_REQUEST_LINE_MAX ? (int)len + 4 : -414;
        sprintf(req, "%s\r\n\r\n", line);
        assert_int_equal(scan(req), want);
        sprintf(req, "%s\n\n", line);
        assert_int_equal(scan(req), len <= TK_REQUEST_LINE_MAX ? (int)len + 2 : -414);
    }
    /* Known as soon as it is passed, before any line end. */
    memset(req, 'a', TK_REQUEST_LINE_MAX + 2);
    assert_int_equal(tk_head_scan(req, TK_REQUEST_LINE_MAX + 1), 0);
    assert_int_equal(tk_head_scan(req, TK_REQUEST_LINE_MAX + 2), -414);
    /* Query parameters, as lws splits them: on & and ;. */
    strcpy(req, "GET /v1/items?a=1");
    for (int i = 2; i <= TK_QUERY_PARAMS_MAX; i++)
        sprintf(req + strlen(req), "%sa=%d", i % 2 ? "&" : ";", i);
    strcat(req, " HTTP/1.1\r\n\r\n");
    assert_true(scan(req) > 0);
    char *end = strstr(req, " HTTP");
    memmove(end + 4, end, strlen(end) + 1);
    memcpy(end, "&b=2", 4);
    assert_int_equal(scan(req), -414);
    /* & in the path, before the query, is not a parameter. */
    assert_true(scan("GET /a&b&c HTTP/1.1\r\n\r\n") > 0);
    free(line);
    free(req);
}

static void test_head_fields(void **state)
{
    char *req = malloc(TK_HEAD_MAX * 2);
    /* 50 header lines, 51. */
    for (int n = TK_HEAD_FIELDS_MAX - 1; n <= TK_HEAD_FIELDS_MAX + 1; n++) {
        strcpy(req, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < n; i++)
            sprintf(req + strlen(req), "X-%d: v\r\n", i);
        strcat(req, "\r\n");
        assert_int_equal(scan(req), n <= TK_HEAD_FIELDS_MAX ? (int)strlen(req) : -431);
    }
    /* The whole head: 8192 bytes, 8193, each with one long header. */
    for (size_t total = TK_HEAD_MAX - 1; total <= TK_HEAD_MAX + 1; total++) {
        const char *start = "GET / HTTP/1.1\r\nX-Big: ";
        size_t pad = total - strlen(start) - 4;
        strcpy(req, start);
        memset(req + strlen(start), 'b', pad);
        strcpy(req + strlen(start) + pad, "\r\n\r\n");
        assert_int_equal(strlen(req), total);
        assert_int_equal(scan(req), total <= TK_HEAD_MAX ? (int)total : -431);
        /* and without its end: more wanted until the limit is reached */
        int partial = tk_head_scan(req, total - 1);
        assert_int_equal(partial, total - 1 < TK_HEAD_MAX ? 0 : -431);
    }
    /* Incomplete heads want more. */
    assert_int_equal(scan(""), 0);
    assert_int_equal(scan("GET / HTTP/1.1"), 0);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost: x\r\n"), 0);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost: x\r\n\r"), 0);
    /* What follows the head (a body) is not the head's. */
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"), 38);
    free(req);
}

static int setup(void **state)
{
    cfg = tk_config_create();
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    tk_config_free(cfg);
    return 0;
}

/* The framing of a body, read from a whole head (listener.c's door). */
static int body_of(const char *head, tk_head_body_t *b)
{
    return tk_head_body(head, strlen(head), b);
}

static void test_head_body(void **state)
{
    tk_head_body_t b;
    (void)state;
    assert_int_equal(body_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &b), 0);
    assert_true(b.bodyless_method);
    assert_false(b.publish);
    assert_int_equal(b.length, -1);
    const char *post = "POST /v1/items HTTP/1.1\r\nHost: x\r\ncontent-LENGTH:  16384 \r\n"
                       "Expect: 100-continue\r\n\r\n";
    assert_int_equal(body_of(post, &b), 0);
    assert_true(b.publish);
    assert_false(b.bodyless_method);
    assert_true(b.expect_continue);
    assert_int_equal(b.length, 16384);
    assert_int_equal(b.cl_off, strlen("POST /v1/items HTTP/1.1\r\nHost: x\r\n"));
    assert_int_equal(b.cl_len, strlen("content-LENGTH:  16384 \r\n"));
    assert_int_equal(body_of("POST /v1/items?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &b), 0);
    assert_true(b.publish);
    assert_int_equal(b.length, 0);
    assert_int_equal(body_of("POST /v1/itemsx HTTP/1.1\r\n\r\n", &b), 0);
    assert_false(b.publish);
    assert_int_equal(body_of("POST /v1/items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
    assert_true(b.chunked);
    assert_int_equal(body_of("OPTIONS * HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", &b), 0);
    assert_true(b.bodyless_method);
    assert_int_equal(b.length, 999999999999999999LL);
    static const char *const bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1000000000000000000\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(body_of(bad[i], &b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_trusted),     cmocka_unit_test(test_proxy_v1),
        cmocka_unit_test(test_proxy_v2),          cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_head_request_line), cmocka_unit_test(test_head_fields),
        cmocka_unit_test(test_head_body),
    };
    return cmocka_run_group_tests_name("proxy", tests, setup, teardown);
}
