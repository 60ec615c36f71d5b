/* embargo.c - the held items: a binary min-heap of item pointers by
 * (publish_at, stream ID), so that every node releases items due at the
 * same time in the same order. Lookups by ID (an update or retract of a
 * held item, rare) walk the heap: at most TK_EMBARGO_MAX pointers. */
#include <errno.h>
#include <stdlib.h>

#include "tickerd/embargo.h"

struct tk_embargo {
    tk_item_t **heap; /* each malloc'd, owned here */
    uint32_t n, cap, max;
};

tk_embargo_t *tk_embargo_create(uint32_t cap)
{
    tk_embargo_t *e = calloc(1, sizeof *e);
    if (e) e->max = cap;
    return e;
}

void tk_embargo_clear(tk_embargo_t *e)
{
    for (uint32_t i = 0; i < e->n; i++) {
        tk_item_clear(e->heap[i]);
        free(e->heap[i]);
    }
    e->n = 0;
}

void tk_embargo_free(tk_embargo_t *e)
{
    if (!e) return;
    tk_embargo_clear(e);
    free(e->heap);
    free(e);
}

static bool before(const tk_item_t *a, const tk_item_t *b)
{
    if (a->publish_at_ms != b->publish_at_ms) return a->publish_at_ms < b->publish_at_ms;
    return tk_id_cmp(a->id, b->id) < 0;
}

static void swap(tk_embargo_t *e, uint32_t a, uint32_t b)
{
    tk_item_t *t = e->heap[a];
    e->heap[a] = e->heap[b];
    e->heap[b] = t;
}

/* Restores heap order around i after its key changed. */
static void fix(tk_embargo_t *e, uint32_t i)
{
    while (i > 0 && before(e->heap[i], e->heap[(i - 1) / 2])) {
        swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->n && before(e->heap[l], e->heap[m])) m = l;
        if (r < e->n && before(e->heap[r], e->heap[m])) m = r;
        if (m == i) return;
        swap(e, i, m);
        i = m;
    }
}

int tk_embargo_hold(tk_embargo_t *e, tk_item_t *item)
{
    if (e->n >= e->max) return -ENOSPC;
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 16;
        tk_item_t **heap = realloc(e->heap, cap * sizeof *heap);
        if (!heap) return -ENOMEM;
        e->heap = heap;
        e->cap = cap;
    }
    tk_item_t *held = malloc(sizeof *held);
    if (!held) return -ENOMEM;
    *held = *item;
    *item = (tk_item_t){.category = -1};
    e->heap[e->n++] = held;
    fix(e, e->n - 1);
    return 0;
}

static int64_t find_at(const tk_embargo_t *e, tk_id_t id)
{
    for (uint32_t i = 0; i < e->n; i++)
        if (tk_id_cmp(e->heap[i]->id, id) == 0) return i;
    return -1;
}

tk_item_t *tk_embargo_find(const tk_embargo_t *e, tk_id_t id)
{
    int64_t i = find_at(e, id);
    return i < 0 ? NULL : e->heap[i];
}

void tk_embargo_moved(tk_embargo_t *e, tk_item_t *held)
{
    for (uint32_t i = 0; i < e->n; i++)
        if (e->heap[i] == held) fix(e, i);
}

/* Takes the item at i out of the heap; the caller owns it. */
static tk_item_t *take(tk_embargo_t *e, uint32_t i)
{
    tk_item_t *it = e->heap[i];
    e->heap[i] = e->heap[--e->n];
    if (i < e->n) fix(e, i);
    return it;
}

bool tk_embargo_cancel(tk_embargo_t *e, tk_id_t id)
{
    int64_t i = find_at(e, id);
    if (i < 0) return false;
    tk_item_t *it = take(e, (uint32_t)i);
    tk_item_clear(it);
    free(it);
    return true;
}

int64_t tk_embargo_next(const tk_embargo_t *e)
{
    return e->n ? e->heap[0]->publish_at_ms : INT64_MAX;
}

tk_item_t *tk_embargo_due(const tk_embargo_t *e, int64_t now_ms)
{
    return e->n && e->heap[0]->publish_at_ms <= now_ms ? e->heap[0] : NULL;
}

uint32_t tk_embargo_count(const tk_embargo_t *e)
{
    return e->n;
}
