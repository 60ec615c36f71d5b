/* killrec.c - the hub's reports of labelled screens -> the kill record in
 * Redis. A live retract is written in one HSET (ref field and every screen
 * this node routed it to) with the ref key beside it; a screen that gets
 * the retract later (a since replay) is added with HSETNX, so an ack there
 * already is kept; an ack rewrites its screen's field. Every write renews
 * the 24 h expiry. Errors are logged (rate-limited) and change nothing
 * else: kill confirmation never holds up delivery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tickerd/kill.h"
#include "tickerd/killrec.h"
#include "tickerd/log.h"

#define KEY_MAX 512
#define FIELD_MAX (TK_CLIENT_LABEL_MAX + 300)

struct tk_killrec {
    char *stream;
    char node[256];
    tk_writer_t *writer;
    /* the live retract being published: its screens' fields and values */
    const tk_event_t *batch;
    char **argv;
    size_t *argvlen;
    int argc, cap;
};

static void on_reply(void *privdata, const redisReply *r, const char *err)
{
    const char *what = privdata;
    if (!r || r->type == REDIS_REPLY_ERROR)
        tk_log_limited(TK_LOG_WARN, "kill record: %s: %s", what, r ? r->str : err);
}

static void send_argv(tk_killrec_t *kr, const char *what, int argc, const char **argv,
                      const size_t *len)
{
    if (tk_writer_command(kr->writer, argc, argv, len, on_reply, (void *)what))
        tk_log_limited(TK_LOG_WARN, "kill record: %s: no Redis connection", what);
}

/* EXPIRE key 86400 (and SET ref key) after a write. */
static void renew(tk_killrec_t *kr, const char *key)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", TK_KILL_TTL_S);
    const char *argv[3] = {"EXPIRE", key, ttl};
    size_t len[3] = {6, strlen(key), strlen(ttl)};
    send_argv(kr, "EXPIRE", 3, argv, len);
}

static int push(tk_killrec_t *kr, const char *s)
{
    if (kr->argc == kr->cap) {
        int cap = kr->cap ? kr->cap * 2 : 16;
        char **a = realloc(kr->argv, (size_t)cap * sizeof *a);
        if (!a) return -1;
        kr->argv = a;
        size_t *l = realloc(kr->argvlen, (size_t)cap * sizeof *l);
        if (!l) return -1;
        kr->argvlen = l;
        kr->cap = cap;
    }
    if (!(kr->argv[kr->argc] = strdup(s))) return -1;
    kr->argvlen[kr->argc++] = strlen(s);
    return 0;
}

static void clear_batch(tk_killrec_t *kr)
{
    while (kr->argc)
        free(kr->argv[--kr->argc]);
    kr->batch = NULL;
}

/* A screen's field and value; value malloc'd, NULL when out of memory. */
static char *entry(const tk_killrec_t *kr, const tk_screen_t *s, const tk_kill_sent_t *k,
                   int64_t acked_at, char *field)
{
    /* from the retract's stream-ID time, which another clock made: >= 0 */
    int64_t sent = k->sent_ms - (int64_t)k->rid.ms, acked = acked_at - (int64_t)k->rid.ms;
    if (tk_kill_field(kr->node, s->label, field, FIELD_MAX) < 0) return NULL;
    return tk_kill_value(s->label, kr->node, sent < 0 ? 0 : sent,
                         acked_at < 0 ? -1
                         : acked < 0  ? 0
                                      : acked);
}

/* HSET or HSETNX of one screen's field, then the expiry. */
static void write_screen(tk_killrec_t *kr, const char *verb, const tk_screen_t *s,
                         const tk_kill_sent_t *k, int64_t acked_at)
{
    char key[KEY_MAX], field[FIELD_MAX];
    char *value = entry(kr, s, k, acked_at, field);
    if (!value || tk_kill_key(kr->stream, k->rid, key, sizeof key) < 0) {
        free(value);
        tk_log_limited(TK_LOG_WARN, "kill record: out of memory");
        return;
    }
    const char *argv[4] = {verb, key, field, value};
    size_t len[4] = {strlen(verb), strlen(key), strlen(field), strlen(value)};
    send_argv(kr, verb, 4, argv, len);
    renew(kr, key);
    free(value);
}

static void on_sent(void *ud, const tk_screen_t *s, const tk_kill_sent_t *k)
{
    tk_killrec_t *kr = ud;
    char field[FIELD_MAX];
    if (kr->batch && tk_id_cmp(kr->batch->id, k->rid) == 0) {
        char *value = entry(kr, s, k, -1, field);
        if (value && !push(kr, field) && !push(kr, value)) {
            free(value);
            return;
        }
        free(value);
    }
    write_screen(kr, "HSETNX", s, k, -1);
}

static void on_acked(void *ud, const tk_screen_t *s, const tk_kill_sent_t *k, int64_t at_ms)
{
    write_screen(ud, "HSET", s, k, at_ms);
}

void tk_killrec_begin(tk_killrec_t *kr, const tk_event_t *retract)
{
    char key[KEY_MAX], ref[TK_ID_STRLEN];
    clear_batch(kr);
    tk_id_format(retract->ref, ref);
    if (tk_kill_key(kr->stream, retract->id, key, sizeof key) < 0 || push(kr, "HSET") ||
        push(kr, key) || push(kr, TK_KILL_REF_FIELD) || push(kr, ref)) {
        clear_batch(kr);
        tk_log_limited(TK_LOG_WARN, "kill record: out of memory");
        return;
    }
    kr->batch = retract;
}

void tk_killrec_end(tk_killrec_t *kr)
{
    char refkey[KEY_MAX], rid[TK_ID_STRLEN], ttl[16];
    if (!kr->batch) return;
    send_argv(kr, "HSET", kr->argc, (const char **)kr->argv, kr->argvlen);
    renew(kr, kr->argv[1]);
    tk_id_format(kr->batch->id, rid);
    snprintf(ttl, sizeof ttl, "%d", TK_KILL_TTL_S);
    if (tk_kill_ref_key(kr->stream, kr->batch->ref, refkey, sizeof refkey) >= 0) {
        const char *argv[5] = {"SET", refkey, rid, "EX", ttl};
        size_t len[5] = {3, strlen(refkey), strlen(rid), 2, strlen(ttl)};
        send_argv(kr, "SET", 5, argv, len);
    }
    clear_batch(kr);
}

tk_killrec_t *tk_killrec_create(const char *stream, tk_writer_t *w)
{
    tk_killrec_t *kr = calloc(1, sizeof *kr);
    char host[200] = "localhost";
    if (!kr || !(kr->stream = strdup(stream))) {
        free(kr);
        return NULL;
    }
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(kr->node, sizeof kr->node, "%s:%ld", host, (long)getpid());
    kr->writer = w;
    return kr;
}

void tk_killrec_free(tk_killrec_t *kr)
{
    if (!kr) return;
    clear_batch(kr);
    free(kr->argv);
    free(kr->argvlen);
    free(kr->stream);
    free(kr);
}

tk_kill_hooks_t tk_killrec_hooks(tk_killrec_t *kr)
{
    return (tk_kill_hooks_t){on_sent, on_acked, kr};
}

const char *tk_killrec_node(const tk_killrec_t *kr)
{
    return kr->node;
}
