/* config.c - defaults, the INI file (libinih), key validation, the
 * process-wide name tables and Redis URL parsing. */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tickerd/config.h"

static const int name_max[TK_NAME_KINDS] = {TK_MAX_LANGS, TK_MAX_REGIONS, TK_MAX_CATEGORIES};
static char *names[TK_NAME_KINDS][TK_MAX_REGIONS];
static int name_count[TK_NAME_KINDS];

int tk_name_lookup(tk_name_kind_t kind, const char *name, size_t len)
{
    for (int i = 0; i < name_count[kind]; i++)
        if (strlen(names[kind][i]) == len && strncasecmp(names[kind][i], name, len) == 0) return i;
    return -1;
}

int tk_name_intern(tk_name_kind_t kind, const char *name, size_t len)
{
    int i = tk_name_lookup(kind, name, len);
    if (i >= 0) return i;
    if (name_count[kind] == name_max[kind]) return -1;
    char *copy = strndup(name, len);
    if (!copy) return -1;
    for (char *c = copy; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + ('a' - 'A'));
    names[kind][name_count[kind]] = copy;
    return name_count[kind]++;
}

const char *tk_name_of(tk_name_kind_t kind, int idx)
{
    return idx >= 0 && idx < name_count[kind] ? names[kind][idx] : NULL;
}

int tk_name_parse(tk_name_kind_t kind, uint64_t allowed, const char *s, size_t len)
{
    tk_span_t t = tk_trim(s, len);
    if (t.len == 0 || t.len > TK_NAME_MAX) return -1;
    int idx = tk_name_lookup(kind, t.s, t.len);
    return idx >= 0 && (allowed >> idx & 1) ? idx : -1;
}

int tk_name_list_parse(tk_name_kind_t kind, uint64_t allowed, const char *s, size_t len,
                       unsigned flags, uint64_t *mask, tk_span_t *bad)
{
    tk_list_iter_t it;
    tk_span_t el;
    uint64_t m = 0;
    int rc;
    tk_list_init(&it, s, len);
    while ((rc = tk_list_next(&it, &el)) > 0) {
        int idx = tk_name_parse(kind, allowed, el.s, el.len);
        if (idx >= 0)
            m |= 1ULL << idx;
        else if (!(flags & TK_NAMES_SKIP_UNKNOWN))
            rc = -ENOENT;
        if (rc < 0) break;
    }
    if (rc < 0) {
        if (bad) *bad = el;
        return rc;
    }
    *mask = m;
    return 0;
}

static int set_str(char **dst, const char *value)
{
    char *copy = strdup(value);
    if (!copy) return -1;
    free(*dst);
    *dst = copy;
    return 0;
}

/* A slug: 1..TK_NAME_MAX of [a-z0-9-], in any ASCII case. */
static int is_slug(const char *s, size_t len)
{
    if (len == 0 || len > TK_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = (char)(s[i] | 0x20);
        if (!((c >= 'a' && c <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) return 0;
    }
    return 1;
}

/* Parses a config list of names into a mask over the table of kind,
 * interning new names. The whole list is checked first, so a refused
 * list adds nothing to the process-wide table. */
static int parse_name_list(tk_name_kind_t kind, const char *value, uint64_t *mask, char *err,
                           size_t errlen)
{
    tk_list_iter_t it, prev;
    tk_span_t el, seen;
    int rc, fresh = 0;
    uint64_t m = 0;
    tk_list_init(&it, value, strlen(value));
    while ((rc = tk_list_next(&it, &el)) > 0) {
        if (!is_slug(el.s, el.len)) {
            snprintf(err, errlen, "'%.*s' is not a slug ([a-z0-9-], 1..%d characters)",
                     (int)(el.len > 64 ? 64 : el.len), el.s, TK_NAME_MAX);
            return -1;
        }
        if (tk_name_lookup(kind, el.s, el.len) >= 0) continue;
        /* New to the table: count it once, however often the list has it. */
        bool again = false;
        tk_list_init(&prev, value, (size_t)(el.s - value));
        while (!again && tk_list_next(&prev, &seen) > 0)
            again = seen.len == el.len && strncasecmp(seen.s, el.s, el.len) == 0;
        if (!again) fresh++;
    }
    if (rc < 0) {
        snprintf(err, errlen, "the list has an empty element");
        return -1;
    }
    if (name_count[kind] + fresh > name_max[kind]) {
        snprintf(err, errlen, "too many distinct names (at most %d)", name_max[kind]);
        return -1;
    }
    tk_list_init(&it, value, strlen(value));
    while (tk_list_next(&it, &el) > 0) {
        int idx = tk_name_intern(kind, el.s, el.len);
        if (idx < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        m |= 1ULL << idx;
    }
    if (!m) {
        snprintf(err, errlen, "the list is empty");
        return -1;
    }
    *mask = m;
    return 0;
}

static int parse_int(const char *value, int min, int max, int *out, char *err, size_t errlen)
{
    if (tk_parse_int(value, strlen(value), min, max, out)) {
        snprintf(err, errlen, "'%s' is not a whole number in %d..%d", value, min, max);
        return -1;
    }
    return 0;
}

static int set_listen(tk_config_t *cfg, const char *value, char *err, size_t errlen)
{
    const char *colon = strrchr(value, ':');
    int port;
    if (!colon || colon == value || parse_int(colon + 1, 1, 65535, &port, err, errlen)) {
        snprintf(err, errlen, "'%s' is not ADDR:PORT", value);
        return -1;
    }
    size_t hl = (size_t)(colon - value);
    const char *h = value;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') /* [::1]:8080 */
        h++, hl -= 2;
    char *host = strndup(h, hl);
    if (!host || set_str(&cfg->listen, value)) {
        free(host);
        return -1;
    }
    free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->listen_port = port;
    return 0;
}

typedef struct int_key {
    const char *section, *key;
    size_t offset;
    int min, max;
} int_key_t;

#define IK(s, k, field, lo, hi)                                                                    \
    {                                                                                              \
        s, k, offsetof(tk_config_t, field), lo, hi                                                 \
    }
static const int_key_t int_keys[] = {
    IK("server", "workers", workers, 1, 256),
    IK("server", "heartbeat_s", heartbeat_s, 1, 3600),
    IK("server", "drain_s", drain_s, 0, 3600),
    IK("redis", "grace_s", grace_s, 0, 86400),
    IK("redis", "timeout_s", redis_timeout_s, 1, 300),
    IK("stream", "history_size", history_size, 1, 1000000),
    IK("stream", "default_ttl_s", default_ttl_s, 1, 2592000),
    IK("stream", "max_text_bytes", max_text_bytes, 1, 65536),
    IK("stream", "max_live_items", max_live_items, 1, 1000000),
    IK("replay", "default", replay_default, 0, 100000),
    IK("replay", "max", replay_max, 0, 100000),
    IK("limits", "max_connections", max_connections, 1, 10000000),
    IK("limits", "max_per_ip", max_per_ip, 0, 10000000),
    IK("limits", "max_queue_bytes", max_queue_bytes, 1024, 1 << 30),
    IK("limits", "slow_timeout_s", slow_timeout_s, 1, 3600),
    IK("limits", "max_frame_bytes", max_frame_bytes, 64, 1 << 20),
};

/* Keys that take one of a few words (any case), stored as an int. */
typedef struct word_key {
    const char *section, *key;
    size_t offset;
    const char *const *words; /* NULL-terminated */
    const int *values;
    const char *list; /* for the error message */
} word_key_t;

static const char *const log_level_words[] = {"error", "warn", "info", "debug", NULL};
static const int log_level_values[] = {TK_LOG_ERROR, TK_LOG_WARN, TK_LOG_INFO, TK_LOG_DEBUG};
static const char *const log_format_words[] = {"text", "json", NULL};
static const int log_format_values[] = {TK_LOG_FORMAT_TEXT, TK_LOG_FORMAT_JSON};

static const word_key_t word_keys[] = {
    {"log", "level", offsetof(tk_config_t, log_level), log_level_words, log_level_values,
     "error, warn, info, debug"},
    {"log", "format", offsetof(tk_config_t, log_format), log_format_words, log_format_values,
     "text, json"},
};

static int set_word(const word_key_t *k, tk_config_t *cfg, const char *value, char *err,
                    size_t errlen)
{
    int n = 0;
    while (k->words[n])
        n++;
    int i = tk_keyword(value, strlen(value), k->words, n);
    if (i < 0) {
        snprintf(err, errlen, "'%s' is not one of %s", value, k->list);
        return -1;
    }
    *(int *)((char *)cfg + k->offset) = k->values[i];
    return 0;
}

typedef struct str_key {
    const char *section, *key;
    size_t offset;
} str_key_t;

#define SK(s, k, field)                                                                            \
    {                                                                                              \
        s, k, offsetof(tk_config_t, field)                                                         \
    }
static const str_key_t str_keys[] = {
    SK("server", "static_dir", static_dir),
    SK("server", "tls_cert", tls_cert),
    SK("server", "tls_key", tls_key),
    SK("server", "trusted_proxies", trusted_proxies),
    SK("redis", "url", redis_url),
    SK("redis", "sentinels", sentinels),
    SK("redis", "master_name", master_name),
    SK("redis", "cluster_nodes", cluster_nodes),
    SK("stream", "key", stream_key),
    SK("auth", "jwt_secret", jwt_secret),
    SK("auth", "allowed_origins", allowed_origins),
};

static int set_list(tk_config_t *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    uint64_t mask;
    if (strcmp(key, "default_lang") == 0) {
        /* Check before interning: a bad value must not enter the table. */
        int idx = -1;
        tk_span_t v = tk_trim(value, strlen(value));
        if (!is_slug(v.s, v.len) || (idx = tk_name_intern(TK_NAME_LANG, v.s, v.len)) < 0) {
            snprintf(err, errlen, "'%s' is not a language slug", value);
            return -1;
        }
        cfg->default_lang = idx;
        return 0;
    }
    tk_name_kind_t kind;
    if (strcmp(key, "languages") == 0)
        kind = TK_NAME_LANG;
    else if (strcmp(key, "regions") == 0)
        kind = TK_NAME_REGION;
    else if (strcmp(key, "categories") == 0)
        kind = TK_NAME_CATEGORY;
    else
        return 1;
    if (parse_name_list(kind, value, &mask, err, errlen)) return -1;
    if (kind == TK_NAME_LANG) cfg->langs = (uint32_t)mask;
    if (kind == TK_NAME_REGION) cfg->regions = mask;
    if (kind == TK_NAME_CATEGORY) cfg->categories = (uint32_t)mask;
    return 0;
}

/* allowed_origins: a comma-separated list of origins, each one token
 * (scheme://host[:port] as browsers send it). An origin with whitespace
 * inside would never match: refused here rather than at every request. */
static int check_origins(const char *value, char *err, size_t errlen)
{
    tk_list_iter_t it;
    tk_span_t el;
    int rc;
    tk_list_init(&it, value, strlen(value));
    while ((rc = tk_list_next(&it, &el)) > 0) {
        for (size_t i = 0; i < el.len; i++) {
            if (tk_is_space((unsigned char)el.s[i])) {
                snprintf(err, errlen, "'%.*s' is not one origin (the list is comma-separated)",
                         (int)(el.len > 100 ? 100 : el.len), el.s);
                return -1;
            }
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "the list has an empty element");
        return -1;
    }
    return 0;
}

/* trusted_proxies: a comma-separated list of addresses and CIDRs, each
 * checked here so that a typo is an error at load, not a proxy that is
 * silently never trusted. */
static int check_proxies(const char *value, char *err, size_t errlen)
{
    tk_list_iter_t it;
    tk_span_t el;
    tk_cidr_t c;
    int rc;
    tk_list_init(&it, value, strlen(value));
    while ((rc = tk_list_next(&it, &el)) > 0) {
        if (tk_cidr_parse(el.s, el.len, &c)) {
            snprintf(err, errlen, "'%.*s' is not an IPv4/IPv6 address or CIDR (ADDR/BITS)",
                     (int)(el.len > 100 ? 100 : el.len), el.s);
            return -1;
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "the list has an empty element");
        return -1;
    }
    return 0;
}

/* sentinels, cluster_nodes: host:port,... checked with the parser their
 * clients use (parse.h), so that a list they could not use is refused at
 * load. Empty: none (what names them in the message). */
static int check_hostports(const char *value, const char *what, char *err, size_t errlen)
{
    tk_span_t bad;
    int n = tk_hostport_list_parse(value, strlen(value), NULL, 0, &bad);
    int shown = n < 0 && bad.len > 100 ? 100 : (int)bad.len;
    if (n > 0 || !*value) return 0;
    if (n == 0)
        snprintf(err, errlen, "the list is blank (leave it empty for no %s)", what);
    else if (bad.len == 0)
        snprintf(err, errlen, "the list has an empty element");
    else if (n == -ERANGE)
        snprintf(err, errlen, "'%.*s': the port is not 1..65535", shown, bad.s);
    else if (n == -ENAMETOOLONG)
        snprintf(err, errlen, "'%.*s...': the host is longer than %d bytes", shown, bad.s,
                 TK_HOST_MAX);
    else
        snprintf(err, errlen, "'%.*s' is not host:port or [IPv6]:port", shown, bad.s);
    return -1;
}

int tk_config_set(tk_config_t *cfg, const char *section, const char *key, const char *value,
                  char *err, size_t errlen)
{
    if (strcmp(section, "auth") == 0 && strcmp(key, "allowed_origins") == 0 &&
        check_origins(value, err, errlen))
        return -1;
    if (strcmp(section, "server") == 0 && strcmp(key, "trusted_proxies") == 0 &&
        check_proxies(value, err, errlen))
        return -1;
    if (strcmp(section, "redis") == 0 && strcmp(key, "sentinels") == 0 &&
        check_hostports(value, "sentinels", err, errlen))
        return -1;
    if (strcmp(section, "redis") == 0 && strcmp(key, "cluster_nodes") == 0 &&
        check_hostports(value, "cluster", err, errlen))
        return -1;
    for (size_t i = 0; i < sizeof word_keys / sizeof *word_keys; i++) {
        const word_key_t *k = &word_keys[i];
        if (strcmp(section, k->section) || strcmp(key, k->key)) continue;
        return set_word(k, cfg, value, err, errlen);
    }
    for (size_t i = 0; i < sizeof int_keys / sizeof *int_keys; i++) {
        const int_key_t *k = &int_keys[i];
        if (strcmp(section, k->section) || strcmp(key, k->key)) continue;
        return parse_int(value, k->min, k->max, (int *)((char *)cfg + k->offset), err, errlen);
    }
    for (size_t i = 0; i < sizeof str_keys / sizeof *str_keys; i++) {
        const str_key_t *k = &str_keys[i];
        if (strcmp(section, k->section) || strcmp(key, k->key)) continue;
        if (set_str((char **)((char *)cfg + k->offset), value)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (strcmp(section, "server") == 0 && strcmp(key, "listen") == 0)
        return set_listen(cfg, value, err, errlen);
    if (strcmp(section, "lists") == 0) {
        int rc = set_list(cfg, key, value, err, errlen);
        if (rc <= 0) return rc;
    }
    snprintf(err, errlen, "unknown key [%s] %s", section, key);
    return -1;
}

tk_config_t *tk_config_create(void)
{
    tk_config_t *cfg = calloc(1, sizeof *cfg);
    char err[256];
    if (!cfg) return NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus > 0 ? (int)cpus : 1;
    cfg->heartbeat_s = 25;
    cfg->grace_s = 10;
    cfg->history_size = 1000;
    cfg->default_ttl_s = 21600;
    cfg->max_text_bytes = 1000;
    cfg->replay_default = 10;
    cfg->replay_max = 200;
    cfg->max_connections = 100000;
    cfg->max_per_ip = 0;
    cfg->max_queue_bytes = 16777216;
    cfg->slow_timeout_s = 15;
    cfg->max_frame_bytes = 4096;
    cfg->max_live_items = 10000;
    cfg->redis_timeout_s = 5;
    cfg->drain_s = 0;
    cfg->log_level = TK_LOG_INFO;
    cfg->log_format = TK_LOG_FORMAT_TEXT;
    static const char *const defaults[][3] = {
        {"server", "listen", "127.0.0.1:8080"},
        {"server", "static_dir", "clients/web"},
        {"redis", "url", "redis://127.0.0.1:6379/0"},
        {"redis", "sentinels", ""},
        {"redis", "master_name", "mymaster"},
        {"redis", "cluster_nodes", ""},
        {"stream", "key", "ticker:breaking"},
        {"auth", "jwt_secret", ""},
        {"auth", "allowed_origins", ""},
        {"server", "tls_cert", ""},
        {"server", "tls_key", ""},
        {"server", "trusted_proxies", ""},
        {"lists", "languages", "en,ar,es"},
        {"lists", "regions",
         "africa,asia,asia-pacific,europe,latin-america,mena,palestine,us-canada"},
        {"lists", "categories",
         "politics,economy,sports,arts-culture,health,miscellaneous,technology,environment"},
        {"lists", "default_lang", "en"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
        if (tk_config_set(cfg, defaults[i][0], defaults[i][1], defaults[i][2], err, sizeof err)) {
            tk_config_free(cfg);
            return NULL;
        }
    }
    return cfg;
}

void tk_config_free(tk_config_t *cfg)
{
    if (!cfg) return;
    free(cfg->listen);
    free(cfg->listen_host);
    free(cfg->static_dir);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->trusted_proxies);
    free(cfg->redis_url);
    free(cfg->sentinels);
    free(cfg->master_name);
    free(cfg->cluster_nodes);
    free(cfg->stream_key);
    free(cfg->jwt_secret);
    free(cfg->allowed_origins);
    free(cfg);
}

/* libinih (Debian 12) reads lines of at most this many bytes and cuts a
 * longer one into pieces it then parses as lines of their own. */
#define INI_LINE_MAX 199

typedef struct ini_ctx {
    tk_config_t *cfg;
    char *err;
    size_t errlen;
    int failed;
    char section[64], key[64]; /* the key set last, and its list so far */
    char *list;
} ini_ctx_t;

/* Keys whose value is a comma-separated list: one may go on over
 * indented continuation lines (libinih hands each to us as the same key
 * again), or the key may be repeated; either way each adds to the list. */
static bool is_list_key(const char *section, const char *key)
{
    return (!strcmp(section, "auth") && !strcmp(key, "allowed_origins")) ||
           (!strcmp(section, "server") && !strcmp(key, "trusted_proxies")) ||
           (!strcmp(section, "redis") && !strcmp(key, "sentinels")) ||
           (!strcmp(section, "redis") && !strcmp(key, "cluster_nodes")) ||
           (!strcmp(section, "lists") && strcmp(key, "default_lang"));
}

/* value, or the list so far with value added when the same list key goes
 * on. The result is ctx->list's, or value itself. */
static const char *joined(ini_ctx_t *ctx, const char *section, const char *name, const char *value)
{
    bool more = is_list_key(section, name) && ctx->list && !strcmp(ctx->section, section) &&
                !strcmp(ctx->key, name);
    char *next = NULL;
    if (more && *value && asprintf(&next, "%s,%s", ctx->list, value) < 0) return NULL;
    if (!more) next = strdup(value);
    if (!next && !(more && !*value)) return NULL;
    if (next) {
        free(ctx->list);
        ctx->list = next;
    }
    snprintf(ctx->section, sizeof ctx->section, "%s", section);
    snprintf(ctx->key, sizeof ctx->key, "%s", name);
    return ctx->list;
}

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *ctx = user;
    char why[200];
    if (ctx->failed) return 1;
    const char *v = joined(ctx, section, name, value);
    if (!v || tk_config_set(ctx->cfg, section, name, v, why, sizeof why)) {
        snprintf(ctx->err, ctx->errlen, "[%s] %s: %s", section, name, v ? why : "out of memory");
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

/* A line libinih would cut: its number, or 0. */
static int long_line(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int no = 0, found = 0;
    if (!f) return 0; /* ini_parse says why */
    while (!found && (n = getline(&line, &cap, f)) >= 0) {
        no++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (n > INI_LINE_MAX) found = no;
    }
    free(line);
    fclose(f);
    return found;
}

int tk_config_load_file(tk_config_t *cfg, const char *path, char *err, size_t errlen)
{
    char why[256] = "";
    ini_ctx_t ctx = {cfg, why, sizeof why, 0, "", "", NULL};
    int line = long_line(path);
    if (line) {
        snprintf(err, errlen,
                 "%s:%d: line over %d bytes; go on with a long list on the next lines, "
                 "indented",
                 path, line, INI_LINE_MAX);
        return -1;
    }
    int rc = ini_parse(path, on_ini_line, &ctx);
    free(ctx.list);
    if (rc == -1) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (rc == -2) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (rc > 0) {
        if (ctx.failed)
            snprintf(err, errlen, "%s:%d: %s", path, rc, why);
        else
            snprintf(err, errlen, "%s:%d: syntax error", path, rc);
        return -1;
    }
    return tk_config_validate(cfg, err, errlen);
}

/* With cluster_nodes: not with sentinels, database 0 (a cluster has no
 * other), and a stream key with a hash tag, so that <key>:epoch and the
 * other keys tickerd derives from it are in the stream's slot, on the
 * master tickerd reads from. */
static int check_cluster(const tk_config_t *cfg, int db, char *err, size_t errlen)
{
    tk_span_t tag;
    if (*cfg->sentinels) {
        snprintf(err, errlen, "[redis] sentinels and cluster_nodes exclude each other: set one");
        return -1;
    }
    if (db) {
        snprintf(err, errlen, "[redis] url names database %d: a Redis Cluster has only database 0",
                 db);
        return -1;
    }
    if (!tk_hash_tag(cfg->stream_key, strlen(cfg->stream_key), &tag)) {
        snprintf(err, errlen,
                 "[stream] key '%.100s' has no {hash tag}: with cluster_nodes set, the key and "
                 "<key>:epoch must share a slot; name it like '{ticker}:breaking'",
                 cfg->stream_key);
        return -1;
    }
    return 0;
}

int tk_config_validate(const tk_config_t *cfg, char *err, size_t errlen)
{
    tk_redis_url_t url;
    char why[200];
    if (!(cfg->langs & (1u << cfg->default_lang))) {
        snprintf(err, errlen, "[lists] default_lang '%s' is not in languages",
                 tk_name_of(TK_NAME_LANG, cfg->default_lang));
        return -1;
    }
    if (cfg->replay_default > cfg->replay_max) {
        snprintf(err, errlen, "[replay] default %d is over max %d", cfg->replay_default,
                 cfg->replay_max);
        return -1;
    }
    if (!*cfg->stream_key) {
        snprintf(err, errlen, "[stream] key is empty");
        return -1;
    }
    if (tk_redis_url_parse(cfg->redis_url, &url, why, sizeof why)) {
        snprintf(err, errlen, "[redis] url: %s", why);
        return -1;
    }
    int db = url.db;
    tk_redis_url_clear(&url);
    if (*cfg->cluster_nodes && check_cluster(cfg, db, err, errlen)) return -1;
    if (!*cfg->tls_cert != !*cfg->tls_key) {
        snprintf(err, errlen, "[server] tls_cert and tls_key go together");
        return -1;
    }
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies s[0..len) with %XX decoded; the caller frees it. */
static char *url_part(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            *o++ = (char)(hex_digit(s[i + 1]) << 4 | hex_digit(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

int tk_redis_url_parse(const char *url, tk_redis_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        if (*path != '/') goto bad;
        out->path = strndup(path, q ? (size_t)(q - path) : strlen(path));
        if (q && strncmp(q, "?db=", 4) == 0 && parse_int(q + 4, 0, 1000, &out->db, err, errlen))
            goto bad;
        return out->path ? 0 : -1;
    }
    if (strncmp(url, "redis://", 8) != 0) goto bad;
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p) out->user = url_part(p, (size_t)(colon - p));
            out->password = url_part(colon + 1, (size_t)(at - colon - 1));
        } else {
            out->password = url_part(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memrchr(p, ':', hostport);
    if (*p == '[') { /* [IPv6]: a port can only follow the bracket */
        const char *rb = memchr(p, ']', hostport);
        if (!rb) goto bad;
        colon = rb + 1 < p + hostport && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != p + hostport) goto bad;
    }
    if (colon) {
        char port[8];
        size_t n = hostport - (size_t)(colon - p) - 1;
        if (n == 0 || n >= sizeof port) goto bad;
        memcpy(port, colon + 1, n);
        port[n] = 0;
        if (parse_int(port, 1, 65535, &out->port, err, errlen)) goto bad;
        hostport = (size_t)(colon - p);
    }
    if (hostport >= 2 && *p == '[' && p[hostport - 1] == ']') {
        p++;
        hostport -= 2;
    }
    if (hostport == 0) goto bad;
    out->host = strndup(p, hostport);
    if (slash && slash[1] && parse_int(slash + 1, 0, 1000, &out->db, err, errlen)) goto bad;
    return 0;
bad:
    tk_redis_url_clear(out);
    snprintf(err, errlen, "'%s' is not redis://[[user]:password@]host[:port][/db] or unix:///path",
             url);
    return -1;
}

void tk_redis_url_clear(tk_redis_url_t *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}
