/* id.h - Redis stream IDs ("<ms>-<seq>"), the identity and order of every
 * event tickerd handles. */
#ifndef TICKERD_ID_H
#define TICKERD_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tk_id {
    uint64_t ms;
    uint64_t seq;
} tk_id_t;

#define TK_ID_STRLEN 42 /* two 20-digit numbers, '-' and NUL */

/* Parses exactly "<digits>-<digits>" (len bytes). Returns 0 or -1. */
int tk_id_parse(const char *s, size_t len, tk_id_t *out);
/* Writes the canonical form; returns its length. */
int tk_id_format(tk_id_t id, char *buf);
int tk_id_cmp(tk_id_t a, tk_id_t b);
static inline bool tk_id_is_zero(tk_id_t id)
{
    return id.ms == 0 && id.seq == 0;
}

#endif
