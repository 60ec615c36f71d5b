/* test_hub.c - the hub through a fake transport (no lws, no sockets): the
 * fan-out of bursts to caught-up and lagging clients, slow consumers, a
 * replay written at the client's pace, the bound on how far behind a client
 * may fall, and the replay/live seam. Time is the hub's test clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "tickerd/clock.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"
#include "tickerd/item.h"
#include "tickerd/metrics.h"

/* --- allocation failure, on demand ---
 * This binary is linked with --wrap for malloc, calloc, realloc and strdup
 * (Makefile), so every allocation of tickerd's own objects comes here
 * (jansson's own are not: under a failed allocation jansson 2.14 can dump
 * an object with a key missing, a library matter left out here). With
 * fail_after >= 0, the
 * allocation that many allocations from now fails. The test's own
 * allocations (the fake socket, the parsed frames) are never failed. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
static long fail_after = -1;
static bool failed_one, test_code;

static bool fail_now(void)
{
    if (fail_after < 0 || test_code) return false;
    if (fail_after-- > 0) return false;
    failed_one = true;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fail_now() ? NULL : __real_strdup(s);
}

/* A client whose socket is a byte buffer. stalled = it reads nothing, so
 * no writable callback comes. */
typedef struct fake {
    tk_client_t client; /* first, as in the real transports */
    unsigned char *out;
    size_t outlen;
    int writes;
    size_t room, largest; /* room: what its socket takes a write (0: any) */
    bool busy, wants, stalled, closed;
    int closing_code; /* -1: not closing */
} fake_t;

static int fake_write(tk_client_t *c, unsigned char *data, size_t len)
{
    fake_t *f = (fake_t *)c;
    f->out = __real_realloc(f->out, f->outlen + len);
    memcpy(f->out + f->outlen, data, len);
    f->outlen += len;
    f->writes++;
    if (len > f->largest) f->largest = len;
    if (f->stalled) f->busy = true; /* the socket is full: lws keeps the rest */
    return 0;
}

static bool fake_busy(tk_client_t *c)
{
    return ((fake_t *)c)->busy;
}

static size_t fake_room(tk_client_t *c)
{
    fake_t *f = (fake_t *)c;
    return f->room ? f->room : SIZE_MAX;
}

static void fake_want_write(tk_client_t *c)
{
    ((fake_t *)c)->wants = true;
}

static void fake_closing(tk_client_t *c, uint16_t code)
{
    ((fake_t *)c)->closing_code = code;
}

static const char *fake_peer(tk_client_t *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "fake");
    return buf;
}

static const tk_transport_ops_t fake_ops = {
    TK_TRANSPORT_WS, fake_write, fake_busy, fake_room, fake_want_write, fake_closing, fake_peer,
};

static tk_history_t *history;
static tk_hub_t *hub;
static int64_t t0, clock_ms;
static int next_id;

static tk_hub_limits_t limits(uint64_t max_queue_bytes)
{
    return (tk_hub_limits_t){max_queue_bytes, 15000, 25, 10, 200};
}

static int start_hub(void **state)
{
    t0 = tk_now_ms();
    next_id = 0;
    clock_ms = 1000000;
    history = tk_history_create(1000, 10000);
    tk_hub_limits_t lim = limits(16 << 20);
    hub = tk_hub_create(NULL, history, &lim);
    tk_hub_set_time(hub, clock_ms);
    tk_hub_set_epoch(hub, "e1");
    tk_hub_ready(hub);
    return hub ? 0 : -1;
}

static int stop_hub(void **state)
{
    tk_hub_free(hub);
    tk_history_free(history);
    return 0;
}

static void advance(int64_t ms)
{
    clock_ms += ms;
    tk_hub_set_time(hub, clock_ms);
}

static fake_t *connect_client(const char *query)
{
    fake_t *f = calloc(1, sizeof *f);
    char err[256];
    tk_sub_req_t *req = malloc(sizeof *req);
    f->closing_code = -1;
    tk_sub_req_init(req);
    assert_int_equal(tk_query_parse(cfg, query, req, err, sizeof err), 0);
    tk_hub_attach(hub, &f->client, &fake_ops, req);
    return f;
}

static void disconnect(fake_t *f)
{
    tk_hub_detach(&f->client);
    free(f->out);
    free(f);
}

/* Writable callbacks while the client reads; at most n of them. */
static void pump_n(fake_t *f, int n)
{
    while (n-- > 0 && f->wants && !f->stalled && !f->closed) {
        f->wants = false;
        f->busy = false; /* lws has flushed what it kept before calling back */
        int rc = tk_client_writable(&f->client);
        if (rc) f->closed = true;
    }
}

static void pump(fake_t *f)
{
    pump_n(f, 1 << 30);
}

/* Publishes one item of about text_bytes; returns its event. */
static tk_event_t *publish(const char *region, size_t text_bytes)
{
    char text[4096];
    memset(text, 'x', text_bytes);
    snprintf(text, sizeof text, "%d", next_id); /* unique, then padding */
    text[strlen(text)] = 'x';
    text[text_bytes] = 0;
    tk_field_t fields[2] = {{"text", 4, text, strlen(text)}, {"region", 6, region, strlen(region)}};
    tk_item_t item;
    tk_reject_t rej;
    tk_id_t id = {(uint64_t)t0, (uint64_t)next_id++};
    assert_int_equal(tk_item_parse(cfg, id, fields, *region ? 2 : 1, &item, &rej), 0);
    tk_event_t *ev = tk_history_add(history, &item, &rej);
    assert_non_null(ev);
    tk_hub_publish(hub, ev);
    return ev;
}

/* The text frames a client got, as JSON objects (pings left out). */
static json_t *frames(const fake_t *f)
{
    json_t *list = json_array();
    size_t i = 0;
    while (i + 2 <= f->outlen) {
        unsigned char op = f->out[i] & 0x0f;
        size_t len = f->out[i + 1] & 0x7f, hl = 2;
        if (len == 126) {
            len = (size_t)f->out[i + 2] << 8 | f->out[i + 3];
            hl = 4;
        } else if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | f->out[i + 2 + k];
            hl = 10;
        }
        assert_true(i + hl + len <= f->outlen); /* only whole frames are written */
        if (op == 1) {
            json_error_t e;
            json_t *o = json_loadb((const char *)f->out + i + hl, len, 0, &e);
            if (!o) fail_msg("not JSON: '%.*s'", (int)len, (const char *)f->out + i + hl);
            json_array_append_new(list, o);
        }
        i += hl + len;
    }
    assert_int_equal(i, f->outlen);
    return list;
}

static const char *type_of(json_t *list, size_t i)
{
    return json_string_value(json_object_get(json_array_get(list, i), "type"));
}

/* The IDs' sequence numbers of the item frames from index `from` on. */
static int item_seqs(json_t *list, size_t from, int *out, int cap)
{
    int n = 0;
    for (size_t i = from; i < json_array_size(list) && n < cap; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(list, i), "id"));
        if (strcmp(type_of(list, i), "item") != 0) continue;
        out[n++] = atoi(strchr(id, '-') + 1);
    }
    return n;
}

/* hello + replay marker, then the live item frames in order. */
static void expect_items(fake_t *f, int first, int count)
{
    json_t *l = frames(f);
    if (getenv("DEBUG_HUB")) {
        char *d = json_dumps(l, 0);
        fprintf(stderr, "%.600s\n", d);
        free(d);
    }
    assert_string_equal(type_of(l, 0), "hello");
    assert_string_equal(type_of(l, 1), "replay");
    int *seqs = malloc(sizeof(int) * (size_t)(count + 1));
    assert_int_equal(item_seqs(l, 2, seqs, count + 1), count);
    for (int i = 0; i < count; i++)
        assert_int_equal(seqs[i], first + i);
    assert_int_equal(json_array_size(l), (size_t)count + 2);
    free(seqs);
    json_decref(l);
}

/* A burst of 500 events: the reading client gets every one, in far fewer
 * writes than events; a client that reads nothing during it loses nothing
 * and, reading again, catches up; a filtered client gets its share. */
static void test_burst(void **state)
{
    fake_t *reader = connect_client("replay=0");
    fake_t *lagger = connect_client("replay=0");
    fake_t *mena = connect_client("replay=0&region=mena");
    pump(reader);
    pump(lagger);
    pump(mena);
    lagger->stalled = true;
    tk_hub_batch(hub, true);
    for (int i = 0; i < 500; i++)
        publish(i % 2 ? "mena" : "europe", 900);
    tk_hub_batch(hub, false);
    int before = reader->writes;
    pump(reader);
    pump(mena);
    assert_true(reader->writes - before < 20); /* 500 frames, packed */
    expect_items(reader, 0, 500);
    advance(5000);
    tk_hub_tick(hub);
    assert_int_equal(lagger->closing_code, -1); /* behind is not slow */
    lagger->stalled = false;
    pump(lagger);
    expect_items(lagger, 0, 500);
    json_t *l = frames(mena);
    int seqs[300];
    assert_int_equal(item_seqs(l, 2, seqs, 300), 250);
    for (int i = 0; i < 250; i++)
        assert_int_equal(seqs[i], 2 * i + 1);
    json_decref(l);
    /* Caught up again: the next event is written at once. */
    publish("", 10);
    assert_false(reader->wants);
    expect_items(reader, 0, 501);
    disconnect(reader);
    disconnect(lagger);
    disconnect(mena);
}

/* A client owed frames that takes nothing for slow_timeout is closed 1013;
 * one that keeps taking, however slowly, is not. */
static void test_stalled_client_is_slow(void **state)
{
    fake_t *stuck = connect_client("replay=0");
    fake_t *slow_reader = connect_client("replay=0");
    pump(stuck);
    pump(slow_reader);
    stuck->stalled = true;
    slow_reader->stalled = true; /* it reads a little every 5 s */
    for (int second = 0; second < 45; second++) {
        publish("", 500);
        advance(1000);
        if (second % 5 == 4) {
            slow_reader->stalled = false;
            pump_n(slow_reader, 1);
            slow_reader->stalled = true;
        }
        tk_hub_tick(hub);
        if (second < 14) assert_int_equal(stuck->closing_code, -1);
    }
    assert_int_equal(stuck->closing_code, 1013);
    assert_int_equal(slow_reader->closing_code, -1);
    /* The close frame waits until the socket has taken the rest. */
    stuck->stalled = false;
    stuck->busy = true;
    stuck->wants = false;
    assert_int_equal(tk_client_writable(&stuck->client), 0);
    stuck->busy = false;
    assert_int_equal(tk_client_writable(&stuck->client), 1);
    slow_reader->stalled = false;
    pump(slow_reader);
    expect_items(slow_reader, 0, 45);
    disconnect(stuck);
    disconnect(slow_reader);
}

/* replay=200 of large items is written at the client's pace, a writable
 * callback at a time, and never makes it a slow consumer, even with a
 * max_queue_bytes far below the replay's size. */
static void test_replay_at_client_pace(void **state)
{
    tk_hub_limits_t lim = limits(20000);
    tk_hub_set_limits(hub, &lim);
    for (int i = 0; i < 200; i++)
        publish("", 990);
    fake_t *f = connect_client("replay=200");
    for (int second = 0; second < 30 && f->wants; second++) {
        pump_n(f, 1);
        advance(1000);
        tk_hub_tick(hub);
    }
    assert_int_equal(f->closing_code, -1);
    assert_true(f->writes > 2);
    json_t *l = frames(f);
    assert_int_equal(json_array_size(l), 202);
    assert_string_equal(type_of(l, 0), "hello");
    assert_string_equal(type_of(l, 201), "replay");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(l, 201), "count")), 200);
    for (int i = 1; i <= 200; i++)
        assert_true(json_is_true(json_object_get(json_array_get(l, (size_t)i), "replay")));
    json_decref(l);
    disconnect(f);
}

/* Past max_queue_bytes behind, the clients furthest behind are closed
 * first, and the log shrinks back to history_size once nobody needs more. */
static void test_bound_closes_slowest_first(void **state)
{
    tk_hub_limits_t lim = limits(50000);
    tk_hub_set_limits(hub, &lim);
    fake_t *first = connect_client("replay=0");
    fake_t *second = connect_client("replay=0");
    fake_t *reader = connect_client("replay=0");
    pump(first);
    pump(second);
    pump(reader);
    first->stalled = true;
    int closed_first_at = -1, closed_second_at = -1;
    for (int i = 0; i < 1500; i++) {
        if (i == 20) second->stalled = true;
        publish("", 1000);
        pump(reader);
        if (closed_first_at < 0 && first->closing_code == 1013) closed_first_at = i;
        if (closed_second_at < 0 && second->closing_code == 1013) closed_second_at = i;
    }
    assert_true(closed_first_at > 0);
    assert_true(closed_second_at > closed_first_at);
    assert_int_equal(closed_second_at - closed_first_at, 20);
    assert_int_equal(reader->closing_code, -1);
    expect_items(reader, 0, 1500);
    assert_int_equal(tk_history_count(history), 1000);
    disconnect(first);
    disconnect(second);
    disconnect(reader);
}

/* The seam: events published while a since= replay waits to be written
 * arrive once, after the marker, in order. */
static void test_seam(void **state)
{
    for (int i = 0; i < 50; i++)
        publish("", 100);
    fake_t *f = connect_client("since=0-0"); /* not yet pumped: all queued */
    char q[64];
    snprintf(q, sizeof q, "since=%lld-%d", (long long)t0, 29);
    fake_t *g = connect_client(q);
    for (int i = 50; i < 80; i++)
        publish("", 100);
    pump(f);
    pump(g);
    json_t *l = frames(f);
    int seqs[100];
    assert_int_equal(item_seqs(l, 0, seqs, 100), 80);
    for (int i = 0; i < 80; i++)
        assert_int_equal(seqs[i], i);
    assert_string_equal(type_of(l, 51), "replay"); /* hello, 50 replayed, marker */
    json_decref(l);
    l = frames(g);
    assert_int_equal(item_seqs(l, 0, seqs, 100), 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(seqs[i], 30 + i);
    json_decref(l);
    disconnect(f);
    disconnect(g);
}

/* A resync (a gap in what tickerd read) sends gap with the last ID the
 * client got, a hello and the current state marked as a gap. */
static void test_resync_gap(void **state)
{
    fake_t *f = connect_client("replay=0");
    publish("", 10);
    pump(f);
    tk_hub_resync(hub, true);
    pump(f);
    json_t *l = frames(f);
    assert_string_equal(type_of(l, 3), "gap");
    char want[64];
    snprintf(want, sizeof want, "%lld-0", (long long)t0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 3), "last_id")), want);
    assert_string_equal(type_of(l, 4), "hello");
    assert_string_equal(type_of(l, 5), "item");
    assert_string_equal(type_of(l, 6), "replay");
    assert_true(json_is_true(json_object_get(json_array_get(l, 6), "gap")));
    json_decref(l);
    disconnect(f);
}

/* A client that connects before the start-up load is done gets its hello
 * first, whatever it sent meanwhile: a ping's pong comes after the replay
 * marker, and a subscribe's filter is the one it is served with. */
static void test_parked_client(void **state)
{
    tk_hub_free(hub);
    tk_hub_limits_t lim = limits(16 << 20);
    hub = tk_hub_create(NULL, history, &lim);
    tk_hub_set_epoch(hub, "e1");
    publish("europe", 10);
    publish("mena", 10);
    fake_t *f = connect_client("replay=5");
    tk_client_send_json(&f->client, "pong", json_object());
    tk_sub_req_t req;
    char err[200];
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_parse(cfg, "region=mena", &req, err, sizeof err), 0);
    tk_hub_resubscribe(&f->client, &req);
    pump(f);
    assert_int_equal(f->outlen, 0);
    tk_hub_ready(hub);
    pump(f);
    json_t *l = frames(f);
    assert_int_equal(json_array_size(l), 4);
    assert_string_equal(type_of(l, 0), "hello");
    assert_string_equal(type_of(l, 1), "item");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(l, 1), "id")), "-1"));
    assert_string_equal(type_of(l, 2), "replay");
    assert_string_equal(type_of(l, 3), "pong");
    json_decref(l);
    disconnect(f);
}

/* A write carries no more than the socket takes, but always a frame. */
static void test_writes_fit_the_socket(void **state)
{
    fake_t *f = connect_client("replay=0");
    pump(f);
    f->room = 800;
    f->largest = 0;
    tk_hub_batch(hub, true);
    for (int i = 0; i < 40; i++)
        publish("", i == 20 ? 990 : 200);
    tk_hub_batch(hub, false);
    pump(f);
    expect_items(f, 0, 40);
    assert_true(f->largest > 800); /* the one big frame, alone */
    assert_true(f->largest < 1200);
    assert_true(f->writes > 10);
    disconnect(f);
}

/* Out of memory on the delivery path (issue 12): for every allocation of
 * a scenario in turn (clients connecting with a replay, items published
 * and caught up), that one allocation fails. Afterwards every client has
 * either been closed with 1011 or has every item it matched that was
 * accepted, in order: a message is never dropped silently. */
static void test_out_of_memory_closes_1011(void **state)
{
    int rounds = 0, closed = 0, lost_items = 0;
    for (long n = 0;; n++, rounds++) {
        start_hub(NULL);
        for (int i = 0; i < 4; i++)
            publish(i % 2 ? "europe" : "mena", 50);
        failed_one = false;
        fail_after = n;
        test_code = true;
        fake_t *f[3];
        const char *queries[3] = {"replay=2", "region=europe&replay=3", "replay=0"};
        for (int i = 0; i < 3; i++) {
            f[i] = calloc(1, sizeof *f[i]);
            f[i]->closing_code = -1;
            tk_sub_req_t *req = malloc(sizeof *req);
            char err[256];
            tk_sub_req_init(req);
            assert_int_equal(tk_query_parse(cfg, queries[i], req, err, sizeof err), 0);
            test_code = false;
            tk_hub_attach(hub, &f[i]->client, &fake_ops, req);
            test_code = true;
        }
        test_code = false;
        bool accepted[8] = {0};
        for (int i = 0; i < 8; i++) {
            const char *region = i % 2 ? "europe" : "mena";
            tk_field_t fields[2] = {{"text", 4, "live", 4}, {"region", 6, region, strlen(region)}};
            tk_item_t item;
            tk_reject_t rej;
            tk_id_t id = {(uint64_t)t0, (uint64_t)next_id++};
            if (tk_item_parse(cfg, id, fields, 2, &item, &rej)) continue; /* refused: reported */
            tk_event_t *ev = tk_history_add(history, &item, &rej);
            if (!ev) { /* refused: the item stays ours, as in the worker */
                tk_item_clear(&item);
                continue;
            }
            accepted[i] = true;
            tk_hub_publish(hub, ev);
            for (int k = 0; k < 3; k++)
                pump(f[k]);
        }
        fail_after = -1;
        test_code = true;
        for (int k = 0; k < 3; k++) {
            pump(f[k]);
            if (f[k]->closing_code == 1011) {
                closed++;
                continue;
            }
            assert_int_equal(f[k]->closing_code, -1);
            /* the live items it matched, every one, in order */
            json_t *l = frames(f[k]);
            int seqs[16], want[16], nwant = 0;
            for (int i = 0; i < 8; i++)
                if (accepted[i] && (k != 1 || i % 2)) want[nwant++] = 4 + i;
            int got = item_seqs(l, 0, seqs, 16), live = 0;
            for (int i = 0; i < got; i++)
                if (seqs[i] >= 4) seqs[live++] = seqs[i];
            if (live != nwant) lost_items++;
            assert_int_equal(live, nwant);
            for (int i = 0; i < nwant; i++)
                assert_int_equal(seqs[i], want[i]);
            json_decref(l);
        }
        for (int k = 0; k < 3; k++)
            disconnect(f[k]);
        test_code = false;
        stop_hub(NULL);
        if (!failed_one) break; /* every allocation of the scenario has failed once */
    }
    assert_true(rounds > 20);
    assert_true(closed > 0);
    assert_int_equal(lost_items, 0);
}

int main(void)
{
    if (tk_metrics_init(1)) return 1;
    tk_metrics_bind(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_stalled_client_is_slow, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_replay_at_client_pace, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_bound_closes_slowest_first, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_seam, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_resync_gap, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_parked_client, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_writes_fit_the_socket, start_hub, stop_hub),
        cmocka_unit_test(test_out_of_memory_closes_1011),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    tk_metrics_free();
    return rc;
}
