/* test_writer.c - the Redis command connection (writer.c) against a real
 * redis-server of its own on a free loopback port: replies, AUTH and
 * SELECT from the URL, every callback exactly once and never inside
 * tk_writer_command, "redis down" while the address is unknown, a server
 * that never answers (timed out after timeout_s), a restart (reconnects),
 * commands in flight at stop. Every loop ends with uv_loop_close() == 0. */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "tickerd/writer.h"

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A redis-server on port (with a password when pass is set); waits until
 * it answers. */
static pid_t start_redis(int port, const char *pass)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        if (pass)
            execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--requirepass", pass, (char *)NULL);
        else
            execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        redisContext *c = redisConnect("127.0.0.1", port);
        bool ok = c && !c->err;
        redisFree(c);
        if (ok) return pid;
        usleep(10000);
    }
    fail_msg("redis-server on %d did not start", port);
    return -1;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* --- where the writer connects --- */

static tk_redis_addr_t where_addr;
static bool where_known;

static int where(void *ud, tk_redis_addr_t *out)
{
    (void)ud;
    if (!where_known) return -1;
    *out = where_addr;
    return 0;
}

static void point_at(int port)
{
    memset(&where_addr, 0, sizeof where_addr);
    snprintf(where_addr.ip, sizeof where_addr.ip, "127.0.0.1");
    where_addr.port = port;
    where_known = true;
}

/* --- results --- */

typedef struct result {
    int calls;
    int type;
    char str[128];
    long long integer;
    char err[64];
} result_t;

static bool in_command; /* a callback inside tk_writer_command fails the test */

static void on_result(void *ud, const redisReply *r, const char *err)
{
    result_t *res = ud;
    assert_false(in_command);
    res->calls++;
    if (r) {
        res->type = r->type;
        res->integer = r->integer;
        if (r->str) snprintf(res->str, sizeof res->str, "%.*s", (int)r->len, r->str);
    } else {
        assert_non_null(err);
        snprintf(res->err, sizeof res->err, "%s", err);
    }
}

static void command(tk_writer_t *w, result_t *res, int argc, const char **argv)
{
    memset(res, 0, sizeof *res);
    in_command = true;
    assert_int_equal(tk_writer_command(w, argc, argv, NULL, on_result, res), 0);
    in_command = false;
}

/* Runs the loop until res has its callback (bounded: 10 s of loop time). */
static void wait_for(uv_loop_t *loop, result_t *res)
{
    uint64_t end = uv_now(loop) + 10000;
    while (!res->calls && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    assert_int_equal(res->calls, 1);
}

static void pause_over(uv_timer_t *t)
{
    (void)t;
}

/* Sends until a command is answered with a reply (the writer reconnects
 * with backoff meanwhile). */
static void until_reply(uv_loop_t *loop, tk_writer_t *w, result_t *res, int argc, const char **argv)
{
    for (int i = 0; i < 100; i++) {
        command(w, res, argc, argv);
        wait_for(loop, res);
        if (!res->err[0]) return;
        uv_timer_t t;
        uv_timer_init(loop, &t);
        uv_timer_start(&t, pause_over, 100, 0);
        uv_run(loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    fail_msg("no reply: %s", res->err);
}

static void finish(uv_loop_t *loop, tk_writer_t *w)
{
    tk_writer_stop(w);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void set_url(const char *fmt, int port)
{
    char url[128];
    snprintf(url, sizeof url, fmt, port);
    free(cfg->redis_url);
    cfg->redis_url = strdup(url);
}

/* A redis-server of its own, the loop, and the writer's URL and address
 * pointing at it. */
static pid_t start_redis_and_writer(uv_loop_t *loop, int *port)
{
    *port = free_port();
    pid_t redis = start_redis(*port, NULL);
    uv_loop_init(loop);
    point_at(*port);
    set_url("redis://127.0.0.1:%d/0", *port);
    return redis;
}

/* --- the tests --- */

static void test_replies_in_order_each_once(void **state)
{
    (void)state;
    int port;
    uv_loop_t loop;
    pid_t redis = start_redis_and_writer(&loop, &port);
    tk_writer_t *w = tk_writer_start(&loop, cfg, 0, where, NULL);
    assert_non_null(w);
    result_t a, b, c;
    const char *set[] = {"SET", "k", "v"}, *get[] = {"GET", "k"}, *bad[] = {"NOSUCHCOMMAND"};
    command(w, &a, 3, set);
    command(w, &b, 2, get);
    command(w, &c, 1, bad);
    wait_for(&loop, &c);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.str, "OK");
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.type, REDIS_REPLY_STRING);
    assert_string_equal(b.str, "v");
    assert_int_equal(c.type, REDIS_REPLY_ERROR); /* an error reply is a reply */
    assert_true(tk_writer_up(w));
    /* Binary-safe arguments. */
    const char *bin[] = {"SET", "bin", "a\0b"};
    size_t lens[] = {3, 3, 3};
    memset(&a, 0, sizeof a);
    assert_int_equal(tk_writer_command(w, 3, bin, lens, on_result, &a), 0);
    wait_for(&loop, &a);
    const char *strlen_[] = {"STRLEN", "bin"};
    command(w, &b, 2, strlen_);
    wait_for(&loop, &b);
    assert_int_equal(b.integer, 3);
    finish(&loop, w);
    stop_redis(redis);
}

static void test_auth_and_select_from_the_url(void **state)
{
    (void)state;
    int port = free_port();
    pid_t redis = start_redis(port, "s3cret");
    uv_loop_t loop;
    uv_loop_init(&loop);
    point_at(port);
    set_url("redis://:s3cret@127.0.0.1:%d/3", port);
    tk_writer_t *w = tk_writer_start(&loop, cfg, 0, where, NULL);
    result_t a;
    const char *set[] = {"SET", "in3", "yes"};
    command(w, &a, 3, set);
    wait_for(&loop, &a);
    assert_string_equal(a.str, "OK");
    finish(&loop, w);
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(c, "AUTH s3cret");
    freeReplyObject(r);
    r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "GET in3");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "yes");
    freeReplyObject(r);
    redisFree(c);
    stop_redis(redis);
}

static void test_unknown_address_is_redis_down(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    where_known = false;
    set_url("redis://127.0.0.1:%d/0", 1);
    tk_writer_t *w = tk_writer_start(&loop, cfg, 0, where, NULL);
    result_t a;
    const char *ping[] = {"PING"};
    command(w, &a, 1, ping);
    assert_int_equal(a.calls, 0); /* never inside the call */
    wait_for(&loop, &a);
    assert_string_equal(a.err, "redis down");
    assert_false(tk_writer_up(w));
    finish(&loop, w);
}

/* A server that accepts (the kernel's backlog) and never answers. */
static void test_silent_server_times_out(void **state)
{
    (void)state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    uv_loop_t loop;
    uv_loop_init(&loop);
    point_at(ntohs(sa.sin_port));
    set_url("redis://127.0.0.1:%d/0", ntohs(sa.sin_port));
    cfg->redis_timeout_s = 1;
    tk_writer_t *w = tk_writer_start(&loop, cfg, 0, where, NULL);
    result_t a;
    const char *ping[] = {"PING"};
    command(w, &a, 1, ping);
    wait_for(&loop, &a);
    assert_string_equal(a.err, "timed out");
    cfg->redis_timeout_s = 5;
    finish(&loop, w);
    close(fd);
}

static void test_restart_reconnects_and_stop_fails_what_waits(void **state)
{
    (void)state;
    int port;
    uv_loop_t loop;
    pid_t redis = start_redis_and_writer(&loop, &port);
    tk_writer_t *w = tk_writer_start(&loop, cfg, 0, where, NULL);
    result_t a;
    const char *incr[] = {"INCR", "n"};
    until_reply(&loop, w, &a, 2, incr);
    assert_int_equal(a.integer, 1);
    stop_redis(redis);
    command(w, &a, 2, incr);
    wait_for(&loop, &a);
    assert_true(a.err[0]); /* connection lost, or down */
    redis = start_redis(port, NULL);
    until_reply(&loop, w, &a, 2, incr);
    assert_int_equal(a.integer, 1); /* a new server: nothing persisted */
    /* In flight at stop: failed then, once. */
    const char *blpop[] = {"BLPOP", "never", "0"};
    command(w, &a, 3, blpop);
    uv_run(&loop, UV_RUN_NOWAIT);
    tk_writer_stop(w);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.err, "stopping");
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    stop_redis(redis);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies_in_order_each_once),
        cmocka_unit_test(test_auth_and_select_from_the_url),
        cmocka_unit_test(test_unknown_address_is_redis_down),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_restart_reconnects_and_stop_fails_what_waits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
