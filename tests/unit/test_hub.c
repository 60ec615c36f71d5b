/* test_hub.c - the hub through a fake transport (no lws, no sockets): the
 * fan-out of bursts to caught-up and lagging clients, slow consumers, a
 * replay written at the client's pace, the bound on how far behind a client
 * may fall, and the replay/live seam. Time is the hub's test clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "inject.h"
#include "tickerd/clock.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"
#include "tickerd/item.h"
#include "tickerd/metrics.h"

/* A client whose socket is a byte buffer. stalled = it reads nothing, so
 * no writable callback comes. */
typedef struct fake {
    tk_client_t client; /* first, as in the real transports */
    unsigned char *out;
    size_t outlen;
    int writes;
    size_t room, largest; /* room: what its socket takes a write (0: any) */
    bool busy, wants, stalled, closed;
    bool full; /* its socket takes nothing now (room 0) until a callback */
    bool broken; /* its writes fail */
    int closing_code; /* -1: not closing */
} fake_t;

static int fake_write(tk_client_t *c, unsigned char *data, size_t len)
{
    fake_t *f = (fake_t *)c;
    if (f->broken) return -1;
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
    if (f->full) return 0;
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
    TK_TRANSPORT_WS, fake_write, fake_busy, fake_room, fake_want_write, fake_closing, fake_peer, NULL,
};

static const tk_transport_ops_t fake_sse_ops = {
    TK_TRANSPORT_SSE, fake_write, fake_busy, fake_room, fake_want_write, fake_closing, fake_peer, NULL,
};

/* A long-poll: its answers, each kept as the body a transport would write. */
typedef struct fake_poll {
    fake_t f; /* first */
    int answers;
    bool gap;
    int n;
    char last_id[TK_ID_STRLEN];
    json_t *events; /* the events of the last answer */
} fake_poll_t;

static long fake_answer(tk_client_t *c, const tk_answer_t *a)
{
    fake_poll_t *p = (fake_poll_t *)c;
    p->answers++;
    p->gap = a->gap;
    p->n = a->n;
    tk_id_format(a->last_id, p->last_id);
    json_decref(p->events);
    p->events = json_array();
    for (int i = 0; i < a->n; i++) {
        json_error_t e;
        json_t *o = json_loadb((const char *)a->events[i]->data, a->events[i]->len, 0, &e);
        if (!o) fail_msg("not a JSON event: '%.*s'", (int)a->events[i]->len, a->events[i]->data);
        json_array_append_new(p->events, o);
    }
    return 100;
}

static const tk_transport_ops_t fake_poll_ops = {
    TK_TRANSPORT_POLL, fake_write, fake_busy, fake_room, fake_want_write, fake_closing, fake_peer,
    fake_answer,
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

static fake_t *connect_to(const tk_transport_ops_t *ops, const char *query)
{
    fake_t *f = __real_calloc(1, sizeof *f);
    char err[256];
    tk_sub_req_t *req = __real_malloc(sizeof *req);
    f->closing_code = -1;
    tk_sub_req_init(req);
    assert_int_equal(tk_query_parse(cfg, query, req, err, sizeof err), 0);
    tk_hub_attach(hub, &f->client, ops, req);
    return f;
}

static fake_t *connect_client(const char *query)
{
    return connect_to(&fake_ops, query);
}

static void disconnect(fake_t *f)
{
    tk_hub_detach(&f->client);
    free(f->out);
    free(f);
}

/* A subscribe frame. */
static void resubscribe(fake_t *f, const char *query)
{
    tk_sub_req_t req;
    char err[200];
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_parse(cfg, query, &req, err, sizeof err), 0);
    tk_hub_resubscribe(&f->client, &req);
}

/* Writable callbacks while the client reads; at most n of them. */
static void pump_n(fake_t *f, int n)
{
    while (n-- > 0 && f->wants && !f->stalled && !f->closed) {
        f->wants = false;
        f->busy = false; /* lws has flushed what it kept before calling back */
        f->full = false; /* and the socket has room */
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

/* A new hub over the same history, its start-up load not done. */
static void hub_not_ready(void)
{
    tk_hub_free(hub);
    tk_hub_limits_t lim = limits(16 << 20);
    hub = tk_hub_create(NULL, history, &lim);
    tk_hub_set_epoch(hub, "e1");
}

/* --- one-shot clients (long-poll) --- */

static fake_poll_t *poll_client(const char *query, int wait_s)
{
    fake_poll_t *p = __real_calloc(1, sizeof *p);
    char err[256];
    tk_sub_req_t *req = __real_malloc(sizeof *req);
    p->f.closing_code = -1;
    tk_sub_req_init(req);
    assert_int_equal(tk_query_parse(cfg, query, req, err, sizeof err), 0);
    tk_hub_attach_oneshot(hub, &p->f.client, &fake_poll_ops, req, wait_s);
    return p;
}

static void poll_done(fake_poll_t *p)
{
    tk_hub_detach(&p->f.client);
    json_decref(p->events);
    free(p);
}

static const char *event_id(const fake_poll_t *p, size_t i)
{
    return json_string_value(json_object_get(json_array_get(p->events, i), "id"));
}

static void id_of(const tk_event_t *ev, char *out)
{
    tk_id_format(ev->id, out);
}

/* Publishes a global item, then connects a poll with since=<its ID> (into
 * since) and the rest of the query. */
static fake_poll_t *poll_after(char *since, const char *rest, int wait_s)
{
    char query[160];
    id_of(publish("", 10), since);
    snprintf(query, sizeof query, "since=%s%s", since, rest);
    return poll_client(query, wait_s);
}

/* Without since: the current state as replay events, at once, once; the
 * writable callback then says it is done, and nothing more comes. */
static void test_poll_state(void **state)
{
    char last[TK_ID_STRLEN];
    publish("europe", 10);
    publish("mena", 10);
    id_of(publish("", 10), last);
    fake_poll_t *p = poll_client("region=mena", 25);
    assert_true(p->f.wants);
    pump(&p->f);
    assert_true(p->f.closed);
    assert_int_equal(p->answers, 1);
    assert_int_equal(p->n, 2);
    assert_false(p->gap);
    assert_string_equal(p->last_id, last);
    assert_true(json_is_true(json_object_get(json_array_get(p->events, 0), "replay")));
    assert_int_equal(p->f.outlen, 0); /* no hello, no marker: the answer is all */
    publish("mena", 10);
    assert_int_equal(p->answers, 1);
    poll_done(p);
}

/* With since: it waits, no timer, no frame; an event it does not match
 * leaves it waiting; one it matches makes it owed, and the answer has every
 * event it matches by then, live frames, and the newest ID read. */
static void test_poll_waits_for_a_match(void **state)
{
    char since[TK_ID_STRLEN], last[TK_ID_STRLEN];
    fake_poll_t *p = poll_after(since, "&region=asia", 25);
    assert_false(p->f.wants);
    publish("mena", 10);
    assert_false(p->f.wants);
    tk_event_t *a = publish("asia", 10);
    assert_true(p->f.wants);
    tk_event_t *b = publish("", 10); /* before its writable callback: in the same answer */
    id_of(publish("europe", 10), last);
    pump(&p->f);
    assert_int_equal(p->answers, 1);
    assert_int_equal(p->n, 2);
    char ida[TK_ID_STRLEN], idb[TK_ID_STRLEN];
    id_of(a, ida);
    id_of(b, idb);
    assert_string_equal(event_id(p, 0), ida);
    assert_string_equal(event_id(p, 1), idb);
    assert_null(json_object_get(json_array_get(p->events, 0), "replay"));
    assert_string_equal(p->last_id, last);
    assert_int_equal(tk_hub_count(hub), 1); /* until the transport detaches it */
    poll_done(p);
    assert_int_equal(tk_hub_count(hub), 0);
}

/* wait_s from the tick: answered empty at the tick within half a second of
 * it, not before; wait_s=0 at once; last_id is since when since is ahead. */
static void test_poll_wait_ends(void **state)
{
    char since[TK_ID_STRLEN], query[128];
    fake_poll_t *p = poll_after(since, "", 3);
    snprintf(query, sizeof query, "since=%s", since);
    advance(2000);
    tk_hub_tick(hub);
    assert_false(p->f.wants);
    advance(600); /* 2.6 s: the wait ends before the next tick */
    tk_hub_tick(hub);
    assert_true(p->f.wants);
    pump(&p->f);
    assert_int_equal(p->answers, 1);
    assert_int_equal(p->n, 0);
    assert_string_equal(p->last_id, since);
    poll_done(p);
    p = poll_client(query, 0);
    assert_true(p->f.wants);
    pump(&p->f);
    assert_int_equal(p->n, 0);
    poll_done(p);
    p = poll_client("since=99999999999999-0", 0);
    pump(&p->f);
    assert_string_equal(p->last_id, "99999999999999-0");
    poll_done(p);
}

/* A drain answers every waiting poll now, empty, and leaves the other
 * clients to its pace; a shutdown answers them too; a token that expires
 * is the transport's to answer (401): the hub only ends it. */
static void test_poll_drain_and_close(void **state)
{
    char since[TK_ID_STRLEN], query[128];
    fake_t *ws = connect_client("replay=0");
    pump(ws);
    fake_poll_t *p = poll_after(since, "", 60);
    snprintf(query, sizeof query, "since=%s", since);
    fake_poll_t *q = poll_client(query, 60);
    assert_int_equal(tk_hub_answer_oneshots(hub), 2);
    assert_int_equal(ws->closing_code, -1);
    pump(&p->f);
    pump(&q->f);
    assert_int_equal(p->answers + q->answers, 2);
    assert_int_equal(p->n + q->n, 0);
    assert_string_equal(p->last_id, since);
    assert_int_equal(tk_hub_answer_oneshots(hub), 0); /* answered already */
    poll_done(p);
    poll_done(q);
    p = poll_client(query, 60);
    tk_hub_close_all(hub, 1001);
    pump(&p->f);
    assert_int_equal(p->answers, 1);
    poll_done(p);
    p = poll_client(query, 60);
    p->f.client.expires_s = 1;
    tk_hub_tick(hub);
    pump(&p->f);
    assert_true(p->f.closed);
    assert_int_equal(p->answers, 0);
    assert_int_equal(p->f.client.close_code, 1008);
    poll_done(p);
    disconnect(ws);
}

/* A resync answers a waiting poll with the current state and gap:true; a
 * poll from another epoch gets the same at once. */
static void test_poll_gap(void **state)
{
    char since[TK_ID_STRLEN], query[128];
    fake_poll_t *p = poll_after(since, "", 60);
    tk_hub_resync(hub, true);
    pump(&p->f);
    assert_int_equal(p->answers, 1);
    assert_true(p->gap);
    assert_int_equal(p->n, 1);
    assert_true(json_is_true(json_object_get(json_array_get(p->events, 0), "replay")));
    poll_done(p);
    snprintf(query, sizeof query, "since=%s&epoch=other", since);
    p = poll_client(query, 60);
    pump(&p->f);
    assert_true(p->gap);
    assert_int_equal(p->n, 1);
    poll_done(p);
}

/* More than replay_max events after since come in pages: the oldest
 * replay_max, last_id the last of them, no gap; the next poll the rest. */
static void test_poll_pages(void **state)
{
    char since[TK_ID_STRLEN], query[128];
    fake_poll_t *p = poll_after(since, "", 60);
    tk_hub_batch(hub, true);
    for (int i = 0; i < 250; i++)
        publish("", 10);
    tk_hub_batch(hub, false);
    pump(&p->f);
    assert_int_equal(p->n, 200);
    assert_false(p->gap);
    assert_string_equal(p->last_id, event_id(p, 199));
    snprintf(query, sizeof query, "since=%s", p->last_id);
    poll_done(p);
    p = poll_client(query, 60);
    pump(&p->f);
    assert_int_equal(p->n, 50);
    assert_false(p->gap);
    poll_done(p);
}

/* Parked before the start-up load: answered once the hub is ready. */
static void test_poll_parked(void **state)
{
    hub_not_ready();
    publish("", 10);
    fake_poll_t *p = poll_client("", 25);
    pump(&p->f);
    assert_int_equal(p->answers, 0);
    tk_hub_ready(hub);
    pump(&p->f);
    assert_int_equal(p->answers, 1);
    assert_int_equal(p->n, 1);
    poll_done(p);
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
    hub_not_ready();
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

/* The end of a batch writes what each reading client is owed at once, its
 * frames packed, with no writable callback asked for (one in the kernel
 * and one more send is what it would cost); a client whose transport still
 * holds a write, or whose socket has no room, waits for its callback. */
static void test_batch_end_writes_at_once(void **state)
{
    fake_t *reader = connect_client("replay=0");
    fake_t *busy = connect_client("replay=0");
    fake_t *full = connect_client("replay=0");
    pump(reader);
    pump(busy);
    pump(full);
    busy->busy = true;
    full->full = true;
    reader->writes = 0;
    tk_hub_batch(hub, true);
    for (int i = 0; i < 50; i++)
        publish("", 200);
    assert_int_equal(reader->writes, 0); /* nothing in the batch */
    tk_hub_batch(hub, false);
    assert_false(reader->wants);
    assert_true(reader->writes >= 1 && reader->writes <= 3);
    expect_items(reader, 0, 50);
    assert_true(busy->wants);
    pump(busy);
    expect_items(busy, 0, 50);
    pump(full);
    expect_items(full, 0, 50);
    disconnect(reader);
    disconnect(busy);
    disconnect(full);
}

/* A new client gets its hello, its replay and the marker in one write at
 * once, with no writable callback asked for (in a reconnect storm that
 * cost each client a poll change and a loop turn); a client connecting
 * during a batch waits for the batch's end, one whose transport is busy for
 * its callback. */
static void test_new_client_is_written_at_once(void **state)
{
    for (int i = 0; i < 3; i++)
        publish("", 100);
    fake_t *f = connect_client("replay=3");
    assert_int_equal(f->writes, 1);
    assert_false(f->wants);
    assert_null(f->client.q);
    json_t *got = frames(f);
    assert_int_equal(json_array_size(got), 5);
    assert_string_equal(type_of(got, 0), "hello");
    assert_string_equal(type_of(got, 4), "replay");
    json_decref(got);
    tk_hub_batch(hub, true);
    fake_t *g = connect_client("replay=3");
    assert_int_equal(g->writes, 0);
    tk_hub_batch(hub, false);
    assert_int_equal(g->writes, 1);
    assert_false(g->wants);
    disconnect(f);
    disconnect(g);
}

/* An idle client holds no queue of its own frames once they are written:
 * every connection would pay for it (docs/performance.md, memory). */
static void test_idle_client_holds_no_queue(void **state)
{
    fake_t *f = connect_client("replay=5");
    for (int i = 0; i < 3; i++)
        publish("", 100);
    tk_hub_batch(hub, true); /* so that g's frames wait: owed, queued */
    fake_t *g = connect_client("replay=5");
    assert_non_null(g->client.q); /* hello and replay, owed */
    tk_hub_batch(hub, false);
    pump(g);
    assert_null(g->client.q);
    assert_int_equal(g->client.qcap, 0);
    f->busy = true; /* a ping while busy is queued, then written */
    tk_hub_set_time(hub, 31000);
    for (int i = 0; i < 30; i++)
        tk_hub_tick(hub);
    pump(f);
    assert_null(f->client.q);
    disconnect(f);
    disconnect(g);
}

/* The fan-out leaves a client alone for the events it does not match. Far
 * behind by those, it owes none of them: an own frame later is written at
 * once and does not count it as a slow consumer. */
static void test_unmatched_events_are_not_owed(void **state)
{
    tk_hub_limits_t lim = limits(50000);
    tk_hub_set_limits(hub, &lim);
    fake_t *mena = connect_client("replay=0&region=mena");
    fake_t *reader = connect_client("replay=0");
    pump(mena);
    pump(reader);
    for (int i = 0; i < 200; i++) { /* 200 kB: four times the bound */
        publish("europe", 1000);
        pump(reader);
    }
    assert_false(mena->wants);
    int writes = mena->writes;
    assert_int_equal(tk_client_send_json(&mena->client, "pong", json_object()), 0);
    tk_hub_tick(hub);
    assert_int_equal(mena->closing_code, -1);
    pump(mena);
    assert_int_equal(mena->writes, writes + 1); /* the pong alone */
    publish("mena", 100);
    assert_false(mena->wants); /* caught up: written at once */
    json_t *l = frames(mena);
    assert_int_equal(json_array_size(l), 4); /* hello, replay, pong, item */
    assert_string_equal(type_of(l, 2), "pong");
    int seq;
    assert_int_equal(item_seqs(l, 3, &seq, 1), 1);
    assert_int_equal(seq, 200);
    json_decref(l);
    expect_items(reader, 0, 201);
    disconnect(mena);
    disconnect(reader);
}

/* Clients whose writes fail are closed during an event's fan-out; every
 * other client still gets that event and the next, once. */
static void test_closed_during_fanout(void **state)
{
    enum { N = 9 };
    fake_t *f[N];
    for (int i = 0; i < N; i++) {
        f[i] = connect_client("replay=0");
        pump(f[i]);
    }
    for (int i = 0; i < N; i += 3)
        f[i]->broken = true;
    publish("", 100);
    publish("", 100);
    for (int i = 0; i < N; i++) {
        if (f[i]->broken) {
            assert_int_equal(f[i]->closing_code, 0);
            continue;
        }
        assert_int_equal(f[i]->closing_code, -1);
        expect_items(f[i], 0, 2);
    }
    for (int i = 0; i < N; i++)
        disconnect(f[i]);
}

/* A subscribe frame changes what the fan-out matches at once. */
static void test_resubscribe_refilters(void **state)
{
    fake_t *f = connect_client("replay=0&region=mena");
    pump(f);
    resubscribe(f, "region=europe");
    pump(f);
    publish("mena", 100);
    publish("europe", 100);
    json_t *l = frames(f);
    int seqs[4];
    assert_int_equal(item_seqs(l, 0, seqs, 4), 1);
    assert_int_equal(seqs[0], 1);
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

/* A replay of [replay] max items, however many, is written at the
 * client's pace: the bound on a client's own frames (pongs and errors it
 * asked for without reading) comes on top of it. */
static void test_replay_max_is_not_too_many_frames(void **state)
{
    tk_hub_limits_t lim = limits(1 << 30);
    lim.replay_max = 9000;
    tk_hub_set_limits(hub, &lim);
    for (int i = 0; i < 9000; i++)
        publish("", 10);
    fake_t *f = connect_client("replay=9000");
    assert_int_equal(f->closing_code, -1);
    pump(f);
    json_t *l = frames(f);
    assert_int_equal(json_array_size(l), 9002);
    assert_string_equal(type_of(l, 9001), "replay");
    json_decref(l);
    /* Stalled now: pongs wait, up to the bound and no further. */
    f->stalled = true;
    f->busy = true;
    int queued = 0;
    while (f->closing_code == -1 && queued < 100000) {
        tk_client_send_json(&f->client, "pong", json_object());
        queued++;
    }
    assert_int_equal(f->closing_code, 1013);
    assert_int_equal(queued, 8192 + 9000 + 2 + 1); /* the one over the bound closes */
    disconnect(f);
}

/* --- out of memory on the delivery path ---
 * A scene drives items from stream fields through tk_item_parse,
 * tk_history_add and tk_hub_publish to clients of both transports that are
 * caught up, behind, filtered, connecting with a replay or since,
 * resubscribing, pinged and resynced. Run with the Nth allocation failing,
 * for every N the scene makes, it must keep the promise of SPEC §2: an
 * entry the history refuses is refused for everyone, as out of memory (the
 * worker logs and counts it); every client then either gets exactly what it
 * would have got had that entry never been written, or a prefix of it and a
 * close with 1011. The reference is the same scene run without failures,
 * leaving out the entries the failing run refused. */

#define SCENE_CLIENTS 6
#define SCENE_ENTRIES 64

typedef struct scene {
    fake_t *c[SCENE_CLIENTS];
    uint64_t skip;    /* entries left out (the reference run) */
    uint64_t refused; /* entries the parser or the history refused */
    uint64_t oom;     /* ... of them for want of memory */
    tk_reason_t why[SCENE_ENTRIES];
    int entries;
    long allocs, failed; /* allocations made, failed in scene_run */
    json_t *out[SCENE_CLIENTS];
    int code[SCENE_CLIENTS]; /* close code; -1: open */
} scene_t;

/* One entry through parser and history to the hub, as worker.c does it.
 * op "update" (with text) or "retract" (without) of entry ref, "json": the
 * entry in the json form (with a ttl and a region list), NULL: an item. */
static void offer(scene_t *s, const char *op, int ref, const char *region)
{
    int k = s->entries++;
    tk_id_t id = {(uint64_t)t0, (uint64_t)next_id++};
    char text[96], refid[TK_ID_STRLEN];
    tk_field_t f[4];
    size_t n = 0;
    tk_item_t item;
    tk_reject_t rej;
    tk_event_t *ev = NULL;
    if (s->skip >> k & 1) return;
    snprintf(text, sizeof text, "entry %d", k);
    bool json_form = op && strcmp(op, "json") == 0;
    if (json_form) {
        snprintf(text, sizeof text, "{\"text\":\"entry %d\",\"ttl\":600,\"region\":[\"%s\"]}", k,
                 region);
        f[n++] = (tk_field_t){"json", 4, text, strlen(text)};
        op = NULL;
        region = "";
    } else if (!op || strcmp(op, "retract") != 0) {
        f[n++] = (tk_field_t){"text", 4, text, strlen(text)};
    }
    if (*region) f[n++] = (tk_field_t){"region", 6, region, strlen(region)};
    if (op) {
        tk_id_format((tk_id_t){(uint64_t)t0, (uint64_t)ref}, refid);
        f[n++] = (tk_field_t){"op", 2, op, strlen(op)};
        f[n++] = (tk_field_t){"ref", 3, refid, strlen(refid)};
    }
    if (tk_item_parse(cfg, id, f, n, &item, &rej) == 0 &&
        !(ev = tk_history_add(history, &item, &rej)))
        tk_item_clear(&item);
    if (ev) {
        tk_hub_publish(hub, ev);
        return;
    }
    s->refused |= 1ULL << k;
    s->why[k] = rej.reason;
    /* jansson 2.14's json_loadb reports a failed allocation as bad syntax:
     * refused and counted all the same, as bad_json. */
    if ((rej.reason == TK_REJECT_BAD_ENTRY && strstr(rej.detail, "out of memory")) ||
        (rej.reason == TK_REJECT_BAD_JSON && json_form && inject.failed))
        s->oom |= 1ULL << k;
}

static void pump_all(scene_t *s)
{
    for (int i = 0; i < SCENE_CLIENTS; i++)
        if (s->c[i]) pump(s->c[i]);
}

/* Before the failures: six entries read at start-up, four clients parked
 * until the load is done, one of them sent a pong meanwhile.
 * history_size 4: the log grows behind a client that stops reading. */
static void scene_setup(scene_t *s)
{
    tk_hub_limits_t lim = {16 << 20, 15000, 1, 200, 200};
    history = tk_history_create(4, 10000);
    hub = tk_hub_create(NULL, history, &lim);
    assert_non_null(hub);
    tk_hub_set_time(hub, clock_ms);
    tk_hub_set_epoch(hub, "e1");
    next_id = 0;
    for (int i = 0; i < 6; i++)
        offer(s, NULL, 0, i % 2 ? "mena" : "europe");
    s->c[0] = connect_to(&fake_ops, "replay=2");
    s->c[1] = connect_to(&fake_sse_ops, "replay=0");
    s->c[2] = connect_to(&fake_ops, "replay=0");
    s->c[3] = connect_to(&fake_ops, "replay=0&region=mena");
    tk_client_send_json(&s->c[0]->client, "pong", json_object());
}

/* What may fail: serving the parked clients, two more connecting with a
 * replay and with since, live entries to caught-up and lagging clients, a
 * burst, an update and a retract, a resubscribe, pings, catching up and a
 * resync. */
static void scene_run(scene_t *s)
{
    char since[64];
    tk_hub_ready(hub);
    pump_all(s);
    s->c[2]->stalled = true;
    snprintf(since, sizeof since, "since=%lld-1", (long long)t0);
    s->c[4] = connect_to(&fake_ops, "replay=10");
    s->c[5] = connect_to(&fake_sse_ops, since);
    tk_client_send_json(&s->c[0]->client, "pong", json_object());
    for (int i = 0; i < 3; i++)
        offer(s, NULL, 0, "");
    tk_hub_batch(hub, true);
    for (int i = 0; i < 14; i++)
        offer(s, NULL, 0, i % 2 ? "mena" : "europe");
    offer(s, "update", 1, "");
    offer(s, "retract", 2, "");
    offer(s, "json", 0, "mena");
    tk_hub_batch(hub, false);
    resubscribe(s->c[3], "region=europe&replay=3");
    pump_all(s);
    tk_hub_tick(hub); /* heartbeat_s 1: pings, one of them queued */
    s->c[2]->stalled = false;
    pump_all(s);
    offer(s, NULL, 0, "mena");
    tk_hub_resync(hub, true);
    pump_all(s);
}

static void scene_free(scene_t *s)
{
    for (int i = 0; i < SCENE_CLIENTS; i++)
        if (s->c[i]) disconnect(s->c[i]);
    tk_hub_free(hub);
    tk_history_free(history);
    hub = NULL;
    history = NULL;
}

/* The frames a client got, each as one string: a WebSocket text frame's
 * payload, an SSE event block; pings and comments left out. */
static json_t *transcript(const fake_t *f)
{
    json_t *list = json_array();
    const unsigned char *p = f->out, *end = p + f->outlen;
    while (p < end) {
        size_t len, hl;
        if (f->client.transport == TK_TRANSPORT_SSE) {
            const unsigned char *e = memmem(p, (size_t)(end - p), "\n\n", 2);
            assert_non_null(e); /* whole blocks only */
            if (*p != ':')
                json_array_append_new(list, json_stringn((const char *)p, (size_t)(e - p)));
            p = e + 2;
            continue;
        }
        assert_true(end - p >= 2);
        len = p[1] & 0x7f;
        hl = len == 126 ? 4 : 2;
        assert_true(len < 127); /* the scene's frames are small */
        if (len == 126) len = (size_t)p[2] << 8 | p[3];
        assert_true((size_t)(end - p) >= hl + len); /* whole frames only */
        if ((p[0] & 0x0f) == 1)
            json_array_append_new(list, json_stringn((const char *)p + hl, len));
        p += hl + len;
    }
    return list;
}

/* Plays the scene with the entries in skip left out and, in scene_run,
 * the fail_at-th allocation failing (0: none; persist: and every one after
 * it). Leaves in s each client's transcript and close code. */
static void play(scene_t *s, uint64_t skip, long fail_at, bool persist)
{
    memset(s, 0, sizeof *s);
    s->skip = skip;
    scene_setup(s);
    inject = (typeof(inject)){.armed = true, .persist = persist, .fail_at = fail_at};
    scene_run(s);
    inject.armed = false;
    s->allocs = inject.seen;
    s->failed = inject.failed;
    for (int i = 0; i < SCENE_CLIENTS; i++) {
        s->out[i] = transcript(s->c[i]);
        s->code[i] = s->c[i]->closing_code;
    }
    scene_free(s);
}

static void scene_clear(scene_t *s)
{
    for (int i = 0; i < SCENE_CLIENTS; i++)
        json_decref(s->out[i]);
}

static bool is_prefix(json_t *a, json_t *b)
{
    if (json_array_size(a) > json_array_size(b)) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_equal(json_array_get(a, i), json_array_get(b, i))) return false;
    return true;
}

static void explain(long n, int client, const scene_t *got, const scene_t *want)
{
    char *g = json_dumps(got->out[client], JSON_INDENT(1)),
         *w = json_dumps(want->out[client], JSON_INDENT(1));
    fprintf(stderr, "allocation %ld failing: client %d closed %d\ngot %s\nwant %s\n", n, client,
            got->code[client], g, w);
    free(g);
    free(w);
}

/* The reference runs, by the entries they leave out (most failures leave
 * out none); the oldest one makes room. */
#define REFS 32
static struct {
    scene_t runs[REFS];
    int n, next;
} refs;

static const scene_t *reference(uint64_t skip)
{
    for (int i = 0; i < refs.n; i++)
        if (refs.runs[i].skip == skip) return &refs.runs[i];
    scene_t *r = &refs.runs[refs.n < REFS ? refs.n++ : refs.next++ % REFS];
    if (r->out[0]) scene_clear(r);
    play(r, skip, 0, false);
    return r;
}

/* Allocation n fails: what each client got against the reference. Returns
 * how many clients were closed. */
static int check_failure(long n, bool persist, int *refusals)
{
    scene_t got;
    int closed = 0;
    play(&got, 0, n, persist);
    assert_true(got.failed >= 1);
    const scene_t *want = reference(got.oom);
    /* Refused for another reason than memory: refused so without failures. */
    assert_int_equal(got.refused & ~got.oom, want->refused);
    for (int k = 0; k < got.entries; k++)
        if (want->refused >> k & 1) assert_int_equal(got.why[k], want->why[k]);
    for (int i = 0; i < SCENE_CLIENTS; i++) {
        bool ok = want->code[i] == -1 &&
                  (got.code[i] == -1 ? json_equal(got.out[i], want->out[i])
                                     : got.code[i] == 1011 && is_prefix(got.out[i], want->out[i]));
        if (!ok) explain(n, i, &got, want);
        assert_true(ok);
        closed += got.code[i] != -1;
    }
    *refusals += got.oom != 0;
    scene_clear(&got);
    return closed;
}

/* Every allocation of the scene fails once, and from there on. */
static void test_out_of_memory(void **state)
{
    scene_t s;
    t0 = tk_now_ms();
    clock_ms = 1000000;
    play(&s, 0, 0, false);
    long total = s.allocs;
    for (int i = 0; i < SCENE_CLIENTS; i++)
        assert_int_equal(s.code[i], -1);
    assert_int_equal(s.refused, 0);
    scene_clear(&s);
    for (int persist = 0; persist < 2; persist++) {
        int closes = 0, refusals = 0, harmless = 0;
        for (long n = 1; n <= total; n++) {
            int r = refusals, c = check_failure(n, persist, &refusals);
            closes += c;
            harmless += !c && r == refusals;
        }
        fprintf(stderr,
                "out of memory%s: %ld allocations; clients closed 1011: %d, entries refused: %d, "
                "no effect: %d\n",
                persist ? " from then on" : " once", total, closes, refusals, harmless);
    }
    while (refs.n)
        scene_clear(&refs.runs[--refs.n]);
    memset(&refs, 0, sizeof refs);
}

/* --- kill confirmation (SPEC §7) --- */

/* What the hub reported to the kill hooks. */
static struct {
    int sent, acked;
    char label[80];
    tk_kill_sent_t last;
} kills;

static void on_kill_sent(void *ud, const tk_screen_t *s, const tk_kill_sent_t *k)
{
    kills.sent++;
    snprintf(kills.label, sizeof kills.label, "%s", s->label);
    kills.last = *k;
}

static void on_kill_acked(void *ud, const tk_screen_t *s, const tk_kill_sent_t *k, int64_t at_ms)
{
    kills.acked++;
    snprintf(kills.label, sizeof kills.label, "%s", s->label);
    kills.last = *k;
}

static void hook_kills(void)
{
    tk_kill_hooks_t h = {on_kill_sent, on_kill_acked, NULL};
    memset(&kills, 0, sizeof kills);
    tk_hub_set_kill_hooks(hub, &h);
}

/* A retract of the event with sequence number ref (of this test's t0). */
static tk_event_t *retract(int ref)
{
    char refid[TK_ID_STRLEN];
    tk_id_format((tk_id_t){(uint64_t)t0, (uint64_t)ref}, refid);
    tk_field_t f[2] = {{"op", 2, "retract", 7}, {"ref", 3, refid, strlen(refid)}};
    tk_item_t item;
    tk_reject_t rej;
    tk_id_t id = {(uint64_t)t0, (uint64_t)next_id++};
    assert_int_equal(tk_item_parse(cfg, id, f, 2, &item, &rej), 0);
    tk_event_t *ev = tk_history_add(history, &item, &rej);
    assert_non_null(ev);
    tk_hub_publish(hub, ev);
    return ev;
}

static tk_id_t ref_of(tk_event_t *ev)
{
    return ev->id;
}

/* Only labelled clients the original reached are told of its retract, once
 * each, whether written at once or owed; each acks once, and only what it
 * was sent; an unlabelled audience costs no report at all. */
static void test_kill_labelled_clients(void **state)
{
    hook_kills();
    fake_t *a = connect_client("region=mena&client=studio-a");
    fake_t *b = connect_client("region=europe&client=studio-b");
    fake_t *behind = connect_client("region=mena&client=studio-c");
    fake_t *anon[50];
    for (int i = 0; i < 50; i++)
        anon[i] = connect_client("region=mena");
    pump(a), pump(b), pump(behind);
    for (int i = 0; i < 50; i++)
        pump(anon[i]);
    behind->stalled = true;
    tk_id_t item = ref_of(publish("mena", 20));
    tk_event_t *rv = retract((int)item.seq);
    assert_int_equal(kills.sent, 2); /* a and behind; b's filter missed it */
    assert_int_equal(tk_id_cmp(kills.last.rid, rv->id), 0);
    assert_int_equal(tk_id_cmp(kills.last.ref, item), 0);
    assert_int_equal(tk_client_ack(&a->client, item), 0);
    assert_int_equal(kills.acked, 1);
    assert_string_equal(kills.label, "studio-a");
    assert_int_equal(tk_client_ack(&a->client, item), -ENOENT);       /* once */
    assert_int_equal(tk_client_ack(&b->client, item), -ENOENT);       /* never sent */
    assert_int_equal(tk_client_ack(&anon[0]->client, item), -ENOENT); /* no label */
    assert_int_equal(tk_client_ack(&behind->client, (tk_id_t){1, 1}), -ENOENT);
    behind->stalled = false;
    pump(behind);
    assert_int_equal(tk_client_ack(&behind->client, item), 0);
    assert_int_equal(kills.acked, 2);
    assert_int_equal(kills.sent, 2);
    disconnect(a), disconnect(b), disconnect(behind);
    for (int i = 0; i < 50; i++)
        disconnect(anon[i]);
}

/* A screen that reconnects with since= before the retract gets it in its
 * replay and may ack it there; a label given in a subscribe frame takes
 * part from then on. */
static void test_kill_replay_and_subscribe(void **state)
{
    char q[128], since[TK_ID_STRLEN];
    hook_kills();
    tk_id_t item = ref_of(publish("", 20));
    tk_id_format(item, since);
    tk_event_t *rv = retract((int)item.seq);
    assert_int_equal(kills.sent, 0);
    snprintf(q, sizeof q, "since=%s&client=studio-a", since);
    fake_t *a = connect_client(q);
    pump(a);
    assert_int_equal(kills.sent, 1);
    assert_int_equal(tk_id_cmp(kills.last.rid, rv->id), 0);
    assert_int_equal(tk_client_ack(&a->client, item), 0);
    disconnect(a);
    fake_t *b = connect_client("");
    resubscribe(b, "client=studio-b");
    tk_id_t second = ref_of(publish("", 20));
    retract((int)second.seq);
    assert_int_equal(kills.sent, 2);
    assert_string_equal(kills.label, "studio-b");
    assert_int_equal(tk_client_ack(&b->client, second), 0);
    disconnect(b);
}

/* A screen keeps TK_SCREEN_PENDING_MAX retracts for its acks: at the
 * edge all of them, one over forgets the oldest. */
static void test_kill_pending_bound(void **state)
{
    tk_id_t items[TK_SCREEN_PENDING_MAX + 1];
    hook_kills();
    fake_t *a = connect_client("client=studio-a");
    for (int i = 0; i <= TK_SCREEN_PENDING_MAX; i++)
        items[i] = ref_of(publish("", 20));
    for (int i = 0; i < TK_SCREEN_PENDING_MAX; i++)
        retract((int)items[i].seq);
    assert_int_equal(a->client.screen->len, TK_SCREEN_PENDING_MAX);
    retract((int)items[TK_SCREEN_PENDING_MAX].seq);
    assert_int_equal(kills.sent, TK_SCREEN_PENDING_MAX + 1);
    assert_int_equal(tk_client_ack(&a->client, items[0]), -ENOENT);
    for (int i = 1; i <= TK_SCREEN_PENDING_MAX; i++)
        assert_int_equal(tk_client_ack(&a->client, items[i]), 0);
    assert_int_equal(kills.acked, TK_SCREEN_PENDING_MAX);
    disconnect(a);
}

/* No memory for a client's label: it is closed 1011 at once, not served
 * unlabelled (its kills would never be confirmed, and nobody would know). */
static void test_kill_label_out_of_memory(void **state)
{
    hook_kills();
    inject = (typeof(inject)){.armed = true, .fail_at = 1};
    fake_t *a = connect_client("client=studio-a");
    inject.armed = false;
    assert_int_equal(inject.failed, 1);
    assert_int_equal(a->closing_code, 1011);
    assert_null(a->client.screen);
    pump(a);
    assert_true(a->closed);
    json_t *l = frames(a);
    assert_int_equal(json_array_size(l), 0); /* no hello */
    json_decref(l);
    disconnect(a);
}

int main(void)
{
    json_set_alloc_funcs(json_alloc, free);
    if (tk_metrics_init(1)) return 1;
    tk_metrics_bind(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_batch_end_writes_at_once, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_idle_client_holds_no_queue, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_new_client_is_written_at_once, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_stalled_client_is_slow, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_replay_at_client_pace, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_bound_closes_slowest_first, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_seam, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_resync_gap, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_parked_client, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_writes_fit_the_socket, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_unmatched_events_are_not_owed, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_closed_during_fanout, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_resubscribe_refilters, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_replay_max_is_not_too_many_frames, start_hub,
                                        stop_hub),
        cmocka_unit_test_setup_teardown(test_kill_labelled_clients, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_kill_replay_and_subscribe, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_kill_pending_bound, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_kill_label_out_of_memory, start_hub, stop_hub),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test_setup_teardown(test_poll_state, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_poll_waits_for_a_match, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_poll_wait_ends, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_poll_drain_and_close, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_poll_gap, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_poll_pages, start_hub, stop_hub),
        cmocka_unit_test_setup_teardown(test_poll_parked, start_hub, stop_hub),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    tk_metrics_free();
    return rc;
}
