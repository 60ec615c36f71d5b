/* test_history.c - the bounded history, replay state, since= and the frames
 * built from it (SPEC §2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickerd/config.h"
#include "fixture.h"
#include "tickerd/history.h"
#include "tickerd/item.h"
#include "tickerd/msg.h"

#define T0 1732752000000LL
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})

static tk_id_t id_at(int64_t ms, uint64_t seq)
{
    return (tk_id_t){(uint64_t)ms, seq};
}

static uint64_t region(const char *name)
{
    int i = tk_name_lookup(TK_NAME_REGION, name, strlen(name));
    assert_true(i >= 0);
    return 1ULL << i;
}

static uint32_t lang(const char *name)
{
    int i = tk_name_lookup(TK_NAME_LANG, name, strlen(name));
    assert_true(i >= 0);
    return 1u << i;
}

static int parse(tk_id_t id, const char *const *kv, tk_item_t *it)
{
    tk_field_t f[32];
    tk_reject_t rej;
    size_t n = 0;
    for (; kv[2 * n]; n++)
        f[n] = (tk_field_t){kv[2 * n], strlen(kv[2 * n]), kv[2 * n + 1], strlen(kv[2 * n + 1])};
    return tk_item_parse(cfg, id, f, n, it, &rej);
}

/* Adds a valid entry; the history must accept it. */
static tk_event_t *add(tk_history_t *h, tk_id_t id, const char *const *kv)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(id, kv, &it), 0);
    tk_event_t *ev = tk_history_add(h, &it, &rej);
    assert_non_null(ev);
    assert_int_equal(rej.reason, TK_REJECT_NONE);
    assert_null(it.text); /* moved into the history */
    return ev;
}

/* Adds a valid entry the history must refuse; returns the reason. */
static tk_reason_t refused(tk_history_t *h, tk_id_t id, const char *const *kv)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(id, kv, &it), 0);
    tk_event_t *ev = tk_history_add(h, &it, &rej);
    assert_null(ev);
    assert_true(rej.detail[0] != 0);
    tk_item_clear(&it); /* a refused item stays the caller's */
    return rej.reason;
}

static tk_event_t *publish(tk_history_t *h, int64_t ms, const char *text)
{
    return add(h, id_at(ms, 0), KV("text", text));
}

static void filter_region(tk_filter_t *f, const char *name)
{
    tk_filter_all(f);
    f->regions = region(name);
}

/* --- adding --- */

static void test_publish(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    assert_int_equal(tk_history_count(h), 0);
    assert_true(tk_id_is_zero(tk_history_last_id(h)));
    tk_event_t *ev =
        add(h, id_at(T0, 1), KV("text", "Headline", "region", "mena", "category", "politics"));
    assert_int_equal(ev->op, TK_OP_PUBLISH);
    assert_int_equal(ev->id.ms, T0);
    assert_int_equal(ev->id.seq, 1);
    assert_non_null(tk_history_find(h, ev->id));
    assert_false(tk_history_find(h, ev->id)->retracted);
    assert_string_equal(tk_history_find(h, ev->id)->item.text, "Headline");
    assert_int_equal(ev->expires_ms, T0 + 21600000);
    assert_int_equal(ev->nkeys, 1);
    assert_int_equal(ev->keys[0].regions, region("mena"));
    assert_int_equal(ev->keys[0].priority, TK_PRIO_BREAKING);
    char *want =
        tk_item_encode("item", ev->id, NULL, &tk_history_find(h, ev->id)->item, false, NULL);
    assert_string_equal(ev->json, want);
    assert_int_equal(ev->json_len, strlen(want));
    free(want);
    assert_int_equal(tk_history_count(h), 1);
    assert_int_equal(tk_id_cmp(tk_history_last_id(h), id_at(T0, 1)), 0);
    tk_history_free(h);
}

static void test_out_of_order(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    publish(h, T0 + 5, "a");
    assert_int_equal(refused(h, id_at(T0 + 5, 0), KV("text", "same id")), TK_REJECT_OUT_OF_ORDER);
    assert_int_equal(refused(h, id_at(T0 + 4, 9), KV("text", "older")), TK_REJECT_OUT_OF_ORDER);
    assert_int_equal(refused(h, id_at(T0 + 5, 0), KV("op", "retract", "ref", "1-0")),
                     TK_REJECT_OUT_OF_ORDER);
    assert_int_equal(tk_history_count(h), 1);
    add(h, id_at(T0 + 5, 1), KV("text", "next seq"));
    assert_int_equal(tk_history_count(h), 2);
    tk_history_free(h);
}

static void test_update_applies(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    tk_event_t *pub =
        add(h, id_at(T0, 0), KV("text", "original", "region", "mena", "source", "s", "ttl", "100"));
    tk_event_t *upd =
        add(h, id_at(T0 + 10, 0), KV("op", "update", "ref", "1732752000000-0", "text", "fixed"));
    assert_int_equal(upd->op, TK_OP_UPDATE);
    assert_int_equal(tk_id_cmp(upd->ref, pub->id), 0);
    assert_string_equal(tk_history_find(h, pub->id)->item.text, "fixed");
    assert_string_equal(tk_history_find(h, pub->id)->item.source, "s");
    assert_int_equal(tk_history_find(h, pub->id)->item.regions, region("mena"));
    assert_int_equal(tk_history_find(h, pub->id)->item.expires_ms, T0 + 100000);
    /* The update frame carries the whole corrected item. */
    assert_non_null(strstr(upd->json, "\"type\":\"update\",\"id\":\"1732752000010-0\",\"ref\":"
                                      "\"1732752000000-0\",\"ts\":1732752000000,"));
    assert_non_null(strstr(upd->json, "\"text\":\"fixed\",\"source\":\"s\","));
    assert_non_null(strstr(upd->json, "\"region\":[\"mena\"]"));
    /* The publish event keeps its own frame. */
    assert_non_null(strstr(pub->json, "\"text\":\"original\""));
    tk_history_free(h);
}

static void test_update_of_retracted(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    publish(h, T0, "a");
    add(h, id_at(T0 + 1, 0), KV("op", "retract", "ref", "1732752000000-0"));
    assert_int_equal(
        refused(h, id_at(T0 + 2, 0), KV("op", "update", "ref", "1732752000000-0", "text", "b")),
        TK_REJECT_RETRACTED_REF);
    assert_int_equal(tk_history_count(h), 2);
    tk_history_free(h);
}

static void test_retract_unknown_ref(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    publish(h, T0, "a");
    /* An item never seen here may still be on a screen: every client gets
     * the retract, whatever its filter, and whatever fields it carries. */
    tk_event_t *ev =
        add(h, id_at(T0 + 1, 0), KV("op", "retract", "ref", "1732751000000-0", "region", "mena"));
    assert_int_equal(ev->op, TK_OP_RETRACT);
    assert_int_equal(ev->nkeys, 1);
    assert_string_equal(
        ev->json, "{\"type\":\"retract\",\"id\":\"1732752000001-0\",\"ref\":\"1732751000000-0\"}");
    tk_filter_t f;
    filter_region(&f, "europe");
    f.langs = lang("ar");
    f.min_priority = TK_PRIO_FLASH;
    f.categories = 1u << tk_name_lookup(TK_NAME_CATEGORY, "sports", 6);
    assert_true(tk_filter_match_any(&f, ev->keys, ev->nkeys));
    /* A ref that names a retract is no item either: everyone again. */
    ev = add(h, id_at(T0 + 2, 0), KV("op", "retract", "ref", "1732752000001-0"));
    assert_true(tk_filter_match_any(&f, ev->keys, ev->nkeys));
    tk_history_free(h);
}

static void test_update_unknown_ref(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    assert_int_equal(refused(h, id_at(T0, 0),
                             KV("op", "update", "ref", "1732751000000-0", "text", "late fix",
                                "region", "europe", "lang", "es")),
                     TK_REJECT_UNKNOWN_REF);
    assert_int_equal(tk_history_count(h), 0);
    tk_history_free(h);
}

/* An update or retract reaches every client whose filter matched any
 * version of the item. */
static void test_corrections_carry_every_version(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    tk_event_t *pub = add(h, id_at(T0, 0), KV("text", "t", "region", "mena", "lang", "en"));
    tk_event_t *u1 =
        add(h, id_at(T0 + 1, 0),
            KV("op", "update", "ref", "1732752000000-0", "text", "t2", "region", "europe"));
    tk_event_t *u2 = add(h, id_at(T0 + 2, 0),
                         KV("op", "update", "ref", "1732752000000-0", "text", "t3", "lang", "ar"));
    tk_event_t *same =
        add(h, id_at(T0 + 3, 0), KV("op", "update", "ref", "1732752000000-0", "text", "t4"));
    tk_event_t *ret = add(h, id_at(T0 + 4, 0), KV("op", "retract", "ref", "1732752000000-0"));
    assert_int_equal(pub->nkeys, 1);
    assert_int_equal(u1->nkeys, 2);
    assert_int_equal(u2->nkeys, 3);
    assert_int_equal(same->nkeys, 3); /* an unchanged key is not repeated */
    assert_int_equal(ret->nkeys, 3);
    assert_int_equal(tk_history_find(h, pub->id)->nkeys, 3);
    assert_true(tk_history_find(h, pub->id)->retracted);

    tk_filter_t mena, en_mena, europe_en, asia;
    filter_region(&mena, "mena");
    filter_region(&en_mena, "mena");
    en_mena.langs = lang("en");
    filter_region(&europe_en, "europe");
    europe_en.langs = lang("en");
    filter_region(&asia, "asia");
    /* The corrected item is in europe, yet a mena client gets the update. */
    assert_true(tk_filter_match_any(&mena, u1->keys, u1->nkeys));
    assert_true(tk_filter_match_any(&en_mena, u2->keys, u2->nkeys));
    assert_true(tk_filter_match_any(&europe_en, u2->keys, u2->nkeys));
    assert_true(tk_filter_match_any(&en_mena, ret->keys, ret->nkeys));
    assert_true(tk_filter_match_any(&europe_en, ret->keys, ret->nkeys));
    assert_false(tk_filter_match_any(&asia, ret->keys, ret->nkeys));

    /* since= sends a mena client the whole story, even the updates that
     * moved the item away. */
    tk_event_t *out[8];
    bool gap;
    assert_int_equal(tk_history_since(h, id_at(0, 0), &en_mena, 8, T0, out, &gap), 5);
    assert_false(gap);
    tk_history_free(h);
}

/* A ref naming an update reaches the item it corrected; clients know the
 * item by its original ID, so that is the ref they are sent. */
static void test_ref_to_an_update(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    tk_event_t *pub = publish(h, T0, "a");
    add(h, id_at(T0 + 1, 0), KV("op", "update", "ref", "1732752000000-0", "text", "b"));
    tk_event_t *u2 =
        add(h, id_at(T0 + 2, 0), KV("op", "update", "ref", "1732752000001-0", "text", "c"));
    assert_string_equal(tk_history_find(h, pub->id)->item.text, "c");
    assert_int_equal(tk_id_cmp(u2->ref, pub->id), 0);
    assert_non_null(strstr(u2->json, "\"ref\":\"1732752000000-0\""));
    tk_event_t *r = add(h, id_at(T0 + 3, 0), KV("op", "retract", "ref", "1732752000002-0"));
    assert_true(tk_history_find(h, pub->id)->retracted);
    assert_int_equal(tk_id_cmp(r->ref, pub->id), 0);
    assert_string_equal(
        r->json, "{\"type\":\"retract\",\"id\":\"1732752000003-0\",\"ref\":\"1732752000000-0\"}");
    tk_history_free(h);
}

/* --- current state (replay=N) --- */

static void test_current_newest_oldest_first(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    char text[32];
    for (int i = 1; i <= 5; i++) {
        snprintf(text, sizeof text, "item %d", i);
        publish(h, T0 + i, text);
    }
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *out[10];
    assert_int_equal(tk_history_current(h, &f, 3, T0, out), 3);
    assert_string_equal(out[0]->item.text, "item 3");
    assert_string_equal(out[1]->item.text, "item 4");
    assert_string_equal(out[2]->item.text, "item 5");
    assert_int_equal(tk_history_current(h, &f, 10, T0, out), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i]->item.id.ms, T0 + i + 1);
    assert_int_equal(tk_history_current(h, &f, 0, T0, out), 0);
    tk_history_free(h);
}

static void test_current_filters(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    add(h, id_at(T0 + 1, 0), KV("text", "mena", "region", "mena"));
    add(h, id_at(T0 + 2, 0), KV("text", "europe", "region", "europe"));
    add(h, id_at(T0 + 3, 0), KV("text", "global"));
    add(h, id_at(T0 + 4, 0), KV("text", "both", "region", "europe,mena"));
    add(h, id_at(T0 + 5, 0), KV("text", "ar", "region", "mena", "lang", "ar"));
    add(h, id_at(T0 + 6, 0), KV("text", "normal", "region", "mena", "priority", "normal"));
    tk_filter_t f;
    filter_region(&f, "mena");
    f.langs = lang("en");
    f.min_priority = TK_PRIO_BREAKING;
    tk_state_t *out[10];
    assert_int_equal(tk_history_current(h, &f, 10, T0, out), 3);
    assert_string_equal(out[0]->item.text, "mena");
    assert_string_equal(out[1]->item.text, "global");
    assert_string_equal(out[2]->item.text, "both");
    /* The newest N are the newest N that match. */
    assert_int_equal(tk_history_current(h, &f, 1, T0, out), 1);
    assert_string_equal(out[0]->item.text, "both");
    tk_history_free(h);
}

static void test_current_leaves_out_retracted_and_expired(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    add(h, id_at(T0 + 1000, 0), KV("text", "short", "ttl", "10"));
    add(h, id_at(T0 + 2000, 0), KV("text", "killed"));
    add(h, id_at(T0 + 3000, 0), KV("text", "kept"));
    add(h, id_at(T0 + 4000, 0), KV("op", "retract", "ref", "1732752002000-0"));
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *out[10];
    assert_int_equal(tk_history_current(h, &f, 10, T0 + 5000, out), 2);
    assert_string_equal(out[0]->item.text, "short");
    assert_string_equal(out[1]->item.text, "kept");
    /* Expired at expires_ms exactly. */
    assert_int_equal(tk_history_current(h, &f, 10, T0 + 10999, out), 2);
    assert_int_equal(tk_history_current(h, &f, 10, T0 + 11000, out), 1);
    assert_string_equal(out[0]->item.text, "kept");
    tk_history_free(h);
}

static void test_current_updates_applied(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    publish(h, T0, "other before");
    add(h, id_at(T0 + 1, 0), KV("text", "v0", "region", "mena"));
    publish(h, T0 + 2, "other after");
    char text[32];
    for (int i = 1; i <= 10; i++) {
        snprintf(text, sizeof text, "v%d", i);
        add(h, id_at(T0 + 10 + i, 0), KV("op", "update", "ref", "1732752000001-0", "text", text));
    }
    assert_int_equal(tk_history_count(h), 13);
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *out[20];
    /* Once, at the place of its publish, with the latest text. */
    assert_int_equal(tk_history_current(h, &f, 20, T0, out), 3);
    assert_string_equal(out[0]->item.text, "other before");
    assert_string_equal(out[1]->item.text, "v10");
    assert_int_equal(out[1]->item.id.ms, T0 + 1);
    assert_string_equal(out[2]->item.text, "other after");

    /* Moved out of the region: a mena replay no longer has it. */
    filter_region(&f, "mena");
    assert_int_equal(tk_history_current(h, &f, 20, T0, out), 3);
    add(h, id_at(T0 + 100, 0),
        KV("op", "update", "ref", "1732752000001-0", "text", "moved", "region", "europe"));
    assert_int_equal(tk_history_current(h, &f, 20, T0, out), 2);
    assert_string_equal(out[0]->item.text, "other before");
    assert_string_equal(out[1]->item.text, "other after");

    /* A longer ttl keeps it alive longer. */
    tk_filter_all(&f);
    add(h, id_at(T0 + 200, 0),
        KV("op", "update", "ref", "1732752000001-0", "text", "long", "ttl", "2592000"));
    assert_int_equal(tk_history_current(h, &f, 20, T0 + 21600000 + 10, out), 1);
    assert_string_equal(out[0]->item.text, "long");
    tk_history_free(h);
}

/* --- since= --- */

static void test_since_in_order(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    tk_event_t *a = publish(h, T0 + 1, "a");
    tk_event_t *b = publish(h, T0 + 2, "b");
    tk_event_t *u =
        add(h, id_at(T0 + 3, 0), KV("op", "update", "ref", "1732752000001-0", "text", "a2"));
    tk_event_t *r = add(h, id_at(T0 + 4, 0), KV("op", "retract", "ref", "1732752000002-0"));
    tk_event_t *c = publish(h, T0 + 5, "c");
    tk_filter_t f;
    tk_filter_all(&f);
    tk_event_t *out[10];
    bool gap = true;
    assert_int_equal(tk_history_since(h, a->id, &f, 10, T0, out, &gap), 4);
    assert_false(gap);
    assert_ptr_equal(out[0], b);
    assert_ptr_equal(out[1], u);
    assert_ptr_equal(out[2], r);
    assert_ptr_equal(out[3], c);
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 10, T0, out, &gap), 5);
    assert_ptr_equal(out[0], a);
    assert_false(gap);
    /* An ID between events. */
    assert_int_equal(tk_history_since(h, id_at(T0 + 3, 5), &f, 10, T0, out, &gap), 2);
    assert_ptr_equal(out[0], r);
    assert_int_equal(tk_history_since(h, c->id, &f, 10, T0, out, &gap), 0);
    assert_false(gap);
    /* Filtered. */
    publish(h, T0 + 6, "global");
    add(h, id_at(T0 + 7, 0), KV("text", "eu", "region", "europe"));
    tk_event_t *m = add(h, id_at(T0 + 8, 0), KV("text", "me", "region", "mena"));
    filter_region(&f, "mena");
    assert_int_equal(tk_history_since(h, c->id, &f, 10, T0, out, &gap), 2);
    assert_string_equal(tk_history_find(h, out[0]->id)->item.text, "global");
    assert_ptr_equal(out[1], m);
    tk_history_free(h);
}

static void test_since_gap_before_horizon(void **state)
{
    tk_history_t *h = tk_history_create(3, 10000);
    for (int i = 1; i <= 5; i++)
        publish(h, T0 + i, "x");
    assert_int_equal(tk_history_count(h), 3);
    tk_filter_t f;
    tk_filter_all(&f);
    tk_event_t *out[10];
    bool gap;
    /* Events 1 and 2 were evicted: the horizon is 2. */
    assert_int_equal(tk_history_since(h, id_at(T0 + 1, 0), &f, 10, T0, out, &gap), 3);
    assert_true(gap);
    assert_int_equal(out[0]->id.ms, T0 + 3);
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 10, T0, out, &gap), 3);
    assert_true(gap);
    assert_int_equal(tk_history_since(h, id_at(T0 + 2, 0), &f, 10, T0, out, &gap), 3);
    assert_false(gap);
    assert_int_equal(tk_history_since(h, id_at(T0 + 4, 0), &f, 10, T0, out, &gap), 1);
    assert_false(gap);

    /* A start-up load that did not reach the stream's start. */
    tk_history_t *h2 = tk_history_create(10, 10000);
    tk_history_set_horizon(h2, id_at(T0, 0));
    publish(h2, T0 + 1, "y");
    assert_int_equal(tk_history_since(h2, id_at(T0 - 1, 0), &f, 10, T0, out, &gap), 1);
    assert_true(gap);
    assert_int_equal(tk_history_since(h2, id_at(T0, 0), &f, 10, T0, out, &gap), 1);
    assert_false(gap);
    /* The horizon only moves forward. */
    tk_history_set_horizon(h2, id_at(T0 - 100, 0));
    assert_int_equal(tk_history_since(h2, id_at(T0 - 1, 0), &f, 10, T0, out, &gap), 1);
    assert_true(gap);
    tk_history_free(h2);
    tk_history_free(h);
}

static void test_since_more_than_max(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    for (int i = 1; i <= 5; i++)
        publish(h, T0 + i, "x");
    add(h, id_at(T0 + 6, 0), KV("text", "eu", "region", "europe"));
    tk_filter_t f;
    filter_region(&f, "mena");
    tk_event_t *out[10];
    bool gap;
    /* The newest max, oldest first. */
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 2, T0, out, &gap), 2);
    assert_true(gap);
    assert_int_equal(out[0]->id.ms, T0 + 4);
    assert_int_equal(out[1]->id.ms, T0 + 5);
    /* Exactly max matching is no gap (the non-matching one does not count). */
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 5, T0, out, &gap), 5);
    assert_false(gap);
    assert_int_equal(out[0]->id.ms, T0 + 1);
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 0, T0, out, &gap), 0);
    assert_true(gap);
    tk_history_free(h);
}

static void test_since_skips_expired(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    add(h, id_at(T0, 0), KV("text", "short", "ttl", "1"));
    add(h, id_at(T0 + 1, 0), KV("text", "long"));
    add(h, id_at(T0 + 2, 0), KV("op", "update", "ref", "1732752000000-0", "text", "short2"));
    add(h, id_at(T0 + 3, 0), KV("op", "retract", "ref", "1732752000000-0"));
    tk_filter_t f;
    tk_filter_all(&f);
    tk_event_t *out[10];
    bool gap;
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 10, T0 + 500, out, &gap), 4);
    /* After 1 s the short item and its update are gone; a retract stays. */
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 10, T0 + 1000, out, &gap), 2);
    assert_false(gap);
    assert_int_equal(out[0]->id.ms, T0 + 1);
    assert_int_equal(out[1]->op, TK_OP_RETRACT);
    tk_history_free(h);
}

/* --- eviction and reset --- */

static void test_eviction(void **state)
{
    tk_history_t *h = tk_history_create(4, 10000);
    char text[32];
    for (int i = 1; i <= 1000; i++) {
        snprintf(text, sizeof text, "item %d", i);
        tk_event_t *ev = add(h, id_at(T0 + i, 0),
                             KV("text", text, "source", "s", "url", "https://example.com/x"));
        /* Build and cache frames, so eviction has those to free too. */
        assert_non_null(tk_event_msg(ev, TK_TRANSPORT_WS, false));
        assert_non_null(tk_event_msg(ev, TK_TRANSPORT_SSE, true));
        assert_non_null(tk_state_msg(tk_history_find(h, ev->id), TK_TRANSPORT_WS));
        assert_true(tk_history_count(h) <= 4);
    }
    assert_int_equal(tk_history_count(h), 4);
    assert_int_equal(tk_history_last_id(h).ms, T0 + 1000);
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *cur[10];
    /* The live store is not the event log: replay=N reaches further back. */
    assert_int_equal(tk_history_current(h, &f, 10, T0, cur), 10);
    assert_string_equal(cur[0]->item.text, "item 991");
    assert_int_equal(tk_history_live_count(h), 1000);
    tk_event_t *out[10];
    bool gap;
    assert_int_equal(tk_history_since(h, id_at(T0 + 995, 0), &f, 10, T0, out, &gap), 4);
    assert_true(gap);
    assert_int_equal(tk_history_since(h, id_at(T0 + 996, 0), &f, 10, T0, out, &gap), 4);
    assert_false(gap);

    /* Out of the event log, item 1 is still live: a correction finds it
     * and keeps the fields it does not carry. */
    tk_event_t *u =
        add(h, id_at(T0 + 2001, 0), KV("op", "update", "ref", "1732752000001-0", "text", "u"));
    assert_non_null(strstr(u->json, "\"text\":\"u\""));
    assert_non_null(strstr(u->json, "\"source\":\"s\""));
    /* A message a client still holds outlives the eviction of its event. */
    tk_msg_t *held = tk_msg_ref(tk_event_msg(u, TK_TRANSPORT_WS, false));
    for (int i = 1; i <= 4; i++)
        publish(h, T0 + 3000 + i, "push out");
    assert_int_equal(held->refs, 1);
    assert_int_equal(held->data[0], 0x81);
    tk_msg_unref(held);
    tk_history_free(h);
}

static void test_reset(void **state)
{
    tk_history_t *h = tk_history_create(5, 10000);
    for (int i = 1; i <= 3; i++)
        publish(h, T0 + i, "x");
    uint64_t next = tk_history_next_seq(h);
    tk_history_reset(h);
    assert_int_equal(tk_history_count(h), 0);
    assert_int_equal(tk_history_live_count(h), 0);
    assert_int_equal(tk_history_next_seq(h), next); /* positions go on */
    assert_true(tk_id_is_zero(tk_history_last_id(h)));
    /* Old IDs mean nothing in a new epoch: a smaller one is accepted. */
    for (int i = 1; i <= 5; i++)
        publish(h, 100 + i, "y");
    assert_int_equal(tk_history_count(h), 5);
    tk_filter_t f;
    tk_filter_all(&f);
    tk_event_t *out[10];
    bool gap;
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 10, 0, out, &gap), 5);
    assert_false(gap);
    tk_history_free(h);
    tk_history_free(NULL);
}

/* --- the live store and the log as a queue --- */

/* A retract or a text-only update of an item far older than the event log
 * is routed by the original's fields and keeps them. */
static void test_correction_of_an_old_item(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    tk_event_t *pub = add(h, id_at(T0, 0),
                          KV("text", "old", "region", "palestine", "lang", "ar", "category",
                             "politics", "priority", "urgent"));
    tk_id_t orig = pub->id;
    for (int i = 1; i <= 5000; i++)
        add(h, id_at(T0 + i, 0), KV("text", "other", "region", "europe", "lang", "es"));
    assert_int_equal(tk_history_count(h), 10);
    tk_event_t *u = add(h, id_at(T0 + 6000, 0),
                        KV("op", "update", "ref", "1732752000000-0", "text", "corrected"));
    assert_int_equal(tk_id_cmp(u->ref, orig), 0);
    assert_non_null(strstr(u->json, "\"lang\":\"ar\""));
    assert_non_null(strstr(u->json, "\"region\":[\"palestine\"]"));
    assert_non_null(strstr(u->json, "\"priority\":\"urgent\""));
    assert_non_null(strstr(u->json, "\"category\":\"politics\""));
    tk_filter_t pal, eu;
    filter_region(&pal, "palestine");
    filter_region(&eu, "europe");
    eu.langs = lang("es");
    assert_true(tk_filter_match_any(&pal, u->keys, u->nkeys));
    assert_false(tk_filter_match_any(&eu, u->keys, u->nkeys));
    tk_event_t *r = add(h, id_at(T0 + 6001, 0), KV("op", "retract", "ref", "1732752000000-0"));
    assert_true(tk_filter_match_any(&pal, r->keys, r->nkeys));
    assert_false(tk_filter_match_any(&eu, r->keys, r->nkeys));
    assert_true(tk_history_find(h, orig)->retracted);
    tk_history_free(h);
}

/* max_live_items bounds the store: the oldest item goes first. */
static void test_live_bound(void **state)
{
    tk_history_t *h = tk_history_create(100, 5);
    for (int i = 1; i <= 8; i++)
        publish(h, T0 + i, "x");
    assert_int_equal(tk_history_live_count(h), 5);
    assert_null(tk_history_find(h, id_at(T0 + 3, 0)));
    assert_non_null(tk_history_find(h, id_at(T0 + 4, 0)));
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *cur[10];
    assert_int_equal(tk_history_current(h, &f, 10, T0, cur), 5);
    assert_int_equal(cur[0]->item.id.ms, T0 + 4);
    /* Now unknown: an update is refused, a retract goes to everyone. */
    assert_int_equal(
        refused(h, id_at(T0 + 9, 0), KV("op", "update", "ref", "1732752000001-0", "text", "late")),
        TK_REJECT_UNKNOWN_REF);
    tk_event_t *r = add(h, id_at(T0 + 10, 0), KV("op", "retract", "ref", "1732752000001-0"));
    filter_region(&f, "asia");
    assert_true(tk_filter_match_any(&f, r->keys, r->nkeys));
    /* One under the bound, at it, over it. */
    tk_history_set_max_live(h, 6);
    publish(h, T0 + 11, "y");
    assert_int_equal(tk_history_live_count(h), 6);
    publish(h, T0 + 12, "y");
    assert_int_equal(tk_history_live_count(h), 6);
    tk_history_free(h);
}

/* Items are released at their expiry, soonest first, whatever their order. */
static void test_expiry_releases(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    add(h, id_at(T0 + 1, 0), KV("text", "a", "ttl", "30"));
    add(h, id_at(T0 + 2, 0), KV("text", "b", "ttl", "10"));
    add(h, id_at(T0 + 3, 0), KV("text", "c", "ttl", "20"));
    tk_history_expire(h, T0 + 2 + 10000 - 1);
    assert_int_equal(tk_history_live_count(h), 3);
    tk_history_expire(h, T0 + 2 + 10000);
    assert_int_equal(tk_history_live_count(h), 2);
    assert_null(tk_history_find(h, id_at(T0 + 2, 0)));
    /* An update that lengthens the ttl moves the expiry. */
    add(h, id_at(T0 + 4, 0),
        KV("op", "update", "ref", "1732752000003-0", "text", "c2", "ttl", "100"));
    tk_history_expire(h, T0 + 1 + 30000);
    assert_int_equal(tk_history_live_count(h), 1);
    assert_non_null(tk_history_find(h, id_at(T0 + 3, 0)));
    tk_history_expire(h, T0 + 4 + 100000);
    assert_int_equal(tk_history_live_count(h), 0);
    tk_history_free(h);
}

/* The log keeps what a lagging position needs, then trims to history_size. */
static void test_log_keeps_what_is_needed(void **state)
{
    tk_history_t *h = tk_history_create(3, 100);
    publish(h, T0 + 1, "a");
    uint64_t lagging = tk_history_next_seq(h);
    tk_history_trim(h, lagging);
    for (int i = 2; i <= 20; i++)
        publish(h, T0 + i, "b");
    assert_int_equal(tk_history_first_seq(h), lagging);
    assert_int_equal(tk_history_count(h), 19);
    tk_event_t *ev = tk_history_at(h, lagging);
    assert_int_equal(ev->id.ms, T0 + 2);
    uint64_t behind = tk_history_bytes_end(h) - tk_history_bytes_before(h, lagging);
    assert_true(behind >= 19 * ev->json_len);
    assert_true(tk_history_extra_bytes(h) > 0);
    assert_null(tk_history_at(h, tk_history_next_seq(h)));
    tk_history_trim(h, UINT64_MAX);
    assert_int_equal(tk_history_count(h), 3);
    assert_int_equal(tk_history_extra_bytes(h), 0);
    assert_null(tk_history_at(h, lagging));
    /* since= from before what was trimmed is a gap. */
    tk_filter_t f;
    tk_filter_all(&f);
    tk_event_t *out[10];
    bool gap;
    assert_int_equal(tk_history_since(h, id_at(T0 + 1, 0), &f, 10, T0, out, &gap), 3);
    assert_true(gap);
    tk_history_free(h);
}

/* --- frames --- */

static void test_msg_frame_ws_lengths(void **state)
{
    static const size_t lens[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000};
    char *json = malloc(70000);
    assert_non_null(json);
    memset(json, 'j', 70000);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        size_t n = lens[i];
        tk_msg_t *m = tk_msg_frame(TK_TRANSPORT_WS, "item", NULL, json, n);
        assert_non_null(m);
        assert_int_equal(m->refs, 1);
        assert_int_equal(m->data[0], 0x81); /* FIN, text */
        size_t hl;
        if (n < 126) {
            hl = 2;
            assert_int_equal(m->data[1], n); /* no mask bit */
        } else if (n < 65536) {
            hl = 4;
            assert_int_equal(m->data[1], 126);
            assert_int_equal(m->data[2], n >> 8);
            assert_int_equal(m->data[3], n & 0xff);
        } else {
            hl = 10;
            assert_int_equal(m->data[1], 127);
            uint64_t got = 0;
            for (int k = 0; k < 8; k++)
                got = got << 8 | m->data[2 + k];
            assert_int_equal(got, n);
        }
        assert_int_equal(m->len, hl + n);
        if (n) assert_memory_equal(m->data + hl, json, n);
        assert_true(m->data - m->buf >= (ptrdiff_t)tk_msg_pre);
        tk_msg_unref(m);
    }
    free(json);
    tk_msg_t *raw = tk_msg_raw(": ping\n\n", 8);
    assert_int_equal(raw->len, 8);
    assert_memory_equal(raw->data, ": ping\n\n", 8);
    tk_msg_unref(tk_msg_ref(raw));
    assert_int_equal(raw->refs, 1);
    tk_msg_unref(raw);
    tk_msg_unref(NULL);
}

static void test_event_msg_framing(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    publish(h, T0, "short");
    tk_event_t *r = add(h, id_at(T0 + 1, 2), KV("op", "retract", "ref", "1732752000000-0"));
    static const char json[] =
        "{\"type\":\"retract\",\"id\":\"1732752000001-2\",\"ref\":\"1732752000000-0\"}";
    static const char json_replay[] = "{\"type\":\"retract\",\"id\":\"1732752000001-2\",\"ref\":"
                                      "\"1732752000000-0\",\"replay\":true}";
    size_t n = sizeof json - 1, nr = sizeof json_replay - 1;

    tk_msg_t *m = tk_event_msg(r, TK_TRANSPORT_WS, false);
    assert_non_null(m);
    assert_int_equal(m->len, n + 2);
    assert_int_equal(m->data[0], 0x81);
    assert_int_equal(m->data[1], n);
    assert_memory_equal(m->data + 2, json, n);
    /* Built once, then shared; the history keeps its reference. */
    assert_ptr_equal(tk_event_msg(r, TK_TRANSPORT_WS, false), m);
    assert_int_equal(m->refs, 1);

    m = tk_event_msg(r, TK_TRANSPORT_WS, true);
    assert_int_equal(m->len, nr + 2);
    assert_int_equal(m->data[1], nr);
    assert_memory_equal(m->data + 2, json_replay, nr);

    char want[256];
    int wl = snprintf(want, sizeof want, "id: 1732752000001-2\nevent: retract\ndata: %s\n\n", json);
    m = tk_event_msg(r, TK_TRANSPORT_SSE, false);
    assert_int_equal(m->len, wl);
    assert_memory_equal(m->data, want, wl);
    wl = snprintf(want, sizeof want, "id: 1732752000001-2\nevent: retract\ndata: %s\n\n",
                  json_replay);
    m = tk_event_msg(r, TK_TRANSPORT_SSE, true);
    assert_int_equal(m->len, wl);
    assert_memory_equal(m->data, want, wl);

    /* Without an ID there is no id: line. */
    m = tk_msg_frame(TK_TRANSPORT_SSE, "replay", NULL, "{}", 2);
    assert_int_equal(m->len, strlen("event: replay\ndata: {}\n\n"));
    assert_memory_equal(m->data, "event: replay\ndata: {}\n\n", m->len);
    tk_msg_unref(m);
    tk_history_free(h);
}

static void test_event_msg_long_item(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    char text[1001];
    memset(text, 'w', 1000);
    text[1000] = 0;
    tk_event_t *ev = add(h, id_at(T0, 0), KV("text", text));
    assert_true(ev->json_len >= 126 && ev->json_len < 65536);
    tk_msg_t *m = tk_event_msg(ev, TK_TRANSPORT_WS, false);
    assert_int_equal(m->len, ev->json_len + 4);
    assert_int_equal(m->data[0], 0x81);
    assert_int_equal(m->data[1], 126);
    assert_int_equal((size_t)m->data[2] << 8 | m->data[3], ev->json_len);
    assert_memory_equal(m->data + 4, ev->json, ev->json_len);
    /* The replay frame is the same JSON with "replay":true at the end. */
    m = tk_event_msg(ev, TK_TRANSPORT_WS, true);
    size_t rl = ev->json_len + strlen(",\"replay\":true");
    assert_int_equal(m->len, rl + 4);
    assert_int_equal((size_t)m->data[2] << 8 | m->data[3], rl);
    assert_memory_equal(m->data + 4, ev->json, ev->json_len - 1);
    assert_memory_equal(m->data + 4 + ev->json_len - 1, ",\"replay\":true}", 15);
    tk_history_free(h);
}

static void test_state_msg(void **state)
{
    tk_history_t *h = tk_history_create(10, 10000);
    tk_event_t *pub = add(h, id_at(T0, 0), KV("text", "before", "region", "mena"));
    tk_state_t *st = tk_history_find(h, pub->id);
    tk_msg_t *m = tk_state_msg(st, TK_TRANSPORT_SSE);
    assert_ptr_equal(tk_state_msg(st, TK_TRANSPORT_SSE), m);
    char *json = tk_item_encode("item", pub->id, NULL, &st->item, true, NULL);
    char want[512];
    int wl = snprintf(want, sizeof want, "id: 1732752000000-0\nevent: item\ndata: %s\n\n", json);
    free(json);
    assert_int_equal(m->len, wl);
    assert_memory_equal(m->data, want, wl);
    assert_non_null(memmem(m->data, m->len, "\"replay\":true}", 14));

    /* A client may still hold the old frame when an update arrives. */
    tk_msg_t *held = tk_msg_ref(m);
    add(h, id_at(T0 + 1, 0), KV("op", "update", "ref", "1732752000000-0", "text", "after"));
    tk_msg_t *m2 = tk_state_msg(st, TK_TRANSPORT_WS);
    assert_non_null(memmem(m2->data, m2->len, "\"text\":\"after\"", 14));
    assert_non_null(
        memmem(m2->data, m2->len, "{\"type\":\"item\",\"id\":\"1732752000000-0\",", 38));
    m2 = tk_state_msg(st, TK_TRANSPORT_SSE);
    assert_non_null(memmem(m2->data, m2->len, "\"text\":\"after\"", 14));
    assert_null(memmem(held->data, held->len, "\"text\":\"after\"", 14));
    assert_int_equal(held->refs, 1);
    tk_msg_unref(held);
    tk_history_free(h);
}

/* Pins (SPEC §1): the current state carries the matching pinned items on
 * top of the n newest others, however old; an unpin, a retract or an
 * expiry takes an item out of the pinned; at most TK_PINNED_MAX. */
static void test_current_keeps_pinned_items(void **state)
{
    tk_history_t *h = tk_history_create(100, 10000);
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *out[64 + TK_PINNED_MAX];
    add(h, id_at(T0 + 1, 0), KV("text", "old pinned", "pin", "1", "region", "mena"));
    add(h, id_at(T0 + 2, 0), KV("text", "short pinned", "pin", "1", "ttl", "5"));
    for (int i = 3; i <= 30; i++)
        publish(h, T0 + i, "other");
    assert_int_equal(tk_history_current(h, &f, 3, T0, out), 5);
    assert_string_equal(out[0]->item.text, "old pinned"); /* oldest first */
    assert_true(out[0]->item.pinned && out[1]->item.pinned && !out[2]->item.pinned);
    assert_int_equal(out[4]->item.id.ms, T0 + 30);
    /* n = 0: the pinned alone */
    assert_int_equal(tk_history_current(h, &f, 0, T0, out), 2);
    /* a filter applies to pinned items too (a global item matches all) */
    tk_filter_t europe = f;
    europe.regions = region("europe");
    assert_int_equal(tk_history_current(h, &europe, 0, T0, out), 1);
    assert_string_equal(out[0]->item.text, "short pinned");
    /* expiry: the 5 s one is gone after 5 s */
    assert_int_equal(tk_history_current(h, &f, 0, T0 + 2 + 5000, out), 1);
    /* unpin by an update carrying only pin 0: no text needed */
    add(h, id_at(T0 + 31, 0), KV("op", "update", "ref", "1732752000001-0", "pin", "0"));
    assert_int_equal(tk_history_current(h, &f, 0, T0, out), 1);
    assert_string_equal(out[0]->item.text, "short pinned");
    tk_state_t *st = tk_history_find(h, id_at(T0 + 1, 0));
    assert_false(st->item.pinned);
    assert_string_equal(st->item.text, "old pinned"); /* the rest kept */
    /* a retract unpins */
    add(h, id_at(T0 + 32, 0), KV("op", "retract", "ref", "1732752000002-0"));
    assert_int_equal(tk_history_current(h, &f, 0, T0, out), 0);
    /* at most TK_PINNED_MAX, the newest */
    for (int i = 0; i < TK_PINNED_MAX + 3; i++)
        add(h, id_at(T0 + 100 + i, 0), KV("text", "many", "pin", "1"));
    assert_int_equal(tk_history_current(h, &f, 2, T0, out), TK_PINNED_MAX + 2);
    assert_int_equal(out[0]->item.id.ms, T0 + 29);
    assert_int_equal(out[2]->item.id.ms, T0 + 100 + 3);
    tk_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_update_applies),
        cmocka_unit_test(test_update_of_retracted),
        cmocka_unit_test(test_retract_unknown_ref),
        cmocka_unit_test(test_update_unknown_ref),
        cmocka_unit_test(test_corrections_carry_every_version),
        cmocka_unit_test(test_ref_to_an_update),
        cmocka_unit_test(test_current_newest_oldest_first),
        cmocka_unit_test(test_current_filters),
        cmocka_unit_test(test_current_leaves_out_retracted_and_expired),
        cmocka_unit_test(test_current_updates_applied),
        cmocka_unit_test(test_current_keeps_pinned_items),
        cmocka_unit_test(test_since_in_order),
        cmocka_unit_test(test_since_gap_before_horizon),
        cmocka_unit_test(test_since_more_than_max),
        cmocka_unit_test(test_since_skips_expired),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_msg_frame_ws_lengths),
        cmocka_unit_test(test_event_msg_framing),
        cmocka_unit_test(test_event_msg_long_item),
        cmocka_unit_test(test_state_msg),
        cmocka_unit_test(test_correction_of_an_old_item),
        cmocka_unit_test(test_live_bound),
        cmocka_unit_test(test_expiry_releases),
        cmocka_unit_test(test_log_keeps_what_is_needed),
    };
    return cmocka_run_group_tests_name("history", tests, setup, teardown);
}
