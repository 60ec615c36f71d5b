/* hub.c - clients, their positions in the event log, replay on connect and
 * the fan-out of live events. Every frame a client gets is a frame shared
 * by all the clients that get it; nothing is encoded or copied per client
 * except into the one scratch buffer a write is gathered in.
 *
 * Positions and ownership: the history owns events and their frames; a
 * client holds a cursor (a sequence number) and references to its own
 * frames. The hub tells the history the oldest position still needed
 * (tk_history_trim), so an event stays while a client is behind it, up to
 * max_queue_bytes behind; past that, or after slow_timeout_s without
 * taking a byte, the client is closed 1013 and reconnects with since.
 *
 * The fan-out of an event reads the filters of the live clients from one
 * array (the fan-out table) and visits only the clients it matches; a
 * client that is not owed catches its cursor up to the hub's considered
 * when it next becomes owed or is written to. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/clock.h"
#include "tickerd/hub.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"

#define SCRATCH_BYTES 65536
/* Events looked at per writable callback, matching or not: a client with a
 * narrow filter far behind must not hold the loop. */
#define SCAN_PER_WRITE 4096
/* Own frames a client may have waiting besides its replay (hello, marker
 * and up to [replay] max references): pongs, errors it asked for without
 * reading. */
#define OWN_FRAMES_MAX 8192

/* The fan-out table: each live client's filter beside the client, in one
 * array. An event's loop reads the filters in a row and touches only the
 * clients it matches: the structs of the others (most of them, with
 * narrow filters) stay cold. */
typedef struct tk_fan {
    tk_filter_t filter;
    tk_client_t *c;
} tk_fan_t;

struct tk_hub {
    uv_loop_t *loop;
    uv_timer_t timer;
    tk_history_t *history;
    tk_hub_limits_t lim;
    tk_client_t *clients; /* newest first */
    tk_client_t *owed;    /* clients with frames owed */
    tk_fan_t *fan;        /* the live clients */
    uint32_t nfan, fancap;
    /* Every event before it has been offered to every live client: one
     * that is not owed has matched none of them since its cursor. */
    uint64_t considered;
    int nclients;
    bool batching;
    bool starting; /* a client's first frames are being queued: start() writes them */
    bool ready;
    uint32_t ticks;
    int64_t test_now;
    char epoch[65];
    tk_msg_t *ws_ping, *sse_comment;
    tk_kill_hooks_t kill;
    unsigned char *scratch; /* tk_msg_pre + SCRATCH_BYTES */
};

static int oneshot_writable(tk_client_t *c);

static int64_t loop_ms(const tk_hub_t *hub)
{
    return hub->loop ? (int64_t)uv_now(hub->loop) : hub->test_now;
}

static const char *peer(tk_client_t *c, char *buf, size_t cap)
{
    const char *p = c->ops->peer ? c->ops->peer(c, buf, cap) : NULL;
    return p && *p ? p : "?";
}

/* --- the owed list --- */

/* A client not owed moves its cursor past the events it was offered and
 * did not match (the fan-out leaves its struct alone for those). */
static void catch_up(tk_client_t *c)
{
    if (!c->owed && c->state == TK_CLIENT_LIVE && c->cursor < c->hub->considered)
        c->cursor = c->hub->considered;
}

static void mark_owed(tk_client_t *c)
{
    tk_hub_t *hub = c->hub;
    if (c->owed) return;
    catch_up(c);
    c->owed = 1;
    c->owed_prev = NULL;
    c->owed_next = hub->owed;
    if (hub->owed) hub->owed->owed_prev = c;
    hub->owed = c;
    c->progress_ms = loop_ms(hub); /* owed from now */
    if (!hub->batching && !hub->starting) c->ops->want_write(c); /* else the batch's end writes */
}

static void unmark_owed(tk_client_t *c)
{
    if (!c->owed) return;
    if (c->owed_prev)
        c->owed_prev->owed_next = c->owed_next;
    else
        c->hub->owed = c->owed_next;
    if (c->owed_next) c->owed_next->owed_prev = c->owed_prev;
    c->owed_prev = c->owed_next = NULL;
    c->owed = 0;
}

/* --- the fan-out table --- */

static int fan_add(tk_client_t *c)
{
    tk_hub_t *hub = c->hub;
    if (hub->nfan == hub->fancap) {
        uint32_t cap = hub->fancap ? hub->fancap * 2 : 64;
        tk_fan_t *fan = realloc(hub->fan, cap * sizeof *fan);
        if (!fan) return -1;
        hub->fan = fan;
        hub->fancap = cap;
    }
    hub->fan[hub->nfan] = (tk_fan_t){c->filter, c};
    c->fan_slot = ++hub->nfan;
    return 0;
}

/* The last entry takes c's place: a fan-out loop runs downwards, so the
 * entry moved has been visited. */
static void fan_remove(tk_client_t *c)
{
    tk_hub_t *hub = c->hub;
    if (!c->fan_slot) return;
    uint32_t i = c->fan_slot - 1;
    c->fan_slot = 0;
    hub->fan[i] = hub->fan[--hub->nfan];
    if (i < hub->nfan) hub->fan[i].c->fan_slot = i + 1;
    if (hub->fancap > 64 && hub->nfan < hub->fancap / 4) { /* after a storm */
        tk_fan_t *fan = realloc(hub->fan, hub->fancap / 2 * sizeof *fan);
        if (fan) {
            hub->fan = fan;
            hub->fancap /= 2;
        }
    }
}

static void fan_refilter(tk_client_t *c)
{
    if (c->fan_slot) c->hub->fan[c->fan_slot - 1].filter = c->filter;
}

/* --- the fan-out histogram: stream-ID time to the last write ---
 * Each event's live frame counts the clients that still owe it; the last
 * write observes the histogram. A client that leaves, resubscribes or is
 * resynced while behind is not taken off the counts (that would cost a walk
 * of its whole backlog, at the worst moment: a mass timeout): such an event
 * is then left out of the histogram. */

/* The live frame of ev for t, counting one more client that owes it. */
static tk_msg_t *live_msg(tk_event_t *ev, tk_transport_t t)
{
    tk_msg_t *m = tk_event_msg(ev, t, false);
    if (m && !m->stamp_ms) m->stamp_ms = (int64_t)ev->id.ms;
    return m;
}

static void fanout_done(tk_msg_t *m)
{
    if (m && m->pending && --m->pending == 0)
        tk_metrics_observe_fanout(tk_now_s() - (double)m->stamp_ms / 1000.0);
}

/* Sent already, by the since= replay it connected with. */
static bool replayed(const tk_client_t *c, const tk_event_t *ev)
{
    return tk_id_cmp(ev->id, c->skip_until) <= 0;
}

static bool wants(const tk_client_t *c, const tk_event_t *ev)
{
    return !replayed(c, ev) && tk_filter_match_any(&c->filter, ev->keys, ev->nkeys);
}

/* --- kill confirmation (SPEC §7) --- */

/* A retract routed to a labelled client: noted for its ack, and told. */
static void note_retract(tk_client_t *c, const tk_event_t *ev)
{
    tk_hub_t *hub = c->hub;
    const tk_kill_sent_t *k;
    if (!c->screen || ev->op != TK_OP_RETRACT) return;
    if (!(k = tk_screen_sent(c->screen, ev->ref, ev->id, tk_now_ms()))) return;
    if (hub->kill.sent) hub->kill.sent(hub->kill.ud, c->screen, k);
}

int tk_client_ack(tk_client_t *c, tk_id_t ref)
{
    tk_hub_t *hub = c->hub;
    tk_kill_sent_t k;
    if (!c->screen || tk_screen_ack(c->screen, ref, &k)) return -ENOENT;
    if (hub->kill.acked) hub->kill.acked(hub->kill.ud, c->screen, &k, tk_now_ms());
    return 0;
}

/* A label from the handshake or a subscribe frame ("": keep what it has).
 * Returns -1 when out of memory: c is closed 1011 (a screen left out would
 * never confirm a kill, and nobody would know). */
static int set_label(tk_client_t *c, const char *label)
{
    if (!*label || (c->screen && strcmp(c->screen->label, label) == 0)) return 0;
    free(c->screen);
    if ((c->screen = tk_screen_new(label))) return 0;
    tk_client_close(c, 1011);
    return -1;
}

void tk_hub_set_kill_hooks(tk_hub_t *hub, const tk_kill_hooks_t *hooks)
{
    hub->kill = *hooks;
}

/* --- own frames --- */

static void drop_queue(tk_client_t *c)
{
    while (c->qlen) {
        tk_msg_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    free(c->q);
    c->q = NULL;
    c->qcap = c->qhead = 0;
}

static int grow_queue(tk_client_t *c)
{
    uint32_t cap = c->qcap ? c->qcap * 2 : 8;
    tk_msg_t **q = malloc(cap * sizeof *q);
    if (!q) return -1;
    for (uint32_t i = 0; i < c->qlen; i++)
        q[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = q;
    c->qcap = cap;
    c->qhead = 0;
    return 0;
}

static void slow_consumer(tk_client_t *c, const char *why)
{
    char ip[64];
    tk_log_limited(TK_LOG_WARN, "client %s: %s: closing (1013)", peer(c, ip, sizeof ip), why);
    TK_COUNT(slow_consumer_disconnects_total, 1);
    tk_client_close(c, 1013);
}

/* Queues a reference to m as one of c's own frames. */
static int enqueue(tk_client_t *c, tk_msg_t *m)
{
    if (c->state == TK_CLIENT_CLOSING) return -1;
    if (!m) {
        tk_client_close(c, 1011); /* out of memory: never a silent loss */
        return -1;
    }
    if (c->qlen >= OWN_FRAMES_MAX + 2 + (uint32_t)c->hub->lim.replay_max) {
        slow_consumer(c, "too many frames of its own waiting");
        return -1;
    }
    if (c->qlen == c->qcap && grow_queue(c)) {
        tk_client_close(c, 1011);
        return -1;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = tk_msg_ref(m);
    c->qlen++;
    mark_owed(c);
    return 0;
}

int tk_client_send_json(tk_client_t *c, const char *type, json_t *obj)
{
    json_t *o = json_pack("{s:s}", "type", type); /* "type" first, for readers */
    if (!o || !obj || json_object_update(o, obj)) {
        json_decref(o);
        json_decref(obj);
        return enqueue(c, NULL);
    }
    json_decref(obj);
    size_t len;
    char *s = tk_json_dump(o, &len);
    json_decref(o);
    tk_msg_t *m = s ? tk_msg_frame(c->transport, type, NULL, s, len) : NULL;
    free(s);
    int rc = enqueue(c, m);
    tk_msg_unref(m);
    return rc;
}

void tk_client_close_why(tk_client_t *c, uint16_t code, const char *reason)
{
    if (c->state != TK_CLIENT_CLOSING) c->close_reason = reason;
    tk_client_close(c, code);
}

void tk_client_close(tk_client_t *c, uint16_t code)
{
    if (c->state == TK_CLIENT_CLOSING) return;
    /* Error frames go out before a 1008; nothing else is worth waiting
     * for, least of all for a slow consumer. */
    if (code != 1008) drop_queue(c);
    c->cursor = tk_history_next_seq(c->hub->history);
    fan_remove(c);
    c->state = TK_CLIENT_CLOSING;
    c->close_code = code;
    unmark_owed(c);
    c->ops->closing(c, code);
    c->ops->want_write(c);
}

/* --- writing --- */

/* Copies whole own frames into dst. A first frame bigger than cap is
 * popped into *big for the caller to write alone and release. */
static size_t gather_own(tk_client_t *c, unsigned char *dst, size_t cap, tk_msg_t **big)
{
    size_t n = 0;
    while (c->qlen) {
        tk_msg_t *m = c->q[c->qhead];
        if (n + m->len > cap) {
            if (n) break;
            *big = m;
        } else {
            memcpy(dst + n, m->data, m->len);
            n += m->len;
            tk_msg_unref(m);
        }
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        TK_COUNT(messages_sent_total, 1);
        if (*big) break;
    }
    /* Own frames are few (hello, replay, pings, acks): an idle client
     * holds no queue, which is memory of every connection. */
    if (c->qlen == 0) drop_queue(c);
    return n;
}

/* Copies the matching events from c's cursor into dst, n bytes already
 * there. An event too big for an empty buffer goes in *big (not a new
 * reference: the history keeps it while the caller writes). */
static size_t gather_log(tk_client_t *c, unsigned char *dst, size_t n, size_t cap, tk_msg_t **big)
{
    tk_history_t *h = c->hub->history;
    uint64_t end = tk_history_next_seq(h), first = tk_history_first_seq(h);
    if (c->cursor < first) c->cursor = first; /* only after a reset */
    for (int scanned = 0; c->cursor < end && scanned < SCAN_PER_WRITE; scanned++) {
        tk_event_t *ev = tk_history_at(h, c->cursor);
        if (wants(c, ev)) {
            tk_msg_t *m = live_msg(ev, c->transport);
            if (!m) {
                tk_client_close(c, 1011);
                return 0;
            }
            if (n + m->len > cap) {
                if (n) break;
                *big = m;
            } else {
                memcpy(dst + n, m->data, m->len);
                n += m->len;
            }
            c->last_sent = ev->id;
            TK_COUNT(messages_sent_total, 1);
            fanout_done(m);
        }
        c->cursor++;
        if (*big) break;
    }
    return n;
}

/* Writes what c is owed, its own frames first, as many as its socket takes
 * in one write. direct: called by the hub, not from a writable callback,
 * so a socket with no room is left to its callback. */
static int write_owed(tk_client_t *c, bool direct)
{
    tk_hub_t *hub = c->hub;
    tk_msg_t *big = NULL;
    bool own_big = false;
    if (!c->attached || c->state == TK_CLIENT_PARKED) return 0; /* hello comes first */
    if (c->oneshot) return oneshot_writable(c);
    if (c->state == TK_CLIENT_CLOSING && !c->qlen) {
        if (!c->ops->busy(c)) return 1;
        c->ops->want_write(c); /* the transport finishes its write first */
        return 0;
    }
    catch_up(c);
    unsigned char *dst = hub->scratch + tk_msg_pre;
    size_t cap = c->ops->room ? c->ops->room(c) : SIZE_MAX;
    if (direct && cap == 0) {
        c->ops->want_write(c);
        return 0;
    }
    if (cap > SCRATCH_BYTES) cap = SCRATCH_BYTES;
    size_t n = gather_own(c, dst, cap, &big); /* at least one frame */
    own_big = big != NULL;
    if (!big && !c->qlen && c->state == TK_CLIENT_LIVE) n = gather_log(c, dst, n, cap, &big);
    int rc = 0;
    if (big) {
        rc = c->ops->write(c, big->data, big->len);
        TK_COUNT(bytes_sent_total, big->len);
        if (own_big) tk_msg_unref(big);
    } else if (n) {
        rc = c->ops->write(c, dst, n);
        TK_COUNT(bytes_sent_total, n);
    }
    if (rc < 0) return -1;
    c->progress_ms = loop_ms(hub);
    if (c->qlen || c->state == TK_CLIENT_CLOSING || c->cursor < tk_history_next_seq(hub->history))
        c->ops->want_write(c);
    else
        unmark_owed(c);
    return 0;
}

int tk_client_writable(tk_client_t *c)
{
    return write_owed(c, false);
}

/* The end of a batch: each live client owed frames is written to now, its
 * frames of the batch packed in one write, rather than from a writable
 * callback (which costs the loop a poll change and a wake-up per client).
 * A client whose transport still holds a write waits for its callback, as
 * does a one-shot client (its answer ends the connection). */
static void write_owed_clients(tk_hub_t *hub)
{
    for (tk_client_t *c = hub->owed, *next; c; c = next) {
        next = c->owed_next;
        if (c->oneshot || c->state != TK_CLIENT_LIVE || !c->attached || c->ops->busy(c))
            c->ops->want_write(c);
        else if (write_owed(c, true) < 0)
            tk_client_close(c, 0);
    }
}


/* --- one-shot clients (long-poll) ---
 * A waiting one-shot client holds no frame and no timer: its filter, its
 * since (last_sent) and its deadline. A matching event, its deadline (the
 * tick), a resync or a close mark it owed; its writable callback then
 * answers it from the history, with everything it matches by then. */

/* Whether an event after since matches (or may be missing): answer now. */
static bool oneshot_due(const tk_client_t *c)
{
    tk_event_t *one;
    bool gap, more;
    return tk_history_after(c->hub->history, c->last_sent, &c->filter, 1, tk_now_ms(), &one,
                            &gap, &more) > 0 ||
           gap;
}

static void start_oneshot(tk_client_t *c, const tk_sub_req_t *req)
{
    tk_hub_t *hub = c->hub;
    bool epoch_ok = !req->has_epoch || strcmp(req->epoch, hub->epoch) == 0;
    int want = req->replay >= 0 ? req->replay : hub->lim.replay_default;
    c->filter = req->filter;
    c->state = TK_CLIENT_LIVE;
    c->cursor = tk_history_next_seq(hub->history);
    if (fan_add(c)) {
        tk_client_close(c, 1011);
        return;
    }
    c->oneshot_gap = !epoch_ok;
    c->oneshot_replay = (int16_t)(want < hub->lim.replay_max ? want : hub->lim.replay_max);
    if (req->has_since && epoch_ok) {
        c->oneshot_replay = -1;
        c->last_sent = c->skip_until = req->since;
        if (c->oneshot_wait_ms > loop_ms(hub) && !oneshot_due(c)) return; /* waits */
    }
    mark_owed(c);
}

/* The events of c's answer, as poll frames into out (room for replay_max +
 * TK_PINNED_MAX); a->n is set, or -1 when out of memory. */
static void oneshot_events(tk_client_t *c, tk_answer_t *a, tk_msg_t **out)
{
    tk_history_t *h = c->hub->history;
    void **found = (void **)out;
    tk_id_t last = tk_history_last_id(h);
    a->last_id = last;
    a->gap = c->oneshot_gap;
    if (c->oneshot_replay < 0) {
        /* Pages of replay_max: the next poll, from last_id, gets the rest. */
        bool gap, more;
        a->n = tk_history_after(h, c->last_sent, &c->filter, c->hub->lim.replay_max, tk_now_ms(),
                                (tk_event_t **)found, &gap, &more);
        a->gap = gap;
        if (more && a->n > 0) a->last_id = ((tk_event_t *)found[a->n - 1])->id;
        if (tk_id_cmp(c->last_sent, a->last_id) > 0) a->last_id = c->last_sent; /* never back */
        for (int i = 0; i < a->n; i++)
            if (!(out[i] = tk_event_msg(found[i], TK_TRANSPORT_POLL, false))) a->n = -1;
    } else {
        a->n = tk_history_current(h, &c->filter, c->oneshot_replay, tk_now_ms(),
                                  (tk_state_t **)found);
        for (int i = 0; i < a->n; i++)
            if (!(out[i] = tk_state_msg(found[i], TK_TRANSPORT_POLL))) a->n = -1;
        if (a->n > 0) TK_COUNT(replay_events_sent_total, (uint64_t)a->n);
    }
}

/* Answers c (empty when it is closing 1001) and ends it: 1, or -1 when the
 * connection must be dropped. Any other close is the transport's (1). */
static int oneshot_writable(tk_client_t *c)
{
    tk_hub_t *hub = c->hub;
    bool closing = c->state == TK_CLIENT_CLOSING;
    if (closing && c->close_code != 1001) return 1;
    tk_msg_t **out = malloc(((size_t)hub->lim.replay_max + TK_PINNED_MAX) * sizeof *out);
    tk_answer_t a = {.epoch = hub->epoch, .events = out};
    if (!out) return -1;
    if (closing) {
        a.last_id = tk_history_last_id(hub->history);
        if (c->oneshot_replay < 0 && tk_id_cmp(c->last_sent, a.last_id) > 0)
            a.last_id = c->last_sent;
    } else {
        oneshot_events(c, &a, out);
    }
    long rc = a.n < 0 ? -1 : c->ops->answer(c, &a);
    free(out);
    unmark_owed(c);
    c->state = TK_CLIENT_CLOSING;
    if (rc < 0) return -1;
    TK_COUNT(messages_sent_total, (uint64_t)a.n);
    TK_COUNT(bytes_sent_total, (uint64_t)rc);
    return 1;
}

/* --- hello and replay --- */

static void send_hello(tk_client_t *c)
{
    tk_hub_t *hub = c->hub;
    char last[TK_ID_STRLEN];
    tk_id_format(tk_history_last_id(hub->history), last);
    tk_client_send_json(c, "hello",
                        json_pack("{s:i, s:s, s:s, s:o, s:i, s:s}", "protocol", 1, "server",
                                  "tickerd/" TK_VERSION, "epoch", hub->epoch, "filter",
                                  tk_filter_to_json(&c->filter), "heartbeat_s",
                                  hub->lim.heartbeat_s, "last_id", last));
}

/* Queues the replay a request asks for (references to shared frames), then
 * the marker. Live events follow from the log's end: the seam is exact. */
static void send_replay(tk_client_t *c, const tk_sub_req_t *req, bool force_gap)
{
    tk_hub_t *hub = c->hub;
    int max = hub->lim.replay_max, n = 0;
    bool gap = force_gap;
    bool epoch_ok = !req->has_epoch || strcmp(req->epoch, hub->epoch) == 0;
    int64_t now = tk_now_ms();
    /* since= sends at most max events; a replay up to max others and the
     * pinned items on top */
    void **out = malloc(((size_t)max + TK_PINNED_MAX) * sizeof *out);
    if (!out) {
        enqueue(c, NULL);
        return;
    }
    c->cursor = tk_history_next_seq(hub->history);
    if (req->has_since && epoch_ok && !force_gap) {
        bool since_gap;
        n = tk_history_since(hub->history, req->since, &c->filter, max, now, (tk_event_t **)out,
                             &since_gap);
        gap = since_gap;
        for (int i = 0; i < n; i++) {
            enqueue(c, tk_event_msg(out[i], c->transport, true));
            if (c->screen) note_retract(c, out[i]);
        }
        if (tk_id_cmp(req->since, tk_history_last_id(hub->history)) > 0)
            c->skip_until = req->since; /* it saw further than we have read */
    } else {
        int want = req->replay >= 0 ? req->replay : hub->lim.replay_default;
        gap = gap || !epoch_ok;
        n = tk_history_current(hub->history, &c->filter, want < max ? want : max, now,
                               (tk_state_t **)out);
        for (int i = 0; i < n; i++)
            enqueue(c, tk_state_msg(out[i], c->transport));
    }
    free(out);
    TK_COUNT(replay_events_sent_total, (uint64_t)n);
    tk_client_send_json(c, "replay", json_pack("{s:i, s:b}", "count", n, "gap", gap));
}

/* Serves a client: hello, its replay, then live events. What it was sent
 * while parked (pongs, errors) goes out after its replay marker. */
static void start(tk_client_t *c, const tk_sub_req_t *req)
{
    if (c->oneshot) {
        start_oneshot(c, req);
        return;
    }
    c->filter = req->filter;
    c->state = TK_CLIENT_LIVE;
    c->cursor = tk_history_next_seq(c->hub->history);
    if (fan_add(c)) {
        tk_client_close(c, 1011); /* its early frames go with it */
        return;
    }
    tk_msg_t **early = c->q;
    uint32_t head = c->qhead, len = c->qlen, cap = c->qcap;
    c->q = NULL;
    c->qhead = c->qlen = c->qcap = 0;
    c->hub->starting = true;
    send_hello(c);
    send_replay(c, req, false);
    for (uint32_t i = 0; i < len; i++) {
        tk_msg_t *m = early[(head + i) % cap];
        enqueue(c, m);
        tk_msg_unref(m);
    }
    c->hub->starting = false;
    free(early);
    /* Written at once, not from a writable callback: in a reconnect storm
     * that callback cost every client two epoll_ctl calls and a loop turn.
     * A transport still holding a write (or a socket without room) waits
     * for it; during a batch, the batch's end writes. */
    if (c->hub->batching) return;
    if (c->ops->busy(c))
        c->ops->want_write(c);
    else if (write_owed(c, true) < 0)
        tk_client_close(c, 0);
}

/* --- clients --- */

/* The audience (tk_metrics_audience) counts each client once with the
 * filter it has now; f NULL: it leaves. */
static void count_audience(tk_client_t *c, const tk_filter_t *f)
{
    if (c->in_audience)
        tk_metrics_audience(c->counted.langs, c->counted.langs == TK_ALL32, c->counted.regions,
                            c->counted.regions == TK_ALL64, -1);
    c->in_audience = f != NULL;
    if (!f) return;
    c->counted = *f;
    tk_metrics_audience(f->langs, f->langs == TK_ALL32, f->regions, f->regions == TK_ALL64, 1);
}

void tk_hub_attach(tk_hub_t *hub, tk_client_t *c, const tk_transport_ops_t *ops, tk_sub_req_t *req)
{
    c->ops = ops;
    c->hub = hub;
    c->transport = (uint8_t)ops->kind;
    c->prev = NULL;
    c->next = hub->clients;
    if (hub->clients) hub->clients->prev = c;
    hub->clients = c;
    c->attached = 1;
    tk_client_heard(c);
    hub->nclients++;
    TK_COUNT(connections[c->transport], 1);
    TK_COUNT(connections_total, 1);
    count_audience(c, &req->filter);
    if (set_label(c, req->client)) {
        free(req);
        return;
    }
    if (!hub->ready) {
        c->state = TK_CLIENT_PARKED;
        c->pending = req;
        return;
    }
    start(c, req);
    free(req);
}

void tk_hub_attach_oneshot(tk_hub_t *hub, tk_client_t *c, const tk_transport_ops_t *ops,
                           tk_sub_req_t *req, int wait_s)
{
    c->oneshot = 1;
    c->oneshot_wait_ms = loop_ms(hub) + (int64_t)wait_s * 1000;
    tk_hub_attach(hub, c, ops, req);
}

void tk_hub_detach(tk_client_t *c)
{
    if (c->attached) {
        tk_hub_t *hub = c->hub;
        c->attached = 0;
        unmark_owed(c);
        fan_remove(c);
        if (c->prev)
            c->prev->next = c->next;
        else
            hub->clients = c->next;
        if (c->next) c->next->prev = c->prev;
        c->prev = c->next = NULL;
        hub->nclients--;
        TK_COUNT(connections[c->transport], -1);
        count_audience(c, NULL);
        drop_queue(c);
    }
    free(c->pending);
    c->pending = NULL;
    free(c->screen);
    c->screen = NULL;
}

void tk_hub_resubscribe(tk_client_t *c, const tk_sub_req_t *req)
{
    if (c->state == TK_CLIENT_PARKED && c->pending) {
        /* Not served yet: the hello it will get answers this too. */
        tk_sub_req_t *p = c->pending;
        p->filter = req->filter;
        if (set_label(c, req->client)) return;
        count_audience(c, &req->filter);
        if (req->replay >= 0 || req->has_since) {
            p->replay = req->replay;
            p->has_since = req->has_since;
            p->since = req->since;
        }
        return;
    }
    if (c->state != TK_CLIENT_LIVE) return;
    c->filter = req->filter;
    fan_refilter(c);
    if (set_label(c, req->client)) return;
    count_audience(c, &req->filter);
    send_hello(c);
    if (req->replay >= 0 || req->has_since) send_replay(c, req, false);
}

void tk_client_heard(tk_client_t *c)
{
    c->heard_s = (uint32_t)(loop_ms(c->hub) / 1000);
}

/* --- fan-out --- */

/* Closes the clients more than max_queue_bytes behind, and tells the log
 * the oldest position a live client still needs. What the log holds beyond
 * history_size is then bounded by max_queue_bytes, however many clients
 * stopped reading: they share it. */
static void trim(tk_hub_t *hub)
{
    tk_history_t *h = hub->history;
    uint64_t keep = UINT64_MAX, end = tk_history_bytes_end(h);
    for (tk_client_t *c = hub->owed, *next; c; c = next) {
        next = c->owed_next;
        if (c->state != TK_CLIENT_LIVE || c->oneshot) continue; /* answered from the history */
        if (end - tk_history_bytes_before(h, c->cursor) > hub->lim.max_queue_bytes) {
            slow_consumer(c, "too far behind");
            continue;
        }
        if (c->cursor < keep) keep = c->cursor;
    }
    tk_history_trim(h, keep);
}

/* The live path: a caught-up client with nothing queued and nothing
 * half-written gets the frame written at once; arming POLLOUT would cost
 * two epoll_ctl calls and a loop turn per delivery. Any other client that
 * wants the event owes it, and its writable callback catches up. c: a
 * client whose filter the table matched. held: the event's frame per
 * transport, made for the first client that takes it. */
static void offer(tk_hub_t *hub, tk_client_t *c, tk_event_t *ev, tk_msg_t **held)
{
    if (c->cursor > ev->seq || replayed(c, ev)) return;
    catch_up(c); /* to ev->seq: it matched nothing before */
    if (c->screen) note_retract(c, ev);
    if (c->oneshot) {
        mark_owed(c); /* answered from its writable callback */
        return;
    }
    tk_msg_t *m = held[c->transport];
    if (!m) {
        if (!(m = held[c->transport] = live_msg(ev, c->transport))) {
            tk_client_close(c, 1011);
            return;
        }
        m->pending++; /* held until the loop is done */
    }
    if (c->cursor == ev->seq && !c->owed && !hub->batching && !c->ops->busy(c)) {
        if (c->ops->write(c, m->data, m->len) < 0) {
            tk_client_close(c, 0);
            return;
        }
        c->cursor++;
        c->last_sent = ev->id;
        c->progress_ms = loop_ms(hub);
        TK_COUNT(messages_sent_total, 1);
        TK_COUNT(bytes_sent_total, m->len);
    } else {
        m->pending++;
        mark_owed(c);
    }
}

/* Downwards through the table: a client closed on the way is replaced by
 * the last entry, which has been visited. */
void tk_hub_publish(tk_hub_t *hub, tk_event_t *ev)
{
    tk_msg_t *held[TK_TRANSPORTS] = {NULL, NULL};
    hub->considered = ev->seq;
    for (uint32_t i = hub->nfan; i-- > 0;)
        if (i < hub->nfan && tk_filter_match_any(&hub->fan[i].filter, ev->keys, ev->nkeys))
            offer(hub, hub->fan[i].c, ev, held);
    hub->considered = ev->seq + 1;
    for (int t = 0; t < TK_TRANSPORTS; t++)
        fanout_done(held[t]);
    if (!hub->batching) trim(hub);
}

void tk_hub_batch(tk_hub_t *hub, bool on)
{
    hub->batching = on;
    if (on) return;
    write_owed_clients(hub);
    trim(hub);
}

void tk_hub_ready(tk_hub_t *hub)
{
    hub->ready = true;
    for (tk_client_t *c = hub->clients; c; c = c->next) {
        if (c->state != TK_CLIENT_PARKED) continue;
        start(c, c->pending);
        free(c->pending);
        c->pending = NULL;
    }
}

bool tk_hub_is_ready(const tk_hub_t *hub)
{
    return hub->ready;
}

void tk_hub_resync(tk_hub_t *hub, bool gap_frame)
{
    tk_sub_req_t req;
    tk_sub_req_init(&req);
    for (tk_client_t *c = hub->clients; c; c = c->next) {
        if (c->state != TK_CLIENT_LIVE) continue;
        if (c->oneshot) { /* the current state, with gap:true */
            c->oneshot_replay = (int16_t)hub->lim.replay_default;
            c->oneshot_gap = 1;
            mark_owed(c);
            continue;
        }
        if (gap_frame) {
            char last[TK_ID_STRLEN];
            tk_id_format(c->last_sent, last);
            tk_client_send_json(c, "gap", json_pack("{s:s}", "last_id", last));
        }
        req.filter = c->filter;
        c->skip_until = (tk_id_t){0, 0};
        send_hello(c);
        send_replay(c, &req, true);
    }
    trim(hub);
}

void tk_hub_close_all(tk_hub_t *hub, uint16_t code)
{
    for (tk_client_t *c = hub->clients; c; c = c->next)
        tk_client_close(c, code);
}

int tk_hub_close_some(tk_hub_t *hub, int n, uint16_t code)
{
    int closed = 0;
    for (tk_client_t *c = hub->clients; c && closed < n; c = c->next) {
        if (c->state == TK_CLIENT_CLOSING) continue;
        tk_client_close(c, code);
        closed++;
    }
    return closed;
}

int tk_hub_answer_oneshots(tk_hub_t *hub)
{
    int n = 0;
    for (tk_client_t *c = hub->clients; c; c = c->next) {
        if (!c->oneshot || c->state == TK_CLIENT_CLOSING) continue;
        tk_client_close(c, 1001);
        n++;
    }
    return n;
}

int tk_hub_count(const tk_hub_t *hub)
{
    return hub->nclients;
}

/* --- the timer --- */

static void check_slow(tk_hub_t *hub, int64_t now)
{
    for (tk_client_t *c = hub->owed, *next; c; c = next) {
        next = c->owed_next;
        if (c->state == TK_CLIENT_LIVE && now - c->progress_ms > hub->lim.slow_timeout_ms)
            slow_consumer(c, "took nothing while frames were owed");
    }
}

/* A token's exp holds for the whole connection (SPEC §6). */
static void check_expiry(tk_hub_t *hub, int64_t now_s)
{
    for (tk_client_t *c = hub->clients, *next; c; c = next) {
        next = c->next;
        if (c->expires_s && c->expires_s <= now_s && c->state != TK_CLIENT_CLOSING)
            tk_client_close_why(c, 1008, "token expired");
    }
}

/* A ping to each WebSocket client (dropping those silent for twice the
 * heartbeat), a comment line to each SSE client. */
static void heartbeat(tk_hub_t *hub, int64_t now)
{
    uint32_t now_s = (uint32_t)(now / 1000);
    uint32_t silent_max = 2 * (uint32_t)hub->lim.heartbeat_s;
    for (tk_client_t *c = hub->clients, *next; c; c = next) {
        next = c->next;
        if (c->state != TK_CLIENT_LIVE || c->oneshot) continue;
        bool ws = c->transport == TK_TRANSPORT_WS;
        if (ws && now_s - c->heard_s > silent_max) {
            char ip[64];
            tk_log_limited(TK_LOG_INFO, "client %s silent for %u s: dropped",
                           peer(c, ip, sizeof ip), now_s - c->heard_s);
            tk_client_close(c, 0); /* no close handshake with a dead peer */
            continue;
        }
        tk_msg_t *m = ws ? hub->ws_ping : hub->sse_comment;
        if (c->owed || c->ops->busy(c))
            enqueue(c, m);
        else if (c->ops->write(c, m->data, m->len) < 0)
            tk_client_close(c, 0);
    }
}

/* One-shot clients whose wait ends by the middle of the next tick are
 * answered now: within half a second of their wait_s. */
static void check_waits(tk_hub_t *hub, int64_t now)
{
    for (tk_client_t *c = hub->clients; c; c = c->next)
        if (c->oneshot && c->state == TK_CLIENT_LIVE && !c->owed &&
            c->oneshot_wait_ms <= now + 500)
            mark_owed(c);
}

void tk_hub_tick(tk_hub_t *hub)
{
    int64_t now = loop_ms(hub);
    check_waits(hub, now);
    check_slow(hub, now);
    check_expiry(hub, tk_now_ms() / 1000);
    trim(hub);
    tk_history_expire(hub->history, tk_now_ms());
    if (++hub->ticks >= (uint32_t)hub->lim.heartbeat_s) {
        hub->ticks = 0;
        heartbeat(hub, now);
    }
}

static void on_timer(uv_timer_t *t)
{
    tk_hub_tick(t->data);
}

void tk_hub_set_time(tk_hub_t *hub, int64_t ms)
{
    hub->test_now = ms;
}

/* --- life cycle --- */

tk_hub_t *tk_hub_create(uv_loop_t *loop, tk_history_t *history, const tk_hub_limits_t *lim)
{
    /* A payload, because lws 4.1.6 reports no RECEIVE_PONG for an empty pong. */
    static const char ping[] = {(char)0x89, 2, 't', 'k'};
    tk_hub_t *hub = calloc(1, sizeof *hub);
    if (!hub) return NULL;
    hub->loop = loop;
    hub->history = history;
    hub->lim = *lim;
    hub->scratch = malloc(tk_msg_pre + SCRATCH_BYTES);
    hub->ws_ping = tk_msg_raw(ping, sizeof ping);
    hub->sse_comment = tk_msg_raw(":\n\n", 3);
    if (!hub->scratch || !hub->ws_ping || !hub->sse_comment) {
        loop = NULL;
        hub->loop = NULL;
        tk_hub_free(hub);
        return NULL;
    }
    if (loop) {
        uv_timer_init(loop, &hub->timer);
        hub->timer.data = hub;
        uv_timer_start(&hub->timer, on_timer, 1000, 1000);
    }
    return hub;
}

static void free_hub(tk_hub_t *hub)
{
    tk_msg_unref(hub->ws_ping);
    tk_msg_unref(hub->sse_comment);
    free(hub->scratch);
    free(hub->fan);
    free(hub);
}

static void on_timer_closed(uv_handle_t *h)
{
    free_hub(h->data);
}

void tk_hub_free(tk_hub_t *hub)
{
    if (!hub) return;
    while (hub->clients)
        tk_hub_detach(hub->clients);
    if (hub->loop)
        uv_close((uv_handle_t *)&hub->timer, on_timer_closed);
    else
        free_hub(hub);
}

void tk_hub_set_limits(tk_hub_t *hub, const tk_hub_limits_t *lim)
{
    hub->lim = *lim;
}

void tk_hub_set_epoch(tk_hub_t *hub, const char *epoch)
{
    snprintf(hub->epoch, sizeof hub->epoch, "%s", epoch);
}

const char *tk_hub_epoch(const tk_hub_t *hub)
{
    return hub->epoch;
}
