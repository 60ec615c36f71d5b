/* embargo.h - the items held until their publish_at (SPEC §1), soonest
 * first. Pure: no I/O, no clock. The history owns one; the worker's single
 * timer is armed for tk_embargo_next(). */
#ifndef TICKERD_EMBARGO_H
#define TICKERD_EMBARGO_H

#include <stdbool.h>
#include <stdint.h>

#include "tickerd/item.h"

/* Items held at most, daemon-wide per worker: a publish over it is
 * rejected (embargo_full). */
#define TK_EMBARGO_MAX 10000

typedef struct tk_embargo tk_embargo_t;

/* Holds at most cap items. NULL when out of memory. */
tk_embargo_t *tk_embargo_create(uint32_t cap);
void tk_embargo_free(tk_embargo_t *e);
/* Drops every held item (a new epoch). */
void tk_embargo_clear(tk_embargo_t *e);

/* Holds item until item->publish_at_ms; its strings are moved in (item is
 * left empty). Returns 0, -ENOSPC when cap items are held, -ENOMEM; item
 * is untouched on error. */
int tk_embargo_hold(tk_embargo_t *e, tk_item_t *item);
/* The held item id (by its stream ID), or NULL. Valid until the next
 * change; after changing its publish_at_ms, call tk_embargo_moved(). */
tk_item_t *tk_embargo_find(const tk_embargo_t *e, tk_id_t id);
void tk_embargo_moved(tk_embargo_t *e, tk_item_t *held);
/* Takes the held item id out and frees it (a retract). Returns whether it
 * was held. */
bool tk_embargo_cancel(tk_embargo_t *e, tk_id_t id);

/* The soonest publish_at held, or INT64_MAX when none is. */
int64_t tk_embargo_next(const tk_embargo_t *e);
/* The soonest item due at now_ms (publish_at <= now_ms; ties in ID
 * order), still held (tk_embargo_cancel() drops it once released), or
 * NULL. */
tk_item_t *tk_embargo_due(const tk_embargo_t *e, int64_t now_ms);
uint32_t tk_embargo_count(const tk_embargo_t *e);

#endif
