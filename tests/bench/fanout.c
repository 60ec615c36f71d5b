/* fanout.c - the hub's own cost of a fan-out, with no sockets: N clients
 * with the steady scenario's filters (filters.h) on a transport whose
 * write only counts, and items published round the 8 regions. Between two
 * items a buffer the size of a worker's socket traffic is walked, as the
 * kernel's sends walk the caches between two events in a real run. Prints
 * one JSON line: nanoseconds of tk_hub_publish per item and per delivery.
 * Each client sits in a slot of stride bytes, as a connection's hub client
 * sits among lws's allocations for it (about 1.8 KiB a connection), and
 * the slots are taken in a shuffled order, as the heap hands out memory
 * after connections have come and gone.
 * Usage: fanout [clients] [items] [walk_kib] [slot_bytes] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filters.h"
#include "tickerd/clock.h"
#include "tickerd/config.h"
#include "tickerd/history.h"
#include "tickerd/hub.h"
#include "tickerd/item.h"
#include "tickerd/metrics.h"

typedef struct sink {
    tk_client_t client; /* first, as in the real transports */
    uint64_t frames;
} sink_t;

static int sink_write(tk_client_t *c, unsigned char *data, size_t len)
{
    ((sink_t *)c)->frames++;
    return 0;
}
static bool sink_busy(tk_client_t *c)
{
    return false;
}
static void sink_want_write(tk_client_t *c) {}
static void sink_closing(tk_client_t *c, uint16_t code) {}
static const char *sink_peer(tk_client_t *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "sink");
    return buf;
}
static const tk_transport_ops_t sink_ops = {
    TK_TRANSPORT_WS, sink_write, sink_busy, NULL, sink_want_write, sink_closing, sink_peer, NULL,
};

static void die(const char *what)
{
    fprintf(stderr, "fanout: %s\n", what);
    exit(1);
}

static void attach(tk_config_t *cfg, tk_hub_t *hub, sink_t *s, int g)
{
    char q[160], f[128], err[256];
    tk_sub_req_t *req = malloc(sizeof *req);
    if (!req) die("out of memory");
    tk_sub_req_init(req);
    bench_region_query(bench_filter_kind(g), g, f, sizeof f); /* as loadgen asks */
    snprintf(q, sizeof q, "replay=0%s", f);
    if (tk_query_parse(cfg, q, req, err, sizeof err)) die(err);
    tk_hub_attach(hub, &s->client, &sink_ops, req);
}

static tk_event_t *add_item(tk_config_t *cfg, tk_history_t *h, int seq)
{
    char text[160];
    int n = snprintf(text, sizeof text,
                     "Item %d of the fan-out benchmark, about as long as a headline", seq);
    const char *region = bench_regions[seq % 8];
    tk_field_t fields[2] = {{"text", 4, text, (size_t)n}, {"region", 6, region, strlen(region)}};
    tk_item_t item;
    tk_reject_t rej;
    tk_id_t id = {(uint64_t)tk_now_ms(), (uint64_t)seq};
    if (tk_item_parse(cfg, id, fields, 2, &item, &rej)) die("item refused");
    tk_event_t *ev = tk_history_add(h, &item, &rej);
    if (!ev) die("history refused the item");
    return ev;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Where client g lives: slot slot_of[g] of stride bytes, in an order
 * shuffled with a fixed seed. */
static int *shuffled_slots(int clients)
{
    int *slot_of = malloc((size_t)clients * sizeof *slot_of);
    if (!slot_of) die("out of memory");
    srand(1);
    for (int g = 0; g < clients; g++)
        slot_of[g] = g;
    for (int g = clients - 1; g > 0; g--) { /* Fisher-Yates */
        int k = rand() % (g + 1), t = slot_of[g];
        slot_of[g] = slot_of[k];
        slot_of[k] = t;
    }
    return slot_of;
}

/* Walks cold[0..n) a cache line at a time; the sum keeps it from being
 * optimised away. */
static unsigned walk(unsigned char *cold, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i += 64)
        sum += cold[i]++;
    return sum;
}

int main(int argc, char **argv)
{
    int clients = argc > 1 ? atoi(argv[1]) : 10000;
    int items = argc > 2 ? atoi(argv[2]) : 400;
    size_t evict = (size_t)(argc > 3 ? atoi(argv[3]) : 65536) * 1024;
    size_t stride = argc > 4 ? (size_t)atoi(argv[4]) : 1856;
    if (stride < sizeof(sink_t)) stride = sizeof(sink_t);
    stride = (stride + 63) & ~(size_t)63;
    tk_config_t *cfg = tk_config_create();
    if (!cfg || tk_metrics_init(1)) die("start-up");
    tk_metrics_bind(0);
    tk_history_t *h = tk_history_create(1000, 100000);
    tk_hub_limits_t lim = {16 << 20, 15000, 25, 10, 200};
    tk_hub_t *hub = tk_hub_create(NULL, h, &lim);
    unsigned char *slots = calloc((size_t)clients, stride), *cold = calloc(1, evict + 1);
    int *slot_of = shuffled_slots(clients);
    if (!h || !hub || !slots || !cold) die("out of memory");
#define SINK(g) ((sink_t *)(slots + (size_t)slot_of[g] * stride))
    tk_hub_set_epoch(hub, "bench");
    tk_hub_ready(hub);
    for (int g = 0; g < clients; g++)
        attach(cfg, hub, SINK(g), g);
    int64_t spent = 0;
    unsigned sum = 0;
    for (int seq = 0; seq < items; seq++) {
        tk_event_t *ev = add_item(cfg, h, seq);
        sum += walk(cold, evict);
        int64_t t = now_ns();
        tk_hub_publish(hub, ev);
        spent += now_ns() - t;
    }
    uint64_t deliveries = 0, owed = 0;
    for (int g = 0; g < clients; g++) {
        deliveries += SINK(g)->frames - 1; /* its hello and replay marker: one write */
        for (int seq = 0; seq < items; seq++)
            owed += (uint64_t)bench_owed(bench_filter_kind(g), g, seq);
    }
    printf("{\"target\": \"tickerd\", \"label\": \"tickerd\", \"scenario\": \"fanout\", "
           "\"clients\": %d, \"items\": %d, \"evict_kib\": %zu, \"stride\": %zu, "
           "\"deliveries\": %llu, \"owed\": %llu, \"ns_per_item\": %.0f, "
           "\"ns_per_delivery\": %.1f, \"checksum\": %u}\n",
           clients, items, evict / 1024, stride, (unsigned long long)deliveries,
           (unsigned long long)owed, (double)spent / items, (double)spent / (double)deliveries,
           sum & 1);
    for (int g = 0; g < clients; g++)
        tk_hub_detach(&SINK(g)->client);
    tk_hub_free(hub);
    tk_history_free(h);
    tk_metrics_free();
    tk_config_free(cfg);
    free(slots);
    free(slot_of);
    free(cold);
    return deliveries == owed ? 0 : 2;
}
