/* filter.h - what a client subscribes to: parsing a query string or a
 * subscribe frame into a request, and matching items against a filter. */
#ifndef TICKERD_FILTER_H
#define TICKERD_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tickerd/config.h"
#include "tickerd/id.h"

#define TK_ALL32 UINT32_MAX
#define TK_ALL64 UINT64_MAX

/* A filter: bit i set = name i of the table wanted. All bits = absent. */
typedef struct tk_filter {
    uint32_t langs;
    uint32_t categories;
    uint64_t regions;
    uint8_t min_priority;
} tk_filter_t;

/* What a version of an item offers to filters. A retract of an unknown
 * item routes by the fields it carries; the others match anything. */
#define TK_KEY_ANY_LANG 0xff
#define TK_KEY_NO_CATEGORY (-1)
#define TK_KEY_ANY_CATEGORY (-2)
typedef struct tk_match_key {
    uint64_t regions; /* 0 = global */
    uint8_t lang;     /* or TK_KEY_ANY_LANG */
    uint8_t priority;
    int8_t category; /* index, TK_KEY_NO_CATEGORY or TK_KEY_ANY_CATEGORY */
} tk_match_key_t;

/* The longest a long-poll waits (wait_s), and its default. */
#define TK_WAIT_MAX_S 60
#define TK_WAIT_DEFAULT_S 25

/* The longest client label: [A-Za-z0-9._-]{1,64}. */
#define TK_CLIENT_LABEL_MAX 64

/* True when s[0..n) is a valid client label. */
bool tk_client_label_valid(const char *s, size_t n);

/* A subscription request from the query or a subscribe frame. */
typedef struct tk_sub_req {
    tk_filter_t filter;
    int replay; /* -1: not given */
    int limit;  /* /v1/items; -1: not given */
    int wait_s; /* /v1/poll; -1: not given */
    bool has_since;
    tk_id_t since;
    bool has_epoch;
    char epoch[65];
    char token[1024];
    char client[TK_CLIENT_LABEL_MAX + 1]; /* the screen's label (SPEC §7); "": none */
} tk_sub_req_t;

void tk_filter_all(tk_filter_t *f);

/* Field-by-field equality. The structs have padding bytes, whose values C
 * leaves unspecified: never compare them with memcmp. */
bool tk_filter_equal(const tk_filter_t *a, const tk_filter_t *b);
bool tk_match_key_equal(const tk_match_key_t *a, const tk_match_key_t *b);
bool tk_filter_match(const tk_filter_t *f, const tk_match_key_t *k);
bool tk_filter_match_any(const tk_filter_t *f, const tk_match_key_t *keys, int nkeys);

/* Initialises req as "no parameters given". */
void tk_sub_req_init(tk_sub_req_t *req);

/* Applies one decoded "name=value" query argument. Unknown names are
 * ignored. Returns 0, or -1 with a one-line reason in err. */
int tk_query_arg(const tk_config_t *cfg, tk_sub_req_t *req, const char *arg, char *err,
                 size_t errlen);

/* Parses a raw query string (without '?'), percent-decoding it. */
int tk_query_parse(const tk_config_t *cfg, const char *query, tk_sub_req_t *req, char *err,
                   size_t errlen);

/* Parses a {"type":"subscribe",...} object. Lists may be comma-separated
 * strings or arrays of strings. */
int tk_subscribe_parse(const tk_config_t *cfg, json_t *obj, tk_sub_req_t *req, char *err,
                       size_t errlen);

/* A list of names of kind from JSON: a comma-separated string (the rules of
 * parse.h) or an array of strings, each one name (trimmed; "a,b" is one
 * unknown name, not two). Returns 0 with *mask (0 for "", "  " or []),
 * -EINVAL for an empty element, -ENOENT for an unknown or disallowed name
 * (unless flags has TK_NAMES_SKIP_UNKNOWN), -EBADMSG for any other JSON
 * type; *bad (if not NULL) is the element at fault. Used for subscribe
 * frames and token claims. */
int tk_names_from_json(tk_name_kind_t kind, uint64_t allowed, json_t *v, unsigned flags,
                       uint64_t *mask, tk_span_t *bad);

/* Checks the request against cfg's replay limits (after auth narrowing). */
int tk_sub_req_check(const tk_config_t *cfg, const tk_sub_req_t *req, char *err, size_t errlen);

/* The filter as JSON for the hello frame; new reference. */
json_t *tk_filter_to_json(const tk_filter_t *f);

#endif
