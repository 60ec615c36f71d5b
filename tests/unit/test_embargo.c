/* test_embargo.c - publish_at (SPEC §1): parsing and its limits at their
 * edges, the held items (embargo.c), and their release into the history:
 * invisible until then, corrected or cancelled while held, released in
 * (publish_at, ID) order under a key that since= resumes from. */
#include <errno.h>
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
#include "inject.h"
#include "tickerd/embargo.h"
#include "tickerd/history.h"
#include "tickerd/item.h"

#define T0 1796148000000LL /* 2026-12-01T18:00:00Z */
#define DAY_MS (24LL * 3600 * 1000)
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})

static tk_id_t id_at(int64_t ms, uint64_t seq)
{
    return (tk_id_t){(uint64_t)ms, seq};
}

static int parse(tk_id_t id, const char *const *kv, tk_item_t *it, tk_reject_t *rej)
{
    tk_field_t f[32];
    size_t n = 0;
    for (; kv[2 * n]; n++)
        f[n] = (tk_field_t){kv[2 * n], strlen(kv[2 * n]), kv[2 * n + 1], strlen(kv[2 * n + 1])};
    return tk_item_parse(cfg, id, f, n, it, rej);
}

/* The reason an entry at id with publish_at = at (epoch ms) gets. */
static tk_reason_t verdict(tk_id_t id, int64_t at)
{
    char v[32];
    tk_item_t it;
    tk_reject_t rej;
    snprintf(v, sizeof v, "%lld", (long long)at);
    int rc = parse(id, KV("text", "x", "publish_at", v), &it, &rej);
    if (rc == 0) {
        assert_int_equal(it.publish_at_ms, at);
        tk_item_clear(&it);
        return TK_REJECT_NONE;
    }
    return rej.reason;
}

static int64_t iso(const char *s)
{
    int64_t ms = -1;
    if (tk_publish_at_parse(s, strlen(s), &ms)) return -1;
    return ms;
}

/* --- parsing --- */

static void test_limits_at_their_edges(void **state)
{
    tk_id_t id = id_at(T0, 3);
    assert_int_equal(verdict(id, T0 - 60000), TK_REJECT_NONE);
    assert_int_equal(verdict(id, T0 - 59999), TK_REJECT_NONE);
    assert_int_equal(verdict(id, T0 - 60001), TK_REJECT_BAD_PUBLISH_AT);
    assert_int_equal(verdict(id, T0 + 7 * DAY_MS - 1), TK_REJECT_NONE);
    assert_int_equal(verdict(id, T0 + 7 * DAY_MS), TK_REJECT_NONE);
    assert_int_equal(verdict(id, T0 + 7 * DAY_MS + 1), TK_REJECT_BAD_PUBLISH_AT);
    assert_int_equal(verdict(id, T0), TK_REJECT_NONE);
    assert_int_equal(verdict(id, 0), TK_REJECT_BAD_PUBLISH_AT);
}

static void test_iso_forms(void **state)
{
    assert_int_equal(iso("2026-12-01T18:00:00Z"), T0);
    assert_int_equal(iso("2026-12-01T18:00:00.5Z"), T0 + 500);
    assert_int_equal(iso("2026-12-01T18:00:00.05Z"), T0 + 50);
    assert_int_equal(iso("2026-12-01T18:00:00.123Z"), T0 + 123);
    assert_int_equal(iso("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(iso("2028-02-29T00:00:00Z"), 1835395200000LL); /* leap day */
    assert_int_equal(iso("2026-12-31T23:59:59.999Z"), 1798761599999LL);
    assert_int_equal(iso("1796148000000"), T0); /* epoch ms */
    const char *bad[] = {
        "2026-12-01T18:00:00",       /* no zone */
        "2026-12-01T18:00:00+00:00", /* UTC only as Z */
        "2026-12-01t18:00:00z",
        "2026-12-01 18:00:00Z",
        "2026-12-01T18:00Z",
        "2026-12-01T18:00:00.Z",
        "2026-12-01T18:00:00.1234Z",
        "2026-13-01T18:00:00Z",
        "2026-00-01T18:00:00Z",
        "2026-02-29T18:00:00Z",
        "2026-12-32T18:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T18:60:00Z",
        "2026-12-01T18:00:60Z",
        "2026-1-01T18:00:00Z",
        "+026-12-01T18:00:00Z",
        "2026-12-01T18:0a:00Z",
        "1969-12-31T23:59:59Z",
        "",
        "-1",
        "1.5e12",
        "0x1",
        "1796148000000000000",
        "T",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tk_item_t it;
        tk_reject_t rej;
        if (iso(bad[i]) != -1) fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(parse(id_at(T0, 0), KV("text", "x", "publish_at", bad[i]), &it, &rej), -1);
        assert_int_equal(rej.reason, TK_REJECT_BAD_PUBLISH_AT);
    }
}

static void test_ms_iso_and_json_agree(void **state)
{
    const char *forms[][2] = {
        {"publish_at", "2026-12-01T18:10:00.250Z"},
        {"publish_at", "1796148600250"},
        {"json", "{\"text\":\"x\",\"publish_at\":1796148600250}"},
        {"json", "{\"text\":\"x\",\"publish_at\":\"2026-12-01T18:10:00.250Z\"}"},
    };
    for (size_t i = 0; i < 4; i++) {
        tk_item_t it;
        tk_reject_t rej;
        int rc = forms[i][0][0] == 'j'
                     ? parse(id_at(T0, 0), KV("json", forms[i][1]), &it, &rej)
                     : parse(id_at(T0, 0), KV("text", "x", forms[i][0], forms[i][1]), &it, &rej);
        assert_int_equal(rc, 0);
        assert_true(it.has & TK_F_PUBLISH_AT);
        assert_int_equal(it.publish_at_ms, T0 + 600250);
        tk_item_clear(&it);
    }
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(
        parse(id_at(T0, 0), KV("json", "{\"text\":\"x\",\"publish_at\":true}"), &it, &rej), -1);
    assert_int_equal(rej.reason, TK_REJECT_BAD_JSON);
    /* a retract takes none; a twice-given one is a duplicate */
    assert_int_equal(parse(id_at(T0, 1),
                           KV("op", "retract", "ref", "1-0", "publish_at", "1796148000000"), &it,
                           &rej),
                     -1);
    assert_int_equal(rej.reason, TK_REJECT_BAD_PUBLISH_AT);
    assert_int_equal(
        parse(id_at(T0, 1),
              KV("text", "x", "publish_at", "1796148000000", "publish_at", "1796148000000"), &it,
              &rej),
        -1);
    assert_int_equal(rej.reason, TK_REJECT_DUPLICATE_FIELD);
    assert_string_equal(tk_reason_names[TK_REJECT_BAD_PUBLISH_AT], "bad_publish_at");
    assert_string_equal(tk_reason_names[TK_REJECT_EMBARGO_FULL], "embargo_full");
}

/* --- the held items --- */

static tk_item_t held_item(int64_t at, tk_id_t id)
{
    tk_item_t it = {.id = id, .category = -1, .publish_at_ms = at};
    it.text = strdup("held");
    return it;
}

static void test_heap_order_and_cap(void **state)
{
    tk_embargo_t *e = tk_embargo_create(4);
    int64_t ats[] = {T0 + 30, T0 + 10, T0 + 30, T0 + 20};
    for (int i = 0; i < 4; i++) {
        tk_item_t it = held_item(ats[i], id_at(T0 - 100 + i, 0));
        assert_int_equal(tk_embargo_hold(e, &it), 0);
        assert_null(it.text);
    }
    assert_int_equal(tk_embargo_count(e), 4); /* at the cap */
    tk_item_t over = held_item(T0 + 5, id_at(T0, 9));
    assert_int_equal(tk_embargo_hold(e, &over), -ENOSPC); /* one over */
    assert_non_null(over.text);                           /* still the caller's */
    tk_item_clear(&over);
    assert_int_equal(tk_embargo_next(e), T0 + 10);
    tk_item_t *due;
    assert_null(tk_embargo_due(e, T0 + 9));
    assert_non_null(due = tk_embargo_due(e, T0 + 30));
    assert_int_equal(due->publish_at_ms, T0 + 10);
    assert_true(tk_embargo_cancel(e, due->id));
    /* one under the cap again: room for one */
    tk_item_t again = held_item(T0 + 25, id_at(T0, 10));
    assert_int_equal(tk_embargo_hold(e, &again), 0);
    int64_t want[] = {T0 + 20, T0 + 25, T0 + 30, T0 + 30};
    uint64_t want_ms[] = {T0 - 97, T0, T0 - 100, T0 - 98}; /* ties in ID order */
    for (int i = 0; i < 4; i++) {
        assert_non_null(due = tk_embargo_due(e, T0 + 30));
        assert_int_equal(due->publish_at_ms, want[i]);
        assert_int_equal(due->id.ms, want_ms[i]);
        assert_true(tk_embargo_cancel(e, due->id));
    }
    assert_int_equal(tk_embargo_next(e), INT64_MAX);
    tk_embargo_free(e);
}

static void test_find_move_cancel(void **state)
{
    tk_embargo_t *e = tk_embargo_create(8);
    for (int i = 0; i < 5; i++) {
        tk_item_t it = held_item(T0 + 10 * (i + 1), id_at(T0 - 100, (uint64_t)i));
        assert_int_equal(tk_embargo_hold(e, &it), 0);
    }
    tk_item_t *it = tk_embargo_find(e, id_at(T0 - 100, 3));
    assert_non_null(it);
    it->publish_at_ms = T0 + 1; /* moved first */
    tk_embargo_moved(e, it);
    assert_int_equal(tk_embargo_next(e), T0 + 1);
    assert_true(tk_embargo_cancel(e, id_at(T0 - 100, 3)));
    assert_false(tk_embargo_cancel(e, id_at(T0 - 100, 3)));
    assert_null(tk_embargo_find(e, id_at(T0 - 100, 3)));
    assert_int_equal(tk_embargo_next(e), T0 + 10);
    assert_int_equal(tk_embargo_count(e), 4);
    tk_embargo_free(e); /* frees what is still held */
}

/* --- in the history --- */

static tk_reason_t add(tk_history_t *h, tk_id_t id, const char *const *kv, tk_event_t **ev)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(id, kv, &it, &rej), 0);
    *ev = tk_history_add(h, &it, &rej);
    tk_item_clear(&it);
    return rej.reason;
}

static void test_held_until_release(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    tk_event_t *ev;
    tk_filter_t f;
    tk_filter_all(&f);
    tk_state_t *cur[32];
    tk_event_t *since[32];
    bool gap;
    assert_int_equal(add(h, id_at(T0, 0), KV("text", "before"), &ev), TK_REJECT_NONE);
    tk_id_t held = id_at(T0 + 1, 0);
    assert_int_equal(add(h, held, KV("text", "held", "publish_at", "1796148010000"), &ev),
                     TK_REJECT_NONE);
    assert_null(ev); /* accepted, nothing to send */
    assert_int_equal(tk_history_held_count(h), 1);
    assert_int_equal(tk_id_cmp(tk_history_last_id(h), held), 0); /* read: hello says so */
    assert_int_equal(add(h, held, KV("text", "held", "publish_at", "1796148010000"), &ev),
                     TK_REJECT_OUT_OF_ORDER);
    assert_int_equal(add(h, id_at(T0 + 2, 0), KV("text", "after"), &ev), TK_REJECT_NONE);
    /* invisible: not in the state, nor since the start */
    assert_int_equal(tk_history_current(h, &f, 10, T0 + 3, cur), 2);
    assert_int_equal(tk_history_since(h, id_at(0, 0), &f, 10, T0 + 3, since, &gap), 2);
    assert_null(tk_history_find(h, held));
    /* the same entry again (a re-read) is out of order */
    assert_int_equal(add(h, held, KV("text", "held", "publish_at", "1796148010000"), &ev),
                     TK_REJECT_OUT_OF_ORDER);
    assert_int_equal(tk_history_next_release(h), T0 + 10000);
    assert_null(tk_history_release(h, T0 + 9999)); /* not yet */
    ev = tk_history_release(h, T0 + 10000);
    assert_non_null(ev);
    assert_true(ev->released);
    assert_int_equal(tk_id_cmp(ev->ref, held), 0);
    tk_id_t key = tk_history_release_key(T0 + 10000, held);
    assert_int_equal(tk_id_cmp(ev->id, key), 0);
    assert_true(tk_id_cmp(key, id_at(T0 + 9999, 99)) > 0 &&
                tk_id_cmp(key, id_at(T0 + 10000, 0)) < 0);
    assert_non_null(strstr(ev->json, "\"id\":\"1796148000001-0\",\"key\":\"1796148009999-"));
    assert_non_null(strstr(ev->json, "\"ts\":1796148010000"));
    tk_state_t *st = tk_history_find(h, held);
    assert_non_null(st);
    assert_int_equal(st->item.expires_ms, T0 + 10000 + 21600LL * 1000); /* ttl from going live */
    assert_int_equal(tk_id_cmp(tk_history_last_id(h), key), 0);
    /* since across the release gets it once; since its key does not */
    assert_int_equal(tk_history_since(h, id_at(T0 + 2, 0), &f, 10, T0 + 10001, since, &gap), 1);
    assert_ptr_equal(since[0], ev);
    assert_int_equal(tk_history_since(h, key, &f, 10, T0 + 10001, since, &gap), 0);
    assert_null(tk_history_release(h, INT64_MAX));
    tk_history_free(h);
}

static void test_update_and_retract_while_held(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    tk_event_t *ev;
    tk_id_t a = id_at(T0, 0), b = id_at(T0, 1);
    assert_int_equal(add(h, a, KV("text", "a", "publish_at", "1796148010000"), &ev), 0);
    assert_int_equal(add(h, b, KV("text", "b", "publish_at", "1796148020000"), &ev), 0);
    /* corrected: text and a later publish_at, both still held */
    assert_int_equal(add(h, id_at(T0 + 5, 0),
                         KV("op", "update", "ref", "1796148000000-0", "text", "a2", "publish_at",
                            "1796148030000"),
                         &ev),
                     TK_REJECT_NONE);
    assert_null(ev);
    assert_int_equal(tk_history_next_release(h), T0 + 20000);
    /* cancelled */
    assert_int_equal(add(h, id_at(T0 + 6, 0), KV("op", "retract", "ref", "1796148000000-1"), &ev),
                     TK_REJECT_NONE);
    assert_null(ev);
    assert_int_equal(tk_history_held_count(h), 1);
    assert_int_equal(tk_history_count(h), 0); /* nothing logged */
    assert_null(tk_history_release(h, T0 + 29999));
    ev = tk_history_release(h, T0 + 30000);
    assert_non_null(ev);
    assert_non_null(strstr(ev->json, "\"text\":\"a2\""));
    /* live now: moving its publish_at is refused */
    assert_int_equal(add(h, id_at(T0 + 30001, 0),
                         KV("op", "update", "ref", "1796148000000-0", "text", "a3", "publish_at",
                            "1796148030001"),
                         &ev),
                     TK_REJECT_BAD_PUBLISH_AT);
    /* an update of a cancelled one knows no such item */
    assert_int_equal(add(h, id_at(T0 + 30002, 0),
                         KV("op", "update", "ref", "1796148000000-1", "text", "b2"), &ev),
                     TK_REJECT_UNKNOWN_REF);
    tk_history_free(h);
}

/* An update that moves publish_at to its own time or before releases the
 * item at once, at the update's place in the stream. */
static void test_update_releases_now(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    tk_event_t *ev;
    assert_int_equal(add(h, id_at(T0, 0), KV("text", "a", "publish_at", "1796148010000"), &ev), 0);
    assert_int_equal(add(h, id_at(T0 + 5, 2),
                         KV("op", "update", "ref", "1796148000000-0", "publish_at", "1796148000000",
                            "text", "now"),
                         &ev),
                     TK_REJECT_NONE);
    assert_non_null(ev);
    assert_true(ev->released);
    assert_int_equal(tk_id_cmp(ev->id, id_at(T0 + 5, 2)), 0);
    assert_non_null(strstr(ev->json, "\"ts\":1796148000005"));
    assert_int_equal(tk_history_held_count(h), 0);
    tk_history_free(h);
}

/* Releases due by an entry's time are logged before it, as on every node,
 * and a release's key keeps the log in key order. An entry read after a
 * release its key sorts before (late) is still given to since= from the
 * release's key. */
static void test_since_and_late_entries(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    tk_event_t *ev, *out[16];
    tk_filter_t f;
    bool gap;
    tk_filter_all(&f);
    assert_int_equal(add(h, id_at(T0, 0), KV("text", "held", "publish_at", "1796148010000"), &ev),
                     0);
    assert_int_equal(add(h, id_at(T0 + 1, 0), KV("text", "x"), &ev), 0);
    tk_event_t *rel = tk_history_release(h, T0 + 10000); /* the timer, on this clock */
    assert_non_null(rel);
    /* written just before publish_at, read just after */
    assert_int_equal(add(h, id_at(T0 + 9999, 0), KV("text", "late"), &ev), 0);
    assert_true(ev->late);
    assert_int_equal(tk_id_cmp(tk_history_last_id(h), rel->id), 0);
    /* from the release's key: the late one */
    assert_int_equal(tk_history_since(h, rel->id, &f, 10, T0 + 10001, out, &gap), 1);
    assert_int_equal(tk_id_cmp(out[0]->id, id_at(T0 + 9999, 0)), 0);
    /* from the late one's ID: nothing more */
    assert_int_equal(tk_history_since(h, id_at(T0 + 9999, 0), &f, 10, T0 + 10001, out, &gap), 0);
    /* from before both (another node's ID): both, once */
    assert_int_equal(tk_history_since(h, id_at(T0 + 5000, 0), &f, 10, T0 + 10001, out, &gap), 2);
    assert_int_equal(add(h, id_at(T0 + 10001, 0), KV("text", "y"), &ev), 0);
    assert_false(ev->late);
    assert_int_equal(tk_history_since(h, id_at(T0 + 1, 0), &f, 10, T0 + 10001, out, &gap), 3);
    tk_history_free(h);
}

/* An update read late (after a release its ID sorts before) still names
 * its item: a retract by the update's ID finds it. The log is in key
 * order but for late events, so a binary search alone misses it. */
static void test_late_update_is_found_by_its_id(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    tk_event_t *ev;
    assert_int_equal(add(h, id_at(T0, 0), KV("text", "held", "publish_at", "1796148010000"), &ev),
                     0);
    assert_int_equal(add(h, id_at(T0 + 1, 0), KV("text", "x"), &ev), 0);
    assert_non_null(tk_history_release(h, T0 + 10000));
    assert_int_equal(add(h, id_at(T0 + 9999, 0),
                         KV("op", "update", "ref", "1796148000001-0", "text", "x, corrected"), &ev),
                     0);
    assert_true(ev->late);
    for (int more = 0; more < 3; more++) { /* wherever the search starts */
        tk_state_t *st = tk_history_find(h, id_at(T0 + 9999, 0));
        assert_non_null(st);
        assert_int_equal(tk_history_find(h, id_at(T0 + 1, 0)), st);
        assert_null(tk_history_find(h, id_at(T0 + 9998, 0)));
        assert_int_equal(add(h, id_at(T0 + 10001 + more, 0), KV("text", "y"), &ev), 0);
    }
    assert_int_equal(
        add(h, id_at(T0 + 10009, 0), KV("op", "retract", "ref", "1796148009999-0"), &ev), 0);
    assert_non_null(ev);
    tk_history_free(h);
}

static void test_reset_drops_held(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    tk_event_t *ev;
    assert_int_equal(add(h, id_at(T0, 0), KV("text", "a", "publish_at", "1796148010000"), &ev), 0);
    tk_history_reset(h);
    assert_int_equal(tk_history_held_count(h), 0);
    assert_int_equal(tk_history_next_release(h), INT64_MAX);
    tk_history_free(h);
}

/* Out of memory at each allocation of a release in turn, by the timer and
 * by an update: refused, the item stays held as it was and nothing is
 * logged; once memory is there, it is released. */
static void test_release_out_of_memory(void **state)
{
    for (int by_update = 0; by_update < 2; by_update++) {
        bool done = false;
        for (long k = 1; !done; k++) {
            tk_history_t *h = tk_history_create(100, 100);
            tk_event_t *ev;
            assert_int_equal(
                add(h, id_at(T0, 0), KV("text", "held", "publish_at", "1796148010000"), &ev), 0);
            tk_item_t upd;
            tk_reject_t rej = {0};
            assert_int_equal(parse(id_at(T0 + 5, 0),
                                   KV("op", "update", "ref", "1796148000000-0", "publish_at",
                                      "1796148000000", "text", "now"),
                                   &upd, &rej),
                             0);
            inject = (typeof(inject)){.armed = true, .fail_at = k};
            ev = by_update ? tk_history_add(h, &upd, &rej) : tk_history_release(h, T0 + 10000);
            inject.armed = false;
            tk_item_clear(&upd);
            tk_reason_t why = rej.reason;
            done = ev != NULL;
            if (!done) {
                assert_true(inject.failed > 0);
                assert_int_equal(tk_history_held_count(h), 1);
                assert_int_equal(tk_history_count(h), 0);
                assert_null(tk_history_find(h, id_at(T0, 0)));
                if (by_update) assert_int_equal(why, TK_REJECT_BAD_ENTRY);
                ev = by_update ? NULL : tk_history_release(h, T0 + 10000); /* memory again */
                if (!by_update) assert_non_null(ev);
            }
            if (ev) assert_non_null(strstr(ev->json, "\"text\":\""));
            assert_int_equal(tk_history_held_count(h), by_update && !done ? 1 : 0);
            tk_history_free(h);
        }
    }
}

int main(void)
{
    json_set_alloc_funcs(json_alloc, free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_at_their_edges),
        cmocka_unit_test(test_iso_forms),
        cmocka_unit_test(test_ms_iso_and_json_agree),
        cmocka_unit_test(test_heap_order_and_cap),
        cmocka_unit_test(test_find_move_cancel),
        cmocka_unit_test(test_held_until_release),
        cmocka_unit_test(test_update_and_retract_while_held),
        cmocka_unit_test(test_update_releases_now),
        cmocka_unit_test(test_since_and_late_entries),
        cmocka_unit_test(test_late_update_is_found_by_its_id),
        cmocka_unit_test(test_reset_drops_held),
        cmocka_unit_test(test_release_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
