/* history.c - the event log (a ring of events numbered by sequence, grown
 * while clients lag) and the live store (the current state of each live
 * item: a hash by ID, a list in ID order and a heap by expiry), and the two
 * replays answered from them: current state (replay=N) and events after an
 * ID (since=). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/embargo.h"
#include "tickerd/history.h"

/* What an event is taken to cost a client that lags: its JSON and about a
 * frame header's worth. */
#define EVENT_OVERHEAD 16

struct tk_history {
    /* the log */
    tk_event_t **ring; /* ring[seq & (cap - 1)] */
    uint64_t cap;      /* a power of two */
    uint64_t first, next;
    uint64_t keep; /* the oldest position the hub last said it needs */
    uint64_t bytes_end;
    int history_size;
    tk_id_t last_id;    /* the greatest key logged */
    uint64_t late;      /* late events in the log: keys out of order */
    tk_id_t last_entry; /* the newest stream entry accepted */
    tk_embargo_t *held;
    tk_id_t horizon; /* events up to here may be missing */
    bool has_horizon;
    /* the store */
    tk_state_t **buckets;
    uint32_t nbuckets; /* a power of two */
    tk_state_t *oldest, *newest;
    tk_state_t **heap; /* by item.expires_ms, soonest first */
    uint32_t nlive, heap_cap;
    int max_live;
    uint32_t npinned; /* live items pinned and not retracted */
};

static const char *const op_type[] = {"item", "update", "retract"};

/* --- the store --- */

static uint32_t id_hash(tk_id_t id)
{
    uint64_t x = id.ms * 0x9E3779B97F4A7C15ULL ^ id.seq * 0xC2B2AE3D27D4EB4FULL;
    return (uint32_t)(x >> 32);
}

static tk_state_t **bucket(const tk_history_t *h, tk_id_t id)
{
    return &h->buckets[id_hash(id) & (h->nbuckets - 1)];
}

static tk_state_t *store_get(const tk_history_t *h, tk_id_t id)
{
    for (tk_state_t *st = *bucket(h, id); st; st = st->chain)
        if (tk_id_cmp(st->item.id, id) == 0) return st;
    return NULL;
}

static int store_grow(tk_history_t *h)
{
    uint32_t n = h->nbuckets * 2;
    tk_state_t **b = calloc(n, sizeof *b);
    if (!b) return -1;
    for (tk_state_t *st = h->oldest; st; st = st->newer) {
        tk_state_t **slot = &b[id_hash(st->item.id) & (n - 1)];
        st->chain = *slot;
        *slot = st;
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
    return 0;
}

static bool sooner(const tk_history_t *h, uint32_t a, uint32_t b)
{
    return h->heap[a]->item.expires_ms < h->heap[b]->item.expires_ms;
}

static void heap_swap(tk_history_t *h, uint32_t a, uint32_t b)
{
    tk_state_t *t = h->heap[a];
    h->heap[a] = h->heap[b];
    h->heap[b] = t;
    h->heap[a]->heap_at = a;
    h->heap[b]->heap_at = b;
}

/* Restores heap order around i after its key changed. */
static void heap_fix(tk_history_t *h, uint32_t i)
{
    while (i > 0 && sooner(h, i, (i - 1) / 2)) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->nlive && sooner(h, l, m)) m = l;
        if (r < h->nlive && sooner(h, r, m)) m = r;
        if (m == i) return;
        heap_swap(h, i, m);
        i = m;
    }
}

static void state_drop_msgs(tk_state_t *st)
{
    for (int t = 0; t < TK_TRANSPORTS; t++) {
        tk_msg_unref(st->replay_msg[t]);
        st->replay_msg[t] = NULL;
    }
}

static void state_free(tk_state_t *st)
{
    state_drop_msgs(st);
    tk_item_clear(&st->item);
    free(st->keys);
    free(st);
}

/* Keeps h->npinned: st's pin as it is now counts, was_pinned no more. */
static void count_pin(tk_history_t *h, bool was_pinned, const tk_state_t *st)
{
    bool now = st && st->item.pinned && !st->retracted;
    h->npinned += (uint32_t)now - (uint32_t)was_pinned;
}

static bool pinned(const tk_state_t *st)
{
    return st->item.pinned && !st->retracted;
}

/* Takes st out of the hash, the list and the heap, and frees it. */
static void store_release(tk_history_t *h, tk_state_t *st)
{
    count_pin(h, pinned(st), NULL);
    tk_state_t **p = bucket(h, st->item.id);
    while (*p != st)
        p = &(*p)->chain;
    *p = st->chain;
    if (st->older)
        st->older->newer = st->newer;
    else
        h->oldest = st->newer;
    if (st->newer)
        st->newer->older = st->older;
    else
        h->newest = st->older;
    uint32_t i = st->heap_at, last = --h->nlive;
    if (i != last) {
        heap_swap(h, i, last);
        heap_fix(h, i);
    }
    state_free(st);
}

/* Takes over st; the oldest item makes room when the store is full. */
static int store_put(tk_history_t *h, tk_state_t *st)
{
    if (h->nlive + 1 > h->nbuckets && store_grow(h)) return -1;
    if (h->nlive == h->heap_cap) {
        uint32_t cap = h->heap_cap ? h->heap_cap * 2 : 64;
        tk_state_t **heap = realloc(h->heap, cap * sizeof *heap);
        if (!heap) return -1;
        h->heap = heap;
        h->heap_cap = cap;
    }
    tk_state_t **slot = bucket(h, st->item.id);
    st->chain = *slot;
    *slot = st;
    st->older = h->newest;
    st->newer = NULL;
    if (h->newest)
        h->newest->newer = st;
    else
        h->oldest = st;
    h->newest = st;
    count_pin(h, false, st);
    st->heap_at = h->nlive;
    h->heap[h->nlive++] = st;
    heap_fix(h, st->heap_at);
    while (h->nlive > (uint32_t)h->max_live)
        store_release(h, h->oldest);
    return 0;
}

void tk_history_expire(tk_history_t *h, int64_t now_ms)
{
    while (h->nlive && h->heap[0]->item.expires_ms <= now_ms)
        store_release(h, h->heap[0]);
}

/* --- the log --- */

static uint64_t event_size(const tk_event_t *ev)
{
    return ev->json_len + EVENT_OVERHEAD;
}

static void event_free(tk_event_t *ev)
{
    for (int t = 0; t < TK_TRANSPORTS; t++)
        for (int r = 0; r < 2; r++)
            tk_msg_unref(ev->msg[t][r]);
    free(ev->keys);
    free(ev->json);
    free(ev);
}

tk_event_t *tk_history_at(const tk_history_t *h, uint64_t seq)
{
    return seq >= h->first && seq < h->next ? h->ring[seq & (h->cap - 1)] : NULL;
}

static int log_grow(tk_history_t *h)
{
    uint64_t cap = h->cap * 2;
    tk_event_t **ring = malloc(cap * sizeof *ring);
    if (!ring) return -1;
    for (uint64_t s = h->first; s < h->next; s++)
        ring[s & (cap - 1)] = h->ring[s & (h->cap - 1)];
    free(h->ring);
    h->ring = ring;
    h->cap = cap;
    return 0;
}

static void log_drop_first(tk_history_t *h)
{
    tk_event_t *old = tk_history_at(h, h->first);
    tk_history_set_horizon(h, old->id);
    h->late -= old->late;
    event_free(old);
    h->first++;
}

void tk_history_trim(tk_history_t *h, uint64_t keep)
{
    h->keep = keep;
    while (h->next - h->first > (uint64_t)h->history_size && h->first < keep)
        log_drop_first(h);
}

static int log_push(tk_history_t *h, tk_event_t *ev)
{
    if (h->next - h->first == h->cap && log_grow(h)) return -1;
    ev->seq = h->next;
    h->bytes_end += event_size(ev);
    ev->end = h->bytes_end;
    h->ring[h->next & (h->cap - 1)] = ev;
    h->next++;
    ev->late = tk_id_cmp(ev->id, h->last_id) < 0;
    if (!ev->late) h->last_id = ev->id;
    h->late += ev->late;
    tk_history_trim(h, h->keep);
    return 0;
}

uint64_t tk_history_first_seq(const tk_history_t *h)
{
    return h->first;
}

uint64_t tk_history_next_seq(const tk_history_t *h)
{
    return h->next;
}

uint64_t tk_history_bytes_end(const tk_history_t *h)
{
    return h->bytes_end;
}

uint64_t tk_history_bytes_before(const tk_history_t *h, uint64_t seq)
{
    if (h->first == h->next || seq >= h->next) return h->bytes_end;
    const tk_event_t *ev = tk_history_at(h, seq < h->first ? h->first : seq);
    return ev->end - event_size(ev);
}

uint64_t tk_history_extra_bytes(const tk_history_t *h)
{
    uint64_t n = h->next - h->first;
    if (n <= (uint64_t)h->history_size) return 0;
    return tk_history_bytes_before(h, h->next - (uint64_t)h->history_size) -
           tk_history_bytes_before(h, h->first);
}

/* --- life cycle --- */

tk_history_t *tk_history_create(int history_size, int max_live)
{
    tk_history_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->history_size = history_size > 0 ? history_size : 1;
    h->max_live = max_live > 0 ? max_live : 1;
    h->keep = UINT64_MAX;
    for (h->cap = 16; h->cap < (uint64_t)h->history_size + 1;)
        h->cap *= 2;
    h->nbuckets = 64;
    h->ring = malloc(h->cap * sizeof *h->ring);
    h->buckets = calloc(h->nbuckets, sizeof *h->buckets);
    h->held = tk_embargo_create(TK_EMBARGO_MAX);
    if (!h->ring || !h->buckets || !h->held) {
        tk_history_free(h);
        return NULL;
    }
    return h;
}

static void drop_all(tk_history_t *h)
{
    while (h->first < h->next)
        event_free(h->ring[h->first++ & (h->cap - 1)]);
    h->late = 0;
    while (h->oldest)
        store_release(h, h->oldest);
}

void tk_history_free(tk_history_t *h)
{
    if (!h) return;
    if (h->ring && h->buckets) drop_all(h);
    tk_embargo_free(h->held);
    free(h->ring);
    free(h->buckets);
    free(h->heap);
    free(h);
}

void tk_history_reset(tk_history_t *h)
{
    drop_all(h);
    tk_embargo_clear(h->held);
    h->last_id = h->last_entry = (tk_id_t){0, 0};
    h->has_horizon = false;
}

void tk_history_set_max_live(tk_history_t *h, int max_live)
{
    h->max_live = max_live > 0 ? max_live : 1;
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
    return (int)(h->next - h->first);
}

int tk_history_live_count(const tk_history_t *h)
{
    return (int)h->nlive;
}

/* The sequence of the first event with an ID greater than id. */
static uint64_t first_after(const tk_history_t *h, tk_id_t id)
{
    uint64_t lo = h->first, hi = h->next;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (tk_id_cmp(tk_history_at(h, mid)->id, id) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

tk_state_t *tk_history_find(const tk_history_t *h, tk_id_t id)
{
    tk_state_t *st = store_get(h, id);
    if (st) return st;
    /* An update's ID names the item it corrected. The log is in key order
     * but for late events (embargo.c): with any in it, a search by halves
     * may pass one, so it looks at each. */
    const tk_event_t *ev = NULL;
    if (h->late) {
        for (uint64_t s = h->next; s-- > h->first && !ev;)
            if (!tk_id_cmp(tk_history_at(h, s)->id, id)) ev = tk_history_at(h, s);
    } else {
        uint64_t s = first_after(h, id);
        ev = s > h->first ? tk_history_at(h, s - 1) : NULL;
    }
    if (!ev || tk_id_cmp(ev->id, id) != 0 || ev->op != TK_OP_UPDATE) return NULL;
    return store_get(h, ev->ref);
}

/* --- adding --- */

static tk_match_key_t key_of(const tk_item_t *it)
{
    return (tk_match_key_t){it->regions, it->lang, it->priority, it->category};
}

static bool key_equal(const tk_match_key_t *a, const tk_match_key_t *b)
{
    return a->regions == b->regions && a->lang == b->lang && a->priority == b->priority &&
           a->category == b->category;
}

static int add_key(tk_state_t *st, tk_match_key_t k)
{
    for (int i = 0; i < st->nkeys; i++)
        if (key_equal(&st->keys[i], &k)) return 0;
    tk_match_key_t *grown = realloc(st->keys, (size_t)(st->nkeys + 1) * sizeof k);
    if (!grown) return -1;
    grown[st->nkeys++] = k;
    st->keys = grown;
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

static int make_publish(tk_history_t *h, tk_event_t *ev, tk_item_t *item)
{
    tk_state_t *st = calloc(1, sizeof *st);
    if (!st) return -1;
    st->item = *item;
    memset(item, 0, sizeof *item);
    ev->expires_ms = st->item.expires_ms;
    if (add_key(st, key_of(&st->item)) || copy_keys(ev, st->keys, st->nkeys) ||
        !(ev->json = tk_item_encode_at("item", st->item.id, ev->released ? &ev->id : NULL, NULL,
                                       &st->item, false, &ev->json_len)) ||
        store_put(h, st)) {
        state_free(st);
        return -1;
    }
    return 0;
}

/* Worked out on a copy of the item: an update refused for want of memory
 * leaves the state as it was, as for everyone it was never sent to. */
static int make_update(tk_history_t *h, tk_event_t *ev, tk_state_t *st, tk_item_t *item)
{
    tk_item_t next;
    bool was = pinned(st);
    int nkeys = st->nkeys;
    if (tk_item_copy(&next, &st->item)) return -1;
    if (tk_item_apply_update(&next, item) || add_key(st, key_of(&next)) ||
        !(ev->json = tk_item_encode("update", ev->id, &ev->ref, &next, false, &ev->json_len)) ||
        copy_keys(ev, st->keys, st->nkeys)) {
        st->nkeys = nkeys;
        tk_item_clear(&next);
        return -1;
    }
    tk_item_clear(&st->item);
    st->item = next;
    count_pin(h, was, st);
    state_drop_msgs(st);
    heap_fix(h, st->heap_at); /* a new ttl moves its expiry */
    ev->expires_ms = st->item.expires_ms;
    return 0;
}

static int make_retract(tk_history_t *h, tk_event_t *ev, tk_state_t *st)
{
    /* An item the store does not hold may be on a screen all the same
     * (expired here, or never seen): every client gets it. */
    static const tk_match_key_t everyone = {0, TK_KEY_ANY_LANG, TK_PRIO_FLASH, TK_KEY_ANY_CATEGORY};
    ev->json = tk_item_encode("retract", ev->id, &ev->ref, NULL, false, &ev->json_len);
    if (!ev->json) return -1;
    if (!st) return copy_keys(ev, &everyone, 1);
    if (copy_keys(ev, st->keys, st->nkeys)) return -1;
    bool was = pinned(st);
    st->retracted = true;
    count_pin(h, was, st);
    state_drop_msgs(st);
    return 0;
}

static tk_event_t *refuse(tk_reject_t *rej, tk_reason_t reason, const char *detail)
{
    rej->reason = reason;
    snprintf(rej->detail, sizeof rej->detail, "%s", detail);
    return NULL;
}

/* A new event with room for it in the log: once the store has changed,
 * the event must be logged (or live clients would miss what replays
 * show). */
static tk_event_t *new_event(tk_history_t *h, tk_reject_t *rej)
{
    tk_event_t *ev = calloc(1, sizeof *ev);
    if (!ev || (h->next - h->first == h->cap && log_grow(h))) {
        free(ev);
        return refuse(rej, TK_REJECT_BAD_ENTRY, "out of memory");
    }
    return ev;
}

/* Logs ev, made (rc 0) or not. */
static tk_event_t *commit(tk_history_t *h, tk_event_t *ev, int rc, tk_reject_t *rej)
{
    if (rc || log_push(h, ev)) {
        event_free(ev);
        return refuse(rej, TK_REJECT_BAD_ENTRY, "out of memory");
    }
    return ev;
}

tk_id_t tk_history_release_key(int64_t publish_at_ms, tk_id_t item)
{
    uint64_t order = (item.ms & ((1ULL << 40) - 1)) << 23 | (item.seq & ((1ULL << 23) - 1));
    return (tk_id_t){(uint64_t)publish_at_ms - 1, 1ULL << 63 | order};
}

/* The held item it (taken over) goes live at live_ms; its release is
 * logged under key. */
static tk_event_t *release(tk_history_t *h, tk_item_t *it, tk_id_t key, int64_t live_ms,
                           tk_reject_t *rej)
{
    tk_event_t *ev = new_event(h, rej);
    int rc = -1;
    if (ev) {
        ev->id = key;
        ev->op = TK_OP_PUBLISH;
        ev->released = true;
        ev->ref = it->id;
        it->live_ms = live_ms;
        it->expires_ms = live_ms + (int64_t)it->ttl_s * 1000;
        rc = make_publish(h, ev, it);
    }
    tk_item_clear(it);
    return ev ? commit(h, ev, rc, rej) : NULL;
}

/* Released from a copy: out of memory, the item stays held (and the
 * entry or timer that found it due tries again). */
tk_event_t *tk_history_release(tk_history_t *h, int64_t now_ms)
{
    tk_item_t *due = tk_embargo_due(h->held, now_ms), it;
    tk_reject_t rej;
    if (!due || tk_item_copy(&it, due)) return NULL;
    tk_id_t id = due->id;
    tk_event_t *ev =
        release(h, &it, tk_history_release_key(it.publish_at_ms, id), it.publish_at_ms, &rej);
    if (ev) tk_embargo_cancel(h->held, id);
    return ev;
}

int64_t tk_history_next_release(const tk_history_t *h)
{
    return tk_embargo_next(h->held);
}

int tk_history_held_count(const tk_history_t *h)
{
    return (int)tk_embargo_count(h->held);
}

/* An update of the held item held: applied to it, publish_at re-validated
 * by the parser. A publish_at no later than the update's own time releases
 * it now, at the update's place (its key). */
static tk_event_t *update_held(tk_history_t *h, tk_item_t *held, tk_item_t *upd, tk_reject_t *rej)
{
    tk_item_t next;
    if (tk_item_copy(&next, held) || tk_item_apply_update(&next, upd)) {
        tk_item_clear(&next);
        return refuse(rej, TK_REJECT_BAD_ENTRY, "out of memory");
    }
    if (next.publish_at_ms <= (int64_t)upd->id.ms) {
        tk_id_t id = held->id;
        tk_event_t *ev = release(h, &next, upd->id, (int64_t)upd->id.ms, rej);
        if (ev) tk_embargo_cancel(h->held, id); /* else still held, as it was */
        return ev;
    }
    tk_item_clear(held);
    *held = next;
    tk_embargo_moved(h->held, held);
    return NULL;
}

/* A publish to hold, or a correction of a held item: nothing is logged
 * (but an update may release it). *done is false for any other entry. */
static tk_event_t *add_held(tk_history_t *h, tk_item_t *item, tk_reject_t *rej, bool *done)
{
    tk_item_t *held = NULL;
    *done = true;
    if (item->op == TK_OP_PUBLISH && item->publish_at_ms > (int64_t)item->id.ms) {
        int rc = tk_embargo_hold(h->held, item);
        if (rc == -ENOSPC) return refuse(rej, TK_REJECT_EMBARGO_FULL, "too many items held");
        if (rc) return refuse(rej, TK_REJECT_BAD_ENTRY, "out of memory");
        return NULL;
    }
    if (item->op != TK_OP_PUBLISH && !store_get(h, item->ref))
        held = tk_embargo_find(h->held, item->ref);
    if (!held) {
        *done = false;
        return NULL;
    }
    if (item->op == TK_OP_RETRACT) {
        tk_embargo_cancel(h->held, item->ref);
        return NULL;
    }
    return update_held(h, held, item, rej);
}

tk_event_t *tk_history_add(tk_history_t *h, tk_item_t *item, tk_reject_t *rej)
{
    bool done;
    tk_id_t id = item->id; /* a hold moves the item out */
    memset(rej, 0, sizeof *rej);
    if (tk_id_cmp(item->id, h->last_entry) <= 0)
        return refuse(rej, TK_REJECT_OUT_OF_ORDER, "not after the last event");
    tk_event_t *ev = add_held(h, item, rej, &done);
    if (done) {
        /* hello's last_id covers it: a client resuming from there gets
         * its release, whose key is greater */
        if (!rej->reason) h->last_entry = id;
        if (!rej->reason && tk_id_cmp(id, h->last_id) > 0) h->last_id = id;
        tk_item_clear(item);
        return ev;
    }
    tk_state_t *st = item->op == TK_OP_PUBLISH ? NULL : tk_history_find(h, item->ref);
    if (item->op == TK_OP_UPDATE && !st)
        return refuse(rej, TK_REJECT_UNKNOWN_REF, "update of an item that is not live here");
    if (item->op == TK_OP_UPDATE && st->retracted)
        return refuse(rej, TK_REJECT_RETRACTED_REF, "update of a retracted item");
    if (item->op == TK_OP_UPDATE && item->has & TK_F_PUBLISH_AT)
        return refuse(rej, TK_REJECT_BAD_PUBLISH_AT, "publish_at of an item that is live");
    if (!(ev = new_event(h, rej))) return NULL;
    ev->id = item->id;
    ev->op = item->op;
    /* A ref may name an update of the item; clients know it by the
     * original's ID. */
    ev->ref = st ? st->item.id : item->ref;
    int rc = item->op == TK_OP_PUBLISH  ? make_publish(h, ev, item)
             : item->op == TK_OP_UPDATE ? make_update(h, ev, st, item)
                                        : make_retract(h, ev, st);
    tk_item_clear(item);
    if ((ev = commit(h, ev, rc, rej))) h->last_entry = ev->id;
    return ev;
}

/* --- replays --- */

int tk_history_current(const tk_history_t *h, const tk_filter_t *f, int n, int64_t now_ms,
                       tk_state_t **out)
{
    int found = 0, others = 0, pins = 0;
    uint32_t pins_seen = 0;
    /* Pinned items may be older than the n-th other: the walk goes on
     * until every pinned one has been seen (there are npinned). */
    for (tk_state_t *st = h->newest; st && (others < n || pins_seen < h->npinned); st = st->older) {
        bool pin = pinned(st);
        pins_seen += pin;
        if (st->retracted || st->item.expires_ms <= now_ms) continue;
        if (pin ? pins == TK_PINNED_MAX : others == n) continue;
        tk_match_key_t k = key_of(&st->item);
        if (!tk_filter_match(f, &k)) continue;
        out[found++] = st;
        pin ? pins++ : others++;
    }
    for (int a = 0, b = found - 1; a < b; a++, b--) {
        tk_state_t *t = out[a];
        out[a] = out[b];
        out[b] = t;
    }
    return found;
}

/* Whether since= still sends ev: retracts always, items while live. */
static bool event_live(const tk_history_t *h, const tk_event_t *ev, int64_t now_ms)
{
    if (ev->op == TK_OP_RETRACT) return true;
    const tk_state_t *st =
        store_get(h, ev->op == TK_OP_PUBLISH && !ev->released ? ev->id : ev->ref);
    return (st ? st->item.expires_ms : ev->expires_ms) > now_ms;
}

/* Where since= starts: just after the event keyed since, when the log
 * holds it (*exact), else at the last event (not late) whose key is below
 * since, whatever came after it being weighed by key. Only a late event
 * can sort below one logged before it, so the walk back stops there. */
static uint64_t since_start(const tk_history_t *h, tk_id_t since, bool *exact)
{
    uint64_t s = h->next;
    *exact = false;
    while (s > h->first) {
        const tk_event_t *ev = tk_history_at(h, s - 1);
        int c = tk_id_cmp(ev->id, since);
        if (c == 0) *exact = true;
        if (c == 0 || (c < 0 && !ev->late)) break;
        s--;
    }
    return s;
}

int tk_history_since(const tk_history_t *h, tk_id_t since, const tk_filter_t *f, int max,
                     int64_t now_ms, tk_event_t **out, bool *gap)
{
    bool exact;
    uint64_t start = since_start(h, since, &exact);
    int found = 0;
    *gap = h->has_horizon && tk_id_cmp(since, h->horizon) < 0;
    for (uint64_t s = h->next; s-- > start;) {
        tk_event_t *ev = tk_history_at(h, s);
        if (!exact && tk_id_cmp(ev->id, since) <= 0) continue;
        if (!event_live(h, ev, now_ms) || !tk_filter_match_any(f, ev->keys, ev->nkeys)) continue;
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

int tk_history_after(const tk_history_t *h, tk_id_t since, const tk_filter_t *f, int max,
                     int64_t now_ms, tk_event_t **out, bool *gap, bool *more)
{
    bool exact;
    int found = 0;
    *gap = h->has_horizon && tk_id_cmp(since, h->horizon) < 0;
    *more = false;
    for (uint64_t s = since_start(h, since, &exact); s < h->next; s++) {
        tk_event_t *ev = tk_history_at(h, s);
        if (!exact && tk_id_cmp(ev->id, since) <= 0) continue; /* a late entry */
        if (!event_live(h, ev, now_ms) || !tk_filter_match_any(f, ev->keys, ev->nkeys)) continue;
        if (found == max) {
            *more = true;
            break;
        }
        out[found++] = ev;
    }
    return found;
}

/* --- frames --- */

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
