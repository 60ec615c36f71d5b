/* history.c - the last `history_size` events in a ring ordered by stream ID,
 * the current state of each item they published, and the two replays:
 * current state (replay=N) and events after an ID (since=). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/history.h"

struct tk_history {
    tk_event_t **ring;
    int cap;
    int head; /* index of the oldest event */
    int count;
    tk_id_t last_id;
    tk_id_t horizon; /* events up to here may be missing */
    bool has_horizon;
};

#define AT(h, i) ((h)->ring[((h)->head + (i)) % (h)->cap])

static const char *const op_type[] = {"item", "update", "retract"};

tk_history_t *tk_history_create(int capacity)
{
    tk_history_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->ring = calloc((size_t)capacity, sizeof *h->ring);
    if (!h->ring) {
        free(h);
        return NULL;
    }
    h->cap = capacity;
    return h;
}

static void state_drop_msgs(tk_state_t *st)
{
    for (int t = 0; t < TK_TRANSPORTS; t++) {
        tk_msg_unref(st->replay_msg[t]);
        st->replay_msg[t] = NULL;
    }
}

static void event_free(tk_event_t *ev)
{
    if (ev->state) {
        state_drop_msgs(ev->state);
        tk_item_clear(&ev->state->item);
        free(ev->state->keys);
        free(ev->state);
    }
    for (int t = 0; t < TK_TRANSPORTS; t++)
        for (int r = 0; r < 2; r++)
            tk_msg_unref(ev->msg[t][r]);
    free(ev->keys);
    free(ev->json);
    free(ev);
}

static void drop_all(tk_history_t *h)
{
    for (int i = 0; i < h->count; i++)
        event_free(AT(h, i));
    h->count = h->head = 0;
}

void tk_history_free(tk_history_t *h)
{
    if (!h) return;
    drop_all(h);
    free(h->ring);
    free(h);
}

void tk_history_reset(tk_history_t *h, int capacity)
{
    drop_all(h);
    tk_event_t **ring = calloc((size_t)capacity, sizeof *ring);
    if (ring) {
        free(h->ring);
        h->ring = ring;
        h->cap = capacity;
    }
    h->last_id = (tk_id_t){0, 0};
    h->has_horizon = false;
}

void tk_history_set_horizon(tk_history_t *h, tk_id_t id)
{
    if (!h->has_horizon || tk_id_cmp(id, h->horizon) > 0) h->horizon = id;
    h->has_horizon = true;
}

tk_id_t tk_history_last_id(const tk_history_t *h)
{
    return h->last_id;
}

int tk_history_count(const tk_history_t *h)
{
    return h->count;
}

/* The index of the first event with an ID greater than id. */
static int first_after(const tk_history_t *h, tk_id_t id)
{
    int lo = 0, hi = h->count;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (tk_id_cmp(AT(h, mid)->id, id) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The state of the item id (following an update's ref once), or NULL. */
static tk_state_t *find_state(const tk_history_t *h, tk_id_t id)
{
    for (int hop = 0; hop < 2; hop++) {
        int i = first_after(h, id) - 1;
        if (i < 0 || tk_id_cmp(AT(h, i)->id, id) != 0) return NULL;
        tk_event_t *ev = AT(h, i);
        if (ev->op == TK_OP_PUBLISH) return ev->state;
        if (ev->op != TK_OP_UPDATE) return NULL;
        id = ev->ref;
    }
    return NULL;
}

static tk_match_key_t key_of(const tk_item_t *it)
{
    return (tk_match_key_t){it->regions, it->lang, it->priority, it->category};
}

/* A retract of an unknown item routes by the fields it carries. */
static tk_match_key_t retract_key(const tk_item_t *it)
{
    tk_match_key_t k = {0, TK_KEY_ANY_LANG, TK_PRIO_FLASH, TK_KEY_ANY_CATEGORY};
    if (it->has & TK_F_REGION) k.regions = it->regions;
    if (it->has & TK_F_LANG) k.lang = it->lang;
    if (it->has & TK_F_PRIORITY) k.priority = it->priority;
    if (it->has & TK_F_CATEGORY) k.category = it->category;
    return k;
}

static int add_key(tk_match_key_t **keys, int *n, tk_match_key_t k)
{
    for (int i = 0; i < *n; i++)
        if (!memcmp(&(*keys)[i], &k, sizeof k)) return 0;
    tk_match_key_t *grown = realloc(*keys, (size_t)(*n + 1) * sizeof k);
    if (!grown) return -1;
    grown[(*n)++] = k;
    *keys = grown;
    return 0;
}

static int copy_keys(tk_event_t *ev, const tk_match_key_t *keys, int n)
{
    ev->keys = malloc((size_t)n * sizeof *keys);
    if (!ev->keys) return -1;
    memcpy(ev->keys, keys, (size_t)n * sizeof *keys);
    ev->nkeys = n;
    return 0;
}

static int make_publish(tk_event_t *ev, tk_item_t *item)
{
    tk_state_t *st = calloc(1, sizeof *st);
    if (!st) return -1;
    st->item = *item;
    memset(item, 0, sizeof *item);
    ev->state = st;
    ev->expires_ms = st->item.expires_ms;
    if (add_key(&st->keys, &st->nkeys, key_of(&st->item))) return -1;
    ev->json = tk_item_encode("item", ev->id, NULL, &st->item, false, &ev->json_len);
    return ev->json && !copy_keys(ev, st->keys, st->nkeys) ? 0 : -1;
}

static int make_update(tk_event_t *ev, tk_state_t *st, tk_item_t *item)
{
    if (!st) { /* original unknown: route and show it by its own fields */
        ev->expires_ms = item->expires_ms;
        tk_match_key_t k = key_of(item);
        ev->json = tk_item_encode("update", ev->id, &ev->ref, item, false, &ev->json_len);
        return ev->json && !copy_keys(ev, &k, 1) ? 0 : -1;
    }
    if (tk_item_apply_update(&st->item, item)) return -1;
    state_drop_msgs(st);
    if (add_key(&st->keys, &st->nkeys, key_of(&st->item))) return -1;
    ev->expires_ms = st->item.expires_ms;
    ev->json = tk_item_encode("update", ev->id, &ev->ref, &st->item, false, &ev->json_len);
    return ev->json && !copy_keys(ev, st->keys, st->nkeys) ? 0 : -1;
}

static int make_retract(tk_event_t *ev, tk_state_t *st, const tk_item_t *item)
{
    tk_match_key_t k = retract_key(item);
    ev->json = tk_item_encode("retract", ev->id, &ev->ref, NULL, false, &ev->json_len);
    if (!ev->json) return -1;
    if (!st) return copy_keys(ev, &k, 1);
    st->retracted = true;
    state_drop_msgs(st);
    return copy_keys(ev, st->keys, st->nkeys);
}

static void push(tk_history_t *h, tk_event_t *ev)
{
    if (h->count == h->cap) {
        tk_event_t *old = AT(h, 0);
        tk_history_set_horizon(h, old->id);
        event_free(old);
        h->head = (h->head + 1) % h->cap;
        h->count--;
    }
    AT(h, h->count) = ev;
    h->count++;
    h->last_id = ev->id;
}

tk_event_t *tk_history_add(tk_history_t *h, tk_item_t *item, tk_reject_t *rej)
{
    memset(rej, 0, sizeof *rej);
    if (tk_id_cmp(item->id, h->last_id) <= 0) {
        rej->reason = TK_REJECT_OUT_OF_ORDER;
        snprintf(rej->detail, sizeof rej->detail, "not after the last event");
        return NULL;
    }
    tk_state_t *st = item->op == TK_OP_PUBLISH ? NULL : find_state(h, item->ref);
    bool fields = item->has & (TK_F_LANG | TK_F_REGION | TK_F_PRIORITY | TK_F_CATEGORY);
    if (item->op == TK_OP_RETRACT && !st && !fields) {
        rej->reason = TK_REJECT_UNKNOWN_REF;
        snprintf(rej->detail, sizeof rej->detail,
                 "retract of an item not in the history, with no fields to route it by");
        return NULL;
    }
    if (item->op == TK_OP_UPDATE && st && st->retracted) {
        rej->reason = TK_REJECT_RETRACTED_REF;
        snprintf(rej->detail, sizeof rej->detail, "update of a retracted item");
        return NULL;
    }
    tk_event_t *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->id = item->id;
    ev->op = item->op;
    /* A ref may name an update of the item; clients know it by the
     * original's ID. */
    ev->ref = st ? st->item.id : item->ref;
    int rc = item->op == TK_OP_PUBLISH  ? make_publish(ev, item)
             : item->op == TK_OP_UPDATE ? make_update(ev, st, item)
                                        : make_retract(ev, st, item);
    tk_item_clear(item);
    if (rc) {
        event_free(ev);
        rej->reason = TK_REJECT_BAD_ENTRY;
        snprintf(rej->detail, sizeof rej->detail, "out of memory");
        return NULL;
    }
    push(h, ev);
    return ev;
}

int tk_history_current(const tk_history_t *h, const tk_filter_t *f, int n, int64_t now_ms,
                       tk_state_t **out)
{
    int found = 0;
    for (int i = h->count - 1; i >= 0 && found < n; i--) {
        tk_state_t *st = AT(h, i)->state;
        if (!st || st->retracted || st->item.expires_ms <= now_ms) continue;
        tk_match_key_t k = key_of(&st->item);
        if (tk_filter_match(f, &k)) out[found++] = st;
    }
    for (int a = 0, b = found - 1; a < b; a++, b--) {
        tk_state_t *t = out[a];
        out[a] = out[b];
        out[b] = t;
    }
    return found;
}

static bool event_live(const tk_event_t *ev, int64_t now_ms)
{
    int64_t expires = ev->state ? ev->state->item.expires_ms : ev->expires_ms;
    return ev->op == TK_OP_RETRACT || expires > now_ms;
}

int tk_history_since(const tk_history_t *h, tk_id_t since, const tk_filter_t *f, int max,
                     int64_t now_ms, tk_event_t **out, bool *gap)
{
    int start = first_after(h, since), found = 0;
    *gap = h->has_horizon && tk_id_cmp(since, h->horizon) < 0;
    for (int i = h->count - 1; i >= start; i--) {
        tk_event_t *ev = AT(h, i);
        if (!event_live(ev, now_ms) || !tk_filter_match_any(f, ev->keys, ev->nkeys)) continue;
        if (found == max) {
            *gap = true;
            break;
        }
        out[found++] = ev;
    }
    for (int a = 0, b = found - 1; a < b; a++, b--) {
        tk_event_t *t = out[a];
        out[a] = out[b];
        out[b] = t;
    }
    return found;
}

/* ev->json with ,"replay":true spliced in before the closing brace. */
static char *replay_json(const char *json, size_t len, size_t *out_len)
{
    static const char tail[] = ",\"replay\":true}";
    char *s = malloc(len - 1 + sizeof tail);
    if (!s) return NULL;
    memcpy(s, json, len - 1);
    memcpy(s + len - 1, tail, sizeof tail);
    *out_len = len - 1 + sizeof tail - 1;
    return s;
}

tk_msg_t *tk_event_msg(tk_event_t *ev, tk_transport_t t, bool replay)
{
    tk_msg_t **slot = &ev->msg[t][replay];
    if (*slot) return *slot;
    if (!replay) {
        *slot = tk_msg_frame(t, op_type[ev->op], &ev->id, ev->json, ev->json_len);
    } else {
        size_t len;
        char *json = replay_json(ev->json, ev->json_len, &len);
        if (!json) return NULL;
        *slot = tk_msg_frame(t, op_type[ev->op], &ev->id, json, len);
        free(json);
    }
    return *slot;
}

tk_msg_t *tk_state_msg(tk_state_t *st, tk_transport_t t)
{
    if (st->replay_msg[t]) return st->replay_msg[t];
    size_t len;
    char *json = tk_item_encode("item", st->item.id, NULL, &st->item, true, &len);
    if (!json) return NULL;
    st->replay_msg[t] = tk_msg_frame(t, "item", &st->item.id, json, len);
    free(json);
    return st->replay_msg[t];
}
