/* test_parse.c - the shared parsers of parse.h at every edge: trimming,
 * comma-separated lists, whole numbers, keywords, CIDR networks, ports and
 * host:port lists; and the name-list parser of config.h built on them. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
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
#include "fixture.h"
#include "tickerd/parse.h"

/* --- trimming --- */

static void test_trim(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {" ", ""},
        {" \t\n\v\f\r", ""},
        {"a", "a"},
        {" a ", "a"},
        {"\ta b\r\n", "a b"},
        {"\va\f", "a"},
        {"  ab  cd  ", "ab  cd"},
        {"\xc2\xa0x", "\xc2\xa0x"}, /* NBSP is not ASCII whitespace */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tk_span_t t = tk_trim(cases[i].in, strlen(cases[i].in));
        assert_int_equal(t.len, strlen(cases[i].out));
        assert_memory_equal(t.s, cases[i].out, t.len);
    }
    for (int c = 0; c < 256; c++)
        assert_int_equal(tk_is_space(c),
                         c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r');
    /* Only len bytes are looked at: no NUL needed. */
    tk_span_t t = tk_trim("  ab  cd", 4);
    assert_int_equal(t.len, 2);
    assert_memory_equal(t.s, "ab", 2);
}

/* --- lists --- */

/* The elements of s joined with '|', or "ERR@k" when element k (from 0) is
 * empty. */
static const char *split(const char *s, size_t len)
{
    static char out[512];
    tk_list_iter_t it;
    tk_span_t el;
    int rc, k = 0;
    out[0] = 0;
    tk_list_init(&it, s, len);
    while ((rc = tk_list_next(&it, &el)) > 0) {
        assert_true(el.len > 0);
        assert_false(tk_is_space((unsigned char)el.s[0]));
        assert_false(tk_is_space((unsigned char)el.s[el.len - 1]));
        if (k++) strcat(out, "|");
        strncat(out, el.s, el.len);
    }
    if (rc < 0) {
        assert_int_equal(rc, -EINVAL);
        assert_int_equal(el.len, 0);
        assert_true(el.s >= s && el.s <= s + len);
        snprintf(out, sizeof out, "ERR@%d", k);
    }
    /* Finished stays finished. */
    assert_int_equal(tk_list_next(&it, &el), 0);
    return out;
}

static const char *split_str(const char *s)
{
    return split(s, strlen(s));
}

static void test_list(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        /* empty and blank: no elements */
        {"", ""},
        {" ", ""},
        {"\t\r\n ", ""},
        /* one element */
        {"a", "a"},
        {" a ", "a"},
        {"\ta\n", "a"},
        /* several, whitespace around each, kept inside */
        {"a,b", "a|b"},
        {"a , b ,c", "a|b|c"},
        {" a\t,\vb\f, c d ", "a|b|c d"},
        /* duplicates are the caller's business */
        {"a,a,A", "a|a|A"},
        /* empty elements: refused wherever they are */
        {",", "ERR@0"},
        {",a", "ERR@0"},
        {" , a", "ERR@0"},
        {"a,", "ERR@1"},
        {"a, ", "ERR@1"},
        {"a,,b", "ERR@1"},
        {"a, \t ,b", "ERR@1"},
        {"a,b,", "ERR@2"},
        {",,", "ERR@0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_string_equal(split_str(cases[i].in), cases[i].out);

    /* Only len bytes are read; a NUL inside is an ordinary byte. */
    assert_string_equal(split("a,b,c", 3), "a|b");
    assert_string_equal(split("a,b,c", 2), "ERR@1");
    const char nul[] = {'a', ',', 0, 'b'};
    tk_list_iter_t it;
    tk_span_t el;
    tk_list_init(&it, nul, sizeof nul);
    assert_int_equal(tk_list_next(&it, &el), 1);
    assert_int_equal(tk_list_next(&it, &el), 1);
    assert_int_equal(el.len, 2);
    assert_int_equal(tk_list_next(&it, &el), 0);

    /* A long list: every element comes back. */
    char big[4096] = "";
    for (int i = 0; i < 500; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%se%d", i ? "," : "", i);
    int n = 0;
    tk_list_init(&it, big, strlen(big));
    while (tk_list_next(&it, &el) > 0)
        n++;
    assert_int_equal(n, 500);
}

/* --- numbers --- */

static int pint(const char *s, int min, int max, int *out)
{
    return tk_parse_int(s, strlen(s), min, max, out);
}

static void test_parse_int(void **state)
{
    int v = 12345;
    static const struct {
        const char *s;
        int v;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"100", 100},
        {" 7 ", 7},
        {"\t42\r\n", 42},
        {"007", 7},
        {"0000000000000000000000000001", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(pint(ok[i].s, 0, 100, &v), 0);
        assert_int_equal(v, ok[i].v);
    }
    /* Range ends: one under, at, one over. */
    v = -7;
    assert_int_equal(pint("0", 1, 10, &v), -ERANGE);
    assert_int_equal(v, -7); /* untouched on error */
    assert_int_equal(pint("1", 1, 10, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(pint("10", 1, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(pint("11", 1, 10, &v), -ERANGE);
    assert_int_equal(v, 10);
    /* INT_MAX and past it. */
    char buf[64];
    snprintf(buf, sizeof buf, "%d", INT_MAX);
    assert_int_equal(pint(buf, 0, INT_MAX, &v), 0);
    assert_int_equal(v, INT_MAX);
    snprintf(buf, sizeof buf, "%lld", (long long)INT_MAX + 1);
    assert_int_equal(pint(buf, 0, INT_MAX, &v), -ERANGE);
    assert_int_equal(pint("4294967296", 0, INT_MAX, &v), -ERANGE);           /* 2^32 */
    assert_int_equal(pint("18446744073709551615", 0, INT_MAX, &v), -ERANGE); /* 2^64-1 */
    assert_int_equal(pint("18446744073709551616", 0, INT_MAX, &v), -ERANGE); /* 2^64 */
    assert_int_equal(pint("99999999999999999999999999999999", 0, INT_MAX, &v), -ERANGE);
    assert_int_equal(v, INT_MAX);
    /* Not whole decimal numbers. */
    static const char *const bad[] = {
        "",
        " ",
        "+1",
        "-1",
        "-0",
        "+0",
        "0x10",
        "0X1F",
        "1e3",
        "1.5",
        "1.",
        ".5",
        "1 2",
        "1,2",
        "12abc",
        "abc",
        "1_000",
        "١",
        "\xef\xbc\x91", /* fullwidth 1 */
        "0b1",
        "NaN",
        "inf",
        "--1",
        "1-",
        "99999999999999999999x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        v = 99;
        assert_int_equal(pint(bad[i], 0, INT_MAX, &v), -EINVAL);
        assert_int_equal(v, 99);
    }
    /* Only len bytes are read. */
    assert_int_equal(tk_parse_int("123456", 3, 0, 1000, &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(tk_parse_int("12x", 2, 0, 1000, &v), 0);
    assert_int_equal(v, 12);
    /* A range with no room. */
    assert_int_equal(pint("5", 6, 5, &v), -ERANGE);
    assert_int_equal(pint("5", 0, -1, &v), -ERANGE);
    assert_int_equal(pint("x", 0, -1, &v), -EINVAL);

    uint64_t u = 0;
    assert_int_equal(tk_parse_u64("18446744073709551615", 20, 0, UINT64_MAX, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(tk_parse_u64("18446744073709551616", 20, 0, UINT64_MAX, &u), -ERANGE);
    assert_int_equal(tk_parse_u64("1732752000000", 13, 0, UINT64_MAX, &u), 0);
    assert_true(u == 1732752000000ULL);
}

/* --- keywords --- */

static void test_keyword(void **state)
{
    static const char *const words[] = {"error", "warn", "info", "debug"};
    assert_int_equal(tk_keyword("error", 5, words, 4), 0);
    assert_int_equal(tk_keyword("DEBUG", 5, words, 4), 3);
    assert_int_equal(tk_keyword(" Info\n", 6, words, 4), 2);
    assert_int_equal(tk_keyword("warning", 7, words, 4), -1);
    assert_int_equal(tk_keyword("war", 3, words, 4), -1);
    assert_int_equal(tk_keyword("warnx", 4, words, 4), 1);
    assert_int_equal(tk_keyword("", 0, words, 4), -1);
    assert_int_equal(tk_keyword("info,warn", 9, words, 4), -1);
}

/* --- names (config.h, on the list parser) --- */

static int name_idx(tk_name_kind_t kind, const char *name)
{
    int i = tk_name_lookup(kind, name, strlen(name));
    assert_true(i >= 0);
    return i;
}

static void test_name_parse(void **state)
{
    int mena = name_idx(TK_NAME_REGION, "mena");
    static const char *const same[] = {"mena", "MENA", "Mena", "mEnA", " mena ", "\tMENA\r\n"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        assert_int_equal(tk_name_parse(TK_NAME_REGION, UINT64_MAX, same[i], strlen(same[i])), mena);
    assert_int_equal(tk_name_parse(TK_NAME_REGION, UINT64_MAX, "", 0), -1);
    assert_int_equal(tk_name_parse(TK_NAME_REGION, UINT64_MAX, "  ", 2), -1);
    assert_int_equal(tk_name_parse(TK_NAME_REGION, UINT64_MAX, "narnia", 6), -1);
    assert_int_equal(tk_name_parse(TK_NAME_REGION, UINT64_MAX, "me na", 5), -1);
    assert_int_equal(tk_name_parse(TK_NAME_REGION, UINT64_MAX, "mena,asia", 9), -1);
    /* Known but not allowed. */
    assert_int_equal(tk_name_parse(TK_NAME_REGION, ~(1ULL << mena), "mena", 4), -1);
    /* The tables report the lower-case form, whatever case interned it. */
    int idx = tk_name_intern(TK_NAME_REGION, "Gulf-STATES", 11);
    assert_true(idx >= 0);
    assert_string_equal(tk_name_of(TK_NAME_REGION, idx), "gulf-states");
    assert_int_equal(tk_name_intern(TK_NAME_REGION, "GULF-states", 11), idx);
    assert_int_equal(tk_name_lookup(TK_NAME_REGION, "gulf-STATES", 11), idx);

    /* Max length: a 32-byte name resolves, 33 bytes never does. */
    const char *n32 = "abcdefghijklmnopqrstuvwxyz012345";
    int i32 = tk_name_intern(TK_NAME_REGION, n32, 32);
    assert_true(i32 >= 0);
    assert_int_equal(
        tk_name_parse(TK_NAME_REGION, UINT64_MAX, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 32), i32);
    assert_int_equal(
        tk_name_parse(TK_NAME_REGION, UINT64_MAX, "abcdefghijklmnopqrstuvwxyz0123456", 33), -1);
}

static void test_name_list_parse(void **state)
{
    uint64_t mena = 1ULL << name_idx(TK_NAME_REGION, "mena");
    uint64_t asia = 1ULL << name_idx(TK_NAME_REGION, "asia");
    uint64_t m = 12345;
    tk_span_t bad = {NULL, 0};
#define L(s, fl) tk_name_list_parse(TK_NAME_REGION, cfg->regions, s, strlen(s), fl, &m, &bad)
    assert_int_equal(L("mena", 0), 0);
    assert_int_equal(m, mena);
    assert_int_equal(L(" MENA , Asia ", 0), 0);
    assert_int_equal(m, mena | asia);
    assert_int_equal(L("mena,MENA,Mena", 0), 0); /* duplicates count once */
    assert_int_equal(m, mena);
    m = 7;
    assert_int_equal(L("", 0), 0); /* empty: no names; what that means is the caller's */
    assert_int_equal(m, 0);
    m = 7;
    assert_int_equal(L(" \t ", 0), 0);
    assert_int_equal(m, 0);

    m = 7;
    assert_int_equal(L("mena,", 0), -EINVAL);
    assert_int_equal(m, 7); /* untouched */
    assert_int_equal(bad.len, 0);
    assert_int_equal(L(",mena", 0), -EINVAL);
    assert_int_equal(L("mena,,asia", 0), -EINVAL);
    assert_int_equal(L("mena,narnia", 0), -ENOENT);
    assert_int_equal(bad.len, 6);
    assert_memory_equal(bad.s, "narnia", 6);
    assert_int_equal(L("mena, Nar nia ,asia", 0), -ENOENT);
    assert_int_equal(bad.len, 7);
    assert_memory_equal(bad.s, "Nar nia", 7);
    assert_int_equal(m, 7);

    /* Skipping unknown names (token claims): syntax still counts. */
    assert_int_equal(L("narnia,MENA", TK_NAMES_SKIP_UNKNOWN), 0);
    assert_int_equal(m, mena);
    assert_int_equal(L("narnia", TK_NAMES_SKIP_UNKNOWN), 0);
    assert_int_equal(m, 0);
    assert_int_equal(L("narnia,", TK_NAMES_SKIP_UNKNOWN), -EINVAL);
#undef L
    /* NULL bad is fine. */
    assert_int_equal(tk_name_list_parse(TK_NAME_REGION, cfg->regions, "x", 1, 0, &m, NULL),
                     -ENOENT);
}

/* --- CIDR --- */

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1)
        a4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1)
        a6->sin6_family = AF_INET6;
    else
        fail_msg("bad test address %s", ip);
    return ss;
}

static bool in(const char *cidr, const char *ip)
{
    tk_cidr_t c;
    assert_int_equal(tk_cidr_parse(cidr, strlen(cidr), &c), 0);
    struct sockaddr_storage ss = addr(ip);
    return tk_cidr_contains(&c, (struct sockaddr *)&ss);
}

static void test_cidr(void **state)
{
    tk_cidr_t c;
    assert_int_equal(tk_cidr_parse("10.0.0.1", 8, &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 32);
    assert_int_equal(tk_cidr_parse(" ::1 ", 5, &c), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.bits, 128);
    assert_int_equal(tk_cidr_parse("10.1.2.3/8", 10, &c), 0);
    assert_int_equal(c.bits, 8);
    assert_int_equal(c.addr[0], 10);
    assert_int_equal(c.addr[1], 0); /* host bits cleared */
    assert_int_equal(c.addr[3], 0);

    /* /32 and /128: exactly one address. */
    assert_true(in("192.0.2.7/32", "192.0.2.7"));
    assert_false(in("192.0.2.7/32", "192.0.2.8"));
    assert_false(in("192.0.2.7/32", "192.0.2.6"));
    assert_true(in("192.0.2.7", "192.0.2.7"));
    assert_true(in("2001:db8::7/128", "2001:db8::7"));
    assert_false(in("2001:db8::7/128", "2001:db8::8"));
    assert_false(in("2001:db8::7", "2001:db8::6"));
    /* /0: everything of that family, nothing of the other. */
    assert_true(in("0.0.0.0/0", "0.0.0.0"));
    assert_true(in("0.0.0.0/0", "255.255.255.255"));
    assert_false(in("0.0.0.0/0", "::1"));
    assert_true(in("::/0", "::"));
    assert_true(in("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(in("::/0", "10.0.0.1"));
    /* A prefix: first and last address in, one outside on each side. */
    assert_true(in("10.0.0.0/8", "10.0.0.0"));
    assert_true(in("10.0.0.0/8", "10.255.255.255"));
    assert_false(in("10.0.0.0/8", "9.255.255.255"));
    assert_false(in("10.0.0.0/8", "11.0.0.0"));
    assert_true(in("192.168.4.0/22", "192.168.7.255"));
    assert_false(in("192.168.4.0/22", "192.168.8.0"));
    assert_false(in("192.168.4.0/22", "192.168.3.255"));
    assert_true(in("192.168.4.0/31", "192.168.4.1"));
    assert_false(in("192.168.4.0/31", "192.168.4.2"));
    assert_true(in("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(in("2001:db8::/32", "2001:db9::"));
    assert_false(in("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_true(in("fe80::/10", "febf::1"));
    assert_false(in("fe80::/10", "fec0::1"));
    assert_true(in("2001:db8::/127", "2001:db8::1"));
    assert_false(in("2001:db8::/127", "2001:db8::2"));
    /* An IPv4 client on a dual-stack socket. */
    assert_true(in("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert_false(in("10.0.0.0/8", "::ffff:11.1.2.3"));
    assert_true(in("::ffff:0:0/96", "::ffff:10.1.2.3"));
    assert_false(in("10.0.0.1", "::10.0.0.1"));

    static const char *const bad[] = {
        "",           " ",           "10.0.0.1/33",  "::1/129",      "10.0.0.1/",
        "/8",         "10.0.0.1/-1", "10.0.0.1/+8",  "10.0.0.1/0x8", "10.0.0.1/ 8",
        "10.0.0/8",   "10.0.0.256",  "10.0.0.1/8/8", "localhost",    "fe80::1%eth0",
        "10.0.0.1 8", "1.2.3.4.5",   "::1/1.5",      "[::1]",        "10.0.0.1,10.0.0.2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(tk_cidr_parse(bad[i], strlen(bad[i]), &c), -EINVAL);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    assert_int_equal(tk_cidr_parse("0.0.0.0/0", 9, &c), 0);
    assert_false(tk_cidr_contains(&c, (struct sockaddr *)&ss));
    assert_false(tk_cidr_contains(&c, NULL));
}

/* --- ports and host:port --- */

static void test_parse_port(void **state)
{
    static const struct {
        const char *s;
        int rc, port;
    } cases[] = {
        {"1", 0, 1},           {"65535", 0, 65535},         {"26379", 0, 26379},
        {"00080", 0, 80},      {"0", -ERANGE, 0},           {"00", -ERANGE, 0},
        {"65536", -ERANGE, 0}, {"99999999999", -ERANGE, 0}, {"", -EINVAL, 0},
        {" 80", -EINVAL, 0},   {"80 ", -EINVAL, 0},         {"8 0", -EINVAL, 0},
        {"+80", -EINVAL, 0},   {"-1", -EINVAL, 0},          {"0x50", -EINVAL, 0},
        {"80a", -EINVAL, 0},   {"8e1", -EINVAL, 0},         {"80.0", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int port = -7;
        assert_int_equal(tk_parse_port(cases[i].s, strlen(cases[i].s), &port), cases[i].rc);
        assert_int_equal(port, cases[i].rc ? -7 : cases[i].port); /* untouched on error */
    }
    assert_int_equal(tk_parse_port("80", 1, &(int){0}), 0); /* only len bytes */
}

/* "host|port", or "EINVAL" / "ERANGE" / "ENAMETOOLONG". */
static const char *hostport(const char *s)
{
    static char buf[512];
    tk_hostport_t hp = {{NULL, 0}, -7};
    int rc = tk_hostport_parse(s, strlen(s), &hp);
    if (rc == -EINVAL) return "EINVAL";
    if (rc == -ERANGE) return "ERANGE";
    if (rc == -ENAMETOOLONG) return "ENAMETOOLONG";
    assert_int_equal(rc, 0);
    snprintf(buf, sizeof buf, "%.*s|%d", (int)hp.host.len, hp.host.s, hp.port);
    return buf;
}

static void test_hostport(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"10.0.0.1:26379", "10.0.0.1|26379"},
        {"localhost:1", "localhost|1"},
        {"sentinel-1.prod_eu.example:65535", "sentinel-1.prod_eu.example|65535"},
        {" \tlocalhost:26379\n", "localhost|26379"}, /* trimmed around */
        {"[::1]:26379", "::1|26379"},
        {"[2001:db8::7]:1", "2001:db8::7|1"},
        {"[::ffff:10.0.0.1]:65535", "::ffff:10.0.0.1|65535"},
        /* the port: checked, required, digits only */
        {"host:0", "ERANGE"},
        {"host:65536", "ERANGE"},
        {"host:4294967297", "ERANGE"},
        {"[::1]:0", "ERANGE"},
        {"host", "EINVAL"},
        {"host:", "EINVAL"},
        {"host: 26379", "EINVAL"},
        {"host :26379", "EINVAL"},
        {"host:+1", "EINVAL"},
        {"host:-1", "EINVAL"},
        {"host:26379x", "EINVAL"},
        {"host:0x50", "EINVAL"},
        {"host:1:2", "EINVAL"},
        /* the host */
        {":26379", "EINVAL"},
        {"", "EINVAL"},
        {"  ", "EINVAL"},
        {"my host:26379", "EINVAL"},
        {"host;x:26379", "EINVAL"},
        {"redis://host:26379", "EINVAL"},
        {"h\xc3\xa9:26379", "EINVAL"},
        {"::1:26379", "EINVAL"}, /* IPv6 without brackets */
        {"[::1]", "EINVAL"},
        {"[::1]26379", "EINVAL"},
        {"[::1]:", "EINVAL"},
        {"[]:26379", "EINVAL"},
        {"[10.0.0.1]:26379", "EINVAL"},
        {"[localhost]:26379", "EINVAL"},
        {"[::1:26379", "EINVAL"},
        {"::1]:26379", "EINVAL"},
        {"[::1]:26379]", "EINVAL"},
        {"a,b:1", "EINVAL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_string_equal(hostport(cases[i].in), cases[i].out);

    /* A host of TK_HOST_MAX bytes is taken, one more is not. */
    char big[TK_HOST_MAX + 16];
    memset(big, 'a', TK_HOST_MAX);
    strcpy(big + TK_HOST_MAX, ":1");
    assert_int_equal(strlen(hostport(big)), TK_HOST_MAX + 2);
    memset(big, 'a', TK_HOST_MAX + 1);
    strcpy(big + TK_HOST_MAX + 1, ":1");
    assert_string_equal(hostport(big), "ENAMETOOLONG");

    /* Only len bytes are read. */
    tk_hostport_t hp;
    assert_int_equal(tk_hostport_parse("h:123", 4, &hp), 0);
    assert_int_equal(hp.port, 12);
}

/* "host|port,host|port" for a list, or "ERR<errno>@<offset of the bad element>". */
static const char *hostports(const char *s)
{
    static char buf[1024];
    tk_hostport_t hp[3];
    tk_span_t bad = {NULL, 0};
    int n = tk_hostport_list_parse(s, strlen(s), hp, 3, &bad);
    if (n < 0) {
        snprintf(buf, sizeof buf, "ERR%d@%d", -n, (int)(bad.s - s));
        return buf;
    }
    assert_int_equal(tk_hostport_list_parse(s, strlen(s), NULL, 0, NULL), n); /* counts alone */
    buf[0] = 0;
    for (int i = 0; i < n && i < 3; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%.*s|%d", i ? "," : "",
                 (int)hp[i].host.len, hp[i].host.s, hp[i].port);
    if (n > 3) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "+%d", n - 3);
    return buf;
}

static void test_hostport_list(void **state)
{
    char want[64];
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"  ", ""},
        {"a:1", "a|1"},
        {"a:1,b:65535", "a|1,b|65535"},
        {" a:1 , [::1]:2 ,\tc:3 ", "a|1,::1|2,c|3"},
        {"a:1,a:1", "a|1,a|1"},
        {"a:1,b:2,c:3,d:4,e:5", "a|1,b|2,c|3+2"}, /* counted past max */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_string_equal(hostports(cases[i].in), cases[i].out);
    static const struct {
        const char *in;
        int err, at;
    } bad[] = {
        {"a:1,", EINVAL, 4},      {",a:1", EINVAL, 0},
        {"a:1,,b:2", EINVAL, 4},  {"a:1, ,b:2", EINVAL, 4},
        {",", EINVAL, 0},         {"a:1,b", EINVAL, 4},
        {"a:0", ERANGE, 0},       {"a:1, b:65536", ERANGE, 5},
        {"a:1 b:2", EINVAL, 0},   {"a:1;b:2", EINVAL, 0},
        {"a:1,::1:2", EINVAL, 4},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(want, sizeof want, "ERR%d@%d", bad[i].err, bad[i].at);
        assert_string_equal(hostports(bad[i].in), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim),       cmocka_unit_test(test_list),
        cmocka_unit_test(test_parse_int),  cmocka_unit_test(test_keyword),
        cmocka_unit_test(test_name_parse), cmocka_unit_test(test_name_list_parse),
        cmocka_unit_test(test_cidr),       cmocka_unit_test(test_parse_port),
        cmocka_unit_test(test_hostport),   cmocka_unit_test(test_hostport_list),
    };
    return cmocka_run_group_tests_name("parse", tests, setup, teardown);
}
