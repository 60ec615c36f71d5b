/* config.h - tickerd's configuration: defaults, the INI file, overrides and
 * the name tables (languages, regions, categories) that items and filters
 * index into. */
#ifndef TICKERD_CONFIG_H
#define TICKERD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/log.h"
#include "tickerd/parse.h"

#define TK_VERSION "0.1.0"

/* The kinds of names an item or filter refers to by index. */
typedef enum { TK_NAME_LANG, TK_NAME_REGION, TK_NAME_CATEGORY, TK_NAME_KINDS } tk_name_kind_t;

/* Upper bounds on how many distinct names of each kind a process may ever
 * know: masks are uint64_t for regions and uint32_t for the others. */
#define TK_MAX_REGIONS 64
#define TK_MAX_LANGS 32
#define TK_MAX_CATEGORIES 32

/* [log] format. */
enum { TK_LOG_FORMAT_TEXT = 0, TK_LOG_FORMAT_JSON = 1 };

typedef struct tk_config {
    /* [server] */
    char *listen; /* "host:port" as given */
    char *listen_host;
    int listen_port;
    int workers;
    int heartbeat_s;
    char *static_dir;
    char *tls_cert;
    char *tls_key;
    int drain_s;           /* SIGTERM spreads the closes over this; 0 = at once */
    char *trusted_proxies; /* as given; checked at load (tk_proxy_trusted) */
    /* [redis] */
    char *redis_url;
    int grace_s;
    int redis_timeout_s; /* no command, connect or reply waited for longer */
    char *sentinels;
    char *master_name;
    char *cluster_nodes; /* host:port,... of a Redis Cluster; empty: off */
    /* [stream] */
    char *stream_key;
    int history_size;
    int default_ttl_s;
    int max_text_bytes;
    int max_live_items;
    /* [replay] */
    int replay_default;
    int replay_max;
    /* [limits] */
    int max_connections;
    int max_per_ip;
    int max_queue_bytes;
    int slow_timeout_s;
    int max_frame_bytes;
    /* [auth] */
    char *jwt_secret;
    char *allowed_origins;
    /* [log] */
    int log_level;  /* a tk_log_level_t (log.h) */
    int log_format; /* TK_LOG_FORMAT_* */
    /* [lists]: masks over the process-wide name tables */
    uint32_t langs;
    uint64_t regions;
    uint32_t categories;
    int default_lang;
} tk_config_t;

/* Returns a configuration holding every default, or NULL on allocation
 * failure. The caller owns it and releases it with tk_config_free(). */
tk_config_t *tk_config_create(void);
void tk_config_free(tk_config_t *cfg);

/* Reads an INI file into cfg. Returns 0, or -1 with a one-line reason that
 * names the file, line and key in err. */
int tk_config_load_file(tk_config_t *cfg, const char *path, char *err, size_t errlen);

/* Sets one key, as the INI reader and the command line do. Returns 0 or -1
 * with the reason in err. */
int tk_config_set(tk_config_t *cfg, const char *section, const char *key, const char *value,
                  char *err, size_t errlen);

/* Checks the cross-key rules (default_lang in languages, replay default <=
 * max, ...). Returns 0 or -1 with the reason in err. */
int tk_config_validate(const tk_config_t *cfg, char *err, size_t errlen);

/* Name tables shared by every configuration of the process. Indices never
 * change once given out, so items and filters stay valid across reloads.
 *
 * Names (languages, regions, categories) are slugs of 1..TK_NAME_MAX bytes
 * of [a-z0-9-]. They match ASCII case-insensitively in every input (stream
 * entries, queries, subscribe frames, token claims, config lists) and the
 * tables hold, and report, their lower-case form. */
#define TK_NAME_MAX 32

/* The index of name[0..len) (exact bytes but for ASCII case), or -1. */
int tk_name_lookup(tk_name_kind_t kind, const char *name, size_t len);
/* The index of name, added in lower case if new; -1 when the table is
 * full or out of memory. The caller checks that name is a slug. */
int tk_name_intern(tk_name_kind_t kind, const char *name, size_t len);
/* The canonical (lower-case) name at idx, or NULL. */
const char *tk_name_of(tk_name_kind_t kind, int idx);

/* One name from an input: s[0..len) trimmed of ASCII whitespace (parse.h),
 * looked up ignoring case. Returns its index when bit idx of allowed is
 * set, else -1 (empty, too long, unknown or not allowed). */
int tk_name_parse(tk_name_kind_t kind, uint64_t allowed, const char *s, size_t len);

/* Flags of tk_name_list_parse(). */
#define TK_NAMES_SKIP_UNKNOWN 1u /* an unknown name adds nothing (token claims) */

/* A comma-separated list of names (the rules of parse.h) as a mask over
 * the table of kind. Returns 0 with *mask set, 0 for an empty or blank
 * list: the caller decides what that means; -EINVAL for an empty element
 * and -ENOENT for a name that tk_name_parse refuses, with *bad (if not
 * NULL) the element at fault. *mask is not touched on error. */
int tk_name_list_parse(tk_name_kind_t kind, uint64_t allowed, const char *s, size_t len,
                       unsigned flags, uint64_t *mask, tk_span_t *bad);

/* A parsed Redis URL: redis://[[user]:password@]host[:port][/db] or
 * unix:///path. Strings are owned by the struct. */
typedef struct tk_redis_url {
    char *host; /* NULL for unix sockets */
    int port;
    char *path; /* unix socket path or NULL */
    char *user;
    char *password;
    int db;
} tk_redis_url_t;

int tk_redis_url_parse(const char *url, tk_redis_url_t *out, char *err, size_t errlen);
void tk_redis_url_clear(tk_redis_url_t *u);

#endif
