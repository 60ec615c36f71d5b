/* test_kill.c - kill confirmation's pure part: the client label at its
 * edges (query and subscribe frame), a screen's pending retracts, and the
 * answer built from a Redis record written by several nodes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "tickerd/filter.h"
#include "tickerd/kill.h"

static int query(const char *q, tk_sub_req_t *req)
{
    char err[256];
    return tk_query_parse(cfg, q, req, err, sizeof err);
}

static int frame(const char *text, tk_sub_req_t *req)
{
    char err[256];
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    assert_non_null(o);
    int rc = tk_subscribe_parse(cfg, o, req, err, sizeof err);
    json_decref(o);
    return rc;
}

/* 1 and 64 bytes are labels; 0, 65 and any other character are not. */
static void test_label_edges(void **state)
{
    char q[128], label[70], f[160];
    tk_sub_req_t req;
    memset(label, 'a', sizeof label);
    for (int n = 0; n <= 65; n += n == 1 ? 62 : 1) { /* 0, 1, 63, 64, 65 */
        label[n] = 0;
        snprintf(q, sizeof q, "client=%s", label);
        snprintf(f, sizeof f, "{\"type\":\"subscribe\",\"client\":\"%s\"}", label);
        int want = n >= 1 && n <= 64 ? 0 : -1;
        assert_int_equal(query(q, &req), want);
        if (!want) assert_string_equal(req.client, label);
        assert_int_equal(frame(f, &req), want);
        label[n] = 'a';
    }
    assert_int_equal(query("client=Studio_A.overlay-2", &req), 0);
    assert_string_equal(req.client, "Studio_A.overlay-2");
    assert_int_equal(query("client=studio%20a", &req), -1);
    assert_int_equal(query("client=studio/a", &req), -1);
    assert_int_equal(query("client=caf%C3%A9", &req), -1);
    assert_int_equal(frame("{\"client\":[\"a\"]}", &req), -1);
    assert_int_equal(query("region=mena", &req), 0);
    assert_string_equal(req.client, ""); /* none */
}

static void test_screen_pending(void **state)
{
    tk_screen_t *s = tk_screen_new("studio-a");
    tk_kill_sent_t k;
    tk_id_t r1 = {10, 0}, r2 = {11, 0}, k1 = {20, 0}, k2 = {21, 0};
    assert_non_null(tk_screen_sent(s, r1, k1, 100));
    assert_null(tk_screen_sent(s, r1, k1, 101)); /* repeated by a replay */
    assert_non_null(tk_screen_sent(s, r2, k2, 102));
    assert_int_equal(tk_screen_ack(s, r2, &k), 0);
    assert_int_equal(k.sent_ms, 102);
    assert_int_equal(tk_screen_ack(s, r2, &k), -ENOENT);
    assert_int_equal(tk_screen_ack(s, r1, &k), 0);
    assert_int_equal(tk_id_cmp(k.rid, k1), 0);
    assert_int_equal(s->len, 0);
    free(s);
}

/* Two nodes' entries: a screen that moved from one to the other counts
 * once, acked; the ref field is no screen; a foreign value is skipped. */
static void test_summary_merges_nodes(void **state)
{
    char *v[4] = {tk_kill_value("studio-a", "n1", 3, -1), tk_kill_value("studio-a", "n2", 5, 140),
                  tk_kill_value("studio-b", "n1", 3, -1), tk_kill_value("studio-c", "n2", 4, 90)};
    const char *fv[] = {"ref",         "5-0", "n1/studio-a", v[0], "n2/studio-a", v[1],
                        "n1/studio-b", v[2],  "n2/studio-c", v[3], "n3/x",        "not json"};
    size_t len[12];
    for (int i = 0; i < 12; i++)
        len[i] = strlen(fv[i]);
    int pending = -1;
    json_t *o = tk_kill_summary((tk_id_t){5, 0}, (tk_id_t){6, 0}, fv, len, 12, &pending);
    char *text = json_dumps(o, JSON_COMPACT);
    assert_string_equal(text,
                        "{\"ref\":\"5-0\",\"retract_id\":\"6-0\",\"sent\":3,\"acked\":2,"
                        "\"screens\":[{\"client\":\"studio-a\",\"node\":\"n2\",\"acked_ms\":140},"
                        "{\"client\":\"studio-b\",\"node\":\"n1\",\"acked_ms\":null},"
                        "{\"client\":\"studio-c\",\"node\":\"n2\",\"acked_ms\":90}]}");
    assert_int_equal(pending, 1);
    free(text);
    json_decref(o);
    o = tk_kill_summary((tk_id_t){5, 0}, (tk_id_t){6, 0}, fv, len, 2, &pending);
    assert_int_equal(json_integer_value(json_object_get(o, "sent")), 0);
    assert_int_equal(pending, 0);
    json_decref(o);
    for (int i = 0; i < 4; i++)
        free(v[i]);
}

static void test_keys(void **state)
{
    char k[64];
    assert_int_equal(tk_kill_key("ticker:breaking", (tk_id_t){6, 1}, k, sizeof k), 24);
    assert_string_equal(k, "ticker:breaking:kill:6-1");
    tk_kill_ref_key("ticker:breaking", (tk_id_t){5, 0}, k, sizeof k);
    assert_string_equal(k, "ticker:breaking:kill:ref:5-0");
    assert_int_equal(tk_kill_key("ticker:breaking", (tk_id_t){6, 1}, k, 24), -1);
    tk_kill_field("host:42", "studio-a", k, sizeof k);
    assert_string_equal(k, "host:42/studio-a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_edges),
        cmocka_unit_test(test_screen_pending),
        cmocka_unit_test(test_summary_merges_nodes),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
