/* head.c - where the head of a request ends, and its limits (see head.h). */
#include <string.h>
#include <strings.h>

#include "tickerd/head.h"

/* Query parameters in the request line's target, split as lws splits
 * them: on '&' and ';' after the first '?'. */
static int query_params(const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    if (!sp) return 0;
    const char *t = sp + 1, *end = line + len;
    const char *te = memchr(t, ' ', (size_t)(end - t));
    const char *q = memchr(t, '?', (size_t)((te ? te : end) - t));
    if (!q) return 0;
    int n = 1;
    for (const char *p = q + 1; p < (te ? te : end); p++)
        n += *p == '&' || *p == ';';
    return n;
}

int tk_head_scan(const char *buf, size_t len)
{
    size_t look = len < TK_REQUEST_LINE_MAX + 2 ? len : TK_REQUEST_LINE_MAX + 2;
    const char *lf = memchr(buf, '\n', look);
    if (!lf) return len >= TK_REQUEST_LINE_MAX + 2 ? -414 : 0;
    size_t line = (size_t)(lf - buf);
    if (line && buf[line - 1] == '\r') line--;
    if (line > TK_REQUEST_LINE_MAX || query_params(buf, line) > TK_QUERY_PARAMS_MAX) return -414;
    size_t pos = (size_t)(lf - buf) + 1;
    for (int fields = 0;; fields++) {
        size_t avail = len - pos;
        const char *nl = memchr(buf + pos, '\n', avail);
        if (!nl) break;
        size_t end = (size_t)(nl - buf) + 1, n = end - pos;
        if (end > TK_HEAD_MAX) return -431;
        if (n == 1 || (n == 2 && buf[pos] == '\r')) return (int)end; /* the empty line */
        if (fields == TK_HEAD_FIELDS_MAX) return -431;
        pos = end;
    }
    return len >= TK_HEAD_MAX ? -431 : 0;
}

/* Whether the header line [p, p + n) is "name:" (any case) and where its
 * value starts, blanks skipped. */
static const char *header_value(const char *p, size_t n, const char *name)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(p, name, nl) || p[nl] != ':') return NULL;
    const char *v = p + nl + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    return v;
}

/* The value up to the line's end, trailing blanks and CR dropped. */
static size_t value_len(const char *v, const char *end)
{
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (size_t)(end - v);
}

static int parse_length(const char *v, size_t n, long long *out)
{
    long long x = 0;
    if (n == 0 || n > 18) return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

static bool method_is(const char *head, size_t len, const char *m)
{
    size_t n = strlen(m);
    return len > n && !memcmp(head, m, n) && head[n] == ' ';
}

int tk_head_body(const char *head, size_t len, tk_head_body_t *out)
{
    memset(out, 0, sizeof *out);
    out->length = -1;
    out->bodyless_method = method_is(head, len, "GET") || method_is(head, len, "HEAD") ||
                           method_is(head, len, "OPTIONS");
    static const char publish[] = "POST /v1/items";
    size_t pl = sizeof publish - 1;
    out->publish = len > pl && !memcmp(head, publish, pl) && (head[pl] == ' ' || head[pl] == '?');
    const char *lf = memchr(head, '\n', len), *end = head + len;
    for (const char *p = lf ? lf + 1 : end; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl + 1 : end, *v;
        size_t n = (size_t)(le - p);
        if ((v = header_value(p, n, "content-length"))) {
            if (out->cl_len || parse_length(v, value_len(v, le), &out->length)) return -1;
            out->cl_off = (size_t)(p - head);
            out->cl_len = n;
        } else if (header_value(p, n, "transfer-encoding")) {
            out->chunked = true;
        } else if ((v = header_value(p, n, "expect"))) {
            out->expect_continue = value_len(v, le) == 12 && !strncasecmp(v, "100-continue", 12);
        }
        p = le;
    }
    return 0;
}
