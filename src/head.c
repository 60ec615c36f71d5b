/* head.c - where the head of a request ends, and its limits (see head.h). */
#include <string.h>

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
