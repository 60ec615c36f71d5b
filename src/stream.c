/* stream.c - reading the Redis stream (see stream.h). One connection
 * carries the few start-up commands and then only XREAD BLOCK; a watchdog
 * timer replaces the socket timeout hiredis 0.14 lacks. */
#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tickerd/config.h"
#include "tickerd/hub.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/redis_uv.h"
#include "tickerd/sentinel.h"
#include "tickerd/server.h"
#include "tickerd/stream.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define XREAD_BLOCK_MS 5000
/* Entries a read hands to the hub at once. Small enough that a burst is
 * written out between reads instead of piling up in every client's queue
 * (100 long items stay under the default max_queue_bytes). */
#define XREAD_COUNT "100"
#define WATCHDOG_SLACK_MS 5000

struct tk_stream {
    uv_loop_t *loop;
    redisAsyncContext *ac;
    uv_timer_t retry;
    uv_timer_t watchdog;
    tk_redis_url_t url;
    tk_sentinel_t *sentinel; /* NULL: url names the server */
    char ip[64];             /* where to connect: resolved from url, or from the sentinels */
    int port;
    int backoff_ms;
    bool up;
    bool ever_up; /* a reconnect is counted only after a first connection */
    bool loaded;
    bool stopping;
    int open_handles;
    int64_t down_since_ms;
    tk_id_t last_read;
    char epoch_key[512];
};

static void connect_now(tk_stream_t *s);
void tk_stream_stop(tk_stream_t *s);

bool tk_stream_up(const tk_stream_t *s)
{
    return s && s->up;
}

int64_t tk_stream_down_ms(const tk_stream_t *s)
{
    return s && !s->up ? tk_now_ms() - s->down_since_ms : 0;
}

static void set_up(tk_stream_t *s, bool up)
{
    if (up) s->ever_up = true;
    if (up == s->up && (up || s->down_since_ms)) return;
    s->up = up;
    s->down_since_ms = up ? 0 : tk_now_ms();
    tk_worker_stats_t *w = &tk_metrics->workers[server.worker];
    w->redis_up = up;
    w->redis_down_since_ms = s->down_since_ms;
}

/* The retry timer's callback gets the timer; the stream is its data. */
static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_reconnect(tk_stream_t *s)
{
    set_up(s, false);
    uv_timer_stop(&s->watchdog);
    if (s->stopping || uv_is_active((uv_handle_t *)&s->retry)) return;
    tk_log(TK_LOG_INFO, "redis: reconnecting in %d ms", s->backoff_ms);
    uv_timer_start(&s->retry, on_retry, (uint64_t)s->backoff_ms, 0);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

void tk_stream_ingest(const char *id, size_t idlen, const char *const *fv, const size_t *fvlen,
                      size_t nfv, bool live)
{
    tk_id_t sid;
    tk_item_t item;
    tk_reject_t rej = {0};
    tk_field_t stack[32], *fields = stack;
    size_t n = nfv / 2;
    if (tk_id_parse(id, idlen, &sid)) return;
    if (n > 32 && !(fields = malloc(n * sizeof *fields))) return;
    for (size_t i = 0; i < n; i++)
        fields[i] = (tk_field_t){fv[2 * i], fvlen[2 * i], fv[2 * i + 1], fvlen[2 * i + 1]};
    int rc = tk_item_parse(server.cfg, sid, fields, n, &item, &rej);
    if (fields != stack) free(fields);
    tk_event_t *ev = rc == 0 ? tk_history_add(server.history, &item, &rej) : NULL;
    if (!ev) {
        if (rc == 0) tk_item_clear(&item);
        if (rej.reason == TK_REJECT_OUT_OF_ORDER) return; /* already have it */
        tk_log(TK_LOG_WARN, "entry %.*s rejected: %s: %s", (int)idlen, id,
               tk_reason_names[rej.reason], rej.detail);
        if (tk_metrics_first_count(sid)) TK_COUNT(items_rejected_total[rej.reason], 1);
        return;
    }
    if (tk_metrics_first_count(sid)) TK_COUNT(items_ingested_total, 1);
    if (live) tk_hub_publish(ev);
}

/* One entry of an XRANGE/XREAD reply: [id, [field, value, ...]]. */
static void ingest_reply_entry(tk_stream_t *s, redisReply *e, bool live)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    redisReply *id = e->element[0], *kv = e->element[1];
    tk_id_t sid;
    if (tk_id_parse(id->str, id->len, &sid)) return;
    if (tk_id_cmp(sid, s->last_read) > 0) s->last_read = sid;
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
        tk_stream_ingest(id->str, id->len, fv, fvlen, k & ~(size_t)1, live);
    }
    free(fv);
    free(fvlen);
}

static void read_next(tk_stream_t *s);

static void on_xread(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply) return; /* disconnecting: the disconnect callback reconnects */
    uv_timer_stop(&s->watchdog);
    if (reply->type == REDIS_REPLY_ERROR) {
        tk_log(TK_LOG_ERROR, "redis: XREAD: %s", reply->str);
        redisAsyncDisconnect(s->ac);
        return;
    }
    s->backoff_ms = BACKOFF_MIN_MS;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
        redisReply *entries = reply->element[0]->element[1];
        tk_hub_batch(entries->elements > 1);
        for (size_t i = 0; i < entries->elements; i++)
            ingest_reply_entry(s, entries->element[i], true);
        tk_hub_batch(false);
        tk_id_format(s->last_read, tk_metrics->workers[server.worker].last_id);
    }
    read_next(s);
}

static void on_watchdog(uv_timer_t *t)
{
    tk_stream_t *s = t->data;
    tk_log(TK_LOG_WARN, "redis: no reply to XREAD in %d ms: reconnecting",
           XREAD_BLOCK_MS + WATCHDOG_SLACK_MS);
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    schedule_reconnect(s);
}

static void read_next(tk_stream_t *s)
{
    char last[TK_ID_STRLEN], block[16];
    tk_id_format(s->last_read, last);
    snprintf(block, sizeof block, "%d", XREAD_BLOCK_MS);
    const char *argv[] = {
        "XREAD", "COUNT", XREAD_COUNT, "BLOCK", block, "STREAMS", server.cfg->stream_key, last};
    if (!s->ac || redisAsyncCommandArgv(s->ac, on_xread, s, 8, argv, NULL) != REDIS_OK) return;
    uv_timer_start(&s->watchdog, on_watchdog, XREAD_BLOCK_MS + WATCHDOG_SLACK_MS, 0);
}

static void on_load(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply) return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        tk_log(TK_LOG_ERROR, "redis: XREVRANGE %s: %s", server.cfg->stream_key,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        redisAsyncDisconnect(s->ac);
        return;
    }
    size_t n = reply->elements, first = n;
    if (n > (size_t)server.cfg->history_size) {
        /* One more than the history holds: its ID is the horizon. */
        redisReply *oldest = reply->element[n - 1];
        tk_id_t hid;
        if (oldest->type == REDIS_REPLY_ARRAY && oldest->elements == 2 &&
            !tk_id_parse(oldest->element[0]->str, oldest->element[0]->len, &hid)) {
            tk_history_set_horizon(server.history, hid);
            if (tk_id_cmp(hid, s->last_read) > 0) s->last_read = hid;
        }
        first = n - 1;
    }
    for (size_t i = first; i-- > 0;)
        ingest_reply_entry(s, reply->element[i], false);
    tk_id_format(s->last_read, tk_metrics->workers[server.worker].last_id);
    bool reloaded = s->loaded;
    s->loaded = true;
    tk_log(TK_LOG_INFO, "redis: loaded %d events of %s, reading after %s",
           tk_history_count(server.history), server.cfg->stream_key,
           tk_metrics->workers[server.worker].last_id);
    if (!server.ready) {
        server.ready = true;
        tk_hub_ready();
    } else if (reloaded) {
        tk_hub_epoch_changed();
    }
    read_next(s);
}

static void load_history(tk_stream_t *s)
{
    char count[16];
    snprintf(count, sizeof count, "%d", server.cfg->history_size + 1);
    const char *argv[] = {"XREVRANGE", server.cfg->stream_key, "+", "-", "COUNT", count};
    redisAsyncCommandArgv(s->ac, on_load, s, 6, argv, NULL);
}

static void on_epoch(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply) return;
    if (reply->type != REDIS_REPLY_STRING || reply->len == 0 || reply->len >= sizeof server.epoch) {
        tk_log(TK_LOG_ERROR, "redis: GET %s: %s", s->epoch_key,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "not a usable epoch");
        redisAsyncDisconnect(s->ac);
        return;
    }
    set_up(s, true);
    tk_log(TK_LOG_INFO, "redis: connected, epoch %s", reply->str);
    if (server.epoch[0] && strcmp(server.epoch, reply->str) != 0) {
        tk_log(TK_LOG_WARN, "redis: epoch changed from %s: the stream was recreated, reloading",
               server.epoch);
        tk_history_reset(server.history, server.cfg->history_size);
        s->last_read = (tk_id_t){0, 0};
        memcpy(server.epoch, reply->str, reply->len + 1);
        load_history(s); /* clients stay; on_load sends them the reload as a gap */
        return;
    }
    memcpy(server.epoch, reply->str, reply->len + 1);
    if (s->loaded)
        read_next(s);
    else
        load_history(s);
}

/* Reports an error reply to a set-up command (AUTH, SELECT, SET). */
static void on_setup(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    tk_stream_t *s = priv;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        tk_log(TK_LOG_ERROR, "redis: %s", reply->str);
        if (s->ac) redisAsyncDisconnect(s->ac);
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

static void send_epoch(tk_stream_t *s)
{
    char epoch[32] = "";
    random_epoch(epoch, sizeof epoch);
    const char *set[] = {"SET", s->epoch_key, epoch, "NX"};
    redisAsyncCommandArgv(s->ac, on_setup, s, 4, set, NULL);
    const char *get[] = {"GET", s->epoch_key};
    redisAsyncCommandArgv(s->ac, on_epoch, s, 2, get, NULL);
}

/* Sentinel mode: a restarted old master can claim to be master for a
 * moment; only a server whose ROLE says master is read from. */
static void on_role(redisAsyncContext *ac, void *r, void *priv)
{
    tk_stream_t *s = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply || !s->ac) return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "master") == 0) {
        send_epoch(s);
        return;
    }
    tk_log(TK_LOG_WARN, "redis: %s:%d is not a master: asking the sentinels again", s->ip, s->port);
    redisAsyncDisconnect(s->ac);
}

static void send_setup(tk_stream_t *s)
{
    char db[16];
    if (s->url.password) {
        const char *argv[] = {"AUTH", s->url.user ? s->url.user : s->url.password, s->url.password};
        redisAsyncCommandArgv(s->ac, on_setup, s, s->url.user ? 3 : 2, argv, NULL);
    }
    if (s->url.db) {
        snprintf(db, sizeof db, "%d", s->url.db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(s->ac, on_setup, s, 2, argv, NULL);
    }
    if (s->sentinel) {
        const char *role[] = {"ROLE"};
        redisAsyncCommandArgv(s->ac, on_role, s, 1, role, NULL);
    } else {
        send_epoch(s);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tk_stream_t *s = ac->data;
    if (status == REDIS_OK) return;
    tk_log(TK_LOG_WARN, "redis: cannot connect: %s", ac->errstr);
    s->ac = NULL; /* hiredis frees it after this callback */
    schedule_reconnect(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tk_stream_t *s = ac->data;
    if (status != REDIS_OK) tk_log(TK_LOG_WARN, "redis: connection lost: %s", ac->errstr);
    if (s->ac == ac) s->ac = NULL;
    schedule_reconnect(s);
}

static int resolve(tk_stream_t *s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(s->url.host, NULL, &hints, &res);
    if (rc) {
        tk_log(TK_LOG_ERROR, "redis: cannot resolve %s: %s", s->url.host, gai_strerror(rc));
        return -1;
    }
    getnameinfo(res->ai_addr, res->ai_addrlen, s->ip, sizeof s->ip, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    return 0;
}

static void connect_to(tk_stream_t *s)
{
    redisAsyncContext *ac = s->url.path && !s->sentinel ? redisAsyncConnectUnix(s->url.path)
                                                        : redisAsyncConnect(s->ip, s->port);
    if (!ac || ac->err) {
        tk_log(TK_LOG_WARN, "redis: cannot connect: %s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    if (tk_redis_uv_attach(ac, s->loop)) {
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    s->ac = ac;
    redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    send_setup(s);
}

static void on_master_found(void *data, const char *ip, int port)
{
    tk_stream_t *s = data;
    if (s->stopping || s->ac) return;
    if (!ip) {
        tk_log(TK_LOG_WARN, "redis: no sentinel names master '%s'", server.cfg->master_name);
        schedule_reconnect(s);
        return;
    }
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    s->port = port;
    connect_to(s);
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
    uv_timer_stop(&s->retry);
    uv_timer_stop(&s->watchdog);
    s->backoff_ms = BACKOFF_MIN_MS;
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    s->port = port;
    TK_COUNT(redis_reconnects_total, 1);
    connect_to(s);
}

static void connect_now(tk_stream_t *s)
{
    if (s->stopping || s->ac) return;
    TK_COUNT(redis_reconnects_total, s->ever_up ? 1 : 0);
    if (s->sentinel) {
        tk_sentinel_ask(s->sentinel, on_master_found);
        return;
    }
    if (s->url.host && !s->ip[0] && resolve(s)) {
        schedule_reconnect(s);
        return;
    }
    s->port = s->url.port;
    connect_to(s);
}

tk_stream_t *tk_stream_start(uv_loop_t *loop, const char *url)
{
    char err[256];
    tk_stream_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (tk_redis_url_parse(url, &s->url, err, sizeof err)) {
        tk_log(TK_LOG_ERROR, "redis: %s", err);
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->backoff_ms = BACKOFF_MIN_MS;
    snprintf(s->epoch_key, sizeof s->epoch_key, "%s:epoch", server.cfg->stream_key);
    uv_timer_init(loop, &s->retry);
    uv_timer_init(loop, &s->watchdog);
    s->retry.data = s->watchdog.data = s;
    s->open_handles = 2;
    if (*server.cfg->sentinels &&
        !(s->sentinel = tk_sentinel_create(loop, server.cfg->sentinels, server.cfg->master_name,
                                           &s->url, on_master_switch, s))) {
        tk_stream_stop(s); /* freed once its timers have closed */
        return NULL;
    }
    set_up(s, false);
    connect_now(s);
    return s;
}

static void on_timer_closed(uv_handle_t *h)
{
    tk_stream_t *s = h->data;
    if (--s->open_handles == 0) {
        tk_redis_url_clear(&s->url);
        free(s);
    }
}

void tk_stream_stop(tk_stream_t *s)
{
    if (!s) return;
    s->stopping = true;
    tk_sentinel_free(s->sentinel);
    s->sentinel = NULL;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&s->retry, on_timer_closed);
    uv_close((uv_handle_t *)&s->watchdog, on_timer_closed);
}
