/* kill.c - kill confirmation, the pure part: the retracts a labelled
 * screen was sent and has not acked, the Redis record's keys and values,
 * and the answer built from a record. No I/O. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/item.h"
#include "tickerd/kill.h"

tk_screen_t *tk_screen_new(const char *label)
{
    tk_screen_t *s = calloc(1, sizeof *s);
    if (s) snprintf(s->label, sizeof s->label, "%s", label);
    return s;
}

static int find(const tk_screen_t *s, tk_id_t ref)
{
    for (int i = 0; i < s->len; i++)
        if (tk_id_cmp(s->ring[(s->head + i) % TK_SCREEN_PENDING_MAX].ref, ref) == 0) return i;
    return -1;
}

const tk_kill_sent_t *tk_screen_sent(tk_screen_t *s, tk_id_t ref, tk_id_t rid, int64_t now_ms)
{
    if (find(s, ref) >= 0) return NULL;
    if (s->len == TK_SCREEN_PENDING_MAX) { /* forget the oldest */
        s->head = (uint8_t)((s->head + 1) % TK_SCREEN_PENDING_MAX);
        s->len--;
    }
    tk_kill_sent_t *k = &s->ring[(s->head + s->len++) % TK_SCREEN_PENDING_MAX];
    *k = (tk_kill_sent_t){ref, rid, now_ms};
    return k;
}

int tk_screen_ack(tk_screen_t *s, tk_id_t ref, tk_kill_sent_t *out)
{
    int i = find(s, ref);
    if (i < 0) return -ENOENT;
    *out = s->ring[(s->head + i) % TK_SCREEN_PENDING_MAX];
    for (; i + 1 < s->len; i++) /* close the hole */
        s->ring[(s->head + i) % TK_SCREEN_PENDING_MAX] =
            s->ring[(s->head + i + 1) % TK_SCREEN_PENDING_MAX];
    s->len--;
    return 0;
}

static int fitted(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int tk_kill_key(const char *stream, tk_id_t rid, char *out, size_t cap)
{
    char id[TK_ID_STRLEN];
    tk_id_format(rid, id);
    return fitted(snprintf(out, cap, "%s:kill:%s", stream, id), cap);
}

int tk_kill_ref_key(const char *stream, tk_id_t ref, char *out, size_t cap)
{
    char id[TK_ID_STRLEN];
    tk_id_format(ref, id);
    return fitted(snprintf(out, cap, "%s:kill:ref:%s", stream, id), cap);
}

int tk_kill_field(const char *node, const char *label, char *out, size_t cap)
{
    return fitted(snprintf(out, cap, "%s/%s", node, label), cap);
}

char *tk_kill_value(const char *label, const char *node, int64_t sent_ms, int64_t acked_ms)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:o}", "client", label, "node", node, "sent_ms",
                          (json_int_t)sent_ms, "acked_ms",
                          acked_ms < 0 ? json_null() : json_integer(acked_ms));
    char *s = o ? tk_json_dump(o, NULL) : NULL;
    json_decref(o);
    return s;
}

/* One screen of the answer: the best of its entries (acked, and first). */
static void merge(json_t *screens, json_t *e)
{
    const char *label = json_string_value(json_object_get(e, "client"));
    json_t *acked = json_object_get(e, "acked_ms");
    if (!label || !json_is_string(json_object_get(e, "node"))) return; /* not ours */
    json_t *have = json_object_get(screens, label);
    if (have) {
        json_t *had = json_object_get(have, "acked_ms");
        if (!json_is_integer(acked)) return;
        if (json_is_integer(had) && json_integer_value(had) <= json_integer_value(acked)) return;
    }
    json_object_set_new(screens, label,
                        json_pack("{s:s, s:O, s:O}", "client", label, "node",
                                  json_object_get(e, "node"), "acked_ms",
                                  json_is_integer(acked) ? acked : json_null()));
}

static int by_label(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The merged screens as an array sorted by label. */
static json_t *screen_list(json_t *screens, int *acked)
{
    size_t n = json_object_size(screens), k = 0;
    const char **labels = malloc((n ? n : 1) * sizeof *labels);
    json_t *list = json_array();
    const char *label;
    json_t *v;
    if (!labels || !list) {
        free(labels);
        json_decref(list);
        return NULL;
    }
    json_object_foreach(screens, label, v) labels[k++] = label;
    qsort(labels, n, sizeof *labels, by_label);
    *acked = 0;
    for (k = 0; k < n; k++) {
        v = json_object_get(screens, labels[k]);
        if (json_is_integer(json_object_get(v, "acked_ms"))) ++*acked;
        if (json_array_append(list, v)) {
            json_decref(list);
            list = NULL;
            break;
        }
    }
    free(labels);
    return list;
}

json_t *tk_kill_summary(tk_id_t ref, tk_id_t rid, const char *const *fv, const size_t *fvlen,
                        size_t nfv, int *pending)
{
    char refs[TK_ID_STRLEN], rids[TK_ID_STRLEN];
    json_t *screens = json_object();
    int acked = 0;
    if (!screens) return NULL;
    for (size_t i = 0; i + 1 < nfv; i += 2) {
        if (fvlen[i] == strlen(TK_KILL_REF_FIELD) && !memcmp(fv[i], TK_KILL_REF_FIELD, fvlen[i]))
            continue;
        json_error_t e;
        json_t *o = json_loadb(fv[i + 1], fvlen[i + 1], 0, &e);
        if (json_is_object(o)) merge(screens, o);
        json_decref(o);
    }
    json_t *list = screen_list(screens, &acked);
    size_t sent = json_object_size(screens);
    json_decref(screens);
    if (!list) return NULL;
    tk_id_format(ref, refs);
    tk_id_format(rid, rids);
    *pending = (int)sent - acked;
    return json_pack("{s:s, s:s, s:I, s:i, s:o}", "ref", refs, "retract_id", rids, "sent",
                     (json_int_t)sent, "acked", acked, "screens", list);
}

json_t *tk_kill_summary_reply(tk_id_t ref, tk_id_t rid, const struct redisReply *r, int *pending)
{
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    const char **fv = malloc((n ? n : 1) * sizeof *fv);
    size_t *len = malloc((n ? n : 1) * sizeof *len);
    json_t *o = NULL;
    if (fv && len) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING) break;
            fv[k] = e->str;
            len[k++] = e->len;
        }
        o = tk_kill_summary(ref, rid, fv, len, k, pending);
    }
    free(fv);
    free(len);
    return o;
}
