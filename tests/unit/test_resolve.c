/* test_resolve.c - the resolver (src/resolve.c) on a real loop: numeric
 * hosts answered without a lookup, callers of one name sharing the lookup
 * in flight, giving up, a callback that resolves again, and a loop that
 * closes with nothing left. Includes the .c to count its lookups. Uses
 * only localhost (/etc/hosts), never the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/resolve.c"

typedef struct answer {
    int calls;
    int status;
    char ip[TK_IP_MAX];
    char host[64];
    /* what the callback does next: resolve localhost again */
    uv_loop_t *again;
    tk_resolve_t *again_req;
    struct answer *again_answer;
} answer_t;

static void on_answer(void *data, const char *host, const char *ip, int status)
{
    answer_t *a = data;
    char buf[TK_IP_MAX];
    a->calls++;
    a->status = status;
    snprintf(a->ip, sizeof a->ip, "%s", ip ? ip : "");
    snprintf(a->host, sizeof a->host, "%s", host);
    if (a->again) {
        /* The lookup that answers is no longer joinable: a new one. */
        assert_int_equal(tk_resolve_start(a->again, "localhost", 0, on_answer, a->again_answer, buf,
                                          &a->again_req),
                         0);
        assert_int_equal(in_flight(a->again), 1);
        assert_ptr_not_equal(a->again_req->lk, NULL);
    }
}

static bool is_loopback(const char *ip)
{
    return strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0;
}

static void close_loop(uv_loop_t *loop)
{
    assert_int_equal(tk_resolve_drain(loop, 5000), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_numeric_needs_no_lookup(void **state)
{
    uv_loop_t loop;
    char ip[TK_IP_MAX];
    tk_resolve_t *req = (tk_resolve_t *)&loop;
    answer_t a = {0};
    uv_loop_init(&loop);
    static const char *const hosts[] = {"127.0.0.1", "10.0.0.7", "::1", "2001:db8::7",
                                        "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        assert_int_equal(tk_resolve_start(&loop, hosts[i], 3, on_answer, &a, ip, &req), 1);
        assert_string_equal(ip, hosts[i]);
        assert_null(req);
    }
    assert_int_equal(in_flight(&loop), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 0);
    close_loop(&loop);
}

static void test_one_lookup_for_callers_of_one_name(void **state)
{
    uv_loop_t loop;
    char ip[TK_IP_MAX];
    tk_resolve_t *r[3];
    answer_t a[3] = {{0}};
    uv_loop_init(&loop);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            tk_resolve_start(&loop, "localhost", (unsigned)i * 7, on_answer, &a[i], ip, &r[i]), 0);
    assert_int_equal(in_flight(&loop), 1);
    assert_ptr_equal(r[0]->lk, r[1]->lk);
    assert_ptr_equal(r[1]->lk, r[2]->lk);
    assert_string_equal(tk_resolve_host(r[1]), "localhost");
    tk_resolve_cancel(r[1]); /* one gives up: the others still get the answer */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a[0].calls, 1);
    assert_int_equal(a[1].calls, 0);
    assert_int_equal(a[2].calls, 1);
    for (int i = 0; i < 3; i += 2) {
        assert_int_equal(a[i].status, 0);
        assert_true(is_loopback(a[i].ip));
        assert_string_equal(a[i].host, "localhost");
    }
    assert_int_equal(in_flight(&loop), 0);
    close_loop(&loop);
}

static void test_given_up_by_all(void **state)
{
    uv_loop_t loop;
    char ip[TK_IP_MAX];
    tk_resolve_t *r[2];
    answer_t a[2] = {{0}};
    uv_loop_init(&loop);
    for (int i = 0; i < 2; i++)
        assert_int_equal(tk_resolve_start(&loop, "localhost", 0, on_answer, &a[i], ip, &r[i]), 0);
    tk_resolve_cancel(r[0]);
    tk_resolve_cancel(r[1]);
    tk_resolve_cancel(NULL);
    /* Cancelled before it ran, or run and ignored: either way listed until
     * libuv's callback, and nobody called. */
    close_loop(&loop);
    assert_int_equal(a[0].calls + a[1].calls, 0);
}

static void test_callback_resolves_again(void **state)
{
    uv_loop_t loop;
    char ip[TK_IP_MAX];
    tk_resolve_t *r;
    answer_t second = {0};
    answer_t first = {.again = &loop, .again_answer = &second};
    uv_loop_init(&loop);
    assert_int_equal(tk_resolve_start(&loop, "localhost", 0, on_answer, &first, ip, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(first.calls, 1);
    assert_int_equal(second.calls, 1);
    assert_true(is_loopback(second.ip));
    close_loop(&loop);
}

static void test_refused_hosts(void **state)
{
    uv_loop_t loop;
    char ip[TK_IP_MAX], big[300];
    tk_resolve_t *r = (tk_resolve_t *)&loop;
    answer_t a = {0};
    uv_loop_init(&loop);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(tk_resolve_start(&loop, big, 0, on_answer, &a, ip, &r), UV_EINVAL);
    assert_null(r);
    assert_int_equal(in_flight(&loop), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 0);
    close_loop(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_needs_no_lookup),
        cmocka_unit_test(test_one_lookup_for_callers_of_one_name),
        cmocka_unit_test(test_given_up_by_all),
        cmocka_unit_test(test_callback_resolves_again),
        cmocka_unit_test(test_refused_hosts),
    };
    return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
