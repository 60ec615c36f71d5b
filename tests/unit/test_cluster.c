/* test_cluster.c - the pure parts of the Redis Cluster client
 * (src/cluster.c): the key's slot (CRC16 of its hash tag, Redis's rules)
 * and the master of a slot in a CLUSTER SLOTS reply. Replies are built
 * from RESP text by hiredis's own reader. Includes the .c file to reach
 * its static functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/cluster.c"

static int slot(const char *key)
{
    return tk_cluster_keyslot(key, strlen(key));
}

static void test_crc16_check_value(void **state)
{
    (void)state;
    /* The CRC-16/XMODEM check value, as Redis's cluster spec gives it. */
    assert_int_equal(crc16("123456789", 9), 0x31C3);
    assert_int_equal(crc16("", 0), 0);
}

static void test_keyslot_matches_redis(void **state)
{
    (void)state;
    /* CLUSTER KEYSLOT on Redis 7.0 for each key. */
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("ticker:breaking"), 5118);
    assert_int_equal(slot("ticker"), 12547);
    assert_int_equal(slot("{ticker}:breaking"), 12547);
    assert_int_equal(slot("foo{{bar}}zap"), 4015);
    assert_int_equal(slot("foo{}{bar}"), 8363);
    assert_int_equal(slot(""), 0);
    assert_true(slot("a") >= 0 && slot("a") < TK_CLUSTER_SLOTS);
}

static void test_hash_tag_rules(void **state)
{
    (void)state;
    /* Keys with the same tag share a slot; the tag is hashed alone. */
    assert_int_equal(slot("{ticker}:breaking"), slot("ticker"));
    assert_int_equal(slot("{ticker}:breaking:epoch"), slot("{ticker}:breaking"));
    assert_int_equal(slot("{ticker}:breaking:kill:1-0"), slot("{ticker}:breaking"));
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    /* The first '{' and the first '}' after it. */
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_equal(slot("news{a}"), slot("a")); /* a one-byte tag, at the end */
    /* No tag: an empty "{}", an unclosed '{', a '}' before any '{'. */
    const char *none[] = {"foo{}{bar}", "{}", "foo{bar", "}foo{", "ticker:breaking", "{", ""};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        tk_span_t tag;
        assert_false(tk_hash_tag(none[i], strlen(none[i]), &tag));
        assert_int_equal(slot(none[i]), crc16(none[i], strlen(none[i])) % TK_CLUSTER_SLOTS);
    }
    tk_span_t tag;
    assert_true(tk_hash_tag("x{}{y}", 6, &tag) == false);
    assert_true(tk_hash_tag("{ab}c", 5, &tag));
    assert_int_equal(tag.len, 2);
    assert_memory_equal(tag.s, "ab", 2);
    /* Only the given length counts. */
    assert_false(tk_hash_tag("{ab}", 3, &tag));
}

/* A reply from RESP text; the caller frees it with freeReplyObject. */
static redisReply *resp(const char *text)
{
    redisReader *r = redisReaderCreate();
    void *reply = NULL;
    assert_non_null(r);
    assert_int_equal(redisReaderFeed(r, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(r);
    return reply;
}

/* slots_master on a RESP reply: its return, with host:port in where. */
static int master_of(const char *text, int s, char *where)
{
    char host[TK_HOST_MAX + 1];
    int port = 0;
    redisReply *r = resp(text);
    int rc = slots_master(r, s, "10.0.0.9", host, &port);
    freeReplyObject(r);
    if (rc == 0) sprintf(where, "%s:%d", host, port);
    return rc;
}

/* Redis 7.0, three masters and a replica each: [start, end, [ip, port, id,
 * [metadata]], [replica ip, port, id, []]]. */
static const char SLOTS7[] =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nm1\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nr1\r\n*0\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nm2\r\n*2\r\n$8\r\nhostname\r\n$2\r\nn2\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nr2\r\n*0\r\n"
    "*3\r\n:10923\r\n:16383\r\n"
    "*3\r\n$8\r\nredis-c3\r\n:7002\r\n$2\r\nm3\r\n";

static void test_slots_master_each_range_at_its_edges(void **state)
{
    (void)state;
    char w[300];
    const struct {
        int slot;
        const char *want;
    } cases[] = {
        {0, "127.0.0.1:7000"},    {1, "127.0.0.1:7000"},     {5460, "127.0.0.1:7000"},
        {5461, "127.0.0.1:7001"}, {10922, "127.0.0.1:7001"}, {10923, "redis-c3:7002"},
        {16383, "redis-c3:7002"}, /* a name (preferred endpoint "hostname"), no replica */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(master_of(SLOTS7, cases[i].slot, w), 0);
        assert_string_equal(w, cases[i].want);
    }
}

static void test_slots_master_uncovered_and_older_forms(void **state)
{
    (void)state;
    char w[300];
    /* A slot no range holds (a cluster missing slots), one under and one
     * over the only range. */
    const char *one = "*1\r\n*3\r\n:100\r\n:200\r\n*2\r\n$7\r\n1.2.3.4\r\n:6379\r\n";
    assert_int_equal(master_of(one, 99, w), 1);
    assert_int_equal(master_of(one, 201, w), 1);
    assert_int_equal(master_of(one, 100, w), 0);
    assert_string_equal(w, "1.2.3.4:6379");         /* Redis 3.0: [ip, port] only */
    assert_int_equal(master_of("*0\r\n", 0, w), 1); /* no slots at all */
    /* An empty host: the node that answered (Redis 7, unknown endpoint). */
    assert_int_equal(
        master_of("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$0\r\n\r\n:7000\r\n$1\r\nx\r\n", 5, w), 0);
    assert_string_equal(w, "10.0.0.9:7000");
    /* An IPv6 address, as Redis names it (no brackets). */
    assert_int_equal(master_of("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$3\r\n::1\r\n:7000\r\n", 0, w),
                     0);
    assert_string_equal(w, "::1:7000");
}

static void test_slots_master_refuses_what_it_cannot_use(void **state)
{
    (void)state;
    char w[300];
    const char *bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        ":1\r\n",
        "*1\r\n:5\r\n",                 /* a range that is not an array */
        "*1\r\n*2\r\n:0\r\n:16383\r\n", /* a range without a master */
        "*1\r\n*3\r\n$1\r\n0\r\n:16383\r\n*2\r\n$1\r\na\r\n:1\r\n",    /* start as a string */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*1\r\n$1\r\na\r\n",               /* master without a port */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n:0\r\n",         /* port 0 */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n:65536\r\n",     /* port over 65535 */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n$4\r\n6379\r\n", /* port as a string */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\n?\r\n:6379\r\n",      /* "?": endpoint unknown */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$3\r\na b\r\n:6379\r\n",    /* a space in the host */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n:1\r\n:6379\r\n",           /* host as an integer */
        "*1\r\n*3\r\n:0\r\n:16383\r\n$1\r\na\r\n",                     /* master as a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(master_of(bad[i], 7, w), -1);
    }
    /* The port at its edges. */
    assert_int_equal(master_of("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n:1\r\n", 7, w), 0);
    assert_string_equal(w, "a:1");
    assert_int_equal(master_of("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n:65535\r\n", 7, w), 0);
    assert_string_equal(w, "a:65535");
}

static void test_slots_master_host_length_at_its_edge(void **state)
{
    (void)state;
    char w[600], text[700], host[TK_HOST_MAX + 2];
    for (int len = TK_HOST_MAX; len <= TK_HOST_MAX + 1; len++) {
        memset(host, 'h', (size_t)len);
        host[len] = 0;
        snprintf(text, sizeof text, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$%d\r\n%s\r\n:7000\r\n", len,
                 host);
        assert_int_equal(master_of(text, 0, w), len <= TK_HOST_MAX ? 0 : -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_check_value),
        cmocka_unit_test(test_keyslot_matches_redis),
        cmocka_unit_test(test_hash_tag_rules),
        cmocka_unit_test(test_slots_master_each_range_at_its_edges),
        cmocka_unit_test(test_slots_master_uncovered_and_older_forms),
        cmocka_unit_test(test_slots_master_refuses_what_it_cannot_use),
        cmocka_unit_test(test_slots_master_host_length_at_its_edge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
