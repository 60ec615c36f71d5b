/* loadgen.c - tickerd's benchmark client (`make bench`, issue 7).
 *
 * One invocation runs one scenario against one target and writes its
 * figures as one JSON object. The parent process publishes (hiredis XADD
 * for tickerd and the Node peer, HTTP POST for nchan) and reads the
 * server's RSS and CPU from /proc; forked children each hold a share of the
 * WebSocket clients on one epoll loop and report through shared memory.
 * Clients bind source addresses 127.X.Y.2, .3, ... so that more than one
 * address pair's ephemeral ports can be used.
 *
 * The WebSocket client is written here (RFC 6455, client side only): the
 * handshake, masked client frames (pong, close) and unmasked server frames.
 *
 * Items are "bench <tag>#<seq> ..." with the region bench_regions[seq % 8]; a
 * client's filter is derived from its global index, so every process knows
 * which items each client must receive, and checks it gets each exactly once.
 *
 * Every phase has a deadline and the whole run an alarm(2): it always ends.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "filters.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------ */
/* options */

enum target { T_TICKERD, T_NODE, T_NCHAN };
enum scenario { S_IDLE, S_STEADY, S_BURST, S_STORM, S_STALLED, S_FLASH };

static struct {
    enum target target;
    enum scenario scenario;
    const char *host;
    int port, pub_port;
    const char *redis_host;
    int redis_port;
    const char *stream;
    int n, procs, per_src;
    double rate, duration, hold;
    int items;
    int warmup;
    const char *src; /* "127.X.Y" */
    pid_t pids[16];
    int npids;
    const char *out, *label;
    int timeout_s;
    double connect_timeout, drain_timeout;
    int inflight;
    /* stalled: n stalled clients (g < stalled_n) and `readers` that read */
    int stalled_n, readers, rcvbuf, text_bytes, rss_limit_mb;
    int unfiltered; /* every client is owed every item (the floor's load) */
    int busy_poll;  /* the clients' loop never sleeps: no wake-up for the server to pay */
    double observe;
    /* flash: the gap between its items, the wait for each one's last client */
    double gap, flash_wait;
} opt = {
    .host = "127.0.0.1",
    .redis_host = "127.0.0.1",
    .redis_port = 6379,
    .stream = "ticker:breaking",
    .n = 100,
    .per_src = 5000,
    .rate = 20,
    .duration = 5,
    .hold = 2,
    .items = 1000,
    .warmup = 8,
    .src = "127.1.1",
    .label = "",
    .timeout_s = 300,
    .connect_timeout = 60,
    .drain_timeout = 10,
    .inflight = 512,
    .rcvbuf = 4096,
    .rss_limit_mb = 4096,
    .observe = 25,
    .gap = 2,
    .flash_wait = 20,
};

static char tag[8]; /* per run, so items of earlier runs in the stream are ignored */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ */
/* filters: client g's subscription, derived from g alone (filters.h) */

static int filt_kind(int g)
{
    if (opt.scenario == S_STALLED || opt.unfiltered) return BENCH_ALL; /* owed everything */
    return bench_filter_kind(g);
}
static int filt_r1(int g)
{
    return bench_region1(g);
}
static int filt_r2(int g)
{
    return bench_region2(g);
}
static bool matches(int g, int seq)
{
    if (opt.scenario == S_FLASH) return true; /* its items are global: every filter matches */
    return bench_owed(filt_kind(g), g, seq);
}

/* ------------------------------------------------------------------ */
/* histograms: 10 us buckets below 100 ms, 1 ms buckets below 100 s */

#define H_FINE 10000
#define H_COARSE 100000
#define H_N (H_FINE + H_COARSE + 1)

#define FL_MAX 32 /* items of a flash run */

static int h_bucket(int64_t us)
{
    if (us < 0) us = 0;
    if (us < 100000) return (int)(us / 10);
    int64_t b = H_FINE + (us - 100000) / 1000;
    return b >= H_N - 1 ? H_N - 1 : (int)b;
}
static double h_value_ms(int b) /* upper edge of bucket b */
{
    if (b < H_FINE) return (b + 1) * 0.01;
    return 100.0 + (b - H_FINE + 1);
}

/* ------------------------------------------------------------------ */
/* what a child reports (shared memory, one slot per child) */

typedef struct {
    int64_t connected, failed, retries, open_now, refused_http;
    int64_t delivered, uniq, dup, expected, foreign, unmatched, replay_items, markers;
    int64_t close_1013, close_other, eof, reset;
    int64_t close_other_code; /* the last close code other than 1013 */
    /* stalled clients: items read in the drain, how their connection ended */
    int64_t st_paused, st_items, st_1013, st_other, st_eof, st_reset, st_open, st_bytes;
    int64_t complete;
    int64_t ready_first_us, ready_last_us; /* monotonic */
    int64_t last_recv_us, first_recv_us;
    int64_t lat_max_us, lat_n;
    int64_t done_max_us, done_n;
    int64_t err_connect, err_handshake;
    char err[200];
    /* flash: per item, how many clients have it, the first and last receipt */
    int64_t fl_got[FL_MAX], fl_first_us[FL_MAX], fl_last_us[FL_MAX];
    int64_t fl_frame_bytes; /* the size of a flash item's frame, header included */
    uint32_t lat[H_N];
    uint32_t done[H_N];
} slot_t;

static slot_t *slots;

/* ------------------------------------------------------------------ */
/* the client side (children) */

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

typedef struct {
    int fd;
    int g; /* global index */
    uint8_t state, ready, done, retries;
    uint8_t stalled; /* stalled scenario: stops reading at its replay marker */
    uint8_t paused;  /* ... and is out of the epoll set until RESUME */
    int64_t retry_at;
    uint32_t got, expected;
    uint64_t *bits;
    unsigned char *rbuf; /* unparsed bytes between reads */
    uint32_t rlen;
    unsigned char *frag; /* a fragmented message being assembled */
    uint32_t fraglen;
    char *lastid; /* last event id seen (since / last_event_id) */
} client_t;

static client_t *cl;
static int ncl, gbase;
static int epfd;
static slot_t *me;
static int seq_lo, seq_hi;   /* expected items: [seq_lo, seq_hi) */
static bool measure_latency; /* live items count towards latency */
static bool storm_mode;
static int64_t storm_t0;
static int inflight;
static int64_t phase_deadline;
static enum { P_NONE, P_CONNECT, P_WAIT, P_DRAIN } phase;
static int reply_fd;
static int nbits_words;

static void reply(const char *s)
{
    if (write(reply_fd, s, strlen(s)) < 0) _exit(1);
}

static void client_src(int g, struct sockaddr_in *sa)
{
    char ip[32];
    snprintf(ip, sizeof ip, "%s.%d", opt.src, 2 + g / opt.per_src);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) die("bad source address %s", ip);
}

static void kill_client(client_t *c, bool retry)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE || (c->state == C_OPEN && !c->ready))
        inflight--;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = 0;
    free(c->frag);
    c->frag = NULL;
    c->fraglen = 0;
    if (retry && c->retries < 5 && phase == P_CONNECT) {
        c->retries++;
        me->retries++;
        c->state = C_IDLE;
        c->retry_at = mono_us() + 100000 * c->retries;
        return;
    }
    if (c->state == C_OPEN && c->ready) me->open_now--;
    c->state = C_DEAD;
}

static void start_connect(client_t *c)
{
    struct sockaddr_in src, dst;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(me->err, sizeof me->err, "socket: %s", strerror(errno));
        c->state = C_DEAD;
        me->err_connect++;
        return;
    }
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->stalled && opt.rcvbuf > 0) /* before connect: it sets the window scale */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt.rcvbuf, sizeof opt.rcvbuf);
    client_src(c->g, &src);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
        snprintf(me->err, sizeof me->err, "bind: %s", strerror(errno));
        close(fd);
        c->state = C_DEAD;
        me->err_connect++;
        return;
    }
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, opt.host, &dst.sin_addr);
    c->fd = fd;
    c->state = C_CONNECTING;
    inflight++;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        snprintf(me->err, sizeof me->err, "connect: %s", strerror(errno));
        me->err_connect++;
        close(fd);
        c->fd = -1;
        inflight--;
        c->state = C_IDLE;
        kill_client(c, true);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void urlenc(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        if (isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.')
            out[n++] = *s;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*s);
    }
    out[n] = 0;
}

static void send_handshake(client_t *c)
{
    char path[512], req[1024], enc[256];
    int g = c->g, k = filt_kind(g);
    if (opt.target == T_NCHAN) {
        if (k == BENCH_ALL)
            snprintf(path, sizeof path, "/sub/all");
        else if (k == BENCH_ONE_REGION)
            snprintf(path, sizeof path, "/sub/%s", bench_regions[filt_r1(g)]);
        else
            snprintf(path, sizeof path, "/sub/%s,%s", bench_regions[filt_r1(g)],
                     bench_regions[filt_r2(g)]);
        if (storm_mode && c->lastid) {
            urlenc(c->lastid, enc, sizeof enc);
            strcat(path, "?last_event_id=");
            strcat(path, enc);
        }
    } else {
        char f[128];
        bench_region_query(k, g, f, sizeof f);
        if (storm_mode && c->lastid) {
            urlenc(c->lastid, enc, sizeof enc);
            snprintf(path, sizeof path, "/v1/ws?since=%s%s", enc, f);
        } else {
            snprintf(path, sizeof path, "/v1/ws?replay=0%s", f);
        }
    }
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, opt.host, opt.port,
                     opt.target == T_NCHAN ? "Sec-WebSocket-Protocol: ws+meta.nchan\r\n" : "");
    if (write(c->fd, req, (size_t)n) != n) {
        me->err_handshake++;
        kill_client(c, true);
        return;
    }
    c->state = C_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A masked client frame (pong or close). */
static void send_frame(client_t *c, int op, const unsigned char *p, size_t len)
{
    unsigned char f[6 + 125];
    if (len > 125) len = 125;
    f[0] = (unsigned char)(0x80 | op);
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, "\x12\x34\x56\x78", 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = p[i] ^ f[2 + (i & 3)];
    if (write(c->fd, f, 6 + len) < 0) { /* the next read sees the error */
    }
}

static void mark_ready(client_t *c, int64_t now)
{
    if (c->ready) return;
    c->ready = 1;
    inflight--;
    me->connected++;
    me->open_now++;
    if (!me->ready_first_us || now < me->ready_first_us) me->ready_first_us = now;
    if (now > me->ready_last_us) me->ready_last_us = now;
}

static void client_done(client_t *c, int64_t now)
{
    if (c->done) return;
    c->done = 1;
    me->complete++;
    if (storm_mode) {
        int64_t d = now - storm_t0;
        me->done[h_bucket(d)]++;
        me->done_n++;
        if (d > me->done_max_us) me->done_max_us = d;
    }
}

static void set_lastid(client_t *c, const char *s, size_t n)
{
    if (!c->lastid || strlen(c->lastid) < n) {
        free(c->lastid);
        c->lastid = malloc(n + 1);
    }
    memcpy(c->lastid, s, n);
    c->lastid[n] = 0;
}

/* A flash item reached one more client: its count, first and last receipt
 * (the parent waits on the count), and the frame's size on the wire. */
static void flash_got(int seq, size_t len, int64_t now_mono)
{
    if (!me->fl_first_us[seq] || now_mono < me->fl_first_us[seq]) me->fl_first_us[seq] = now_mono;
    if (now_mono > me->fl_last_us[seq]) me->fl_last_us[seq] = now_mono;
    me->fl_frame_bytes = (int64_t)len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
    __atomic_add_fetch(&me->fl_got[seq], 1, __ATOMIC_RELEASE);
}

/* An item frame: checks the tag and seq, records the delivery. */
static void on_item(client_t *c, const unsigned char *p, size_t len, int64_t now_real,
                    int64_t now_mono)
{
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "bench %s#", tag);
    const unsigned char *t = memmem(p, len, pat, (size_t)pl);
    const unsigned char *id = memmem(p, len, "\"id\":\"", 6);
    if (!t || !id) {
        me->foreign++;
        return;
    }
    id += 6;
    const unsigned char *idend = memchr(id, '"', len - (size_t)(id - p));
    if (!idend) {
        me->foreign++;
        return;
    }
    if (opt.target != T_NCHAN) set_lastid(c, (const char *)id, (size_t)(idend - id));
    if (c->stalled) { /* what a stalled client reads once it reads again */
        me->st_items++;
        return;
    }
    int64_t ms = strtoll((const char *)id, NULL, 10);
    int seq = atoi((const char *)t + pl);
    bool replay = memmem(p, len, "\"replay\":true", 13) != NULL;
    me->delivered++;
    if (replay) me->replay_items++;
    if (!me->first_recv_us) me->first_recv_us = now_mono;
    me->last_recv_us = now_mono;
    if (seq < seq_lo || seq >= seq_hi || !c->bits) {
        me->foreign++;
        return;
    }
    uint64_t bit = 1ull << (seq & 63);
    if (c->bits[seq >> 6] & bit) {
        me->dup++;
        return;
    }
    c->bits[seq >> 6] |= bit;
    if (!matches(c->g, seq)) me->unmatched++; /* delivered but not subscribed to */
    me->uniq++;
    c->got++;
    if (opt.scenario == S_FLASH && !replay && seq < FL_MAX) flash_got(seq, len, now_mono);
    if (measure_latency && !replay) {
        int64_t lat = now_real - ms * 1000;
        me->lat[h_bucket(lat)]++;
        me->lat_n++;
        if (lat > me->lat_max_us) me->lat_max_us = lat;
    }
    /* In a storm, tickerd and the Node peer are done at their replay
     * marker; nchan has none, so it is done with its last missed item. */
    if (c->got >= c->expected && (!storm_mode || opt.target == T_NCHAN)) client_done(c, now_mono);
}

static void on_message(client_t *c, const unsigned char *p, size_t len, int64_t now_real,
                       int64_t now_mono)
{
    if (opt.target == T_NCHAN) {
        /* ws+meta.nchan: "id: X\ncontent-type: Y\n\nDATA" */
        const unsigned char *end = memmem(p, len, "\n\n", 2);
        if (len > 4 && !memcmp(p, "id: ", 4)) {
            const unsigned char *nl = memchr(p, '\n', len);
            if (nl) set_lastid(c, (const char *)p + 4, (size_t)(nl - p - 4));
        }
        if (!end) {
            me->foreign++;
            return;
        }
        size_t off = (size_t)(end + 2 - p);
        on_item(c, p + off, len - off, now_real, now_mono);
        return;
    }
    const unsigned char *t = memmem(p, len > 40 ? 40 : len, "\"type\":\"", 8);
    if (!t) {
        me->foreign++;
        return;
    }
    t += 8;
    size_t rest = len - (size_t)(t - p);
    if (rest >= 5 && !memcmp(t, "item\"", 5)) {
        on_item(c, p, len, now_real, now_mono);
    } else if (rest >= 7 && !memcmp(t, "replay\"", 7)) {
        me->markers++;
        mark_ready(c, now_mono);
        /* served: its marker, with every item it missed before it */
        if (storm_mode && c->got >= c->expected) client_done(c, now_mono);
        if (c->stalled && !c->paused && phase != P_DRAIN) {
            /* from here on it never reads: its socket stays out of epoll */
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            c->paused = 1;
            me->st_paused++;
        }
    } else if (rest >= 6 && !memcmp(t, "hello\"", 6)) {
        /* tickerd's hello carries last_id: a resume point for a client
         * that has seen no item yet. */
        const unsigned char *l = memmem(p, len, "\"last_id\":\"", 11);
        if (l && !c->lastid) {
            l += 11;
            const unsigned char *e = memchr(l, '"', len - (size_t)(l - p));
            if (e) set_lastid(c, (const char *)l, (size_t)(e - l));
        }
    }
}

/* Parses every complete frame in buf; returns the bytes consumed, or -1
 * when the connection must close. */
static ssize_t parse_frames(client_t *c, unsigned char *buf, size_t len, int64_t now_real,
                            int64_t now_mono)
{
    size_t pos = 0;
    while (len - pos >= 2) {
        unsigned char *f = buf + pos;
        int fin = f[0] & 0x80, op = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (len - pos < 4) break;
            plen = ((uint64_t)f[2] << 8) | f[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - pos < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | f[2 + i];
            hl = 10;
        }
        size_t mk = (f[1] & 0x80) ? 4 : 0;
        if (plen > (1u << 24)) return -1;
        if (len - pos < hl + mk + plen) break;
        unsigned char *pl = f + hl + mk;
        if (mk)
            for (uint64_t i = 0; i < plen; i++)
                pl[i] ^= f[hl + (i & 3)];
        pos += hl + mk + plen;
        if (op == 0x8) {
            int code = plen >= 2 ? (pl[0] << 8) | pl[1] : 1005;
            if (code == 1013)
                (*(c->stalled ? &me->st_1013 : &me->close_1013))++;
            else {
                (*(c->stalled ? &me->st_other : &me->close_other))++;
                me->close_other_code = code;
            }
            send_frame(c, 0x8, pl, plen >= 2 ? 2 : 0);
            return -1;
        } else if (op == 0x9) {
            send_frame(c, 0xA, pl, plen);
        } else if (op == 0xA) {
        } else if (op == 0x1 || op == 0x2 || op == 0x0) {
            if (op != 0 && fin && !c->fraglen) {
                on_message(c, pl, plen, now_real, now_mono);
            } else {
                unsigned char *g = realloc(c->frag, c->fraglen + plen);
                if (!g) return -1;
                c->frag = g;
                memcpy(g + c->fraglen, pl, plen);
                c->fraglen += (uint32_t)plen;
                if (fin) {
                    on_message(c, c->frag, c->fraglen, now_real, now_mono);
                    free(c->frag);
                    c->frag = NULL;
                    c->fraglen = 0;
                }
            }
        }
    }
    return (ssize_t)pos;
}

static unsigned char scratch[1 << 20];

static void on_readable(client_t *c)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        size_t have = c->rlen;
        if (have) memcpy(scratch, c->rbuf, have);
        ssize_t r = read(c->fd, scratch + have, sizeof scratch - have);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            bool before_ready = !c->ready;
            if (before_ready)
                me->err_handshake++;
            else if (c->stalled)
                (*(r == 0 ? &me->st_eof : &me->st_reset))++;
            else
                (*(r == 0 ? &me->eof : &me->reset))++; /* no close frame: FIN or RST */
            kill_client(c, before_ready);
            return;
        }
        if (r < 0) return;
        if (c->stalled) me->st_bytes += r;
        int64_t now_real = real_us(), now_mono = mono_us();
        size_t len = have + (size_t)r;
        size_t off = 0;
        if (c->state == C_HANDSHAKE) {
            unsigned char *e = memmem(scratch, len, "\r\n\r\n", 4);
            if (!e) {
                if (len > 8192) {
                    kill_client(c, false);
                    return;
                }
                goto keep;
            }
            if (len < 12 || memcmp(scratch + 9, "101", 3) != 0) {
                me->refused_http++;
                snprintf(me->err, sizeof me->err, "handshake: %.60s", scratch);
                char *nl = strchr(me->err, '\r');
                if (nl) *nl = 0;
                /* 503 or 429: a client would retry */
                kill_client(c, !memcmp(scratch + 9, "503", 3));
                return;
            }
            off = (size_t)(e + 4 - scratch);
            c->state = C_OPEN;
            if (opt.target == T_NCHAN) {
                mark_ready(c, now_mono);
                if (storm_mode && c->got >= c->expected) client_done(c, now_mono);
            }
        }
        {
            ssize_t used = parse_frames(c, scratch + off, len - off, now_real, now_mono);
            if (used < 0) {
                kill_client(c, false);
                return;
            }
            off += (size_t)used;
        }
    keep:
        if (len - off) {
            unsigned char *b = realloc(c->rbuf, len - off);
            if (!b) die("out of memory");
            c->rbuf = b;
            memcpy(b, scratch + off, len - off);
        } else {
            free(c->rbuf);
            c->rbuf = NULL;
        }
        c->rlen = (uint32_t)(len - off);
        if ((size_t)r < sizeof scratch - have) return; /* drained */
    }
}

static void on_event(client_t *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            snprintf(me->err, sizeof me->err, "connect: %s", strerror(err));
            me->err_connect++;
            kill_client(c, true);
            return;
        }
        if (events & EPOLLOUT) send_handshake(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

static int count_pending(void)
{
    int n = 0;
    for (int i = 0; i < ncl; i++)
        if (cl[i].state != C_DEAD && !cl[i].ready) n++;
    return n;
}

static int count_waiting(void)
{
    int n = 0;
    for (int i = 0; i < ncl; i++)
        if (cl[i].state == C_OPEN && !cl[i].done && !cl[i].stalled) n++;
    return n;
}

/* Starts as many connections as the in-flight bound allows. */
static void pump_connects(int limit)
{
    int64_t now = mono_us();
    for (int i = 0; i < ncl && inflight < limit; i++) {
        client_t *c = &cl[i];
        if (c->state == C_IDLE && c->retry_at <= now && !c->ready) start_connect(c);
    }
}

static void set_expect(int lo, int hi)
{
    seq_lo = lo;
    seq_hi = hi;
    nbits_words = (hi + 63) / 64;
    me->delivered = me->uniq = me->dup = me->expected = me->foreign = me->replay_items = 0;
    me->unmatched = 0;
    me->complete = 0;
    me->lat_n = me->lat_max_us = 0;
    me->first_recv_us = me->last_recv_us = 0;
    memset(me->lat, 0, sizeof me->lat);
    for (int i = 0; i < ncl; i++) {
        client_t *c = &cl[i];
        free(c->bits);
        c->bits = calloc((size_t)nbits_words, 8);
        c->got = 0;
        c->done = 0;
        c->expected = 0;
        for (int s = lo; s < hi && !c->stalled; s++)
            if (matches(c->g, s)) c->expected++;
        if (c->state != C_DEAD) me->expected += c->expected;
    }
}

static void child_main(int idx, int cmd_fd, int rep_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    reply_fd = rep_fd;
    me = &slots[idx];
    int per = (opt.n + opt.procs - 1) / opt.procs;
    gbase = idx * per;
    ncl = opt.n - gbase < per ? opt.n - gbase : per;
    if (ncl < 0) ncl = 0;
    cl = calloc((size_t)ncl + 1, sizeof *cl);
    for (int i = 0; i < ncl; i++) {
        cl[i].fd = -1;
        cl[i].g = gbase + i;
        cl[i].stalled = opt.scenario == S_STALLED && cl[i].g < opt.stalled_n;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, cmd_fd, &ev);
    static struct epoll_event evs[1024];
    char cmd[256];
    size_t cmdlen = 0;
    int limit = opt.inflight;
    for (;;) {
        int n = epoll_wait(epfd, evs, 1024, opt.busy_poll ? 0 : 5);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                ssize_t r = read(cmd_fd, cmd + cmdlen, sizeof cmd - 1 - cmdlen);
                if (r <= 0) _exit(0);
                cmdlen += (size_t)r;
                cmd[cmdlen] = 0;
                char *nl;
                while ((nl = strchr(cmd, '\n'))) {
                    *nl = 0;
                    /* commands: CONNECT <limit> <deadline_s>, STORM <t0_us>
                     * <deadline_s>, EXPECT <lo> <hi> <latency>, WAIT
                     * <deadline_s>, DROP, COUNT, QUIT */
                    if (!strncmp(cmd, "CONNECT", 7) || !strncmp(cmd, "STORM", 5)) {
                        double dl;
                        long long a;
                        sscanf(strchr(cmd, ' ') + 1, "%lld %lf", &a, &dl);
                        if (cmd[0] == 'S') {
                            storm_mode = true;
                            storm_t0 = a;
                            limit = 1 << 30;
                            memset(me->done, 0, sizeof me->done);
                            me->done_n = me->done_max_us = 0;
                            me->complete = 0;
                            for (int k = 0; k < ncl; k++)
                                cl[k].done = 0;
                        } else {
                            limit = (int)a;
                        }
                        me->connected = 0;
                        me->open_now = 0;
                        me->ready_first_us = me->ready_last_us = 0;
                        for (int k = 0; k < ncl; k++)
                            if (cl[k].state == C_DEAD || cl[k].state == C_IDLE) {
                                cl[k].state = C_IDLE;
                                cl[k].ready = 0;
                                cl[k].retries = 0;
                                cl[k].retry_at = 0;
                            }
                        phase = P_CONNECT;
                        phase_deadline = mono_us() + (int64_t)(dl * 1e6);
                        pump_connects(limit);
                    } else if (!strncmp(cmd, "EXPECT", 6)) {
                        int lo, hi, lat;
                        sscanf(cmd + 7, "%d %d %d", &lo, &hi, &lat);
                        set_expect(lo, hi);
                        measure_latency = lat;
                        reply("OK\n");
                    } else if (!strncmp(cmd, "WAIT", 4)) {
                        double dl;
                        sscanf(cmd + 5, "%lf", &dl);
                        phase = P_WAIT;
                        phase_deadline = mono_us() + (int64_t)(dl * 1e6);
                    } else if (!strcmp(cmd, "DROP")) {
                        for (int k = 0; k < ncl; k++) {
                            kill_client(&cl[k], false);
                            cl[k].ready = 0;
                            cl[k].state = C_IDLE;
                        }
                        me->open_now = 0;
                        reply("OK\n");
                    } else if (!strcmp(cmd, "COUNT")) {
                        int open = 0;
                        for (int k = 0; k < ncl; k++)
                            if (cl[k].state == C_OPEN && cl[k].ready) open++;
                        me->open_now = open;
                        reply("OK\n");
                    } else if (!strncmp(cmd, "RESUME", 6)) {
                        /* the stalled clients read again, until the server
                         * has closed each or the deadline */
                        double dl;
                        sscanf(cmd + 7, "%lf", &dl);
                        for (int k = 0; k < ncl; k++) {
                            client_t *c = &cl[k];
                            if (!c->paused) continue;
                            c->paused = 0;
                            if (c->state != C_OPEN) continue;
                            struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = c};
                            epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e2);
                        }
                        phase = P_DRAIN;
                        phase_deadline = mono_us() + (int64_t)(dl * 1e6);
                    } else if (!strcmp(cmd, "QUIT")) {
                        _exit(0);
                    }
                    memmove(cmd, nl + 1, strlen(nl + 1) + 1);
                    cmdlen = strlen(cmd);
                }
                continue;
            }
            on_event(evs[i].data.ptr, evs[i].events);
        }
        int64_t now = mono_us();
        static int64_t last_check;
        if (phase != P_NONE && now - last_check < 5000) continue;
        last_check = now;
        if (phase == P_CONNECT) {
            pump_connects(limit);
            int pend = count_pending();
            if (pend == 0 || now > phase_deadline) {
                if (pend) {
                    for (int k = 0; k < ncl; k++)
                        if (cl[k].state != C_DEAD && !cl[k].ready) {
                            kill_client(&cl[k], false);
                            cl[k].state = C_DEAD;
                        }
                }
                me->failed = 0;
                for (int k = 0; k < ncl; k++)
                    if (!cl[k].ready) me->failed++;
                /* in a storm, also wait for every replay */
                phase = storm_mode ? P_WAIT : P_NONE;
                if (!storm_mode) reply("OK\n");
            }
        } else if (phase == P_WAIT) {
            if (count_waiting() == 0 || now > phase_deadline) {
                phase = P_NONE;
                reply("OK\n");
            }
        } else if (phase == P_DRAIN) {
            int open = 0;
            for (int k = 0; k < ncl; k++)
                if (cl[k].stalled && cl[k].state == C_OPEN) open++;
            if (open == 0 || now > phase_deadline) {
                me->st_open = open;
                phase = P_NONE;
                reply("OK\n");
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* the parent: processes, publishing, /proc */

static int cmd_fds[64], rep_fds[64];

static void broadcast(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int i = 0; i < opt.procs; i++)
        if (write(cmd_fds[i], buf, (size_t)n) != n) die("child %d gone", i);
}

/* Waits for one "OK" line from every child. */
static void gather(void)
{
    for (int i = 0; i < opt.procs; i++) {
        char b[8];
        size_t got = 0;
        while (got < 3) {
            ssize_t r = read(rep_fds[i], b + got, 3 - got);
            if (r <= 0) die("child %d died", i);
            got += (size_t)r;
        }
    }
}

static int64_t sum_slots(size_t off)
{
    int64_t s = 0;
    for (int i = 0; i < opt.procs; i++)
        s += *(int64_t *)((char *)&slots[i] + off);
    return s;
}
#define SUM(f) sum_slots(offsetof(slot_t, f))

static int64_t max_slots(size_t off)
{
    int64_t s = 0;
    for (int i = 0; i < opt.procs; i++) {
        int64_t v = *(int64_t *)((char *)&slots[i] + off);
        if (v > s) s = v;
    }
    return s;
}
#define MAX(f) max_slots(offsetof(slot_t, f))

static double pct(size_t hoff, double p)
{
    uint64_t total = 0;
    for (int i = 0; i < opt.procs; i++) {
        uint32_t *h = (uint32_t *)((char *)&slots[i] + hoff);
        for (int b = 0; b < H_N; b++)
            total += h[b];
    }
    if (!total) return -1;
    uint64_t want = (uint64_t)(p * (double)total + 0.999999), acc = 0;
    if (want < 1) want = 1;
    for (int b = 0; b < H_N; b++) {
        for (int i = 0; i < opt.procs; i++)
            acc += ((uint32_t *)((char *)&slots[i] + hoff))[b];
        if (acc >= want) return h_value_ms(b);
    }
    return h_value_ms(H_N - 1);
}

static pid_t kids[64]; /* the client processes */

/* Server processes: the given PIDs and all their descendants. */
typedef struct {
    double cpu_user, cpu_sys, cpu_ns; /* cpu_ns: schedstat, every thread */
    long rss_kb;
    int nproc;
} proc_stat_t;

static int read_stat(pid_t pid, pid_t *ppid, double *ut, double *st, long *rss_pages)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* fields after the comm: 3 state, 4 ppid, ... 14 utime, 15 stime, 24 rss */
    char state;
    int pp;
    unsigned long u, s;
    long rss;
    if (sscanf(p + 2,
               "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%*u %*u %ld",
               &state, &pp, &u, &s, &rss) != 5)
        return -1;
    double hz = (double)sysconf(_SC_CLK_TCK);
    *ppid = pp;
    *ut = (double)u / hz;
    *st = (double)s / hz;
    *rss_pages = rss;
    return 0;
}

static proc_stat_t server_stat(void)
{
    proc_stat_t r = {0};
    if (!opt.npids) return r;
    pid_t set[256];
    int nset = 0;
    for (int i = 0; i < opt.npids; i++)
        set[nset++] = opt.pids[i];
    /* descendants: repeat a /proc scan until nothing is added */
    for (int added = 1; added;) {
        added = 0;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            pid_t pid = atoi(e->d_name), pp;
            double u, s;
            long rss;
            bool known = false;
            for (int i = 0; i < nset; i++)
                known |= set[i] == pid;
            if (known || read_stat(pid, &pp, &u, &s, &rss)) continue;
            for (int i = 0; i < nset && nset < 256; i++)
                if (set[i] == pp) {
                    set[nset++] = pid;
                    added = 1;
                    break;
                }
        }
        if (d) closedir(d);
    }
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    for (int i = 0; i < nset; i++) {
        pid_t pp;
        double u, s;
        long rss;
        if (read_stat(set[i], &pp, &u, &s, &rss)) continue;
        r.cpu_user += u;
        r.cpu_sys += s;
        /* schedstat counts nanoseconds on CPU per thread: finer than ticks */
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", set[i]);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            char sp[96];
            snprintf(sp, sizeof sp, "/proc/%d/task/%.20s/schedstat", set[i], e->d_name);
            FILE *f = fopen(sp, "r");
            unsigned long long ns = 0;
            if (f && fscanf(f, "%llu", &ns) == 1) r.cpu_ns += (double)ns;
            if (f) fclose(f);
        }
        if (d) closedir(d);
        r.rss_kb += rss * page_kb;
        r.nproc++;
    }
    return r;
}

/* CPU seconds of the load generator's own client processes: on a box
 * shared with the server, what the clients cost beside it. */
static double kids_cpu(void)
{
    double sum = 0;
    for (int i = 0; i < opt.procs; i++) {
        pid_t pp;
        double u, st;
        long rss;
        if (read_stat(kids[i], &pp, &u, &st, &rss) == 0) sum += u + st;
    }
    return sum;
}

/* tickerd's /metrics: slow-consumer closes and connections now (summed
 * over transports). Returns -1 when there is no such page (the peers). */
typedef struct {
    int64_t slow, conns, sent;
} server_metrics_t;

static int server_metrics(server_metrics_t *m)
{
    static char buf[1 << 19];
    memset(m, 0, sizeof *m);
    if (opt.target != T_TICKERD) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /metrics HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", opt.host,
                     opt.port);
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
        if (len == sizeof buf - 1) break;
    }
    close(fd);
    buf[len] = 0;
    if (len < 12 || memcmp(buf + 9, "200", 3)) return -1;
    int found = 0;
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (!strncmp(l, "tickerd_slow_consumer_disconnects_total ", 40)) {
            m->slow = strtoll(l + 40, NULL, 10);
            found = 1;
        } else if (!strncmp(l, "tickerd_connections{", 20)) {
            char *sp = strchr(l, ' ');
            if (sp) m->conns += strtoll(sp + 1, NULL, 10);
        } else if (!strncmp(l, "tickerd_messages_sent_total ", 28)) {
            m->sent = strtoll(l + 28, NULL, 10);
        }
    }
    return found ? 0 : -1;
}

/* ---- publishing ---- */

static redisContext *rc;
static int http_fd = -1;
static char pad[] =
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.";

static void pub_open(void)
{
    if (opt.target == T_NCHAN) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.pub_port)};
        inet_pton(AF_INET, opt.host, &a.sin_addr);
        http_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(http_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(http_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(http_fd, (struct sockaddr *)&a, sizeof a))
            die("nchan publisher: %s", strerror(errno));
        return;
    }
    struct timeval tv = {.tv_sec = 5};
    rc = redisConnectWithTimeout(opt.redis_host, opt.redis_port, tv);
    if (!rc || rc->err)
        die("redis %s:%d: %s", opt.redis_host, opt.redis_port, rc ? rc->errstr : "?");
    redisSetTimeout(rc, (struct timeval){.tv_sec = 10});
}

/* An item's text: "bench <tag>#<seq> " and the pad, repeated up to
 * --text-bytes (0: the pad once, about 300 bytes a frame). */
static void item_text(char *out, size_t cap, int seq)
{
    int n = snprintf(out, cap, "bench %s#%d %s", tag, seq, pad);
    size_t want = opt.text_bytes > 0 ? (size_t)opt.text_bytes : 0;
    if (want >= cap) want = cap - 1;
    while ((size_t)n < want) {
        size_t k = sizeof pad - 1;
        if ((size_t)n + 1 + k > want) k = want - (size_t)n - 1;
        out[n++] = ' ';
        memcpy(out + n, pad, k);
        n += (int)k;
        out[n] = 0;
    }
}

static int http_pending;
static char http_in[1 << 16];
static size_t http_inlen;

static void http_queue(int seq)
{
    char body[2048], req[2600], text[1100];
    int64_t ms = real_us() / 1000;
    item_text(text, sizeof text, seq);
    int bl = snprintf(body, sizeof body,
                      "{\"type\":\"item\",\"id\":\"%" PRId64 "-0\",\"ts\":%" PRId64
                      ",\"lang\":\"en\",\"region\":[\"%s\"],\"priority\":\"breaking\","
                      "\"category\":\"politics\",\"text\":\"%s\",\"source\":\"bench\","
                      "\"expires\":%" PRId64 "}",
                      ms, ms, bench_regions[seq % 8], text, ms + 21600000);
    int n = snprintf(req, sizeof req,
                     "POST /pub/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/json\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     bench_regions[seq % 8], opt.host, bl, body);
    if (write(http_fd, req, (size_t)n) != n) die("nchan publish: %s", strerror(errno));
    http_pending++;
}

/* Reads the responses to every queued POST. */
static void http_flush(void)
{
    while (http_pending) {
        http_in[http_inlen] = 0;
        char *e = memmem(http_in, http_inlen, "\r\n\r\n", 4);
        if (e) {
            if (http_inlen < 12 || memcmp(http_in, "HTTP/1.1 20", 11))
                die("nchan publish: %.40s", http_in);
            *e = 0; /* search the headers only */
            char *cl_ = strcasestr(http_in, "content-length:");
            *e = '\r';
            size_t blen = cl_ ? (size_t)atol(cl_ + 15) : 0;
            size_t total = (size_t)(e + 4 - http_in) + blen;
            if (http_inlen >= total) {
                memmove(http_in, http_in + total, http_inlen - total);
                http_inlen -= total;
                http_pending--;
                continue;
            }
        }
        ssize_t r = read(http_fd, http_in + http_inlen, sizeof http_in - 1 - http_inlen);
        if (r <= 0) die("nchan publish: no response (%s)", r < 0 ? strerror(errno) : "closed");
        http_inlen += (size_t)r;
    }
}

static int redis_pending;

static void redis_queue(int seq)
{
    char text[1100];
    item_text(text, sizeof text, seq);
    const char *argv[] = {"XADD",     opt.stream, "*",        "lang",     "en",
                          "priority", "breaking", "category", "politics", "source",
                          "bench",    "text",     text,       "region",   bench_regions[seq % 8]};
    int argc = 15;
    if (opt.scenario == S_FLASH) { /* no region: a global item, every filter matches */
        argv[6] = "flash";
        argc = 13;
    }
    redisAppendCommandArgv(rc, argc, argv, NULL);
    redis_pending++;
}

static void redis_flush(void)
{
    while (redis_pending) {
        redisReply *r;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) die("redis: %s", rc->errstr);
        if (r->type == REDIS_REPLY_ERROR) die("XADD: %s", r->str);
        freeReplyObject(r);
        redis_pending--;
    }
}

static void publish(int seq)
{
    if (opt.target == T_NCHAN)
        http_queue(seq);
    else
        redis_queue(seq);
}

static void flush(void)
{
    if (opt.target == T_NCHAN)
        http_flush();
    else
        redis_flush();
}

/* Called after every flush of a burst (the stalled scenario samples the
 * server's RSS there); publishing stops early when it sets pub_stop. */
static void (*pub_hook)(void);
static bool pub_stop;

/* Publishes seqs [lo, hi): paced at rate (items/s), or as fast as a
 * pipeline of 32 allows when rate <= 0. Returns the number published. */
static int publish_range(int lo, int hi, double rate)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int s = lo; s < hi; s++) {
        if (rate > 0) {
            double at = (double)(s - lo) / rate;
            struct timespec t = t0;
            t.tv_sec += (time_t)at;
            t.tv_nsec += (long)((at - (double)(time_t)at) * 1e9);
            if (t.tv_nsec >= 1000000000) {
                t.tv_sec++;
                t.tv_nsec -= 1000000000;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
            publish(s);
            flush();
        } else {
            publish(s);
            if ((s - lo) % 32 == 31) {
                flush();
                if (pub_hook) pub_hook();
                if (pub_stop) {
                    hi = s + 1;
                    break;
                }
            }
        }
    }
    flush();
    return hi - lo;
}

/* ---- output ---- */

static FILE *jf;
static int jfirst = 1;
static void jnum(const char *k, double v)
{
    fprintf(jf, "%s\n  \"%s\": %.6g", jfirst ? "" : ",", k, v);
    jfirst = 0;
}
static void jstr(const char *k, const char *v)
{
    fprintf(jf, "%s\n  \"%s\": \"%s\"", jfirst ? "" : ",", k, v);
    jfirst = 0;
}

static const char *tname[] = {"tickerd", "node", "nchan"};
static const char *sname[] = {"idle", "steady", "burst", "storm", "stalled", "flash"};

static void connect_all(void)
{
    broadcast("CONNECT %d %.1f\n", opt.inflight, opt.connect_timeout);
    gather();
}

static void common_out(void)
{
    jstr("target", tname[opt.target]);
    jstr("label", opt.label);
    jstr("scenario", sname[opt.scenario]);
    jnum("clients", opt.n);
    jnum("procs", opt.procs);
    jnum("connect_retries", (double)SUM(retries));
    jnum("http_refused", (double)SUM(refused_http));
    jnum("connect_errors", (double)SUM(err_connect));
    jnum("handshake_errors", (double)SUM(err_handshake));
    char err[256] = "";
    for (int i = 0; i < opt.procs; i++)
        if (slots[i].err[0]) {
            for (size_t k = 0, j = 0; slots[i].err[k] && j < sizeof err - 1; k++)
                if (slots[i].err[k] != '"' && slots[i].err[k] != '\\' &&
                    (unsigned char)slots[i].err[k] >= 32)
                    err[j++] = slots[i].err[k], err[j] = 0;
            break;
        }
    jstr("last_error", err);
}

static void delivery_out(void)
{
    jnum("delivered", (double)SUM(delivered));
    jnum("unique", (double)SUM(uniq));
    jnum("expected", (double)SUM(expected));
    jnum("duplicates", (double)SUM(dup));
    jnum("unexpected", (double)SUM(foreign));
    jnum("unmatched", (double)SUM(unmatched));
    {
        int64_t lost = SUM(expected) - (SUM(uniq) - SUM(unmatched));
        jnum("lost", (double)(lost > 0 ? lost : 0));
    }
    jnum("clients_complete", (double)SUM(complete));
    jnum("closed_1013", (double)SUM(close_1013));
    /* every other way a client lost its connection after its marker */
    jnum("closed_other", (double)SUM(close_other));
    jnum("closed_other_code", (double)MAX(close_other_code));
    jnum("dropped_eof", (double)SUM(eof));
    jnum("dropped_reset", (double)SUM(reset));
    jnum("disconnects_other", (double)(SUM(close_other) + SUM(eof) + SUM(reset)));
    jnum("lat_p50_ms", pct(offsetof(slot_t, lat), 0.50));
    jnum("lat_p99_ms", pct(offsetof(slot_t, lat), 0.99));
    jnum("lat_max_ms", (double)MAX(lat_max_us) / 1000.0);
    jnum("lat_samples", (double)SUM(lat_n));
}

/* ---- the stalled scenario ----
 *
 * stalled_n clients (all subscribed to everything, SO_RCVBUF --rcvbuf set
 * before connect) read their hello and replay marker and then never read
 * again; --readers more clients read everything. A burst of --items items of
 * --text-bytes is published; the server's RSS (process tree) and, for
 * tickerd, /metrics (slow-consumer closes, connections) are sampled every
 * 200 ms through the burst, --hold s after it (the peak) and until the
 * server has closed every stalled client or --observe s after the burst.
 * Then the stalled clients read again for up to --drain s, and each one's
 * end is classified: close frame 1013, another close code, FIN or RST
 * without a close frame, or still open. */
#define ST_MAX 1024
static struct {
    double t, cpu_s;
    long rss_kb;
    int64_t slow, conns;
} st_series[ST_MAX];
static int st_n;
static int64_t st_t0, st_last_sample, st_last_slow;
static long st_peak_rss, st_last_rss;
static double st_peak_t, st_first_close_t = -1, st_last_close_t = -1;
static server_metrics_t st_m0;
static bool st_have_metrics, st_rss_limit_hit;

static void st_sample_now(bool force)
{
    int64_t now = mono_us();
    if (!force && now - st_last_sample < 200000) return;
    st_last_sample = now;
    proc_stat_t ps = server_stat();
    server_metrics_t m;
    bool hm = st_have_metrics && server_metrics(&m) == 0;
    double t = (double)(now - st_t0) / 1e6;
    st_last_rss = ps.rss_kb;
    if (ps.rss_kb > st_peak_rss) {
        st_peak_rss = ps.rss_kb;
        st_peak_t = t;
    }
    int64_t slow = hm ? m.slow - st_m0.slow : -1;
    if (hm && slow > st_last_slow) {
        if (st_first_close_t < 0) st_first_close_t = t;
        st_last_close_t = t;
        st_last_slow = slow;
    }
    if (st_n < ST_MAX) {
        st_series[st_n].t = t;
        st_series[st_n].cpu_s = ps.cpu_ns / 1e9;
        st_series[st_n].rss_kb = ps.rss_kb;
        st_series[st_n].slow = slow;
        st_series[st_n].conns = hm ? m.conns : -1;
        st_n++;
    }
    if (opt.rss_limit_mb > 0 && ps.rss_kb > (long)opt.rss_limit_mb * 1024) {
        st_rss_limit_hit = true;
        pub_stop = true; /* a peer that copies per client: stop the burst */
    }
}

static void st_sample(void)
{
    st_sample_now(false);
}

static void run_stalled(void)
{
    sleep(1);
    proc_stat_t s0 = server_stat();
    st_have_metrics = server_metrics(&st_m0) == 0;
    int64_t tc = mono_us();
    connect_all();
    double conn_s = (double)(mono_us() - tc) / 1e6;
    broadcast("EXPECT 0 %d 1\n", opt.items);
    gather();
    sleep(1);
    proc_stat_t s1 = server_stat();
    int64_t paused = SUM(st_paused);
    st_t0 = mono_us();
    st_sample_now(true);
    pub_hook = st_sample;
    int m = publish_range(0, opt.items, 0);
    pub_hook = NULL;
    int64_t t_pub = mono_us();
    while (!st_rss_limit_hit && mono_us() < t_pub + (int64_t)(opt.hold * 1e6)) {
        st_sample();
        usleep(20000);
    }
    st_sample_now(true);
    long rss_hold = st_last_rss;
    int64_t slow_hold = st_have_metrics ? st_last_slow : -1;
    proc_stat_t s2 = server_stat();
    int i_hold = st_n;
    /* until the server has closed every stalled client, or the deadline */
    while (mono_us() < t_pub + (int64_t)(opt.observe * 1e6) &&
           !(st_have_metrics && st_last_slow >= paused)) {
        st_sample();
        usleep(20000);
    }
    st_sample_now(true);
    proc_stat_t s3 = server_stat();
    double observed = (double)(mono_us() - t_pub) / 1e6;
    /* server CPU while they stall, and from the last sample before the
     * first close after the hold to the end of the observation */
    double cpu_before_close = s3.cpu_ns / 1e9;
    int64_t closes_after_hold = st_have_metrics ? st_last_slow - slow_hold : 0;
    for (int i = i_hold; closes_after_hold > 0 && i < st_n; i++)
        if (st_series[i].slow > slow_hold) {
            cpu_before_close = i > i_hold ? st_series[i - 1].cpu_s : s2.cpu_ns / 1e9;
            break;
        }
    broadcast("RESUME %.1f\n", opt.drain_timeout);
    gather();
    broadcast("COUNT\n");
    gather();
    st_sample_now(true);
    long rss_end = st_last_rss;

    common_out();
    jnum("stalled_clients", opt.stalled_n);
    jnum("readers", opt.readers);
    jnum("connected", (double)SUM(connected));
    jnum("failed", (double)SUM(failed));
    jnum("connect_s", conn_s);
    jnum("stalled_paused", (double)paused);
    jnum("rcvbuf", opt.rcvbuf);
    jnum("items", m);
    jnum("text_bytes", opt.text_bytes);
    jnum("unfiltered", opt.unfiltered);
    jnum("busy_poll", opt.busy_poll);
    jnum("publish_s", (double)(t_pub - st_t0) / 1e6);
    jnum("server_procs", s1.nproc);
    /* series: [s from the burst's first XADD, RSS KiB, slow closes, connections, CPU s] */
    jnum("rss_before_kb", (double)s0.rss_kb);
    jnum("rss_connected_kb", (double)s1.rss_kb);
    jnum("rss_peak_kb", (double)st_peak_rss);
    jnum("rss_peak_t_s", st_peak_t);
    jnum("rss_hold_kb", (double)rss_hold);
    jnum("rss_end_kb", (double)rss_end);
    jnum("rss_limit_hit", st_rss_limit_hit);
    int ntot = opt.n;
    jnum("rss_connect_per_client_kb", ntot ? (double)(s1.rss_kb - s0.rss_kb) / ntot : -1);
    jnum("rss_burst_growth_kb", (double)(st_peak_rss - s1.rss_kb));
    jnum("rss_burst_growth_per_stalled_kb",
         (double)(st_peak_rss - s1.rss_kb) / (opt.stalled_n ? opt.stalled_n : 1));
    jnum("rss_total_growth_kb", (double)(st_peak_rss - s0.rss_kb));
    jnum("rss_total_growth_per_stalled_kb",
         (double)(st_peak_rss - s0.rss_kb) / (opt.stalled_n ? opt.stalled_n : 1));
    jnum("hold_s", opt.hold);
    jnum("observed_s", observed);
    /* the server's count of slow-consumer closes (tickerd's /metrics) */
    jnum("slow_closes", st_have_metrics ? (double)st_last_slow : -1);
    jnum("slow_closes_at_hold", (double)slow_hold);
    jnum("close_first_s", st_first_close_t); /* from the burst's first XADD */
    jnum("close_last_s", st_last_close_t);
    /* what the stalled clients found when they read again */
    jnum("stalled_got_1013", (double)SUM(st_1013));
    jnum("stalled_closed_other", (double)SUM(st_other));
    jnum("stalled_dropped_eof", (double)SUM(st_eof));
    jnum("stalled_dropped_reset", (double)SUM(st_reset));
    jnum("stalled_still_open", (double)SUM(st_open));
    jnum("stalled_items_read", (double)SUM(st_items));
    jnum("stalled_bytes_read", (double)SUM(st_bytes));
    jnum("close_other_code", (double)MAX(close_other_code));
    /* the readers */
    delivery_out();
    jnum("cpu_burst_s", (s2.cpu_ns - s1.cpu_ns) / 1e9);
    jnum("cpu_observe_s", (s3.cpu_ns - s2.cpu_ns) / 1e9);
    jnum("cpu_observe_wall_s", observed - opt.hold);
    jnum("cpu_stall_s", cpu_before_close - s2.cpu_ns / 1e9);
    jnum("cpu_close_s", s3.cpu_ns / 1e9 - cpu_before_close);
    jnum("closes_after_hold", (double)closes_after_hold);
    jnum("cpu_per_close_us", closes_after_hold > 0
                                 ? (s3.cpu_ns / 1e9 - cpu_before_close) * 1e6 / closes_after_hold
                                 : -1);
    fprintf(jf, ",\n  \"series\": [");
    for (int i = 0; i < st_n; i++)
        fprintf(jf, "%s[%.2f, %ld, %" PRId64 ", %" PRId64 ", %.4f]", i ? ", " : "", st_series[i].t,
                st_series[i].rss_kb, st_series[i].slow, st_series[i].conns, st_series[i].cpu_s);
    fprintf(jf, "]");
}

/* ---- the idle scenario (and the flash scenario's first half) ----
 * N clients connect and stay; the RSS of the server's processes after the
 * hold minus before, per connection still open. Returns that number. */
static int64_t run_idle(void)
{
    sleep(1);
    proc_stat_t before = server_stat();
    int64_t t0 = mono_us();
    connect_all();
    double conn_s = (double)(mono_us() - t0) / 1e6;
    usleep((useconds_t)(opt.hold * 1e6));
    broadcast("COUNT\n");
    gather();
    proc_stat_t after = server_stat();
    int64_t held = SUM(open_now);
    common_out();
    jnum("connected", (double)SUM(connected));
    jnum("failed", (double)SUM(failed));
    jnum("held", (double)held);
    jnum("connect_s", conn_s);
    jnum("rss_before_kb", (double)before.rss_kb);
    jnum("rss_after_kb", (double)after.rss_kb);
    jnum("server_procs", after.nproc);
    jnum("rss_per_conn_kb", held ? (double)(after.rss_kb - before.rss_kb) / (double)held : -1);
    jnum("hold_s", opt.hold);
    jnum("cpu_user_s", after.cpu_user - before.cpu_user);
    jnum("cpu_sys_s", after.cpu_sys - before.cpu_sys);
    return held;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int64_t fl_sum(int k)
{
    int64_t s = 0;
    for (int i = 0; i < opt.procs; i++)
        s += __atomic_load_n(&slots[i].fl_got[k], __ATOMIC_ACQUIRE);
    return s;
}

/* ---- the flash scenario ----
 * On the idle scenario's held connections: --items global items (every
 * client's filter matches), one at a time, --gap s apart; for each, the time
 * from just before its XADD to the last client's receipt (and the first's).
 * An item not at every client within --flash-wait s counts as incomplete. */
static void run_flash(int64_t held)
{
    int k = opt.items < FL_MAX ? opt.items : FL_MAX;
    double all_s[FL_MAX], first_s[FL_MAX];
    int complete = 0;
    broadcast("EXPECT 0 %d 1\n", k);
    gather();
    usleep(200000);
    proc_stat_t before = server_stat();
    double kc0 = kids_cpu();
    for (int i = 0; i < k; i++) {
        int64_t t0 = mono_us();
        publish(i);
        flush();
        int64_t deadline = t0 + (int64_t)(opt.flash_wait * 1e6);
        while (fl_sum(i) < held && mono_us() < deadline)
            usleep(200);
        complete += fl_sum(i) >= held;
        all_s[i] = (double)(MAX(fl_last_us[i]) - t0) / 1e6;
        int64_t first = 0;
        for (int p = 0; p < opt.procs; p++)
            if (slots[p].fl_first_us[i] && (!first || slots[p].fl_first_us[i] < first))
                first = slots[p].fl_first_us[i];
        first_s[i] = first ? (double)(first - t0) / 1e6 : -1;
        int64_t next = t0 + (int64_t)(opt.gap * 1e6);
        if (i + 1 < k && mono_us() < next) usleep((useconds_t)(next - mono_us()));
    }
    proc_stat_t after = server_stat();
    double kc1 = kids_cpu();
    broadcast("WAIT %.1f\n", 1.0);
    gather();
    jnum("flash_items", k);
    jnum("flash_gap_s", opt.gap);
    jnum("flash_items_complete", complete);
    jnum("flash_frame_bytes", (double)MAX(fl_frame_bytes));
    fprintf(jf, ",\n  \"flash_rounds_s\": [");
    for (int i = 0; i < k; i++)
        fprintf(jf, "%s%.4f", i ? ", " : "", all_s[i]);
    fprintf(jf, "],\n  \"flash_first_s\": [");
    for (int i = 0; i < k; i++)
        fprintf(jf, "%s%.4f", i ? ", " : "", first_s[i]);
    fprintf(jf, "]");
    qsort(all_s, (size_t)k, sizeof *all_s, cmp_double);
    /* flash_all_s, as the floor's figure of the same name: the median */
    jnum("flash_all_s", k % 2 ? all_s[k / 2] : (all_s[k / 2 - 1] + all_s[k / 2]) / 2);
    jnum("flash_max_s", all_s[k - 1]);
    jnum("flash_min_s", all_s[0]);
    delivery_out();
    jnum("flash_cpu_user_s", after.cpu_user - before.cpu_user);
    jnum("flash_cpu_sys_s", after.cpu_sys - before.cpu_sys);
    jnum("flash_cpu_s", (after.cpu_ns - before.cpu_ns) / 1e9);
    jnum("flash_loadgen_cpu_s", kc1 - kc0);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --target tickerd|node|nchan\n"
            "  --scenario idle|steady|burst|storm|stalled|flash\n"
            "  --port P [--host 127.0.0.1] [--pub-port P (nchan)] [--redis HOST:PORT]\n"
            "  [--stream KEY] [-n CLIENTS] [--procs K] [--rate R] [--duration S]\n"
            "  [--items M] [--hold S] [--src 127.X.Y] [--per-src N] [--pid PID]...\n"
            "  [--out FILE] [--label L] [--timeout S] [--connect-timeout S] [--drain S]\n"
            "  [--text-bytes B] [--unfiltered (every client takes every item)] [--busy-poll]\n"
            "  stalled: [--readers R] [--rcvbuf B] [--observe S]\n"
            "  [--rss-limit-mb MB] flash: [--items K (at most 32)] [--gap S] [--flash-wait S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct option lo[] = {{"target", 1, 0, 't'},
                                 {"scenario", 1, 0, 's'},
                                 {"host", 1, 0, 'H'},
                                 {"port", 1, 0, 'p'},
                                 {"pub-port", 1, 0, 'P'},
                                 {"redis", 1, 0, 'r'},
                                 {"stream", 1, 0, 'k'},
                                 {"procs", 1, 0, 'j'},
                                 {"rate", 1, 0, 'R'},
                                 {"duration", 1, 0, 'd'},
                                 {"items", 1, 0, 'm'},
                                 {"hold", 1, 0, 'h'},
                                 {"src", 1, 0, 'S'},
                                 {"per-src", 1, 0, 'A'},
                                 {"pid", 1, 0, 'i'},
                                 {"out", 1, 0, 'o'},
                                 {"label", 1, 0, 'l'},
                                 {"timeout", 1, 0, 'T'},
                                 {"connect-timeout", 1, 0, 'C'},
                                 {"inflight", 1, 0, 'I'},
                                 {"drain", 1, 0, 'D'},
                                 {"readers", 1, 0, 'E'},
                                 {"rcvbuf", 1, 0, 'B'},
                                 {"text-bytes", 1, 0, 'X'},
                                 {"observe", 1, 0, 'O'},
                                 {"rss-limit-mb", 1, 0, 'L'},
                                 {"gap", 1, 0, 'G'},
                                 {"flash-wait", 1, 0, 'W'},
                                 {"unfiltered", 0, 0, 'U'},
                                 {"busy-poll", 0, 0, 'Y'},
                                 {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            opt.target = !strcmp(optarg, "tickerd") ? T_TICKERD
                         : !strcmp(optarg, "node")  ? T_NODE
                         : !strcmp(optarg, "nchan") ? T_NCHAN
                                                    : (usage(), T_TICKERD);
            break;
        case 's':
            opt.scenario = !strcmp(optarg, "idle")      ? S_IDLE
                           : !strcmp(optarg, "steady")  ? S_STEADY
                           : !strcmp(optarg, "burst")   ? S_BURST
                           : !strcmp(optarg, "storm")   ? S_STORM
                           : !strcmp(optarg, "stalled") ? S_STALLED
                           : !strcmp(optarg, "flash")   ? S_FLASH
                                                        : (usage(), S_IDLE);
            break;
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'P':
            opt.pub_port = atoi(optarg);
            break;
        case 'r': {
            char *c = strrchr(optarg, ':');
            if (!c) usage();
            *c = 0;
            opt.redis_host = optarg;
            opt.redis_port = atoi(c + 1);
            break;
        }
        case 'k':
            opt.stream = optarg;
            break;
        case 'n':
            opt.n = atoi(optarg);
            break;
        case 'j':
            opt.procs = atoi(optarg);
            break;
        case 'R':
            opt.rate = atof(optarg);
            break;
        case 'd':
            opt.duration = atof(optarg);
            break;
        case 'm':
            opt.items = atoi(optarg);
            break;
        case 'h':
            opt.hold = atof(optarg);
            break;
        case 'S':
            opt.src = optarg;
            break;
        case 'A':
            opt.per_src = atoi(optarg);
            break;
        case 'i':
            if (opt.npids < 16) opt.pids[opt.npids++] = atoi(optarg);
            break;
        case 'o':
            opt.out = optarg;
            break;
        case 'l':
            opt.label = optarg;
            break;
        case 'T':
            opt.timeout_s = atoi(optarg);
            break;
        case 'C':
            opt.connect_timeout = atof(optarg);
            break;
        case 'I':
            opt.inflight = atoi(optarg);
            break;
        case 'D':
            opt.drain_timeout = atof(optarg);
            break;
        case 'E':
            opt.readers = atoi(optarg);
            break;
        case 'B':
            opt.rcvbuf = atoi(optarg);
            break;
        case 'X':
            opt.text_bytes = atoi(optarg);
            break;
        case 'O':
            opt.observe = atof(optarg);
            break;
        case 'L':
            opt.rss_limit_mb = atoi(optarg);
            break;
        case 'G':
            opt.gap = atof(optarg);
            break;
        case 'W':
            opt.flash_wait = atof(optarg);
            break;
        case 'U':
            opt.unfiltered = 1;
            break;
        case 'Y':
            opt.busy_poll = 1;
            break;
        default:
            usage();
        }
    }
    if (!opt.port || opt.n < (opt.scenario == S_STALLED && opt.readers > 0 ? 0 : 1) ||
        opt.n > 200000 || opt.items < 1 || opt.items > 1000000)
        usage();
    if (!opt.pub_port) opt.pub_port = opt.port;
    if (opt.text_bytes < 0 || opt.text_bytes > 1000 || opt.readers < 0) usage();
    if (opt.scenario == S_STALLED) { /* clients [0, stalled_n) stall, the rest read */
        opt.stalled_n = opt.n;
        opt.n += opt.readers;
    }

    /* file limit: raise the soft limit to the hard one */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    long per_proc_max = (long)rl.rlim_cur - 64;
    if (!opt.procs) opt.procs = (int)((opt.n + 14999) / 15000);
    if ((opt.n + opt.procs - 1) / opt.procs > per_proc_max)
        opt.procs = (int)((opt.n + per_proc_max - 1) / per_proc_max);
    if (opt.procs > 64) die("too many processes");
    if (2 + (opt.n - 1) / opt.per_src > 254) die("not enough source addresses");

    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)opt.timeout_s); /* the whole run is bounded */
    snprintf(tag, sizeof tag, "%06x", (unsigned)(real_us() ^ getpid()) & 0xffffff);

    slots = mmap(NULL, sizeof(slot_t) * (size_t)opt.procs, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) die("mmap");
    memset(slots, 0, sizeof(slot_t) * (size_t)opt.procs);
    for (int i = 0; i < opt.procs; i++) {
        int a[2], b[2];
        if (pipe(a) || pipe(b)) die("pipe");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(a[1]);
            close(b[0]);
            for (int k = 0; k < i; k++) {
                close(cmd_fds[k]);
                close(rep_fds[k]);
            }
            child_main(i, a[0], b[1]);
            _exit(0);
        }
        close(a[0]);
        close(b[1]);
        cmd_fds[i] = a[1];
        rep_fds[i] = b[0];
        kids[i] = pid;
    }
    pub_open();

    /* the JSON is written only when the run is complete */
    char *jbuf = NULL;
    size_t jlen = 0;
    jf = open_memstream(&jbuf, &jlen);
    if (!jf) die("open_memstream");
    fprintf(jf, "{");

    int64_t t_start = mono_us();
    if (opt.scenario == S_IDLE) {
        run_idle();
    } else if (opt.scenario == S_FLASH) {
        run_flash(run_idle());
    } else if (opt.scenario == S_STEADY || opt.scenario == S_BURST) {
        connect_all();
        int m = opt.scenario == S_STEADY ? (int)(opt.rate * opt.duration + 0.5) : opt.items;
        broadcast("EXPECT 0 %d 1\n", m);
        gather();
        usleep(200000);
        server_metrics_t m0, m1;
        bool have_m = server_metrics(&m0) == 0;
        proc_stat_t before = server_stat();
        int64_t t0 = mono_us();
        publish_range(0, m, opt.scenario == S_STEADY ? opt.rate : 0);
        int64_t t_pub = mono_us();
        broadcast("WAIT %.1f\n", opt.drain_timeout);
        gather();
        proc_stat_t after = server_stat();
        have_m = have_m && server_metrics(&m1) == 0;
        double cpu = (after.cpu_ns - before.cpu_ns) / 1e9;
        if (cpu <= 0) cpu = (after.cpu_user - before.cpu_user) + (after.cpu_sys - before.cpu_sys);
        int64_t last = MAX(last_recv_us);
        common_out();
        jnum("connected", (double)SUM(connected));
        jnum("failed", (double)SUM(failed));
        jnum("items", m);
        jnum("rate", opt.scenario == S_STEADY ? opt.rate : 0);
        jnum("publish_s", (double)(t_pub - t0) / 1e6);
        delivery_out();
        /* the server's own count (tickerd's /metrics), beside what the clients saw */
        jnum("slow_closes", have_m ? (double)(m1.slow - m0.slow) : -1);
        double wall = last > t0 ? (double)(last - t0) / 1e6 : 0;
        jnum("wall_s", wall);
        jnum("cpu_user_s", after.cpu_user - before.cpu_user);
        jnum("cpu_sys_s", after.cpu_sys - before.cpu_sys);
        jnum("cpu_s", cpu);
        jnum("deliveries_per_cpu_s", cpu > 0 ? (double)SUM(delivered) / cpu : -1);
        jnum("deliveries_per_wall_s", wall > 0 ? (double)SUM(delivered) / wall : -1);
    } else if (opt.scenario == S_STALLED) {
        run_stalled();
    } else { /* storm */
        connect_all();
        /* warm-up: every client learns an id to resume from */
        broadcast("EXPECT 0 %d 0\n", opt.warmup);
        gather();
        usleep(200000);
        publish_range(0, opt.warmup, 0);
        broadcast("WAIT %.1f\n", opt.drain_timeout);
        gather();
        int64_t warm_missing = SUM(expected) - SUM(uniq);
        int64_t connected = SUM(connected);
        broadcast("DROP\n");
        gather();
        /* what the clients miss while away */
        broadcast("EXPECT %d %d 0\n", opt.warmup, opt.warmup + opt.items);
        gather();
        usleep(300000);
        publish_range(opt.warmup, opt.warmup + opt.items, 0);
        usleep(700000); /* the servers have read the stream */
        /* ... and have seen every client go (50,000 closes take a while) */
        server_metrics_t sm;
        for (int64_t until = mono_us() + 15000000;
             server_metrics(&sm) == 0 && sm.conns > 0 && mono_us() < until;)
            usleep(100000);
        proc_stat_t before = server_stat();
        double kc0 = kids_cpu();
        int64_t t0 = mono_us();
        broadcast("STORM %" PRId64 " %.1f\n", t0, opt.connect_timeout);
        gather();
        proc_stat_t after = server_stat();
        double kc1 = kids_cpu();
        common_out();
        jnum("connected", (double)connected);
        jnum("warmup_missing", (double)warm_missing);
        jnum("reconnected", (double)SUM(connected));
        jnum("failed", (double)SUM(failed));
        jnum("missed_items", opt.items);
        delivery_out();
        jnum("replay_items", (double)SUM(replay_items));
        jnum("clients_served", (double)SUM(done_n));
        jnum("storm_all_s", (double)MAX(done_max_us) / 1e6);
        jnum("storm_p10_s", pct(offsetof(slot_t, done), 0.10) / 1000.0);
        jnum("storm_p25_s", pct(offsetof(slot_t, done), 0.25) / 1000.0);
        jnum("storm_p50_s", pct(offsetof(slot_t, done), 0.50) / 1000.0);
        jnum("storm_p75_s", pct(offsetof(slot_t, done), 0.75) / 1000.0);
        jnum("storm_p90_s", pct(offsetof(slot_t, done), 0.90) / 1000.0);
        jnum("storm_p99_s", pct(offsetof(slot_t, done), 0.99) / 1000.0);
        jnum("cpu_user_s", after.cpu_user - before.cpu_user);
        jnum("cpu_sys_s", after.cpu_sys - before.cpu_sys);
        jnum("cpu_s", (after.cpu_ns - before.cpu_ns) / 1e9);
        jnum("loadgen_cpu_s", kc1 - kc0); /* the clients' own, beside the server's */
    }
    jnum("run_s", (double)(mono_us() - t_start) / 1e6);
    fprintf(jf, "\n}\n");
    fclose(jf);
    FILE *out = opt.out ? fopen(opt.out, "w") : stdout;
    if (!out) die("%s: %s", opt.out, strerror(errno));
    fwrite(jbuf, 1, jlen, out);
    if (out != stdout) fclose(out);
    broadcast("QUIT\n");
    for (int i = 0; i < opt.procs; i++)
        waitpid(kids[i], NULL, 0);
    return 0;
}
