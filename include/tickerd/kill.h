/* kill.h - kill confirmation (SPEC §7), the pure part: what a node keeps of
 * the retracts it sent a labelled screen (tk_screen_t, one per labelled
 * client), and the record every node writes to Redis under
 * <stream>:kill:<retract id> with the answer built from it (shared by the
 * daemon's GET /v1/items/<id>/screens and tickerctl retract --wait). */
#ifndef TICKERD_KILL_H
#define TICKERD_KILL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/filter.h"
#include "tickerd/id.h"

/* Retracts a screen may have sent and not acked yet; past that the oldest
 * is forgotten (its ack is then ignored, and Redis shows it pending). */
#define TK_SCREEN_PENDING_MAX 32
/* How long Redis keeps a record. */
#define TK_KILL_TTL_S 86400

typedef struct tk_kill_sent {
    tk_id_t ref, rid; /* the original, the retract */
    int64_t sent_ms;  /* wall time it was routed to the screen */
} tk_kill_sent_t;

/* A labelled client's share: its label and the retracts not acked yet. */
typedef struct tk_screen {
    char label[TK_CLIENT_LABEL_MAX + 1];
    uint8_t head, len;
    tk_kill_sent_t ring[TK_SCREEN_PENDING_MAX];
} tk_screen_t;

/* A screen for a valid label (tk_client_label_valid); NULL when out of
 * memory. Freed with free(). */
tk_screen_t *tk_screen_new(const char *label);
/* The retract rid of ref was routed to the screen. Returns its entry, or
 * NULL when it was pending there already (a replay that repeats it). */
const tk_kill_sent_t *tk_screen_sent(tk_screen_t *s, tk_id_t ref, tk_id_t rid, int64_t now_ms);
/* The screen acked ref: 0 with what was sent (no longer pending), or
 * -ENOENT when no retract of ref is pending there. */
int tk_screen_ack(tk_screen_t *s, tk_id_t ref, tk_kill_sent_t *out);

/* "<stream>:kill:<retract id>", the record; "<stream>:kill:ref:<ref>", the
 * retract id of an original. Return the length, or -1 when cap is short. */
int tk_kill_key(const char *stream, tk_id_t rid, char *out, size_t cap);
int tk_kill_ref_key(const char *stream, tk_id_t ref, char *out, size_t cap);
/* The field of a screen in the record: "<node>/<label>". */
int tk_kill_field(const char *node, const char *label, char *out, size_t cap);
/* Its value, malloc'd JSON {"client","node","sent_ms","acked_ms"} with
 * times in ms from the retract's stream-ID time (acked_ms < 0: null). */
char *tk_kill_value(const char *label, const char *node, int64_t sent_ms, int64_t acked_ms);
/* The record's field that names the original: every node that read the
 * retract live writes it, so a record exists with no screen at all. */
#define TK_KILL_REF_FIELD "ref"

/* The answer for an original ref and its retract rid from the record's
 * fields and values (HGETALL order: f0 v0 f1 v1 ...): {"ref","retract_id",
 * "sent","acked","screens":[{"client","node","acked_ms"}]}, one screen per
 * label (a screen that moved between nodes counts once, acked if it acked
 * anywhere), sorted by label. *pending gets the screens not acked. NULL
 * when out of memory. */
json_t *tk_kill_summary(tk_id_t ref, tk_id_t rid, const char *const *fv, const size_t *fvlen,
                        size_t nfv, int *pending);
/* The same from an HGETALL reply (an array of strings; anything else is an
 * empty record). */
struct redisReply;
json_t *tk_kill_summary_reply(tk_id_t ref, tk_id_t rid, const struct redisReply *r, int *pending);

#endif
