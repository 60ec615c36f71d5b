/* cluster.c - the master of the stream key's slot (see cluster.h).
 *
 * One connection asks CLUSTER SLOTS; it is kept open between questions
 * and moves to the next node when its node fails, starting the next
 * question with the node after it. A question goes to each node in turn
 * until one names the slot's master. The same question is asked again
 * every WATCH_MS, of the nodes other than that master: when the answer
 * names another master than the one named last, on_switch tells stream.c,
 * which reconnects at once (as on a sentinel's +switch-master). Each node is kept as configured and
 * its name is resolved again before every connect to it (resolve.h). */
#include <hiredis/async.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/cluster.h"
#include "tickerd/log.h"
#include "tickerd/parse.h"
#include "tickerd/redis_uv.h"
#include "tickerd/resolve.h"

/* How often the slot's master is asked for while nothing else asks. */
#define WATCH_MS 1000

struct tk_cluster {
    uv_loop_t *loop;
    tk_target_t *nodes;
    int n;
    int slot;
    char *user, *password;
    tk_cluster_cb on_switch, found;
    void *data;
    int timeout_ms;

    int first;   /* the node to ask first: the one that answered last */
    int start;   /* the node this question began with */
    int tried;   /* nodes asked this time */
    int at;      /* the node ac is on, or being made to */
    bool asking; /* a question is out */
    tk_resolve_t *resolving;
    redisAsyncContext *ac;
    char ip[TK_IP_MAX]; /* the address ac is connected to */
    uv_timer_t timer;   /* bounds the lookup, then the connect and the answer */
    uv_timer_t watch;

    char master[TK_HOST_MAX + 1]; /* the one named last; empty until then */
    int master_port;

    int open_timers;
    bool closing;
};

static void ask_next(tk_cluster_t *c);

/* ---- pure functions (unit-tested) ---------------------------------------- */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis Cluster
 * hashes keys. */
static uint16_t crc16(const char *s, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int tk_cluster_keyslot(const char *key, size_t len)
{
    tk_span_t tag = {key, len};
    tk_hash_tag(key, len, &tag);
    return crc16(tag.s, tag.len) % TK_CLUSTER_SLOTS;
}

/* A node of a CLUSTER SLOTS range: [host, port, id?, ...]. An empty host
 * means the node that answered (asked). Returns 0 with host (TK_HOST_MAX
 * + 1 bytes) and *port, or -1. */
static int slot_node(const redisReply *e, const char *asked, char *host, int *port)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) return -1;
    const redisReply *h = e->element[0], *p = e->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER || p->integer < 1 ||
        p->integer > 65535)
        return -1;
    const char *name = h->len ? h->str : asked;
    size_t len = h->len ? h->len : strlen(asked);
    if (!tk_host_usable(name, len) || (len == 1 && *name == '?')) return -1;
    memcpy(host, name, len);
    host[len] = 0;
    *port = (int)p->integer;
    return 0;
}

/* The master of slot in a CLUSTER SLOTS reply: [[start, end, master,
 * replica...], ...]. Returns 0 with host and *port set; 1 when no range
 * holds the slot; -1 when the reply is not one, or the range that holds
 * it names no usable master. */
static int slots_master(const redisReply *r, int slot, const char *asked, char *host, int *port)
{
    if (r->type != REDIS_REPLY_ARRAY) return -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
            return slot_node(e->element[2], asked, host, port);
    }
    return 1;
}

/* ---- asking ------------------------------------------------------------------- */

/* Gives up the connection (from anywhere: hiredis frees a context freed in
 * its own callback once the callback returns). */
static void drop_ctx(tk_cluster_t *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac) redisAsyncFree(ac);
}

/* A node failed: the next question starts after it. */
static void node_failed(tk_cluster_t *c)
{
    c->nodes[c->at].turn++;
    if (c->first == c->at) c->first = (c->at + 1) % c->n;
    drop_ctx(c);
}

/* The question is answered (host set) or every node failed (host NULL). */
static void finish(tk_cluster_t *c, const char *host, int port)
{
    uv_timer_stop(&c->timer);
    c->asking = false;
    tk_cluster_cb found = c->found;
    c->found = NULL;
    bool moved = host && c->master[0] && (strcmp(host, c->master) || port != c->master_port);
    if (host) {
        if (moved)
            tk_log(TK_LOG_WARN, "cluster: the master of slot %d moved from %s:%d to %s:%d", c->slot,
                   c->master, c->master_port, host, port);
        snprintf(c->master, sizeof c->master, "%s", host);
        c->master_port = port;
    }
    if (found)
        found(c->data, host, port);
    else if (moved)
        c->on_switch(c->data, host, port);
}

static void on_slots(redisAsyncContext *ac, void *r, void *priv)
{
    tk_cluster_t *c = priv;
    redisReply *reply = r;
    char host[TK_HOST_MAX + 1];
    int port;
    if (!reply || ac != c->ac || !c->asking) return;
    const char *label = c->nodes[c->at].label;
    int rc =
        reply->type == REDIS_REPLY_ERROR ? -2 : slots_master(reply, c->slot, c->ip, host, &port);
    if (rc == 0) {
        c->first = c->at;
        finish(c, host, port);
        return;
    }
    if (rc == -2)
        tk_log_limited(TK_LOG_WARN, "cluster node %s: CLUSTER SLOTS: %s", label, reply->str);
    else if (rc == 1)
        tk_log_limited(TK_LOG_WARN, "cluster node %s: no master serves slot %d", label, c->slot);
    else
        tk_log_limited(TK_LOG_WARN, "cluster node %s: unusable CLUSTER SLOTS answer: skipped",
                       label);
    node_failed(c);
    ask_next(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tk_cluster_t *c = ac->data;
    if (status == REDIS_OK || ac != c->ac) return;
    tk_log_limited(TK_LOG_WARN, "cluster node %s: %s", c->nodes[c->at].label, ac->errstr);
    c->ac = NULL; /* hiredis frees it after this callback */
    node_failed(c);
    if (c->asking) ask_next(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tk_cluster_t *c = ac->data;
    if (ac != c->ac) return; /* given up by us */
    c->ac = NULL;
    node_failed(c);
    if (c->asking) ask_next(c);
}

/* The lookup, or the connect and the answer, took longer than timeout_ms:
 * the next node. */
static void on_timeout(uv_timer_t *t)
{
    tk_cluster_t *c = t->data;
    tk_target_t *a = &c->nodes[c->at];
    if (!c->asking) return;
    if (c->resolving) {
        tk_log_limited(TK_LOG_WARN, "cluster node %s: resolving %s took over %d ms: skipped",
                       a->label, a->host, c->timeout_ms);
        tk_resolve_cancel(c->resolving);
        c->resolving = NULL;
    } else {
        tk_log_limited(TK_LOG_WARN, "cluster node %s: no answer in %d ms", a->label, c->timeout_ms);
        node_failed(c);
    }
    ask_next(c);
}

/* Sends the question on the connection, opening it to ip first if
 * needed. Returns 0 or -1. */
static int send_question(tk_cluster_t *c, const char *ip)
{
    if (!c->ac) {
        c->ac = tk_redis_uv_connect(c->loop, ip, c->nodes[c->at].port, c->user, c->password,
                                    on_connect, on_disconnect, c);
        if (!c->ac) {
            tk_log_limited(TK_LOG_WARN, "cluster node %s: cannot connect to %s",
                           c->nodes[c->at].label, ip);
            return -1;
        }
        snprintf(c->ip, sizeof c->ip, "%s", ip);
    }
    const char *argv[] = {"CLUSTER", "SLOTS"};
    if (redisAsyncCommandArgv(c->ac, on_slots, c, 2, argv, NULL) != REDIS_OK) {
        drop_ctx(c);
        return -1;
    }
    uv_timer_start(&c->timer, on_timeout, (uint64_t)c->timeout_ms, 0);
    return 0;
}

static void log_unresolved(const tk_target_t *a, int status)
{
    tk_log_limited(TK_LOG_WARN, "cluster node %s: cannot resolve %s: %s: skipped", a->label,
                   a->host, uv_strerror(status));
}

static void on_resolved(void *data, const char *host, const char *ip, int status)
{
    tk_cluster_t *c = data;
    const tk_target_t *a = &c->nodes[c->at];
    c->resolving = NULL;
    uv_timer_stop(&c->timer);
    if (!ip) {
        log_unresolved(a, status);
        ask_next(c);
        return;
    }
    tk_log(TK_LOG_DEBUG, "cluster node %s: %s is %s", a->label, host, ip);
    if (send_question(c, ip)) ask_next(c);
}

/* A periodic question (nobody waits for the answer) skips the master
 * named last: when it hangs, the other nodes are the ones that will name
 * its successor. */
static bool skipped(const tk_cluster_t *c, const char *host, int port)
{
    return !c->found && c->n > 1 && port == c->master_port && strcmp(host, c->master) == 0;
}

static void ask_next(tk_cluster_t *c)
{
    char ip[TK_IP_MAX];
    uv_timer_stop(&c->timer);
    if (c->closing) return;
    while (c->tried < c->n) {
        c->at = (c->start + c->tried++) % c->n;
        const tk_target_t *a = &c->nodes[c->at];
        if (skipped(c, a->host, a->port)) continue;
        int rc = tk_resolve_start(c->loop, a->host, a->turn, on_resolved, c, ip, &c->resolving);
        if (rc == 0) {
            uv_timer_start(&c->timer, on_timeout, (uint64_t)c->timeout_ms, 0);
            return;
        }
        if (rc == 1 && send_question(c, ip) == 0) return;
        if (rc < 0) log_unresolved(a, rc);
    }
    finish(c, NULL, 0);
}

/* A question on the open connection if there is one, else to each node in
 * turn. */
static void question(tk_cluster_t *c)
{
    c->asking = true;
    c->tried = 0;
    c->start = c->first;
    if (c->ac && skipped(c, c->ip, c->nodes[c->at].port)) {
        drop_ctx(c);
        c->start = (c->at + 1) % c->n;
    } else if (c->ac) {
        c->start = c->at;
        c->tried = 1;
        if (send_question(c, c->ip) == 0) return;
    }
    ask_next(c);
}

void tk_cluster_ask(tk_cluster_t *c, tk_cluster_cb found)
{
    if (c->found) return; /* a question is already out */
    c->found = found;
    if (!c->asking) question(c);
}

static void on_watch(uv_timer_t *t)
{
    tk_cluster_t *c = t->data;
    if (!c->asking && c->master[0]) question(c);
}

/* ---- life cycle ------------------------------------------------------------------ */

tk_cluster_t *tk_cluster_create(uv_loop_t *loop, const char *nodes, const char *key,
                                const tk_redis_url_t *auth, int timeout_ms, tk_cluster_cb on_switch,
                                void *data)
{
    tk_cluster_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->on_switch = on_switch;
    c->data = data;
    c->slot = tk_cluster_keyslot(key, strlen(key));
    c->timeout_ms = timeout_ms;
    if (auth && auth->password) c->password = strdup(auth->password);
    if (auth && auth->user) c->user = strdup(auth->user);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->watch);
    c->timer.data = c->watch.data = c;
    c->open_timers = 2;
    if (!(c->nodes = tk_target_list(nodes, "cluster_nodes", &c->n)) ||
        (auth && auth->password && !c->password) || (auth && auth->user && !c->user)) {
        tk_cluster_free(c);
        return NULL;
    }
    tk_log(TK_LOG_INFO, "cluster: %s is in slot %d", key, c->slot);
    uv_timer_start(&c->watch, on_watch, WATCH_MS, WATCH_MS);
    return c;
}

void tk_cluster_set_timeout(tk_cluster_t *c, int timeout_ms)
{
    if (c) c->timeout_ms = timeout_ms;
}

static void on_closed(uv_handle_t *h)
{
    tk_cluster_t *c = h->data;
    if (--c->open_timers > 0) return;
    free(c->nodes);
    free(c->user);
    free(c->password);
    free(c);
}

void tk_cluster_free(tk_cluster_t *c)
{
    if (!c) return;
    c->closing = true;
    c->found = NULL;
    /* A lookup given up calls nothing back: c may go once the timers close. */
    tk_resolve_cancel(c->resolving);
    c->resolving = NULL;
    drop_ctx(c);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->watch, on_closed);
}
