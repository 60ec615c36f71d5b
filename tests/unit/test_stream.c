/* test_stream.c - the pure parts of the stream reader (src/stream.c): the
 * reconnect backoff, the check after a (re)connect that nothing was missed
 * (SPEC §4), the horizon of a load, and the XINFO STREAM reply. Includes the
 * .c files to reach their static functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/redis_uv.c"
#include "../../src/sentinel.c"
#include "../../src/stream.c"

static tk_id_t I(uint64_t ms, uint64_t seq)
{
    return (tk_id_t){ms, seq};
}

static void assert_id(tk_id_t got, tk_id_t want)
{
    char a[TK_ID_STRLEN], b[TK_ID_STRLEN];
    tk_id_format(got, a);
    tk_id_format(want, b);
    assert_string_equal(a, b);
}

static void test_backoff_doubles_to_5s_within_bounds(void **state)
{
    (void)state;
    /* the middle of the jitter range (rnd % 51 == 25) is the plain doubling */
    const int want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (unsigned a = 0; a < sizeof want / sizeof *want; a++)
        assert_int_equal(tk_redis_backoff_ms(a, 25), want[a]);
    assert_int_equal(tk_redis_backoff_ms(1000, 25), 5000);
    for (unsigned a = 0; a < 40; a++) {
        int lo = 1 << 30, hi = 0;
        for (uint32_t r = 0; r < 2000; r++) {
            int d = tk_redis_backoff_ms(a, r * 2654435761u);
            assert_true(d >= BACKOFF_MIN_MS && d <= BACKOFF_MAX_MS);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        if (a >= 1 && a <= 5) { /* +-25 % around 100 << a */
            assert_int_equal(lo, (100 << a) * 75 / 100);
            assert_int_equal(hi, (100 << a) * 125 / 100);
        }
        if (a >= 7) assert_true(lo == 3750 && hi == 5000);
    }
}

static void test_pred_and_max(void **state)
{
    (void)state;
    assert_id(id_pred(I(5, 3)), I(5, 2));
    assert_id(id_pred(I(5, 0)), I(4, UINT64_MAX));
    assert_id(id_pred(I(0, 0)), I(0, 0));
    assert_id(id_max(I(5, 0), I(4, 9)), I(5, 0));
}

/* Redis 7: first entry, last generated ID, newest XDELed, length, entries-added. */
static stream_info_t info7(tk_id_t first, tk_id_t last, tk_id_t deleted, uint64_t length,
                           uint64_t added)
{
    return (stream_info_t){.exists = true,
                           .last = last,
                           .has_first = !tk_id_is_zero(first),
                           .first = first,
                           .has_deleted = true,
                           .deleted = deleted,
                           .length = length,
                           .has_added = true,
                           .added = added};
}

static read_state_t rd(tk_id_t last)
{
    return (read_state_t){.last = last};
}

static void test_check_redis7(void **state)
{
    (void)state;
    tk_id_t h = {0, 0}, ev = {0, 0}, zero = {0, 0};
    read_state_t st = rd(I(30, 0));
    /* caught up, nothing deleted */
    stream_info_t in = info7(I(10, 0), I(30, 0), zero, 3, 3);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* more was added meanwhile: read on */
    st = rd(I(20, 0));
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* old entries trimmed, the last read one kept */
    in = info7(I(20, 0), I(30, 0), zero, 2, 5);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* an unread entry XDELed */
    in = info7(I(10, 0), I(30, 0), I(25, 0), 2, 3);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_LOST);
    assert_id(h, I(25, 0));
    assert_id(ev, I(25, 0));
    st.seen = ev; /* ...reported once */
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* an entry read already XDELed: nothing lost */
    st = rd(I(30, 0));
    in = info7(I(10, 0), I(30, 0), I(25, 0), 2, 3);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);

    /* Trimmed past the last read while away. Caught up at 20 with 4 added,
     * read 1 more (21), then: 22, 23, 24 added, trimmed to 24 alone. */
    st = (read_state_t){.last = I(21, 0), .counted = true, .base = 4, .read = 1};
    in = info7(I(24, 0), I(24, 0), zero, 1, 8);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_LOST);
    assert_id(h, I(23, UINT64_MAX));
    assert_id(ev, I(24, 0));
    st.seen = ev;
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* trimmed only what was read, then more added: the count adds up */
    st = (read_state_t){.last = I(21, 0), .counted = true, .base = 4, .read = 1};
    in = info7(I(24, 0), I(25, 0), zero, 2, 7);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* everything read, then the stream emptied: fine; then refilled: fine */
    in = info7(zero, I(21, 0), zero, 0, 5);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    in = info7(I(40, 0), I(41, 0), zero, 2, 7);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* recreated (DEL, XADD *) while away: the count went back */
    in = info7(I(40, 0), I(41, 0), zero, 2, 2);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_LOST);
    assert_id(h, I(39, UINT64_MAX));
    /* the same without a count (never caught up): lost, to be safe */
    st = rd(I(21, 0));
    in = info7(I(24, 0), I(25, 0), zero, 2, 7);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_LOST);
    /* nothing read yet (empty at start-up), entries added meanwhile: fine */
    st = (read_state_t){.counted = true};
    in = info7(I(40, 0), I(41, 0), zero, 2, 2);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    /* behind: older copy, failover to a replica that lacks entries */
    st = rd(I(20, 0));
    in = info7(I(5, 0), I(15, 0), zero, 3, 3);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_BEHIND);
    /* the key is gone */
    stream_info_t none = {0};
    assert_int_equal(check_stream(&none, &st, &h, &ev), CHECK_BEHIND);
    st = rd(zero);
    assert_int_equal(check_stream(&none, &st, &h, &ev), CHECK_OK);
}

static void test_check_before_redis7(void **state)
{
    (void)state;
    tk_id_t h, ev;
    read_state_t st = rd(I(20, 0));
    stream_info_t in = {.exists = true, .last = I(30, 0), .has_first = true, .first = I(10, 0)};
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    in.first = I(25, 0); /* cannot tell what a trim took: lost */
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_LOST);
    assert_id(h, I(24, UINT64_MAX));
    st.seen = ev;
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_OK);
    in.last = I(19, 0);
    in.first = I(1, 0);
    assert_int_equal(check_stream(&in, &st, &h, &ev), CHECK_BEHIND);
}

static void test_load_horizon(void **state)
{
    (void)state;
    tk_id_t zero = {0, 0};
    /* Redis 7, load reached the start, nothing ever deleted: no horizon */
    stream_info_t in = info7(I(10, 0), I(30, 0), zero, 3, 3);
    assert_true(tk_id_is_zero(load_horizon(&in, zero)));
    /* trimmed: the entry before the first */
    in = info7(I(10, 0), I(30, 0), zero, 3, 5);
    assert_id(load_horizon(&in, zero), I(9, UINT64_MAX));
    /* an XDEL newer than the first */
    in = info7(I(10, 0), I(30, 0), I(15, 0), 3, 4);
    assert_id(load_horizon(&in, zero), I(15, 0));
    /* more entries than the history: the entry before the loaded ones */
    assert_id(load_horizon(&in, I(12, 0)), I(15, 0));
    in = info7(I(10, 0), I(30, 0), zero, 30, 40);
    assert_id(load_horizon(&in, I(20, 0)), I(20, 0));
    /* emptied */
    in = info7(zero, I(30, 0), zero, 0, 5);
    assert_id(load_horizon(&in, zero), I(30, 0));
    /* before Redis 7: the entry before the first retained one */
    stream_info_t old = {.exists = true, .last = I(30, 0), .has_first = true, .first = I(10, 0)};
    assert_id(load_horizon(&old, zero), I(9, UINT64_MAX));
    assert_id(load_horizon(&old, I(20, 0)), I(20, 0));
    old.has_first = false; /* empty stream */
    assert_id(load_horizon(&old, zero), I(30, 0));
    stream_info_t none = {0};
    assert_true(tk_id_is_zero(load_horizon(&none, zero)));
}

/* A reply tree built by hand, as hiredis builds it. */
static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *integer(long long v)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *arr(size_t n, ...)
{
    va_list ap;
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static redisReply *nil(void)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_NIL;
    return r;
}

static void test_parse_xinfo(void **state)
{
    (void)state;
    stream_info_t in;
    /* Redis 7.0 */
    redisReply *r = arr(20, str("length"), integer(2), str("radix-tree-keys"), integer(1),
                        str("radix-tree-nodes"), integer(2), str("last-generated-id"), str("30-0"),
                        str("max-deleted-entry-id"), str("9-5"), str("entries-added"), integer(7),
                        str("recorded-first-entry-id"), str("10-0"), str("groups"), integer(0),
                        str("first-entry"), arr(2, str("10-0"), arr(2, str("text"), str("a"))),
                        str("last-entry"), arr(2, str("30-0"), arr(2, str("text"), str("b"))));
    assert_int_equal(parse_xinfo(r, &in), 0);
    assert_true(in.exists && in.has_first && in.has_deleted && in.has_added);
    assert_int_equal(in.length, 2);
    assert_int_equal(in.added, 7);
    assert_id(in.last, I(30, 0));
    assert_id(in.first, I(10, 0));
    assert_id(in.deleted, I(9, 5));
    freeReplyObject(r);
    /* Redis 6, empty stream */
    r = arr(14, str("length"), integer(0), str("radix-tree-keys"), integer(1),
            str("radix-tree-nodes"), integer(2), str("last-generated-id"), str("30-0"),
            str("groups"), integer(0), str("first-entry"), nil(), str("last-entry"), nil());
    assert_int_equal(parse_xinfo(r, &in), 0);
    assert_true(in.exists && !in.has_first && !in.has_deleted && !in.has_added);
    assert_id(in.last, I(30, 0));
    freeReplyObject(r);
    /* not an XINFO reply */
    r = arr(2, str("length"), integer(0));
    assert_int_equal(parse_xinfo(r, &in), -1);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_5s_within_bounds),
        cmocka_unit_test(test_pred_and_max),
        cmocka_unit_test(test_check_redis7),
        cmocka_unit_test(test_check_before_redis7),
        cmocka_unit_test(test_load_horizon),
        cmocka_unit_test(test_parse_xinfo),
    };
    return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
