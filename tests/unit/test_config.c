/* test_config.c - defaults (SPEC §5), keys, the INI file, cross-key checks,
 * name tables and Redis URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tickerd/config.h"

static char err[512];
static char tmpdir[64];

/* The names of a mask, comma-separated, in table order. */
static const char *names_of(tk_name_kind_t kind, uint64_t mask)
{
    static char buf[1024];
    buf[0] = 0;
    for (int i = 0; i < 64; i++) {
        if (!(mask >> i & 1)) continue;
        assert_non_null(tk_name_of(kind, i));
        if (buf[0]) strcat(buf, ",");
        strcat(buf, tk_name_of(kind, i));
    }
    return buf;
}

static int set(tk_config_t *cfg, const char *section, const char *key, const char *value)
{
    err[0] = 0;
    return tk_config_set(cfg, section, key, value, err, sizeof err);
}

/* Writes a file under the temp dir and returns its path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    strcpy(tmpdir, "/tmp/tickerd-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    static const char *const files[] = {"good.conf",   "unknown.conf", "badvalue.conf",
                                        "syntax.conf", "invalid.conf", "empty.conf"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return 0;
}

/* --- defaults --- */

static void test_defaults(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_non_null(cfg);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg->workers, cpus > 0 ? cpus : 1);
    assert_int_equal(cfg->heartbeat_s, 25);
    assert_string_equal(cfg->static_dir, "clients/web");
    assert_string_equal(cfg->tls_cert, "");
    assert_string_equal(cfg->tls_key, "");
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
    assert_int_equal(cfg->grace_s, 10);
    assert_string_equal(cfg->sentinels, "");
    assert_string_equal(cfg->master_name, "mymaster");
    assert_string_equal(cfg->cluster_nodes, "");
    assert_string_equal(cfg->stream_key, "ticker:breaking");
    assert_int_equal(cfg->history_size, 1000);
    assert_int_equal(cfg->default_ttl_s, 21600);
    assert_int_equal(cfg->max_text_bytes, 1000);
    assert_int_equal(cfg->replay_default, 10);
    assert_int_equal(cfg->replay_max, 200);
    assert_int_equal(cfg->max_connections, 100000);
    assert_int_equal(cfg->max_per_ip, 0);
    assert_int_equal(cfg->max_queue_bytes, 16777216);
    assert_int_equal(cfg->slow_timeout_s, 15);
    assert_int_equal(cfg->max_frame_bytes, 4096);
    assert_int_equal(cfg->max_live_items, 10000);
    assert_int_equal(cfg->redis_timeout_s, 5);
    assert_int_equal(cfg->drain_s, 0);
    assert_string_equal(cfg->trusted_proxies, "");
    assert_int_equal(cfg->log_level, TK_LOG_INFO);
    assert_int_equal(cfg->log_format, TK_LOG_FORMAT_TEXT);
    assert_string_equal(cfg->jwt_secret, "");
    assert_string_equal(cfg->allowed_origins, "");
    assert_string_equal(names_of(TK_NAME_LANG, cfg->langs), "en,ar,es");
    assert_string_equal(names_of(TK_NAME_REGION, cfg->regions),
                        "africa,asia,asia-pacific,europe,latin-america,mena,palestine,us-canada");
    assert_string_equal(
        names_of(TK_NAME_CATEGORY, cfg->categories),
        "politics,economy,sports,arts-culture,health,miscellaneous,technology,environment");
    assert_string_equal(tk_name_of(TK_NAME_LANG, cfg->default_lang), "en");
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    tk_config_free(cfg);
    tk_config_free(NULL);
}

/* --- tk_config_set --- */

static void test_set_int_keys(void **state)
{
    static const struct {
        const char *section, *key;
        size_t off;
        int min, max;
    } keys[] = {
#define K(s, k, f, lo, hi) {s, k, offsetof(tk_config_t, f), lo, hi}
        K("server", "workers", workers, 1, 256),
        K("server", "heartbeat_s", heartbeat_s, 1, 3600),
        K("server", "drain_s", drain_s, 0, 3600),
        K("redis", "grace_s", grace_s, 0, 86400),
        K("redis", "timeout_s", redis_timeout_s, 1, 300),
        K("stream", "history_size", history_size, 1, 1000000),
        K("stream", "default_ttl_s", default_ttl_s, 1, 2592000),
        K("stream", "max_text_bytes", max_text_bytes, 1, 65536),
        K("stream", "max_live_items", max_live_items, 1, 1000000),
        K("replay", "default", replay_default, 0, 100000),
        K("replay", "max", replay_max, 0, 100000),
        K("limits", "max_connections", max_connections, 1, 10000000),
        K("limits", "max_per_ip", max_per_ip, 0, 10000000),
        K("limits", "max_queue_bytes", max_queue_bytes, 1024, 1 << 30),
        K("limits", "slow_timeout_s", slow_timeout_s, 1, 3600),
        K("limits", "max_frame_bytes", max_frame_bytes, 64, 1 << 20),
#undef K
    };
    tk_config_t *cfg = tk_config_create();
    char v[32], want[128];
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int *field = (int *)((char *)cfg + keys[i].off);
        snprintf(v, sizeof v, "%d", keys[i].min);
        assert_int_equal(set(cfg, keys[i].section, keys[i].key, v), 0);
        assert_int_equal(*field, keys[i].min);
        snprintf(v, sizeof v, "%d", keys[i].max);
        assert_int_equal(set(cfg, keys[i].section, keys[i].key, v), 0);
        assert_int_equal(*field, keys[i].max);

        /* Out of range or not a number: refused, value unchanged, and the
         * message says what was wrong. */
        const int below = keys[i].min - 1, above = keys[i].max + 1;
        const char *bad[] = {"",   "abc",  "12x", "1.5", "99999999999999999999",
                             "+1", "0x10", "1e3", "1 2", " ",
                             NULL, NULL};
        char b1[32], b2[32];
        snprintf(b1, sizeof b1, "%d", below);
        snprintf(b2, sizeof b2, "%d", above);
        bad[10] = b1;
        bad[11] = b2;
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
            assert_int_equal(set(cfg, keys[i].section, keys[i].key, bad[k]), -1);
            snprintf(want, sizeof want, "'%s' is not a whole number in %d..%d", bad[k], keys[i].min,
                     keys[i].max);
            assert_string_equal(err, want);
            assert_int_equal(*field, keys[i].max);
        }
        /* The one trimming rule: whitespace around a number is fine. */
        snprintf(v, sizeof v, " %d\t", keys[i].min);
        assert_int_equal(set(cfg, keys[i].section, keys[i].key, v), 0);
        assert_int_equal(*field, keys[i].min);
    }
    tk_config_free(cfg);
}

static void test_set_string_keys(void **state)
{
    static const struct {
        const char *section, *key;
        size_t off;
    } keys[] = {
#define K(s, k, f) {s, k, offsetof(tk_config_t, f)}
        K("server", "static_dir", static_dir),  K("server", "tls_cert", tls_cert),
        K("server", "tls_key", tls_key),        K("redis", "url", redis_url),
        K("redis", "master_name", master_name), /* sentinels: test_set_sentinels */
        K("stream", "key", stream_key),         K("auth", "jwt_secret", jwt_secret),
#undef K
    };
    tk_config_t *cfg = tk_config_create();
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char **field = (char **)((char *)cfg + keys[i].off);
        assert_int_equal(set(cfg, keys[i].section, keys[i].key, "some value"), 0);
        assert_string_equal(*field, "some value");
        assert_int_equal(set(cfg, keys[i].section, keys[i].key, ""), 0);
        assert_string_equal(*field, "");
    }
    tk_config_free(cfg);
}

static void test_set_log(void **state)
{
    tk_config_t *cfg = tk_config_create();
    static const struct {
        const char *v;
        int level;
    } levels[] = {{"error", TK_LOG_ERROR}, {"warn", TK_LOG_WARN},   {"info", TK_LOG_INFO},
                  {"debug", TK_LOG_DEBUG}, {"DEBUG", TK_LOG_DEBUG}, {" Warn ", TK_LOG_WARN}};
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        assert_int_equal(set(cfg, "log", "level", levels[i].v), 0);
        assert_int_equal(cfg->log_level, levels[i].level);
    }
    static const char *const bad_levels[] = {"", "warning", "trace", "3", "info,debug", "err"};
    for (size_t i = 0; i < sizeof bad_levels / sizeof *bad_levels; i++) {
        assert_int_equal(set(cfg, "log", "level", bad_levels[i]), -1);
        char want[128];
        snprintf(want, sizeof want, "'%s' is not one of error, warn, info, debug", bad_levels[i]);
        assert_string_equal(err, want);
        assert_int_equal(cfg->log_level, TK_LOG_WARN);
    }
    assert_int_equal(set(cfg, "log", "format", "json"), 0);
    assert_int_equal(cfg->log_format, TK_LOG_FORMAT_JSON);
    assert_int_equal(set(cfg, "log", "format", "TEXT"), 0);
    assert_int_equal(cfg->log_format, TK_LOG_FORMAT_TEXT);
    assert_int_equal(set(cfg, "log", "format", "JSON"), 0);
    assert_int_equal(set(cfg, "log", "format", "yaml"), -1);
    assert_string_equal(err, "'yaml' is not one of text, json");
    assert_int_equal(set(cfg, "log", "format", ""), -1);
    assert_int_equal(cfg->log_format, TK_LOG_FORMAT_JSON);
    assert_int_equal(set(cfg, "log", "colour", "yes"), -1);
    assert_string_equal(err, "unknown key [log] colour");
    tk_config_free(cfg);
}

static void test_set_trusted_proxies(void **state)
{
    tk_config_t *cfg = tk_config_create();
    static const char *const ok[] = {
        "10.0.0.1",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "::/0",
        "::1/128",
        "192.0.2.7/32",
        " 10.0.0.0/8 , 2001:db8::/32,127.0.0.1 ",
        "",
        "  ",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(set(cfg, "server", "trusted_proxies", ok[i]), 0);
        assert_string_equal(cfg->trusted_proxies, ok[i]); /* kept as given */
    }
    assert_int_equal(set(cfg, "server", "trusted_proxies", "10.0.0.0/8"), 0);
    static const struct {
        const char *v, *err;
    } bad[] = {
        {"10.0.0.0/33", "'10.0.0.0/33' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"::/129", "'::/129' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"10.0.0.1,lb.internal", "'lb.internal' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"10.0.0.1 10.0.0.2",
         "'10.0.0.1 10.0.0.2' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"10.0.0.0/-1", "'10.0.0.0/-1' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"10.0.0.0/", "'10.0.0.0/' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"10.0.0.1,", "the list has an empty element"},
        {",10.0.0.1", "the list has an empty element"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(set(cfg, "server", "trusted_proxies", bad[i].v), -1);
        assert_string_equal(err, bad[i].err);
        assert_string_equal(cfg->trusted_proxies, "10.0.0.0/8");
    }
    tk_config_free(cfg);
}

static void test_set_allowed_origins(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(set(cfg, "auth", "allowed_origins", "https://news.example"), 0);
    assert_string_equal(cfg->allowed_origins, "https://news.example");
    assert_int_equal(set(cfg, "auth", "allowed_origins", " https://a.example , http://b:8080 "), 0);
    assert_string_equal(cfg->allowed_origins, " https://a.example , http://b:8080 ");
    assert_int_equal(set(cfg, "auth", "allowed_origins", ""), 0);
    assert_string_equal(cfg->allowed_origins, "");
    assert_int_equal(set(cfg, "auth", "allowed_origins", "  "), 0);
    static const struct {
        const char *v, *err;
    } bad[] = {
        {"https://a.example https://b.example",
         "'https://a.example https://b.example' is not one origin (the list is comma-separated)"},
        {"https://a.example,", "the list has an empty element"},
        {",https://a.example", "the list has an empty element"},
        {"https://a.example,,https://b.example", "the list has an empty element"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(set(cfg, "auth", "allowed_origins", bad[i].v), -1);
        assert_string_equal(err, bad[i].err);
        assert_string_equal(cfg->allowed_origins, "  ");
    }
    tk_config_free(cfg);
}

/* [redis] sentinels: the parser sentinel.c uses (parse.h), at its edges. */
static void test_set_sentinels(void **state)
{
    tk_config_t *cfg = tk_config_create();
    static const char *const ok[] = {
        "10.0.0.1:26379",
        "localhost:1",
        "localhost:65535",
        "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379",
        " s1.example:26379 , s2.example:00026379 ,[::1]:26379 ",
        "sentinel-a.prod_eu:26379",
        "",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(set(cfg, "redis", "sentinels", ok[i]), 0);
        assert_string_equal(cfg->sentinels, ok[i]); /* kept as given */
    }
    assert_int_equal(set(cfg, "redis", "sentinels", "10.0.0.1:26379"), 0);
    static const struct {
        const char *v, *err;
    } bad[] = {
        {"localhost:0", "'localhost:0': the port is not 1..65535"},
        {"localhost:65536", "'localhost:65536': the port is not 1..65535"},
        {"a:1,b:99999999999999999999", "'b:99999999999999999999': the port is not 1..65535"},
        {"localhost", "'localhost' is not host:port or [IPv6]:port"},
        {"localhost:", "'localhost:' is not host:port or [IPv6]:port"},
        {":26379", "':26379' is not host:port or [IPv6]:port"},
        {"a:1,b", "'b' is not host:port or [IPv6]:port"},
        {"localhost:26379x", "'localhost:26379x' is not host:port or [IPv6]:port"},
        {"localhost:-1", "'localhost:-1' is not host:port or [IPv6]:port"},
        {"localhost: 26379", "'localhost: 26379' is not host:port or [IPv6]:port"},
        {"local host:26379", "'local host:26379' is not host:port or [IPv6]:port"},
        {"a:1 b:2", "'a:1 b:2' is not host:port or [IPv6]:port"},
        {"a:1;b:2", "'a:1;b:2' is not host:port or [IPv6]:port"},
        {"::1:26379", "'::1:26379' is not host:port or [IPv6]:port"},
        {"[::1]", "'[::1]' is not host:port or [IPv6]:port"},
        {"[nope]:26379", "'[nope]:26379' is not host:port or [IPv6]:port"},
        {"a:1,", "the list has an empty element"},
        {",a:1", "the list has an empty element"},
        {"a:1,,b:2", "the list has an empty element"},
        {"a:1, ,b:2", "the list has an empty element"},
        {" ", "the list is blank (leave it empty for no sentinels)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(set(cfg, "redis", "sentinels", bad[i].v), -1);
        assert_string_equal(err, bad[i].err);
        assert_string_equal(cfg->sentinels, "10.0.0.1:26379"); /* unchanged */
    }
    char big[400];
    memset(big, 'h', 256);
    strcpy(big + 256, ":26379");
    assert_int_equal(set(cfg, "redis", "sentinels", big), -1);
    assert_non_null(strstr(err, "': the host is longer than 255 bytes"));
    big[255] = 0;
    strcat(big, ":26379");
    assert_int_equal(set(cfg, "redis", "sentinels", big), 0);
    tk_config_free(cfg);
}

/* [redis] cluster_nodes: the same list parser; what a cluster needs of the
 * other keys (no sentinels, database 0, a hash tag in the stream key). */
static void test_cluster_nodes(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(set(cfg, "redis", "cluster_nodes", "10.0.0.1:7000, redis-a:7001,[::1]:7002"),
                     0);
    assert_string_equal(cfg->cluster_nodes, "10.0.0.1:7000, redis-a:7001,[::1]:7002");
    assert_int_equal(set(cfg, "redis", "cluster_nodes", "a:0"), -1);
    assert_string_equal(err, "'a:0': the port is not 1..65535");
    assert_int_equal(set(cfg, "redis", "cluster_nodes", " "), -1);
    assert_string_equal(err, "the list is blank (leave it empty for no cluster)");
    assert_int_equal(set(cfg, "redis", "cluster_nodes", "a:1,,b:2"), -1);
    assert_string_equal(cfg->cluster_nodes, "10.0.0.1:7000, redis-a:7001,[::1]:7002");

    /* The default key has no hash tag. */
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[stream] key 'ticker:breaking' has no {hash tag}: with "
                             "cluster_nodes set, the key and <key>:epoch must share a slot; "
                             "name it like '{ticker}:breaking'");
    static const char *const untagged[] = {"{}ticker", "ticker{", "}ticker{", "t{}{x}"};
    for (size_t i = 0; i < sizeof untagged / sizeof *untagged; i++) {
        assert_int_equal(set(cfg, "stream", "key", untagged[i]), 0);
        assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
        assert_non_null(strstr(err, "has no {hash tag}"));
    }
    static const char *const tagged[] = {"{ticker}:breaking", "news:{t}", "{t}", "a{{b}c"};
    for (size_t i = 0; i < sizeof tagged / sizeof *tagged; i++) {
        assert_int_equal(set(cfg, "stream", "key", tagged[i]), 0);
        assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    }
    /* Database 0 only: at the edge, one over; a password is fine. */
    assert_int_equal(set(cfg, "redis", "url", "redis://:pw@ignored:1/1"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[redis] url names database 1: a Redis Cluster has only database 0");
    assert_int_equal(set(cfg, "redis", "url", "redis://:pw@ignored:1/0"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    assert_int_equal(set(cfg, "redis", "url", "redis://ignored"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    /* Not with sentinels. */
    assert_int_equal(set(cfg, "redis", "sentinels", "10.0.0.1:26379"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[redis] sentinels and cluster_nodes exclude each other: set one");
    /* Without cluster_nodes none of it applies. */
    assert_int_equal(set(cfg, "redis", "cluster_nodes", ""), 0);
    assert_int_equal(set(cfg, "stream", "key", "ticker:breaking"), 0);
    assert_int_equal(set(cfg, "redis", "url", "redis://localhost/3"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    tk_config_free(cfg);
}

static void test_set_listen(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(set(cfg, "server", "listen", "0.0.0.0:9000"), 0);
    assert_string_equal(cfg->listen, "0.0.0.0:9000");
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9000);
    assert_int_equal(set(cfg, "server", "listen", "localhost:1"), 0);
    assert_string_equal(cfg->listen_host, "localhost");
    assert_int_equal(cfg->listen_port, 1);
    static const char *const bad[] = {"8080",       ":8080",    "host:",    "host:0",
                                      "host:65536", "host:abc", "host:80x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(set(cfg, "server", "listen", bad[i]), -1);
        char want[64];
        snprintf(want, sizeof want, "'%s' is not ADDR:PORT", bad[i]);
        assert_string_equal(err, want);
        assert_string_equal(cfg->listen, "localhost:1");
        assert_int_equal(cfg->listen_port, 1);
    }
    tk_config_free(cfg);
}

static void test_set_lists(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(set(cfg, "lists", "languages", " en , fr "), 0);
    assert_string_equal(names_of(TK_NAME_LANG, cfg->langs), "en,fr");
    assert_int_equal(set(cfg, "lists", "regions", "mena,gulf-states"), 0);
    assert_string_equal(names_of(TK_NAME_REGION, cfg->regions), "mena,gulf-states");
    assert_int_equal(set(cfg, "lists", "categories", "sports,weather,sports"), 0);
    assert_string_equal(names_of(TK_NAME_CATEGORY, cfg->categories), "sports,weather");
    /* Indices are stable: a name keeps its index in every config. */
    int fr = tk_name_lookup(TK_NAME_LANG, "fr", 2);
    assert_true(fr >= 3);
    assert_ptr_equal(tk_name_of(TK_NAME_LANG, fr), tk_name_of(TK_NAME_LANG, fr));
    assert_int_equal(tk_name_intern(TK_NAME_LANG, "fr", 2), fr);
    assert_null(tk_name_of(TK_NAME_LANG, -1));
    assert_null(tk_name_of(TK_NAME_LANG, TK_MAX_LANGS));

    assert_int_equal(set(cfg, "lists", "default_lang", "fr"), 0);
    assert_int_equal(cfg->default_lang, fr);

    static const struct {
        const char *key, *value, *err;
    } bad[] = {
        {"languages", "", "the list is empty"},
        {"languages", " \t ", "the list is empty"},
        {"languages", "en,,ar", "the list has an empty element"},
        {"languages", ",en", "the list has an empty element"},
        {"languages", "en,", "the list has an empty element"},
        {"languages", "en, ,ar", "the list has an empty element"},
        {"languages", "zz,Bad!", "'Bad!' is not a slug ([a-z0-9-], 1..32 characters)"},
        {"languages", "zz,,", "the list has an empty element"},
        {"regions", "us_canada", "'us_canada' is not a slug ([a-z0-9-], 1..32 characters)"},
        {"regions", "middle east", "'middle east' is not a slug ([a-z0-9-], 1..32 characters)"},
        {"categories", "abcdefghijklmnopqrstuvwxyz0123456",
         "'abcdefghijklmnopqrstuvwxyz0123456' is not a slug ([a-z0-9-], 1..32 characters)"},
        {"default_lang", "", "'' is not a language slug"},
        {"default_lang", "Bad!", "'Bad!' is not a language slug"},
        {"default_lang", "en,ar", "'en,ar' is not a language slug"},
        {"default_lang", "abcdefghijklmnopqrstuvwxyz0123456",
         "'abcdefghijklmnopqrstuvwxyz0123456' is not a language slug"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(set(cfg, "lists", bad[i].key, bad[i].value), -1);
        assert_string_equal(err, bad[i].err);
    }
    /* Nothing changed, and a refused name did not enter the tables. */
    assert_string_equal(names_of(TK_NAME_LANG, cfg->langs), "en,fr");
    assert_int_equal(cfg->default_lang, fr);
    assert_int_equal(tk_name_lookup(TK_NAME_LANG, "Bad!", 4), -1);
    assert_int_equal(tk_name_lookup(TK_NAME_LANG, "en,ar", 5), -1);
    /* A refused list adds none of its names, not even the good ones. */
    assert_int_equal(tk_name_lookup(TK_NAME_LANG, "zz", 2), -1);
    /* A 32-character slug is fine. */
    assert_int_equal(set(cfg, "lists", "categories", "abcdefghijklmnopqrstuvwxyz012345"), 0);
    tk_config_free(cfg);
}

/* Names in a config list match whatever their case and are kept in lower
 * case: the same name as the one a stream entry, a query or a token gives. */
static void test_set_lists_case(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(set(cfg, "lists", "languages", "EN, Ar,es"), 0);
    assert_string_equal(names_of(TK_NAME_LANG, cfg->langs), "en,ar,es");
    assert_int_equal(set(cfg, "lists", "regions", "MENA,Palestine,Gulf-States,gulf-states"), 0);
    assert_string_equal(names_of(TK_NAME_REGION, cfg->regions), "mena,palestine,gulf-states");
    assert_int_equal(set(cfg, "lists", "categories", "\tPolitics\r,SPORTS\n"), 0);
    assert_string_equal(names_of(TK_NAME_CATEGORY, cfg->categories), "politics,sports");
    /* A new name in upper case is stored in lower case. */
    assert_int_equal(set(cfg, "lists", "languages", "en,FR-CA"), 0);
    assert_string_equal(names_of(TK_NAME_LANG, cfg->langs), "en,fr-ca");
    assert_int_equal(tk_name_lookup(TK_NAME_LANG, "fr-ca", 5),
                     tk_name_lookup(TK_NAME_LANG, "FR-CA", 5));
    assert_int_equal(set(cfg, "lists", "default_lang", " FR-CA "), 0);
    assert_string_equal(tk_name_of(TK_NAME_LANG, cfg->default_lang), "fr-ca");
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    tk_config_free(cfg);
}

static void test_set_unknown_keys(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(set(cfg, "server", "bogus", "1"), -1);
    assert_string_equal(err, "unknown key [server] bogus");
    assert_int_equal(set(cfg, "lists", "colors", "red"), -1);
    assert_string_equal(err, "unknown key [lists] colors");
    assert_int_equal(set(cfg, "nosuch", "listen", "127.0.0.1:1"), -1);
    assert_string_equal(err, "unknown key [nosuch] listen");
    assert_int_equal(set(cfg, "", "workers", "2"), -1);
    assert_string_equal(err, "unknown key [] workers");
    /* Keys belong to their section. */
    assert_int_equal(set(cfg, "stream", "workers", "2"), -1);
    assert_int_equal(set(cfg, "Server", "workers", "2"), -1);
    tk_config_free(cfg);
}

/* --- tk_config_validate --- */

static void test_validate(void **state)
{
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);

    assert_int_equal(set(cfg, "lists", "default_lang", "de"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[lists] default_lang 'de' is not in languages");
    assert_int_equal(set(cfg, "lists", "languages", "en,de"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    assert_int_equal(set(cfg, "lists", "languages", "ar"), 0);
    assert_int_equal(set(cfg, "lists", "default_lang", "ar"), 0);

    assert_int_equal(set(cfg, "replay", "default", "300"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[replay] default 300 is over max 200");
    assert_int_equal(set(cfg, "replay", "default", "200"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    assert_int_equal(set(cfg, "replay", "max", "0"), 0);
    assert_int_equal(set(cfg, "replay", "default", "0"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);

    assert_int_equal(set(cfg, "stream", "key", ""), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[stream] key is empty");
    assert_int_equal(set(cfg, "stream", "key", "k"), 0);

    assert_int_equal(set(cfg, "redis", "url", "http://localhost"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "[redis] url: 'http://localhost' is not redis://"));
    assert_int_equal(set(cfg, "redis", "url", "unix:///run/redis.sock"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);

    assert_int_equal(set(cfg, "server", "tls_cert", "/etc/cert.pem"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "[server] tls_cert and tls_key go together");
    assert_int_equal(set(cfg, "server", "tls_key", "/etc/key.pem"), 0);
    assert_int_equal(tk_config_validate(cfg, err, sizeof err), 0);
    tk_config_free(cfg);
}

/* --- tk_config_load_file --- */

static void test_load_good_file(void **state)
{
    const char *path = write_file("good.conf", "; tickerd test config\n"
                                               "# another comment\n"
                                               "\n"
                                               "[server]\n"
                                               "listen = 0.0.0.0:8081\n"
                                               "heartbeat_s = 5\n"
                                               "tls_cert =\n"
                                               "drain_s = 3600\n"
                                               "workers = 256\n"
                                               "trusted_proxies = 10.0.0.0/8, ::1\n"
                                               "\n"
                                               "[redis]\n"
                                               "url = redis://:secret@10.0.0.5:6380/3\n"
                                               "grace_s = 0\n"
                                               "timeout_s = 300\n"
                                               "[stream]\n"
                                               "key = news:breaking\n"
                                               "history_size = 50\n"
                                               "max_live_items = 1\n"
                                               "[replay]\n"
                                               "default = 3\n"
                                               "max = 20\n"
                                               "[limits]\n"
                                               "max_per_ip = 8\n"
                                               "slow_timeout_s = 3600\n"
                                               "max_queue_bytes = 1073741824\n"
                                               "[log]\n"
                                               "level = debug\n"
                                               "format = json\n"
                                               "[auth]\n"
                                               "allowed_origins = https://news.example\n"
                                               "[lists]\n"
                                               "languages = en, ar\n"
                                               "regions = mena,europe\n"
                                               "default_lang = ar\n");
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 8081);
    assert_int_equal(cfg->heartbeat_s, 5);
    assert_string_equal(cfg->tls_cert, "");
    assert_string_equal(cfg->redis_url, "redis://:secret@10.0.0.5:6380/3");
    assert_int_equal(cfg->grace_s, 0);
    assert_string_equal(cfg->stream_key, "news:breaking");
    assert_int_equal(cfg->history_size, 50);
    assert_int_equal(cfg->replay_default, 3);
    assert_int_equal(cfg->replay_max, 20);
    assert_int_equal(cfg->max_per_ip, 8);
    assert_int_equal(cfg->slow_timeout_s, 3600);
    assert_int_equal(cfg->max_queue_bytes, 1 << 30);
    assert_int_equal(cfg->log_level, TK_LOG_DEBUG);
    assert_int_equal(cfg->log_format, TK_LOG_FORMAT_JSON);
    assert_int_equal(cfg->redis_timeout_s, 300);
    assert_int_equal(cfg->max_live_items, 1);
    assert_int_equal(cfg->drain_s, 3600);
    assert_int_equal(cfg->workers, 256);
    assert_string_equal(cfg->trusted_proxies, "10.0.0.0/8, ::1");
    assert_string_equal(cfg->allowed_origins, "https://news.example");
    assert_string_equal(names_of(TK_NAME_LANG, cfg->langs), "en,ar");
    assert_string_equal(names_of(TK_NAME_REGION, cfg->regions), "europe,mena");
    assert_string_equal(tk_name_of(TK_NAME_LANG, cfg->default_lang), "ar");
    /* Keys the file does not name keep their defaults. */
    assert_int_equal(cfg->default_ttl_s, 21600);
    assert_string_equal(cfg->master_name, "mymaster");
    tk_config_free(cfg);

    /* An empty file is all defaults. */
    path = write_file("empty.conf", "");
    cfg = tk_config_create();
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg->history_size, 1000);
    tk_config_free(cfg);
}

static void test_load_bad_files(void **state)
{
    char want[512];
    tk_config_t *cfg = tk_config_create();

    const char *path = write_file("unknown.conf", "[server]\n"
                                                  "heartbeat_s = 5\n"
                                                  "\n"
                                                  "hartbeat_s = 6\n"
                                                  "workers = 2\n");
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:4: [server] hartbeat_s: unknown key [server] hartbeat_s", path);
    assert_string_equal(err, want);

    path = write_file("badvalue.conf", "[stream]\n"
                                       "history_size = lots\n");
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:2: [stream] history_size: 'lots' is not a whole number in 1..1000000", path);
    assert_string_equal(err, want);

    /* Each new key, one past its range: the file, line, key and range. */
    static const struct {
        const char *text, *what;
    } over[] = {
        {"[limits]\nslow_timeout_s = 3601\n",
         "[limits] slow_timeout_s: '3601' is not a whole number in 1..3600"},
        {"[limits]\nslow_timeout_s = 0\n",
         "[limits] slow_timeout_s: '0' is not a whole number in 1..3600"},
        {"[limits]\nmax_queue_bytes = 1073741825\n",
         "[limits] max_queue_bytes: '1073741825' is not a whole number in 1024..1073741824"},
        {"[limits]\nmax_queue_bytes = 1023\n",
         "[limits] max_queue_bytes: '1023' is not a whole number in 1024..1073741824"},
        {"[stream]\nmax_live_items = 1000001\n",
         "[stream] max_live_items: '1000001' is not a whole number in 1..1000000"},
        {"[redis]\ntimeout_s = 301\n", "[redis] timeout_s: '301' is not a whole number in 1..300"},
        {"[server]\ndrain_s = 3601\n", "[server] drain_s: '3601' is not a whole number in 0..3600"},
        {"[server]\nworkers = 257\n", "[server] workers: '257' is not a whole number in 1..256"},
        {"[server]\nworkers = 0\n", "[server] workers: '0' is not a whole number in 1..256"},
        {"[log]\nlevel = verbose\n",
         "[log] level: 'verbose' is not one of error, warn, info, debug"},
        {"[log]\nformat = xml\n", "[log] format: 'xml' is not one of text, json"},
        {"[server]\ntrusted_proxies = 10.0.0.0/8, 300.1.1.1\n",
         "[server] trusted_proxies: '300.1.1.1' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)"},
        {"[redis]\nsentinels = 10.0.0.1:26379,10.0.0.2:0\n",
         "[redis] sentinels: '10.0.0.2:0': the port is not 1..65535"},
        {"[redis]\nsentinels = 10.0.0.1:26379,\n",
         "[redis] sentinels: the list has an empty element"},
    };
    for (size_t i = 0; i < sizeof over / sizeof *over; i++) {
        path = write_file("badvalue.conf", over[i].text);
        assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), -1);
        snprintf(want, sizeof want, "%s:2: %s", path, over[i].what);
        assert_string_equal(err, want);
    }

    path = write_file("syntax.conf", "[server]\n"
                                     "heartbeat_s = 5\n"
                                     "this line has no value\n");
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: syntax error", path);
    assert_string_equal(err, want);

    /* Keys fine one by one, wrong together. */
    path = write_file("invalid.conf", "[replay]\n"
                                      "default = 50\n"
                                      "max = 20\n");
    tk_config_t *cfg2 = tk_config_create();
    assert_int_equal(tk_config_load_file(cfg2, path, err, sizeof err), -1);
    assert_string_equal(err, "[replay] default 50 is over max 20");
    tk_config_free(cfg2);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such.conf", tmpdir);
    assert_int_equal(tk_config_load_file(cfg, missing, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", missing);
    assert_string_equal(err, want);
    tk_config_free(cfg);
}

/* The file shipped in config/ loads as it is and holds every default. */
/* libinih cuts lines over 199 bytes: such a line is refused by number, a
 * line of 199 is read whole, and a long list goes on over indented
 * continuation lines or repeated keys. */
static void test_load_long_lists(void **state)
{
    char want[512], line[400], *text = malloc(8192);
    tk_config_t *cfg = tk_config_create();
    for (int len = 198; len <= 200; len++) {
        const char *start = "allowed_origins = https://a.example,https://";
        int pad = len - (int)strlen(start) - (int)strlen(".example");
        snprintf(line, sizeof line, "%s%0*d.example", start, pad, 0);
        assert_int_equal(strlen(line), len);
        snprintf(text, 8192, "[auth]\n%s\n", line);
        const char *path = write_file("long.conf", text);
        int rc = tk_config_load_file(cfg, path, err, sizeof err);
        if (len <= 199) {
            assert_int_equal(rc, 0);
            assert_string_equal(cfg->allowed_origins, line + strlen("allowed_origins = "));
        } else {
            assert_int_equal(rc, -1);
            snprintf(want, sizeof want,
                     "%s:2: line over 199 bytes; go on with a long list on the next lines, "
                     "indented",
                     path);
            assert_string_equal(err, want);
        }
    }
    /* 40 origins over 8 lines: all of them, in order. */
    strcpy(text, "[auth]\nallowed_origins = https://o0.example");
    for (int i = 1; i < 40; i++)
        sprintf(text + strlen(text), "%shttps://o%d.example", i % 5 ? ", " : "\n    ", i);
    strcat(text, "\n[lists]\nregions = mena\nregions = europe, asia-pacific\n");
    const char *path = write_file("cont.conf", text);
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), 0);
    int commas = 0;
    for (const char *p = cfg->allowed_origins; *p; p++)
        commas += *p == ',';
    assert_int_equal(commas, 39);
    assert_non_null(strstr(cfg->allowed_origins, "https://o39.example"));
    assert_int_equal(__builtin_popcountll(cfg->regions), 3);
    /* another key in between ends the list: a later line starts anew */
    path = write_file("restart.conf", "[auth]\nallowed_origins = https://a.example\n"
                                      "jwt_secret = s\nallowed_origins = https://b.example\n");
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg->allowed_origins, "https://b.example");
    free(text);
    tk_config_free(cfg);
}

static void test_load_shipped_file(void **state)
{
    const char *path = "config/tickerd.conf";
    if (access(path, R_OK)) skip(); /* run from the top of the tree */
    tk_config_t *cfg = tk_config_create();
    assert_int_equal(tk_config_load_file(cfg, path, err, sizeof err), 0);
    tk_config_t *def = tk_config_create();
    static const size_t ints[] = {
        offsetof(tk_config_t, heartbeat_s),     offsetof(tk_config_t, drain_s),
        offsetof(tk_config_t, grace_s),         offsetof(tk_config_t, redis_timeout_s),
        offsetof(tk_config_t, history_size),    offsetof(tk_config_t, default_ttl_s),
        offsetof(tk_config_t, max_text_bytes),  offsetof(tk_config_t, max_live_items),
        offsetof(tk_config_t, replay_default),  offsetof(tk_config_t, replay_max),
        offsetof(tk_config_t, max_connections), offsetof(tk_config_t, max_per_ip),
        offsetof(tk_config_t, max_queue_bytes), offsetof(tk_config_t, slow_timeout_s),
        offsetof(tk_config_t, max_frame_bytes), offsetof(tk_config_t, log_level),
        offsetof(tk_config_t, log_format),      offsetof(tk_config_t, workers),
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        assert_int_equal(*(int *)((char *)cfg + ints[i]), *(int *)((char *)def + ints[i]));
    assert_string_equal(cfg->trusted_proxies, def->trusted_proxies);
    assert_string_equal(cfg->allowed_origins, def->allowed_origins);
    assert_true(cfg->langs == def->langs && cfg->regions == def->regions &&
                cfg->categories == def->categories && cfg->default_lang == def->default_lang);
    tk_config_free(def);
    tk_config_free(cfg);
}

/* --- Redis URLs --- */

static void test_redis_url(void **state)
{
    static const struct {
        const char *url;
        const char *host;
        int port;
        const char *path, *user, *password;
        int db;
    } ok[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, NULL, NULL, 0},
        {"redis://redis.internal:6380/2", "redis.internal", 6380, NULL, NULL, NULL, 2},
        {"redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0},
        {"redis://localhost/", "localhost", 6379, NULL, NULL, NULL, 0},
        {"redis://:pass@host", "host", 6379, NULL, NULL, "pass", 0},
        {"redis://:p%40ss%3a@host:7000", "host", 7000, NULL, NULL, "p@ss:", 0},
        {"redis://:p@ss@host", "host", 6379, NULL, NULL, "p@ss", 0},
        {"redis://user:pass@host:1/2", "host", 1, NULL, "user", "pass", 2},
        {"redis://user:@host:65535/15", "host", 65535, NULL, "user", "", 15},
        {"redis://[::1]:6380/1", "::1", 6380, NULL, NULL, NULL, 1},
        {"redis://[::1]", "::1", 6379, NULL, NULL, NULL, 0},
        {"unix:///var/run/redis/redis.sock", NULL, 6379, "/var/run/redis/redis.sock", NULL, NULL,
         0},
        {"unix:///tmp/r.sock?db=3", NULL, 6379, "/tmp/r.sock", NULL, NULL, 3},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        tk_redis_url_t u;
        assert_int_equal(tk_redis_url_parse(ok[i].url, &u, err, sizeof err), 0);
#define STR_EQ(a, b) ((b) ? assert_string_equal(a, b) : assert_null(a))
        STR_EQ(u.host, ok[i].host);
        STR_EQ(u.path, ok[i].path);
        STR_EQ(u.user, ok[i].user);
        STR_EQ(u.password, ok[i].password);
#undef STR_EQ
        assert_int_equal(u.port, ok[i].port);
        assert_int_equal(u.db, ok[i].db);
        tk_redis_url_clear(&u);
        assert_null(u.host);
        assert_null(u.password);
    }

    static const char *const bad[] = {
        "",
        "garbage",
        "http://localhost:6379",
        "redis:/localhost",
        "rediss://localhost",
        "redis://",
        "redis:///0",
        "redis://:6379",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:abc",
        "redis://host:63790000",
        "redis://host/abc",
        "redis://host/1001",
        "redis://host/-1",
        "redis://:pass@",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[]:1",
        "unix://",
        "unix://relative.sock",
        "unix:///tmp/r.sock?db=x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tk_redis_url_t u;
        assert_int_equal(tk_redis_url_parse(bad[i], &u, err, sizeof err), -1);
        char want[256];
        snprintf(want, sizeof want,
                 "'%s' is not redis://[[user]:password@]host[:port][/db] or unix:///path", bad[i]);
        assert_string_equal(err, want);
        assert_null(u.host);
        assert_null(u.path);
        assert_null(u.user);
        assert_null(u.password);
        tk_redis_url_clear(&u);
    }
}

/* Runs last: it fills the category table of this process. */
static void test_name_table_full(void **state)
{
    tk_config_t *cfg = tk_config_create();
    char list[2048] = "", name[24];
    int used = 0;
    while (tk_name_of(TK_NAME_CATEGORY, used))
        used++;
    int room = TK_MAX_CATEGORIES - used;
    assert_true(room > 2);
    /* One more new name than there is room for: refused, and none of them
     * (nor the known one) enters the table. */
    strcat(list, "politics");
    for (int i = 0; i < room + 1; i++) {
        snprintf(name, sizeof name, ",cat-%d", i);
        strcat(list, name);
    }
    assert_int_equal(set(cfg, "lists", "categories", list), -1);
    assert_string_equal(err, "too many distinct names (at most 32)");
    assert_null(tk_name_of(TK_NAME_CATEGORY, used));
    /* A name given twice, in two cases, counts once. */
    list[0] = 0;
    for (int i = 0; i < room; i++) {
        snprintf(name, sizeof name, "%scat-%d", i ? "," : "", i);
        strcat(list, name);
    }
    strcat(list, ",CAT-0,cat-1");
    assert_int_equal(set(cfg, "lists", "categories", list), 0);
    assert_non_null(tk_name_of(TK_NAME_CATEGORY, TK_MAX_CATEGORIES - 1));
    assert_null(tk_name_of(TK_NAME_CATEGORY, TK_MAX_CATEGORIES));
    assert_int_equal(set(cfg, "lists", "categories", "Brand-New"), -1);
    assert_string_equal(err, "too many distinct names (at most 32)");
    /* Known names still resolve. */
    assert_int_equal(set(cfg, "lists", "categories", "politics"), 0);
    assert_int_equal(set(cfg, "lists", "categories", "POLITICS,Cat-3"), 0);
    tk_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_int_keys),
        cmocka_unit_test(test_set_string_keys),
        cmocka_unit_test(test_set_log),
        cmocka_unit_test(test_set_trusted_proxies),
        cmocka_unit_test(test_set_allowed_origins),
        cmocka_unit_test(test_set_sentinels),
        cmocka_unit_test(test_set_listen),
        cmocka_unit_test(test_set_lists),
        cmocka_unit_test(test_set_lists_case),
        cmocka_unit_test(test_set_unknown_keys),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_cluster_nodes),
        cmocka_unit_test(test_load_good_file),
        cmocka_unit_test(test_load_bad_files),
        cmocka_unit_test(test_load_long_lists),
        cmocka_unit_test(test_load_shipped_file),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_name_table_full),
    };
    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
