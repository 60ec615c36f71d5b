/* id.c - parsing, formatting and ordering of Redis stream IDs. */
#include <inttypes.h>
#include <stdio.h>

#include "tickerd/id.h"

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20) return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int tk_id_parse(const char *s, size_t len, tk_id_t *out)
{
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    if (dash == len) return -1;
    tk_id_t id;
    if (parse_u64(s, dash, &id.ms) || parse_u64(s + dash + 1, len - dash - 1, &id.seq)) return -1;
    *out = id;
    return 0;
}

int tk_id_format(tk_id_t id, char *buf)
{
    return snprintf(buf, TK_ID_STRLEN, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

int tk_id_cmp(tk_id_t a, tk_id_t b)
{
    if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
    return 0;
}
