/* stream.c - reading the Redis stream (see stream.h).
 *
 * One connection carries the set-up commands (AUTH, SELECT, ROLE, the
 * epoch), the check of what Redis holds (XINFO STREAM), the load
 * (XREVRANGE) and then XREAD BLOCK, with the epoch and XINFO asked again
 * between two reads every CHECK_EVERY_MS. hiredis 0.14 has no timeouts:
 * one watchdog timer bounds the name resolution, the connect and every
 * command (timeout_s; an XREAD gets its block time on top), and when it
 * fires the connection counts as lost.
 *
 * What is read goes out through the tk_stream_events_t callbacks: this file
 * includes neither the hub nor the history nor the process state. */
#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tickerd/config.h"
#include "tickerd/log.h"
#include "tickerd/redis_uv.h"
#include "tickerd/resolve.h"
#include "tickerd/sentinel.h"
#include "tickerd/stream.h"

#define XREAD_BLOCK_MS 2000
/* Entries a read hands on at once. Small enough that a burst is written
 * out between reads instead of piling up in every client's queue (100
 * long items stay under the default max_queue_bytes). */
#define XREAD_COUNT "100"
/* How often the epoch and XINFO are asked again while reading. */
#define CHECK_EVERY_MS 2000
/* Commands in flight at most at once (the set-up pipeline). */
#define MAX_PENDING 8

/* What Redis says it holds: XINFO STREAM, or without it XRANGE/XREVRANGE
 * COUNT 1. */
typedef struct stream_info {
    bool exists;
    tk_id_t last; /* last-generated-id (the last entry without XINFO); 0-0: no stream */
    bool has_first;
    tk_id_t first;
    uint64_t length;
    bool has_deleted; /* Redis 7: max-deleted-entry-id (XDEL only: a trim leaves it) */
    tk_id_t deleted;
    bool has_added; /* Redis 7: entries-added, every entry the stream ever got */
    uint64_t added;
} stream_info_t;

/* What tickerd has read, as the check needs it. */
typedef struct read_state {
    tk_id_t last; /* the newest ID read (or the load's horizon) */
    tk_id_t seen; /* deletion evidence already reported as a gap */
    /* Redis 7: entries-added when tickerd was last caught up (its last read
     * was the stream's last ID), and the entries read since. */
    bool counted;
    uint64_t base;
    uint64_t read;
} read_state_t;

typedef enum {
    CHECK_OK,
    CHECK_LOST,   /* entries after the last one read were deleted unread */
    CHECK_BEHIND, /* the stream ends before the last ID read */
} check_t;

struct tk_stream {
    uv_loop_t *loop;
    tk_stream_events_t ev;
    void *ud;
    char tag[24]; /* "redis", or "redis[wN]" for worker N > 0 */
    char *key;
    char *master_name;
    char epoch_key[512];
    int history_size;
    int timeout_ms;
    tk_redis_url_t url;
    tk_sentinel_t *sentinel; /* NULL: url names the server */

    redisAsyncContext *ac;
    uv_timer_t retry;
    uv_timer_t watchdog;
    int open; /* timers that must close before the struct is freed */
    bool stopping;

    /* where to connect: resolved from url, or named by the sentinels */
    tk_redis_addr_t addr;
    char where[128];         /* "ip:port" or the socket path, for log lines */
    tk_resolve_t *resolving; /* the name lookup in flight, or NULL */
    unsigned turn;           /* which of several addresses of a name to try */

    unsigned attempt; /* reconnections since the last working read */
    uint32_t rnd;     /* jitter */
    bool up;
    bool greeted; /* this connection has read the epoch once */
    uint64_t down_since_ms;
    uint64_t next_check_ms;

    /* commands in flight, oldest first, for the watchdog's log line */
    const char *pending[MAX_PENDING];
    int npending, head;

    char epoch[65];         /* the last one reported; empty until read */
    char new_epoch[65];     /* a different one, reported with the reload */
    const char *reload_why; /* set: the next load replaces what was read */
    bool loaded;
    bool no_xinfo; /* XINFO refused: XRANGE/XREVRANGE COUNT 1 instead */
    stream_info_t info;
    read_state_t rd;
};

static void connect_now(tk_stream_t *s);
static void read_next(tk_stream_t *s);
static void send_epoch(tk_stream_t *s);

/* ---- pure functions (unit-tested) ---------------------------------------- */

static tk_id_t id_max(tk_id_t a, tk_id_t b)
{
    return tk_id_cmp(a, b) >= 0 ? a : b;
}

/* The ID just before id (0-0 stays 0-0). */
static tk_id_t id_pred(tk_id_t id)
{
    if (id.seq) return (tk_id_t){id.ms, id.seq - 1};
    if (id.ms) return (tk_id_t){id.ms - 1, UINT64_MAX};
    return id;
}

/* Compares what Redis holds with what was read. On CHECK_LOST, *horizon is
 * the ID up to which entries may be missing and *evidence what to keep as
 * rd->seen, so that the same loss is reported once.
 *
 * - Redis's stream ends before rd->last (its last generated ID is older):
 *   failover to a replica that lacks entries, a restore, a stream recreated
 *   with older IDs, or deleted. What was read no longer matches: BEHIND.
 * - Redis 7 says an entry newer than rd->last was XDELeted: never read.
 *   LOST up to it.
 * - The first entry is newer than rd->last: the stream was trimmed past
 *   it, or recreated. Redis 7 counts every entry ever added: the entries
 *   added since tickerd was last caught up, less those it read since and
 *   those still there (all after rd->last), is what it lost; 0 means it
 *   missed nothing (trimmed after reading). Without that count (Redis 6, or
 *   never caught up), any such trim counts as LOST, up to the entry before
 *   the first. */
static check_t check_stream(const stream_info_t *in, const read_state_t *rd, tk_id_t *horizon,
                            tk_id_t *evidence)
{
    if (tk_id_cmp(in->last, rd->last) < 0) return CHECK_BEHIND;
    tk_id_t after = id_max(rd->last, rd->seen);
    if (in->has_deleted && tk_id_cmp(in->deleted, after) > 0) {
        *horizon = *evidence = in->deleted;
        return CHECK_LOST;
    }
    if (!in->has_first || tk_id_cmp(in->first, after) <= 0) return CHECK_OK;
    if (in->has_added && rd->counted && in->added == rd->base + rd->read + in->length)
        return CHECK_OK;
    *horizon = id_pred(in->first);
    *evidence = in->first;
    return CHECK_LOST;
}

/* The horizon of a load: entries up to it may be missing from it. before:
 * the entry just before the loaded ones (0-0: the load reached the start of
 * the stream). Having reached the start, entries older than the first one
 * may have been trimmed: Redis 7 says whether any entry was ever deleted,
 * and the newest XDELeted one; before Redis 7, assume a trim. 0-0:
 * nothing is missing. */
static tk_id_t load_horizon(const stream_info_t *in, tk_id_t before)
{
    tk_id_t h = before;
    if (in->has_deleted) h = id_max(h, in->deleted);
    if (!tk_id_is_zero(before) || (in->has_added && in->added == in->length)) return h;
    if (in->has_first) return id_max(h, id_pred(in->first));
    return id_max(h, in->last); /* empty: every entry up to the last generated is gone */
}

/* An XINFO STREAM reply (RESP2: field, value, ...). Returns 0 or -1. */
static int parse_xinfo(const redisReply *r, stream_info_t *out)
{
    bool has_last = false;
    memset(out, 0, sizeof *out);
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) return -1;
    out->exists = true;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING) continue;
        if (strcmp(k->str, "last-generated-id") == 0 && v->type == REDIS_REPLY_STRING)
            has_last = !tk_id_parse(v->str, v->len, &out->last);
        else if (strcmp(k->str, "max-deleted-entry-id") == 0 && v->type == REDIS_REPLY_STRING)
            out->has_deleted = !tk_id_parse(v->str, v->len, &out->deleted);
        else if (strcmp(k->str, "length") == 0 && v->type == REDIS_REPLY_INTEGER)
            out->length = (uint64_t)v->integer;
        else if (strcmp(k->str, "entries-added") == 0 && v->type == REDIS_REPLY_INTEGER)
            out->has_added = true, out->added = (uint64_t)v->integer;
        else if (strcmp(k->str, "first-entry") == 0 && v->type == REDIS_REPLY_ARRAY &&
                 v->elements == 2 && v->element[0]->type == REDIS_REPLY_STRING)
            out->has_first = !tk_id_parse(v->element[0]->str, v->element[0]->len, &out->first);
    }
    return has_last ? 0 : -1;
}

/* The ID of an entry [id, [field, value, ...]]. */
static bool entry_id(const redisReply *e, tk_id_t *id)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
           e->element[0]->type == REDIS_REPLY_STRING &&
           !tk_id_parse(e->element[0]->str, e->element[0]->len, id);
}

/* The ID of the first entry of an XRANGE-style reply. */
static bool first_entry_id(const redisReply *r, tk_id_t *id)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements > 0 && entry_id(r->element[0], id);
}

/* ---- connection state ------------------------------------------------------ */

bool tk_stream_up(const tk_stream_t *s)
{
    return s && s->up;
}

int64_t tk_stream_down_ms(const tk_stream_t *s)
{
    return s && !s->up ? (int64_t)(uv_now(s->loop) - s->down_since_ms) : 0;
}

static void set_up(tk_stream_t *s, bool up)
{
    if (up == s->up) return;
    s->up = up;
    s->down_since_ms = up ? 0 : uv_now(s->loop);
    if (s->ev.status) s->ev.status(s->ud, up);
}

int tk_stream_address(const tk_stream_t *s, tk_redis_addr_t *out)
{
    if (!s || !s->up) return -1;
    *out = s->addr;
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

/* The connection is gone or given up (its context already freed or being
 * freed): down, and a new attempt after the backoff. */
static void schedule_reconnect(tk_stream_t *s)
{
    if (!s->up) s->turn++; /* never got going: try the name's next address */
    set_up(s, false);
    uv_timer_stop(&s->watchdog);
    s->npending = 0;
    if (s->stopping || uv_is_active((uv_handle_t *)&s->retry)) return;
    int ms = tk_redis_backoff_ms(s->attempt, tk_redis_jitter(&s->rnd));
    if (s->attempt < 32) s->attempt++;
    tk_log(TK_LOG_INFO, "%s: reconnecting in %d ms", s->tag, ms);
    uv_timer_start(&s->retry, on_retry, (uint64_t)ms, 0);
}

/* Gives up the connection now (from anywhere, a hiredis callback included:
 * hiredis then frees the context once the callback returns). Its pending
 * callbacks get NULL replies, which are ignored. */
static void drop(tk_stream_t *s)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    if (ac) redisAsyncFree(ac);
    schedule_reconnect(s);
}

static void on_watchdog(uv_timer_t *t)
{
    tk_stream_t *s = t->data;
    if (s->resolving) {
        tk_log(TK_LOG_WARN, "%s: resolving %s took over %d ms: retrying", s->tag,
               tk_resolve_host(s->resolving), s->timeout_ms);
        tk_resolve_cancel(s->resolving);
        s->resolving = NULL;
        schedule_reconnect(s);
        return;
    }
    if (!s->ac) return;
    const char *what = !(s->ac->c.flags & REDIS_CONNECTED) ? "connect"
                       : s->npending                       ? s->pending[s->head]
                                                           : "reply";
    tk_log(TK_LOG_WARN, "%s: %s to %s timed out (no answer in %llu ms): connection lost", s->tag,
           what, s->where, (unsigned long long)uv_timer_get_repeat(t));
    drop(s);
}

/* Arms the watchdog for the oldest command in flight. The repeat value
 * only records the bound, for the log line. */
static void arm(tk_stream_t *s, int ms)
{
    uv_timer_start(&s->watchdog, on_watchdog, (uint64_t)ms, 0);
    uv_timer_set_repeat(&s->watchdog, (uint64_t)ms);
}

/* Sends a command. extra_ms: what the command may take on top of
 * timeout_s (an XREAD's block time). Returns 0 or -1 (the connection is
 * going away). */
static int send_cmd(tk_stream_t *s, redisCallbackFn *fn, int argc, const char **argv, int extra_ms)
{
    if (!s->ac || redisAsyncCommandArgv(s->ac, fn, s, argc, argv, NULL) != REDIS_OK) return -1;
    if (s->npending < MAX_PENDING) s->pending[(s->head + s->npending) % MAX_PENDING] = argv[0];
    if (s->npending++ == 0) arm(s, s->timeout_ms + extra_ms);
    return 0;
}

/* Every reply callback starts here. Returns false for a reply to ignore:
 * NULL (the context is going away) or from a context already given up. A
 * reply proves the server alive: the next command in flight gets a fresh
 * timeout_s. */
static bool took_reply(tk_stream_t *s, redisAsyncContext *ac, redisReply *reply)
{
    if (!reply || ac != s->ac) return false;
    if (s->npending > 0) {
        s->npending--;
        s->head = (s->head + 1) % MAX_PENDING;
    }
    if (s->npending)
        arm(s, s->timeout_ms);
    else
        uv_timer_stop(&s->watchdog);
    return true;
}

/* Caught up (the last ID read is the stream's last): the entries-added
 * count from here on tells whether a trim took entries never read. */
static void note_caught_up(tk_stream_t *s)
{
    if (!s->info.has_added || tk_id_cmp(s->info.last, s->rd.last) != 0) return;
    s->rd.counted = true;
    s->rd.base = s->info.added;
    s->rd.read = 0;
}

/* ---- reading ------------------------------------------------------------------ */

/* One entry of an XRANGE/XREAD reply: [id, [field, value, ...]]. */
static void ingest_reply_entry(tk_stream_t *s, redisReply *e, bool live)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    redisReply *id = e->element[0], *kv = e->element[1];
    tk_id_t sid;
    if (tk_id_parse(id->str, id->len, &sid)) return;
    if (tk_id_cmp(sid, s->rd.last) > 0) s->rd.last = sid;
    if (live) s->rd.read++;
    if (!s->ev.entry) return;
    size_t n = kv->type == REDIS_REPLY_ARRAY ? kv->elements : 0;
    const char **fv = malloc((n + 1) * sizeof *fv);
    size_t *fvlen = malloc((n + 1) * sizeof *fvlen);
    if (fv && fvlen) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (kv->element[i]->type != REDIS_REPLY_STRING) continue;
            fv[k] = kv->element[i]->str;
            fvlen[k++] = kv->element[i]->len;
        }
        s->ev.entry(s->ud, id->str, id->len, fv, fvlen, k & ~(size_t)1, live);
    }
    free(fv);
    free(fvlen);
}

static void on_xread(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        tk_log(TK_LOG_ERROR, "%s: XREAD: %s", s->tag, reply->str);
        drop(s);
        return;
    }
    s->attempt = 0; /* the connection works: the next loss starts the backoff over */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *entries = reply->element[0]->element[1];
        bool batch = entries->elements > 1 && s->ev.batch;
        if (batch) s->ev.batch(s->ud, true);
        for (size_t i = 0; i < entries->elements; i++)
            ingest_reply_entry(s, entries->element[i], true);
        if (batch) s->ev.batch(s->ud, false);
    }
    read_next(s);
}

/* The next XREAD, or first the periodic check when it is due. */
static void read_next(tk_stream_t *s)
{
    if (!s->ac) return;
    if (uv_now(s->loop) >= s->next_check_ms) {
        send_epoch(s);
        return;
    }
    char last[TK_ID_STRLEN], block[16];
    tk_id_format(s->rd.last, last);
    snprintf(block, sizeof block, "%d", XREAD_BLOCK_MS);
    const char *argv[] = {"XREAD", "COUNT", XREAD_COUNT, "BLOCK", block, "STREAMS", s->key, last};
    if (send_cmd(s, on_xread, 8, argv, XREAD_BLOCK_MS)) drop(s);
}

static void on_load(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        tk_log(TK_LOG_ERROR, "%s: XREVRANGE %s: %s", s->tag, s->key,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        drop(s);
        return;
    }
    if (s->reload_why) {
        if (s->new_epoch[0]) { /* reported here, with the reload, so that they stay together */
            memcpy(s->epoch, s->new_epoch, sizeof s->epoch);
            s->new_epoch[0] = 0;
            if (s->ev.epoch) s->ev.epoch(s->ud, s->epoch, true);
        }
        if (s->ev.gap) s->ev.gap(s->ud, s->reload_why, NULL, true);
        s->reload_why = NULL;
        memset(&s->rd, 0, sizeof s->rd);
    }
    size_t n = reply->elements, first = n;
    tk_id_t before = {0, 0};
    if (n > (size_t)s->history_size) {
        /* One more than the history holds: its ID is the horizon. */
        first = n - 1;
        if (!entry_id(reply->element[n - 1], &before)) before = (tk_id_t){0, 0};
    }
    for (size_t i = first; i-- > 0;)
        ingest_reply_entry(s, reply->element[i], false);
    tk_id_t horizon = load_horizon(&s->info, before);
    s->rd.last = id_max(s->rd.last, horizon);
    note_caught_up(s);
    s->loaded = true;
    char last[TK_ID_STRLEN];
    tk_id_format(s->rd.last, last);
    tk_log(TK_LOG_INFO, "%s: loaded %zu entries of %s, reading after %s", s->tag, first, s->key,
           last);
    if (s->ev.loaded) s->ev.loaded(s->ud, tk_id_is_zero(horizon) ? NULL : &horizon);
    read_next(s);
}

static void load(tk_stream_t *s)
{
    char count[16];
    snprintf(count, sizeof count, "%d", s->history_size + 1);
    const char *argv[] = {"XREVRANGE", s->key, "+", "-", "COUNT", count};
    if (send_cmd(s, on_load, 6, argv, 0)) drop(s);
}

/* What Redis holds is known (s->info): load, reload, report a gap, or
 * read on. */
static void info_done(tk_stream_t *s)
{
    tk_id_t horizon, evidence;
    char a[TK_ID_STRLEN], b[TK_ID_STRLEN];
    s->next_check_ms = uv_now(s->loop) + CHECK_EVERY_MS;
    if (!s->loaded || s->reload_why) {
        load(s);
        return;
    }
    switch (check_stream(&s->info, &s->rd, &horizon, &evidence)) {
    case CHECK_BEHIND:
        tk_id_format(s->info.last, a);
        tk_id_format(s->rd.last, b);
        tk_log(TK_LOG_WARN,
               "%s: %s ends at %s, before %s which tickerd read (failover, restore or "
               "recreated): gap, reloading",
               s->tag, s->key, s->info.exists ? a : "nothing (no such key)", b);
        s->reload_why = "the stream is behind what tickerd read";
        load(s);
        return;
    case CHECK_LOST:
        tk_id_format(horizon, a);
        tk_id_format(s->rd.last, b);
        tk_log(TK_LOG_WARN,
               "%s: entries after %s, up to %s, were deleted before tickerd read them: gap", s->tag,
               b, a);
        s->rd.seen = evidence;
        if (s->ev.gap)
            s->ev.gap(s->ud, "entries were trimmed before tickerd read them", &horizon, false);
        break;
    case CHECK_OK:
        break;
    }
    note_caught_up(s);
    read_next(s);
}

static void on_info(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "no such key")) {
        /* No stream: nothing was ever added to the one that will be created. */
        memset(&s->info, 0, sizeof s->info);
        s->info.has_added = true;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        tk_log(TK_LOG_WARN, "%s: XINFO STREAM %s: %s: checking with XRANGE instead", s->tag, s->key,
               reply->str);
        s->no_xinfo = true;
        send_epoch(s); /* asks again, the other way */
        return;
    } else if (parse_xinfo(reply, &s->info)) {
        tk_log(TK_LOG_ERROR, "%s: XINFO STREAM %s: unexpected reply", s->tag, s->key);
        drop(s);
        return;
    }
    info_done(s);
}

/* Without XINFO: XRANGE - + COUNT 1, then XREVRANGE + - COUNT 1. */
static void on_range(redisAsyncContext *ac, void *r, void *priv, bool newest)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    tk_id_t id;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        tk_log(TK_LOG_ERROR, "%s: %s %s: %s", s->tag, newest ? "XREVRANGE" : "XRANGE", s->key,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        drop(s);
        return;
    }
    bool found = first_entry_id(reply, &id);
    if (!newest) {
        memset(&s->info, 0, sizeof s->info);
        s->info.exists = s->info.has_first = found;
        if (found) s->info.first = id;
        return;
    }
    if (found) s->info.last = id;
    info_done(s);
}

static void on_range_first(redisAsyncContext *ac, void *r, void *priv)
{
    on_range(ac, r, priv, false);
}

static void on_range_last(redisAsyncContext *ac, void *r, void *priv)
{
    on_range(ac, r, priv, true);
}

static void send_info(tk_stream_t *s)
{
    int rc;
    if (s->no_xinfo) {
        const char *first[] = {"XRANGE", s->key, "-", "+", "COUNT", "1"};
        const char *last[] = {"XREVRANGE", s->key, "+", "-", "COUNT", "1"};
        rc = send_cmd(s, on_range_first, 6, first, 0) || send_cmd(s, on_range_last, 6, last, 0);
    } else {
        const char *argv[] = {"XINFO", "STREAM", s->key};
        rc = send_cmd(s, on_info, 3, argv, 0);
    }
    if (rc) drop(s);
}

static void on_epoch(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type != REDIS_REPLY_STRING || reply->len == 0 || reply->len >= sizeof s->epoch) {
        tk_log(TK_LOG_ERROR, "%s: GET %s: %s", s->tag, s->epoch_key,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "not a usable epoch");
        drop(s);
        return;
    }
    if (!s->greeted) {
        s->greeted = true;
        tk_log(TK_LOG_INFO, "%s: connected to %s, epoch %s", s->tag, s->where, reply->str);
        set_up(s, true);
    }
    if (!s->epoch[0]) {
        memcpy(s->epoch, reply->str, reply->len + 1);
        if (s->ev.epoch) s->ev.epoch(s->ud, s->epoch, false);
    } else if (strcmp(s->epoch, reply->str) != 0 && !s->new_epoch[0]) {
        tk_log(TK_LOG_WARN,
               "%s: epoch changed from %s to %s: the stream was recreated: gap, "
               "reloading",
               s->tag, s->epoch, reply->str);
        memcpy(s->new_epoch, reply->str, reply->len + 1);
        s->reload_why = "the epoch changed: the stream was recreated";
    }
    send_info(s);
}

/* Reports an error reply to a set-up command (AUTH, SELECT, SET). */
static void on_setup(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    tk_stream_t *s = priv;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        tk_log(TK_LOG_ERROR, "%s: %s", s->tag, reply->str);
        drop(s);
    }
}

static void random_epoch(char *out, size_t cap)
{
    unsigned char b[12] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, b, sizeof b) != (ssize_t)sizeof b) b[0] ^= (unsigned char)getpid();
        close(fd);
    }
    for (size_t i = 0; i < sizeof b && 2 * i + 2 < cap; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The epoch, created if absent (so that a deleted one is replaced at once),
 * then XINFO: after every connect, and every CHECK_EVERY_MS while reading. */
static void send_epoch(tk_stream_t *s)
{
    char epoch[32] = "";
    random_epoch(epoch, sizeof epoch);
    const char *set[] = {"SET", s->epoch_key, epoch, "NX"};
    const char *get[] = {"GET", s->epoch_key};
    if (send_cmd(s, on_setup, 4, set, 0) || send_cmd(s, on_epoch, 2, get, 0)) drop(s);
}

/* Sentinel mode: a restarted old master can claim to be master for a
 * moment; only a server whose ROLE says master is read from. */
static void on_role(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    if (!took_reply(s, ac, reply)) return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "master") == 0) {
        send_epoch(s);
        return;
    }
    tk_log(TK_LOG_WARN, "%s: %s is not a master: asking the sentinels again", s->tag, s->where);
    drop(s);
}

static void send_setup(tk_stream_t *s)
{
    tk_redis_cmd_t setup[2];
    int rc = 0, n = tk_redis_setup_cmds(&s->url, setup);
    for (int i = 0; i < n; i++)
        rc |= send_cmd(s, on_setup, setup[i].argc, setup[i].argv, 0);
    if (s->sentinel) {
        const char *role[] = {"ROLE"};
        rc |= send_cmd(s, on_role, 1, role, 0);
    } else {
        send_epoch(s);
    }
    if (rc) drop(s);
}

/* ---- connecting ---------------------------------------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    tk_stream_t *s = ac->data;
    if (status == REDIS_OK || ac != s->ac) return;
    tk_log(TK_LOG_WARN, "%s: cannot connect to %s: %s", s->tag, s->where, ac->errstr);
    s->ac = NULL; /* hiredis frees it after this callback */
    schedule_reconnect(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tk_stream_t *s = ac->data;
    if (ac != s->ac) return; /* given up by us */
    tk_log(TK_LOG_WARN, "%s: connection lost: %s", s->tag,
           status == REDIS_OK ? "closed" : ac->errstr);
    s->ac = NULL;
    schedule_reconnect(s);
}

/* Connects to s->addr (a numeric address or a unix socket; nothing here
 * blocks). */
static void start_context(tk_stream_t *s)
{
    char err[128];
    tk_redis_addr_string(&s->addr, s->where, sizeof s->where);
    redisAsyncContext *ac = tk_redis_open(s->loop, &s->addr, err, sizeof err);
    if (!ac) {
        tk_log(TK_LOG_WARN, "%s: cannot connect to %s: %s", s->tag, s->where, err);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    s->ac = ac;
    s->npending = s->head = 0;
    s->greeted = false;
    s->reload_why = NULL; /* what a reload was for is found again on this connection */
    s->new_epoch[0] = 0;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    arm(s, s->timeout_ms); /* the connect; then each command */
    send_setup(s);
}

static void on_resolved(void *data, const char *host, const char *ip, int status)
{
    tk_stream_t *s = data;
    s->resolving = NULL;
    uv_timer_stop(&s->watchdog);
    if (!ip) {
        tk_log(TK_LOG_WARN, "%s: cannot resolve %s: %s", s->tag, host, uv_strerror(status));
        schedule_reconnect(s);
        return;
    }
    tk_log(TK_LOG_DEBUG, "%s: %s is %s", s->tag, host, ip);
    snprintf(s->addr.ip, sizeof s->addr.ip, "%s", ip);
    start_context(s);
}

/* Resolves host (again on every attempt: a name that now points elsewhere
 * is followed), then connects to the address. */
static void resolve_and_connect(tk_stream_t *s, const char *host, int port)
{
    s->addr.port = port;
    s->addr.path[0] = 0;
    int rc = tk_resolve_start(s->loop, host, s->turn, on_resolved, s, s->addr.ip, &s->resolving);
    if (rc == 1) {
        start_context(s);
    } else if (rc < 0) {
        tk_log(TK_LOG_WARN, "%s: cannot resolve %s: %s", s->tag, host, uv_strerror(rc));
        schedule_reconnect(s);
    } else {
        arm(s, s->timeout_ms);
    }
}

static void on_master_found(void *data, const char *ip, int port)
{
    tk_stream_t *s = data;
    if (s->stopping || s->ac || s->resolving) return;
    if (!ip) {
        tk_log(TK_LOG_WARN, "%s: no sentinel names master '%s'", s->tag, s->master_name);
        schedule_reconnect(s);
        return;
    }
    resolve_and_connect(s, ip, port);
}

/* +switch-master: drop the old master at once (a blocked XREAD would hold
 * a polite disconnect for seconds) and connect to the new one. */
static void on_master_switch(void *data, const char *ip, int port)
{
    tk_stream_t *s = data;
    if (s->stopping) return;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    tk_resolve_cancel(s->resolving);
    s->resolving = NULL;
    uv_timer_stop(&s->retry);
    uv_timer_stop(&s->watchdog);
    set_up(s, false);
    s->attempt = 0;
    resolve_and_connect(s, ip, port);
}

static void connect_now(tk_stream_t *s)
{
    if (s->stopping || s->ac || s->resolving) return;
    if (s->sentinel)
        tk_sentinel_ask(s->sentinel, on_master_found);
    else if (s->url.path) {
        s->addr.ip[0] = 0;
        snprintf(s->addr.path, sizeof s->addr.path, "%s", s->url.path);
        start_context(s);
    }
    else
        resolve_and_connect(s, s->url.host, s->url.port);
}

/* ---- life cycle ------------------------------------------------------------------ */

static void stream_release(tk_stream_t *s)
{
    if (--s->open > 0) return;
    tk_redis_url_clear(&s->url);
    free(s->key);
    free(s->master_name);
    free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    stream_release(h->data);
}

tk_stream_t *tk_stream_start(uv_loop_t *loop, const tk_config_t *cfg, int worker,
                             const tk_stream_events_t *ev, void *ud)
{
    char err[256];
    tk_stream_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (tk_redis_url_parse(cfg->redis_url, &s->url, err, sizeof err)) {
        tk_log(TK_LOG_ERROR, "redis: %s", err);
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->ev = *ev;
    s->ud = ud;
    if (worker > 0)
        snprintf(s->tag, sizeof s->tag, "redis[w%d]", worker);
    else
        snprintf(s->tag, sizeof s->tag, "redis");
    s->history_size = cfg->history_size;
    s->timeout_ms = cfg->redis_timeout_s * 1000;
    s->key = strdup(cfg->stream_key);
    s->master_name = strdup(cfg->master_name);
    snprintf(s->epoch_key, sizeof s->epoch_key, "%s:epoch", cfg->stream_key);
    s->rnd = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16) ^ (uint32_t)worker;
    if (!s->rnd) s->rnd = 1;
    uv_timer_init(loop, &s->retry);
    uv_timer_init(loop, &s->watchdog);
    s->retry.data = s->watchdog.data = s;
    s->open = 2;
    s->down_since_ms = uv_now(loop);
    if (!s->key || !s->master_name ||
        (*cfg->sentinels &&
         !(s->sentinel = tk_sentinel_create(loop, cfg->sentinels, cfg->master_name, &s->url,
                                            s->timeout_ms, on_master_switch, s)))) {
        tk_stream_stop(s); /* freed once its timers have closed */
        return NULL;
    }
    connect_now(s);
    return s;
}

void tk_stream_set_config(tk_stream_t *s, const tk_config_t *cfg)
{
    if (!s) return;
    s->timeout_ms = cfg->redis_timeout_s * 1000;
    tk_sentinel_set_timeout(s->sentinel, s->timeout_ms);
}

void tk_stream_stop(tk_stream_t *s)
{
    if (!s) return;
    s->stopping = true;
    tk_sentinel_free(s->sentinel);
    s->sentinel = NULL;
    tk_resolve_cancel(s->resolving); /* its callback is not called: s may go */
    s->resolving = NULL;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&s->retry, on_timer_closed);
    uv_close((uv_handle_t *)&s->watchdog, on_timer_closed);
}
