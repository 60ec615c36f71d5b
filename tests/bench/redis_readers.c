/* redis_readers.c - what Redis costs to wake N blocked XREAD readers (issue
 * 15's sizing model): every tickerd worker of every node is one reader of
 * the stream, so an XADD wakes nodes x workers of them.
 *
 * Starts nothing: it is given a running Redis (--port) and finds its PID
 * with INFO server. N readers, each on its own loopback connection, read as
 * tickerd's src/stream.c does: XREAD COUNT 100 BLOCK 2000 STREAMS key <last
 * id> ($ the first time), re-issued after each reply, a timeout's nil reply
 * included. One publisher XADDs entries of loadgen's shape (seven fields,
 * about 300 bytes of text) with a "seq" field. Three phases:
 *
 *   idle   --idle seconds with no XADD: the readers' BLOCK timeouts alone;
 *   paced  --items XADDs at --rate a second;
 *   burst  --burst XADDs written at once (one pipelined write).
 *
 * For each: Redis's CPU (user+sys of all its threads, /proc schedstat in ns)
 * per XADD and per reply to a reader, less its baseline (its cron: the CPU
 * rate over --base seconds before any reader connects), and the time from writing an XADD to
 * the reply that gives it to the last reader (p50/p99/max over the items).
 * That time includes this process reading N replies on the same cores.
 * Parsing is hiredis's redisReader on plain non-blocking sockets, one epoll
 * loop. Writes one JSON line (--out). Every phase has a deadline and the
 * whole run an alarm(2). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ITEMS 100000

static struct {
    int port, readers, items, burst, timeout_s, redis_pid;
    double rate, idle_s, base_s;
    const char *key, *out;
} opt = {.readers = 500, .items = 200, .burst = 200, .timeout_s = 120, .rate = 20,
         .idle_s = 4.5, .base_s = 2, .key = "bench:redis_readers"};

typedef struct {
    int fd;
    redisReader *rd;
    char last[48]; /* the last entry ID read; "$" before the first */
} reader_t;

static reader_t *readers;
static int pub_fd;
static redisReader *pub_rd;
static int pub_pending; /* XADDs without their reply yet */
static double t_sent[MAX_ITEMS], t_last[MAX_ITEMS];
static int got[MAX_ITEMS];
static long replies, nil_replies, entries_read;

static void die(const char *what)
{
    fprintf(stderr, "redis_readers: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Redis's CPU time so far, all threads, in seconds (schedstat: ns). */
static double redis_cpu_s(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", opt.redis_pid);
    DIR *d = opendir(path);
    if (!d) die("redis /proc");
    double ns = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char sp[96];
        snprintf(sp, sizeof sp, "/proc/%d/task/%.20s/schedstat", opt.redis_pid, e->d_name);
        FILE *f = fopen(sp, "r");
        unsigned long long v = 0;
        if (f && fscanf(f, "%llu", &v) == 1) ns += (double)v;
        if (f) fclose(f);
    }
    closedir(d);
    return ns / 1e9;
}

static int connect_redis(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue; /* loopback: brief */
        if (w <= 0) die("write");
        buf += w;
        len -= (size_t)w;
    }
}

static void send_argv(int fd, int argc, const char **argv)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) die("format");
    send_all(fd, cmd, (size_t)len);
    redisFreeCommand(cmd);
}

static void send_xread(reader_t *r)
{
    const char *argv[] = {"XREAD", "COUNT", "100", "BLOCK", "2000", "STREAMS", opt.key, r->last};
    send_argv(r->fd, 8, argv);
}

/* The value of field "seq" in an entry [id, [f, v, ...]], or -1. */
static int entry_seq(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) return -1;
    const redisReply *kv = e->element[1];
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (!strcmp(kv->element[i]->str, "seq")) return atoi(kv->element[i + 1]->str);
    return -1;
}

/* One XREAD reply: nil (timeout) or [[key, [entry, ...]]]. */
static void on_reply(reader_t *r, redisReply *rep, double t)
{
    replies++;
    if (rep->type == REDIS_REPLY_NIL) {
        nil_replies++;
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        redisReply *es = rep->element[0]->element[1];
        for (size_t i = 0; i < es->elements; i++) {
            int s = entry_seq(es->element[i]);
            entries_read++;
            if (s >= 0 && s < MAX_ITEMS) {
                got[s]++;
                if (t > t_last[s]) t_last[s] = t;
            }
            snprintf(r->last, sizeof r->last, "%s", es->element[i]->element[0]->str);
        }
    } else {
        fprintf(stderr, "redis_readers: XREAD: %s\n", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        exit(1);
    }
    send_xread(r);
}

/* Reads what one socket has and handles every complete reply in it. */
static void on_readable(int fd, redisReader *rd, reader_t *r)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) die("read");
        if (redisReaderFeed(rd, buf, (size_t)n) != REDIS_OK) die("parse");
        if (n < (ssize_t)sizeof buf) break;
    }
    double t = now_s();
    void *rep;
    while (redisReaderGetReply(rd, &rep) == REDIS_OK && rep) {
        if (r) {
            on_reply(r, rep, t);
        } else {
            if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) die("XADD");
            pub_pending--;
        }
        freeReplyObject(rep);
    }
}

static int ep;
static double base_rate; /* Redis's CPU s per s with no reader: its cron */

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int k = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < k; i++) {
        int idx = evs[i].data.u32;
        if (idx == 0)
            on_readable(pub_fd, pub_rd, NULL);
        else
            on_readable(readers[idx - 1].fd, readers[idx - 1].rd, &readers[idx - 1]);
    }
}

static void xadd(int seq)
{
    static const char text[] = "bench sizing Lorem ipsum dolor sit amet, consectetur adipiscing elit, "
                               "sed do eiusmod tempor. Lorem ipsum dolor sit amet, consectetur "
                               "adipiscing elit, sed do eiusmod tempor. Lorem ipsum dolor sit amet, "
                               "consectetur adipiscing elit, sed do eiusmod tempor.";
    char s[16];
    snprintf(s, sizeof s, "%d", seq);
    const char *argv[] = {"XADD",     opt.key,  "*",      "lang",   "en",     "region",
                          "mena",     "priority", "breaking", "category", "politics", "source",
                          "bench",    "seq",    s,        "text",   text};
    t_sent[seq] = now_s();
    send_argv(pub_fd, 17, argv);
    pub_pending++;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const char *name;
    int items;
    double wall_s, cpu_s, net_cpu_s, p50_ms, p99_ms, max_ms;
    long replies, nils, delivered, complete;
} phase_t;

/* Waits until items [lo, hi) have reached every reader, or the deadline. */
static long wait_all(int lo, int hi, double deadline)
{
    for (;;) {
        long complete = 0;
        for (int s = lo; s < hi; s++) complete += got[s] >= opt.readers;
        if ((complete == hi - lo && !pub_pending) || now_s() > deadline) return complete;
        poll_once(10);
    }
}

static void latency(phase_t *p, int lo, int hi)
{
    static double lat[MAX_ITEMS];
    int n = 0;
    for (int s = lo; s < hi; s++)
        if (got[s] >= opt.readers) lat[n++] = (t_last[s] - t_sent[s]) * 1e3;
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    p->p50_ms = n ? lat[(n - 1) / 2] : -1;
    p->p99_ms = n ? lat[(int)((n - 1) * 0.99)] : -1;
    p->max_ms = n ? lat[n - 1] : -1;
}

/* Runs one phase: count XADDs from seq lo, paced at rate (0: one write). */
static phase_t run_phase(const char *name, int lo, int count, double rate, double idle_s)
{
    phase_t p = {.name = name, .items = count};
    long r0 = replies, n0 = nil_replies, e0 = entries_read;
    double c0 = redis_cpu_s(), t0 = now_s();
    if (count == 0) {
        while (now_s() < t0 + idle_s) poll_once(50);
    } else if (rate > 0) {
        for (int i = 0; i < count; i++) {
            double at = t0 + i / rate;
            while (now_s() < at) poll_once((int)((at - now_s()) * 1e3) + 1);
            xadd(lo + i);
        }
    } else {
        for (int i = 0; i < count; i++) xadd(lo + i);
    }
    p.complete = wait_all(lo, lo + count, now_s() + 30);
    p.wall_s = now_s() - t0;
    p.cpu_s = redis_cpu_s() - c0;
    p.net_cpu_s = p.cpu_s - base_rate * p.wall_s;
    p.replies = replies - r0;
    p.nils = nil_replies - n0;
    p.delivered = entries_read - e0;
    latency(&p, lo, lo + count);
    return p;
}

static void phase_json(FILE *f, const phase_t *p)
{
    double per_x = p->items ? p->net_cpu_s * 1e6 / p->items : -1;
    double per_r = p->replies ? p->net_cpu_s * 1e6 / (double)p->replies : -1;
    fprintf(f, ",\"%s_net_redis_cpu_s\":%.5f", p->name, p->net_cpu_s);
    fprintf(f,
            ",\"%s_items\":%d,\"%s_complete\":%ld,\"%s_wall_s\":%.4f,\"%s_redis_cpu_s\":%.5f,"
            "\"%s_replies\":%ld,\"%s_nil_replies\":%ld,\"%s_entries_delivered\":%ld,"
            "\"%s_cpu_per_xadd_us\":%.2f,\"%s_cpu_per_reply_us\":%.3f,"
            "\"%s_lat_p50_ms\":%.3f,\"%s_lat_p99_ms\":%.3f,\"%s_lat_max_ms\":%.3f",
            p->name, p->items, p->name, p->complete, p->name, p->wall_s, p->name, p->cpu_s,
            p->name, p->replies, p->name, p->nils, p->name, p->delivered, p->name, per_x,
            p->name, per_r, p->name, p->p50_ms, p->name, p->p99_ms, p->name, p->max_ms);
}

static void usage(void)
{
    fprintf(stderr, "usage: redis_readers --port P [--readers N] [--items M] [--rate R]\n"
                    "  [--burst B] [--idle S] [--base S] [--key KEY] [--redis-pid PID] [--out FILE]\n"
                    "  [--timeout S]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static struct option lo[] = {{"port", 1, 0, 'p'},  {"readers", 1, 0, 'n'},
                                 {"items", 1, 0, 'm'}, {"rate", 1, 0, 'r'},
                                 {"burst", 1, 0, 'b'}, {"idle", 1, 0, 'i'}, {"base", 1, 0, 'B'},
                                 {"key", 1, 0, 'k'},   {"redis-pid", 1, 0, 'P'},
                                 {"out", 1, 0, 'o'},   {"timeout", 1, 0, 'T'},
                                 {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': opt.port = atoi(optarg); break;
        case 'n': opt.readers = atoi(optarg); break;
        case 'm': opt.items = atoi(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'b': opt.burst = atoi(optarg); break;
        case 'i': opt.idle_s = atof(optarg); break;
        case 'B': opt.base_s = atof(optarg); break;
        case 'k': opt.key = optarg; break;
        case 'P': opt.redis_pid = atoi(optarg); break;
        case 'o': opt.out = optarg; break;
        case 'T': opt.timeout_s = atoi(optarg); break;
        default: usage();
        }
    }
    if (opt.port < 1 || opt.readers < 1 || opt.readers > 15000 || opt.items < 0 ||
        opt.burst < 0 || opt.items + opt.burst > MAX_ITEMS || opt.rate <= 0 || opt.idle_s < 0 ||
        opt.base_s <= 0)
        usage();
}

/* The PID of the Redis at opt.port (INFO server), unless given. */
static void find_redis_pid(void)
{
    if (opt.redis_pid) return;
    redisContext *c = redisConnect("127.0.0.1", opt.port);
    if (!c || c->err) die("redis");
    redisReply *r = redisCommand(c, "INFO server");
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "process_id:") : NULL;
    if (!p) die("INFO server");
    opt.redis_pid = atoi(p + 11);
    freeReplyObject(r);
    redisFree(c);
}

/* Blocked clients now (INFO clients), on a connection of its own. */
static long blocked_clients(void)
{
    redisContext *c = redisConnect("127.0.0.1", opt.port);
    if (!c || c->err) die("redis");
    redisReply *r = redisCommand(c, "INFO clients");
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "blocked_clients:") : NULL;
    long n = p ? atol(p + 16) : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void add_fd(int fd, uint32_t idx)
{
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    alarm((unsigned)opt.timeout_s);
    find_redis_pid();
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    double b0 = redis_cpu_s(), bt = now_s(); /* the baseline, before any reader */
    usleep((useconds_t)(opt.base_s * 1e6));
    base_rate = (redis_cpu_s() - b0) / (now_s() - bt);
    pub_fd = connect_redis();
    pub_rd = redisReaderCreate();
    add_fd(pub_fd, 0);
    readers = calloc((size_t)opt.readers, sizeof *readers);
    if (!readers) die("calloc");
    for (int i = 0; i < opt.readers; i++) {
        readers[i].fd = connect_redis();
        readers[i].rd = redisReaderCreate();
        strcpy(readers[i].last, "$");
        add_fd(readers[i].fd, (uint32_t)i + 1);
        send_xread(&readers[i]);
    }
    long blocked = -1;
    for (double until = now_s() + 10; now_s() < until;) { /* every reader is blocked */
        poll_once(20);
        if ((blocked = blocked_clients()) >= opt.readers) break;
    }
    if (blocked < opt.readers) die("readers not blocked");
    phase_t idle = run_phase("idle", 0, 0, 1, opt.idle_s);
    phase_t paced = run_phase("paced", 0, opt.items, opt.rate, 0);
    phase_t burst = run_phase("burst", opt.items, opt.burst, 0, 0);
    FILE *f = opt.out ? fopen(opt.out, "w") : stdout;
    if (!f) die(opt.out);
    fprintf(f,
            "{\"target\":\"redis\",\"label\":\"redis\",\"scenario\":\"redis_readers\","
            "\"readers\":%d,\"rate\":%g,\"xread\":\"XREAD COUNT 100 BLOCK 2000 STREAMS key <last id>\"",
            opt.readers, opt.rate);
    fprintf(f, ",\"base_s\":%.3f,\"base_redis_cpu_per_s\":%.6f", opt.base_s, base_rate);
    fprintf(f, ",\"idle_s\":%.3f,\"idle_redis_cpu_s\":%.5f,\"idle_net_redis_cpu_s\":%.5f,"
               "\"idle_replies\":%ld", idle.wall_s, idle.cpu_s, idle.net_cpu_s, idle.replies);
    phase_json(f, &paced);
    phase_json(f, &burst);
    fprintf(f, "}\n");
    if (f != stdout) fclose(f);
    for (int i = 0; i < opt.readers; i++) {
        close(readers[i].fd);
        redisReaderFree(readers[i].rd);
    }
    free(readers);
    redisReaderFree(pub_rd);
    close(pub_fd);
    return paced.complete < paced.items || burst.complete < burst.items;
}
