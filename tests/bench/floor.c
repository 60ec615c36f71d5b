/* floor.c - the bare-send floor of `make bench` (issue 15): what the kernel
 * alone costs to push one small message to each of N loopback sockets.
 *
 * No push server can deliver a message for less CPU than one send(2) of it
 * costs, so this is the limit the other scenarios are compared with. Each
 * sender process accepts its share of N TCP connections on loopback, and a
 * reader process it forks connects them (from source addresses 127.X.Y.2,
 * .3, ... like loadgen) and reads everything on one epoll loop. Then the
 * senders run rounds: one send() of --bytes bytes to each of their sockets,
 * nothing else. Two phases:
 *
 *   paced  --rate rounds a second for --duration seconds (as the steady
 *          scenario publishes items), CPU of the senders per send;
 *   flash  --flash-rounds rounds to every socket at once, --flash-gap s
 *          apart, each timed from its start until the readers have every
 *          byte (the flash scenario's floor); the median and the max.
 *
 * With --filtered a round sends only to the sockets whose client the
 * steady scenario's filters owe that item (filters.h: 3/8 of them, each
 * socket every 50 to 400 ms): the same sends, to the same sockets, as
 * tickerd makes.
 *
 * With --busy-poll the readers never sleep (epoll_wait with no timeout), so
 * the senders pay no wake-ups, as loadgen --busy-poll does for a server.
 *
 * Writes one JSON object (--out). Every phase has a deadline and the whole
 * run an alarm(2): it always ends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "filters.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
#define MAX_PROCS 16
#define PER_SRC 5000
#define MAX_ROUNDS 32

static struct {
    int n, procs, bytes, timeout_s, flash_rounds, busy_poll, filtered;
    double rate, duration, flash_gap;
    const char *src, *out;
} opt = {.n = 10000, .procs = 1, .bytes = 180, .timeout_s = 120, .rate = 20, .duration = 10,
         .flash_rounds = 1, .flash_gap = 1, .src = "127.9.1"};

/* What the readers have received, shared with every process. */
static volatile uint64_t *received;

static void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The reader of one sender's share: connects count sockets to port from
 * source addresses after first, then reads until killed. */
static void reader(int port, int first, int count, int ready_fd)
{
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < count; i++) {
        int g = first + i, fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0) die("socket");
        struct sockaddr_in sa = {.sin_family = AF_INET};
        char ip[32];
        snprintf(ip, sizeof ip, "%s.%d", opt.src, 2 + g / PER_SRC);
        inet_pton(AF_INET, ip, &sa.sin_addr);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
        sa.sin_port = htons(port);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
        fcntl(fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    if (write(ready_fd, "r", 1) != 1) die("write");
    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int k = epoll_wait(ep, evs, 256, opt.busy_poll ? 0 : 1000);
        for (int i = 0; i < k; i++) {
            ssize_t r;
            while ((r = read(evs[i].data.fd, buf, sizeof buf)) > 0)
                __atomic_add_fetch(received, (uint64_t)r, __ATOMIC_RELAXED);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Waits until the readers have want bytes in all, or the deadline. */
static int wait_received(uint64_t want, double deadline)
{
    while (__atomic_load_n(received, __ATOMIC_RELAXED) < want) {
        if (now_s() > deadline) return -1;
        usleep(200);
    }
    return 0;
}

/* Whether socket g is sent round r: always, or with --filtered when the
 * steady scenario's client g is owed item r (filters.h). */
static int owed(int g, int r)
{
    return !opt.filtered || bench_owed(bench_filter_kind(g), g, r);
}

/* The bytes the readers get in round r, over every sender's sockets. */
static uint64_t round_bytes(int r)
{
    uint64_t sends = 0;
    for (int g = 0; g < opt.n; g++)
        sends += (uint64_t)owed(g, r);
    return sends * (uint64_t)opt.bytes;
}

static int send_round(const int *fds, int first, int count, int r, const char *msg)
{
    int sent = 0;
    for (int i = 0; i < count; i++) {
        if (!owed(first + i, r)) continue;
        if (send(fds[i], msg, (size_t)opt.bytes, MSG_NOSIGNAL) != opt.bytes) die("send");
        sent++;
    }
    return sent;
}

typedef struct {
    double cpu_s, sends, flash_s;
} sender_result_t;

/* One sender: its listener, its reader, its share of the sockets; then
 * the paced rounds and the flash round, each started by the parent. */
static void sender(int first, int count, int go_fd, int done_fd, sender_result_t *res)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 65535) < 0)
        die("listen");
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    int ready[2];
    if (pipe(ready) < 0) die("pipe");
    pid_t rd = fork();
    if (rd == 0) reader(ntohs(sa.sin_port), first, count, ready[1]);
    int *fds = calloc((size_t)count, sizeof *fds);
    for (int i = 0; i < count; i++) {
        if ((fds[i] = accept(lfd, NULL, NULL)) < 0) die("accept");
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char c;
    if (read(ready[0], &c, 1) != 1) die("reader");
    char *msg = malloc((size_t)opt.bytes);
    memset(msg, 'x', (size_t)opt.bytes);
    /* paced: the parent says go, every sender runs the same rounds */
    if (write(done_fd, "a", 1) != 1 || read(go_fd, &c, 1) != 1) die("sync");
    int rounds = (int)(opt.rate * opt.duration);
    double t0 = now_s(), c0 = cpu_self_s(), sends = 0;
    for (int r = 0; r < rounds; r++) {
        double at = t0 + r / opt.rate, wait = at - now_s();
        if (wait > 0) usleep((useconds_t)(wait * 1e6));
        sends += send_round(fds, first, count, r, msg);
    }
    res->cpu_s = cpu_self_s() - c0;
    res->sends = sends;
    /* flash: rounds each started by the parent, timed by it until every
     * byte is read; "b" after each but the last, "c" after the last */
    if (write(done_fd, "b", 1) != 1) die("sync");
    for (int r = 0; r < opt.flash_rounds; r++) {
        if (read(go_fd, &c, 1) != 1) die("sync");
        double f0 = now_s();
        send_round(fds, first, count, 0, msg);
        if (now_s() - f0 > res->flash_s) res->flash_s = now_s() - f0;
        if (write(done_fd, r + 1 < opt.flash_rounds ? "b" : "c", 1) != 1) die("sync");
    }
    if (read(go_fd, &c, 1) != 1) die("sync");
    kill(rd, SIGKILL);
    waitpid(rd, NULL, 0);
    exit(0);
}

static void usage(void)
{
    fprintf(stderr, "usage: floor [-n N] [--procs P] [--bytes B] [--rate R] [--duration S]\n"
                    "             [--flash-rounds K] [--flash-gap S] [--busy-poll] [--filtered]\n"
                    "             [--src 127.X.Y] [--timeout S] [--out FILE]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"procs", 1, 0, 'p'}, {"bytes", 1, 0, 'b'}, {"rate", 1, 0, 'r'},  {"duration", 1, 0, 'd'},
        {"src", 1, 0, 's'},   {"out", 1, 0, 'o'},   {"timeout", 1, 0, 't'},
        {"flash-rounds", 1, 0, 'k'}, {"flash-gap", 1, 0, 'g'}, {"busy-poll", 0, 0, 'y'},
        {"filtered", 0, 0, 'f'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        switch (ch) {
        case 'n': opt.n = atoi(optarg); break;
        case 'p': opt.procs = atoi(optarg); break;
        case 'b': opt.bytes = atoi(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 's': opt.src = optarg; break;
        case 'o': opt.out = optarg; break;
        case 't': opt.timeout_s = atoi(optarg); break;
        case 'k': opt.flash_rounds = atoi(optarg); break;
        case 'g': opt.flash_gap = atof(optarg); break;
        case 'y': opt.busy_poll = 1; break;
        case 'f': opt.filtered = 1; break;
        default: usage();
        }
    }
    if (opt.n < 1 || opt.procs < 1 || opt.procs > MAX_PROCS || opt.bytes < 1 || opt.rate <= 0 ||
        opt.duration <= 0 || opt.flash_rounds < 1 || opt.flash_rounds > MAX_ROUNDS ||
        opt.flash_gap < 0 || 2 + (opt.n - 1) / PER_SRC > 254)
        usage();
}

/* Tells every sender to go on, then waits for each to reach the next step. */
static void step(int go[][2], int done[][2], char want)
{
    char c;
    for (int p = 0; p < opt.procs; p++)
        if (write(go[p][1], "g", 1) != 1) die("go");
    for (int p = 0; p < opt.procs; p++)
        if (read(done[p][0], &c, 1) != 1 || c != want) die("sender");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    alarm((unsigned)opt.timeout_s);
    received = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sender_result_t *res = mmap(NULL, sizeof *res * MAX_PROCS, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (received == MAP_FAILED || res == MAP_FAILED) die("mmap");
    int go[MAX_PROCS][2], done[MAX_PROCS][2];
    pid_t pids[MAX_PROCS];
    for (int p = 0, first = 0; p < opt.procs; p++) {
        int count = opt.n / opt.procs + (p < opt.n % opt.procs);
        if (pipe(go[p]) < 0 || pipe(done[p]) < 0) die("pipe");
        if ((pids[p] = fork()) == 0) sender(first, count, go[p][0], done[p][1], &res[p]);
        first += count;
    }
    char c;
    for (int p = 0; p < opt.procs; p++) /* connected */
        if (read(done[p][0], &c, 1) != 1 || c != 'a') die("sender");
    uint64_t base = *received, paced = 0;
    int rounds = (int)(opt.rate * opt.duration);
    for (int r = 0; r < rounds; r++)
        paced += round_bytes(r);
    step(go, done, 'b');
    double deadline = now_s() + opt.timeout_s / 2.0;
    int lost_paced = wait_received(base + paced, deadline);
    double flash_s[MAX_ROUNDS];
    int lost_flash = 0;
    for (int r = 0; r < opt.flash_rounds; r++) {
        base = *received;
        double f0 = now_s();
        step(go, done, r + 1 < opt.flash_rounds ? 'b' : 'c'); /* the round is sent */
        lost_flash |= wait_received(base + round_bytes(0), now_s() + 30);
        flash_s[r] = now_s() - f0;
        if (r + 1 < opt.flash_rounds) usleep((useconds_t)(opt.flash_gap * 1e6));
    }
    for (int p = 0; p < opt.procs; p++) /* the senders exit */
        if (write(go[p][1], "g", 1) != 1) die("go");
    double cpu = 0, sends = 0, flash_send_s = 0;
    for (int p = 0; p < opt.procs; p++) {
        waitpid(pids[p], NULL, 0);
        cpu += res[p].cpu_s;
        sends += res[p].sends;
        if (res[p].flash_s > flash_send_s) flash_send_s = res[p].flash_s;
    }
    FILE *f = opt.out ? fopen(opt.out, "w") : stdout;
    if (!f) die(opt.out);
    fprintf(f, "{\"flash_rounds_s\":[");
    for (int r = 0; r < opt.flash_rounds; r++)
        fprintf(f, "%s%.4f", r ? "," : "", flash_s[r]);
    fprintf(f, "],");
    qsort(flash_s, (size_t)opt.flash_rounds, sizeof *flash_s, cmp_double);
    int k = opt.flash_rounds;
    /* flash_all_s: the median round, as loadgen's flash scenario reports */
    double flash_all_s = k % 2 ? flash_s[k / 2] : (flash_s[k / 2 - 1] + flash_s[k / 2]) / 2;
    fprintf(f,
            "\"target\":\"floor\",\"label\":\"floor\",\"scenario\":\"floor\",\"clients\":%d,"
            "\"procs\":%d,\"busy_poll\":%d,\"filtered\":%d,\"bytes\":%d,\"rate\":%g,"
            "\"duration_s\":%g,\"sends\":%.0f,"
            "\"cpu_s\":%.4f,\"sends_per_cpu_s\":%.0f,\"deliveries_per_cpu_s\":%.0f,"
            "\"paced_complete\":%s,"
            "\"flash_send_s\":%.4f,\"flash_all_s\":%.4f,\"flash_max_s\":%.4f,"
            "\"flash_complete\":%s}\n",
            opt.n, opt.procs, opt.busy_poll, opt.filtered, opt.bytes, opt.rate, opt.duration, sends,
            cpu,
            cpu > 0 ? sends / cpu : 0, cpu > 0 ? sends / cpu : 0, lost_paced ? "false" : "true",
            flash_send_s, flash_all_s, flash_s[k - 1], lost_flash ? "false" : "true");
    if (f != stdout) fclose(f);
    return lost_paced || lost_flash;
}
