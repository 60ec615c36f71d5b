/* test_metrics.c - the shared metrics block: one slot per worker, summed
 * when read; a dead worker's gauges and per-IP counts released, its
 * counters kept; the text exposition (SPEC §3, §4). Linked with
 * metrics.o (see the Makefile). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tickerd/config.h"
#include "tickerd/metrics.h"

#define IP_ROW_BYTES ((size_t)TK_IP_SLOTS * sizeof(int32_t))

static int setup_block(void **state)
{
    (void)state;
    return tk_metrics_init(4);
}

static int teardown_block(void **state)
{
    (void)state;
    tk_metrics_free();
    return 0;
}

/* The value of the sample `line` (name and labels, exactly) in text, or -1. */
static double sample(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, line, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

static char *render(void)
{
    size_t len;
    char *text = tk_metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_slots_are_summed(void **state)
{
    (void)state;
    TK_COUNT(client_errors_total, 1); /* before bind: the master's slot */
    tk_metrics_ip_add(3, 1);          /* not a worker: nothing */
    assert_int_equal(tk_metrics_ip_count(3), 0);
    for (int w = 0; w < 4; w++) {
        tk_metrics_bind(w);
        assert_ptr_equal(tk_metrics_slot, &tk_metrics->slots[w]);
        TK_COUNT(messages_sent_total, 10 + w);
        TK_COUNT(connections[TK_TRANSPORT_WS], 2);
        TK_COUNT(connections[TK_TRANSPORT_WS], -1);
        TK_COUNT(items_rejected_total[TK_REJECT_MISSING_TEXT], 1);
        tk_metrics_observe_fanout(0.003);
    }
    assert_int_equal(tk_metrics->slots[2].messages_sent_total, 12);
    assert_int_equal(tk_metrics_connections(), 4);
    char *text = render();
    assert_true(sample(text, "tickerd_messages_sent_total") == 10 + 11 + 12 + 13);
    assert_true(sample(text, "tickerd_client_errors_total") == 1);
    assert_true(sample(text, "tickerd_connections{transport=\"websocket\"}") == 4);
    assert_true(sample(text, "tickerd_items_rejected_total{reason=\"missing_text\"}") == 4);
    assert_true(sample(text, "tickerd_fanout_seconds_bucket{le=\"0.0025\"}") == 0);
    assert_true(sample(text, "tickerd_fanout_seconds_bucket{le=\"0.005\"}") == 4);
    assert_true(sample(text, "tickerd_fanout_seconds_bucket{le=\"+Inf\"}") == 4);
    assert_true(sample(text, "tickerd_fanout_seconds_count") == 4);
    free(text);
}

/* Each worker is a process writing its own slot of the MAP_SHARED block. */
static void test_slots_are_shared_across_fork(void **state)
{
    (void)state;
    pid_t kids[3];
    for (int w = 1; w <= 3; w++) {
        if ((kids[w - 1] = fork()) == 0) {
            tk_metrics_bind(w);
            for (int i = 0; i < 1000; i++)
                TK_COUNT(bytes_sent_total, 3);
            TK_COUNT(connections[TK_TRANSPORT_SSE], w);
            tk_metrics_ip_add(77, 1);
            _exit(0);
        }
        assert_true(kids[w - 1] > 0);
    }
    for (int i = 0; i < 3; i++) {
        int status;
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    tk_metrics_bind(0);
    assert_int_equal(tk_metrics_ip_count(77), 3);
    assert_int_equal(tk_metrics_connections(), 1 + 2 + 3);
    char *text = render();
    assert_true(sample(text, "tickerd_bytes_sent_total") == 3 * 3000);
    free(text);
}

/* SPEC §4: a dead worker's clients stop counting, its counters are kept,
 * and the restarted worker counts on in the same slot. */
static void test_release_keeps_counters(void **state)
{
    (void)state;
    tk_metrics_bind(1);
    assert_true(tk_metrics->workers[1].pid == getpid());
    tk_metrics->workers[1].redis_up = 1;
    TK_COUNT(connections[TK_TRANSPORT_WS], 5);
    TK_COUNT(connections[TK_TRANSPORT_SSE], 2);
    TK_COUNT(connections_total, 7);
    TK_COUNT(messages_sent_total, 100);
    tk_metrics_ip_add(9, 4);
    tk_metrics_bind(2);
    tk_metrics_ip_add(9, 1);
    TK_COUNT(connections[TK_TRANSPORT_WS], 1);
    TK_COUNT(connections_total, 1);
    assert_int_equal(tk_metrics_ip_count(9), 5);
    assert_int_equal(tk_metrics_connections(), 8);

    tk_metrics_release(1);
    assert_int_equal(tk_metrics_connections(), 1);
    assert_int_equal(tk_metrics_ip_count(9), 1);
    assert_int_equal(tk_metrics->workers[1].pid, 0);
    assert_int_equal(tk_metrics->workers[1].redis_up, 0);
    char *text = render();
    assert_true(sample(text, "tickerd_connections_total") == 8);
    assert_true(sample(text, "tickerd_messages_sent_total") == 100);
    assert_true(sample(text, "tickerd_connections{transport=\"sse\"}") == 0);
    free(text);

    tk_metrics_bind(1); /* the restarted worker */
    TK_COUNT(connections[TK_TRANSPORT_WS], 1);
    TK_COUNT(connections_total, 1);
    tk_metrics_ip_add(9, 1);
    assert_int_equal(tk_metrics_ip_count(9), 2);
    text = render();
    assert_true(sample(text, "tickerd_connections_total") == 9);
    assert_true(sample(text, "tickerd_connections{transport=\"websocket\"}") == 2);
    free(text);
}

/* Text format 0.0.4: HELP and TYPE before every family, counters end in
 * _total, histogram buckets cumulative up to +Inf, build_info. */
static void test_exposition_format(void **state)
{
    (void)state;
    tk_metrics_bind(3);
    tk_metrics_observe_fanout(0.0001);
    tk_metrics_observe_fanout(0.2);
    tk_metrics_observe_fanout(60); /* beyond the last bound: +Inf only */
    char *text = render();
    assert_true(sample(text, "tickerd_build_info{version=\"" TK_VERSION "\"}") == 1);
    assert_true(sample(text, "tickerd_gaps_total") == 0);
    char help[128] = "", type[128] = "";
    double last_bucket = -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (!strncmp(line, "# HELP ", 7)) {
            sscanf(line + 7, "%127s", help);
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            char kind[32];
            assert_int_equal(sscanf(line + 7, "%127s %31s", type, kind), 2);
            assert_string_equal(type, help);
            if (!strcmp(kind, "counter")) {
                size_t n = strlen(type);
                assert_true(n > 6 && !strcmp(type + n - 6, "_total"));
            }
            continue;
        }
        sscanf(line, "%127[^{ ]", name);
        assert_int_equal(strncmp(name, type, strlen(type)), 0); /* sample of its family */
        if (!strcmp(name, "tickerd_fanout_seconds_bucket")) {
            double v = strtod(strrchr(line, ' ') + 1, NULL);
            assert_true(v >= last_bucket);
            last_bucket = v;
        }
    }
    free(text);
    text = render();
    assert_true(sample(text, "tickerd_fanout_seconds_bucket{le=\"+Inf\"}") ==
                sample(text, "tickerd_fanout_seconds_count"));
    assert_true(sample(text, "tickerd_fanout_seconds_bucket{le=\"10\"}") <
                sample(text, "tickerd_fanout_seconds_count"));
    free(text);
}

/* A restarted worker 0 re-reads entries the one before it counted. */
static void test_first_count(void **state)
{
    (void)state;
    tk_metrics_bind(1);
    assert_false(tk_metrics_first_count((tk_id_t){5, 0})); /* not worker 0 */
    pid_t pid = fork();
    if (pid == 0) {
        tk_metrics_bind(0);
        int n = 0;
        for (uint64_t seq = 1; seq <= 5; seq++)
            n += tk_metrics_first_count((tk_id_t){100, seq});
        n += tk_metrics_first_count((tk_id_t){100, 5}); /* again: no */
        _exit(n == 5 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tk_metrics_bind(0); /* the restarted worker 0 loads 100-3 .. 100-7 */
    assert_false(tk_metrics_first_count((tk_id_t){100, 3}));
    assert_false(tk_metrics_first_count((tk_id_t){100, 5}));
    assert_true(tk_metrics_first_count((tk_id_t){100, 6}));
    assert_true(tk_metrics_first_count((tk_id_t){101, 0}));
    assert_false(tk_metrics_first_count((tk_id_t){99, 9}));
    /* A new epoch reloads entries already counted: none is counted again
     * (a recreated stream's new entries have higher IDs: they count). */
    assert_false(tk_metrics_first_count((tk_id_t){1, 1}));
    assert_true(tk_metrics_first_count((tk_id_t){102, 0}));
}

/* workers = 256 fits; more is clamped; the parts are page-aligned so
 * that a per-IP row can be dropped on its own. */
static void test_sizes(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    tk_metrics_free();
    assert_int_equal(tk_metrics_init(TK_MAX_WORKERS + 10), 0);
    assert_int_equal(tk_metrics->nworkers, TK_MAX_WORKERS);
    assert_int_equal((uintptr_t)tk_metrics->per_ip % page, 0);
    assert_int_equal(sizeof(tk_metrics_slot_t) % 64, 0);
    tk_metrics_bind(TK_MAX_WORKERS - 1);
    tk_metrics_ip_add(TK_IP_SLOTS - 1, 1);
    TK_COUNT(connections_total, 1);
    assert_int_equal(tk_metrics_ip_count(TK_IP_SLOTS - 1), 1);
    tk_metrics_release(TK_MAX_WORKERS - 1);
    assert_int_equal(tk_metrics_ip_count(TK_IP_SLOTS - 1), 0);
    printf("metrics block for %d workers: %zu bytes (header %zu, slot %zu, per-IP row %zu)\n",
           TK_MAX_WORKERS, tk_metrics->size, sizeof(tk_metrics_t), sizeof(tk_metrics_slot_t),
           IP_ROW_BYTES);
    tk_metrics_free();
    assert_int_equal(tk_metrics_init(1), 0);
    assert_int_equal(tk_metrics->nworkers, 1);
    tk_metrics_bind(5); /* out of range: worker 0 */
    assert_ptr_equal(tk_metrics_slot, &tk_metrics->slots[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slots_are_summed, setup_block, teardown_block),
        cmocka_unit_test_setup_teardown(test_slots_are_shared_across_fork, setup_block,
                                        teardown_block),
        cmocka_unit_test_setup_teardown(test_release_keeps_counters, setup_block, teardown_block),
        cmocka_unit_test_setup_teardown(test_exposition_format, setup_block, teardown_block),
        cmocka_unit_test_setup_teardown(test_first_count, setup_block, teardown_block),
        cmocka_unit_test_setup_teardown(test_sizes, setup_block, teardown_block),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
