/* filter.c - subscription requests (query strings and subscribe frames)
 * and the match of an item's key against a client's filter. Pure. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tickerd/filter.h"
#include "tickerd/item.h"

void tk_filter_all(tk_filter_t *f)
{
    f->langs = TK_ALL32;
    f->categories = TK_ALL32;
    f->regions = TK_ALL64;
    f->min_priority = TK_PRIO_NORMAL;
}

bool tk_filter_equal(const tk_filter_t *a, const tk_filter_t *b)
{
    return a->langs == b->langs && a->categories == b->categories && a->regions == b->regions &&
           a->min_priority == b->min_priority;
}

bool tk_match_key_equal(const tk_match_key_t *a, const tk_match_key_t *b)
{
    return a->regions == b->regions && a->lang == b->lang && a->priority == b->priority &&
           a->category == b->category;
}

bool tk_filter_match(const tk_filter_t *f, const tk_match_key_t *k)
{
    if (k->lang != TK_KEY_ANY_LANG && !(f->langs >> (k->lang & 31) & 1)) return false;
    if (k->regions && !(f->regions & k->regions)) return false;
    if (k->priority < f->min_priority) return false;
    if (f->categories != TK_ALL32 && k->category != TK_KEY_ANY_CATEGORY &&
        (k->category < 0 || !(f->categories >> k->category & 1)))
        return false;
    return true;
}

bool tk_filter_match_any(const tk_filter_t *f, const tk_match_key_t *keys, int nkeys)
{
    for (int i = 0; i < nkeys; i++)
        if (tk_filter_match(f, &keys[i])) return true;
    return false;
}

void tk_sub_req_init(tk_sub_req_t *req)
{
    memset(req, 0, sizeof *req);
    tk_filter_all(&req->filter);
    req->replay = -1;
    req->limit = -1;
    req->wait_s = -1;
}

bool tk_client_label_valid(const char *s, size_t n)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    if (n == 0 || n > TK_CLIENT_LABEL_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(ok, s[i])) return false;
    return true;
}

/* Up to 40 bytes of a value, for a one-line reason. */
#define SHOW(n) ((int)((n) > 40 ? 40 : (n)))

/* Writes the reason for a list that tk_name_list_parse or
 * tk_names_from_json refused (rc), or that came out empty (rc 0). */
static int list_error(const char *what, int rc, tk_span_t bad, char *err, size_t errlen)
{
    if (rc == -ENOENT)
        snprintf(err, errlen, "unknown %s '%.*s'", what, SHOW(bad.len), bad.s);
    else if (rc == -EINVAL)
        snprintf(err, errlen, "%s list has an empty element", what);
    else if (rc == -EBADMSG)
        snprintf(err, errlen, "%s has the wrong type", what);
    else
        snprintf(err, errlen, "%s list is empty", what);
    return -1;
}

int tk_names_from_json(tk_name_kind_t kind, uint64_t allowed, json_t *v, unsigned flags,
                       uint64_t *mask, tk_span_t *bad)
{
    tk_span_t none = {"", 0};
    if (!bad) bad = &none;
    if (json_is_string(v))
        return tk_name_list_parse(kind, allowed, json_string_value(v), json_string_length(v), flags,
                                  mask, bad);
    if (!json_is_array(v)) return -EBADMSG;
    uint64_t m = 0;
    size_t i;
    json_t *el;
    json_array_foreach(v, i, el)
    {
        if (!json_is_string(el)) return -EBADMSG;
        const char *s = json_string_value(el);
        size_t n = json_string_length(el);
        tk_span_t t = tk_trim(s, n);
        /* Each element is one name: "a,b" in an array is not two. */
        int idx = t.len ? tk_name_parse(kind, allowed, s, n) : -1;
        if (idx >= 0) {
            m |= 1ULL << idx;
        } else if (!t.len) {
            *bad = t;
            return -EINVAL;
        } else if (!(flags & TK_NAMES_SKIP_UNKNOWN)) {
            *bad = t;
            return -ENOENT;
        }
    }
    *mask = m;
    return 0;
}

/* A region/lang/category parameter: a non-empty list of allowed names. */
static int apply_list(tk_name_kind_t kind, uint64_t allowed, const char *what, const char *v,
                      size_t n, json_t *jv, uint64_t *mask, char *err, size_t errlen)
{
    tk_span_t bad = {"", 0};
    uint64_t m = 0;
    int rc = jv ? tk_names_from_json(kind, allowed, jv, 0, &m, &bad)
                : tk_name_list_parse(kind, allowed, v, n, 0, &m, &bad);
    if (rc || !m) return list_error(what, rc, bad, err, errlen);
    *mask = m;
    return 0;
}

/* Applies one parameter; shared by the query and subscribe frames. A list
 * parameter from a frame comes as jv (a string or an array of strings);
 * everything else as text v[0..n). */
static int apply_param(const tk_config_t *cfg, tk_sub_req_t *req, const char *name, const char *v,
                       size_t n, json_t *jv, char *err, size_t errlen)
{
    uint64_t mask;
    if (strcmp(name, "region") == 0) {
        if (apply_list(TK_NAME_REGION, cfg->regions, "region", v, n, jv, &mask, err, errlen))
            return -1;
        req->filter.regions = mask;
    } else if (strcmp(name, "lang") == 0) {
        if (apply_list(TK_NAME_LANG, cfg->langs, "lang", v, n, jv, &mask, err, errlen)) return -1;
        req->filter.langs = (uint32_t)mask;
    } else if (strcmp(name, "category") == 0) {
        if (apply_list(TK_NAME_CATEGORY, cfg->categories, "category", v, n, jv, &mask, err, errlen))
            return -1;
        req->filter.categories = (uint32_t)mask;
    } else if (strcmp(name, "priority") == 0) {
        int p = tk_priority_lookup(v, n);
        if (p < 0) {
            snprintf(err, errlen, "unknown priority '%.*s'", SHOW(n), v);
            return -1;
        }
        req->filter.min_priority = (uint8_t)p;
    } else if (strcmp(name, "replay") == 0 || strcmp(name, "limit") == 0 ||
               strcmp(name, "wait_s") == 0) {
        int x, rc = tk_parse_int(v, n, 0, INT_MAX, &x);
        if (rc == -ERANGE) {
            snprintf(err, errlen, "%s '%.*s' is over the maximum %d", name, SHOW(n), v,
                     name[0] == 'w' ? TK_WAIT_MAX_S : cfg->replay_max);
            return -1;
        }
        if (rc) {
            snprintf(err, errlen, "%s '%.*s' is not a whole number", name, SHOW(n), v);
            return -1;
        }
        *(name[0] == 'r' ? &req->replay : name[0] == 'l' ? &req->limit : &req->wait_s) = x;
    } else if (strcmp(name, "since") == 0) {
        tk_span_t t = tk_trim(v, n);
        if (tk_id_parse(t.s, t.len, &req->since)) {
            snprintf(err, errlen, "since '%.*s' is not a stream ID", SHOW(n), v);
            return -1;
        }
        req->has_since = true;
    } else if (strcmp(name, "epoch") == 0) {
        if (n == 0 || n >= sizeof req->epoch) {
            snprintf(err, errlen, "epoch is empty or too long");
            return -1;
        }
        memcpy(req->epoch, v, n);
        req->epoch[n] = 0;
        req->has_epoch = true;
    } else if (strcmp(name, "client") == 0) {
        if (!tk_client_label_valid(v, n)) {
            snprintf(err, errlen, "client label must be 1 to %d of A-Z a-z 0-9 . _ -",
                     TK_CLIENT_LABEL_MAX);
            return -1;
        }
        memcpy(req->client, v, n);
        req->client[n] = 0;
    } else if (strcmp(name, "token") == 0) {
        if (n >= sizeof req->token) {
            snprintf(err, errlen, "token is too long");
            return -1;
        }
        memcpy(req->token, v, n);
        req->token[n] = 0;
    }
    return 0;
}

int tk_query_arg(const tk_config_t *cfg, tk_sub_req_t *req, const char *arg, char *err,
                 size_t errlen)
{
    const char *eq = strchr(arg, '=');
    char name[16];
    size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nl == 0) return 0;
    if (nl >= sizeof name) return 0; /* not one of ours */
    memcpy(name, arg, nl);
    name[nl] = 0;
    const char *v = eq ? eq + 1 : "";
    return apply_param(cfg, req, name, v, strlen(v), NULL, err, errlen);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int tk_query_parse(const tk_config_t *cfg, const char *query, tk_sub_req_t *req, char *err,
                   size_t errlen)
{
    char arg[2048];
    const char *p = query;
    while (p && *p) {
        size_t o = 0;
        for (; *p && *p != '&'; p++) {
            char c = *p;
            if (c == '+') c = ' ';
            if (c == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                c = (char)(hexval(p[1]) << 4 | hexval(p[2]));
                p += 2;
            }
            if (o + 1 >= sizeof arg) {
                snprintf(err, errlen, "query parameter too long");
                return -1;
            }
            arg[o++] = c;
        }
        arg[o] = 0;
        if (tk_query_arg(cfg, req, arg, err, errlen)) return -1;
        if (*p == '&') p++;
    }
    return 0;
}

/* A non-list subscribe value as text: a string or a non-negative integer.
 * Writes into buf. */
static int value_text(json_t *v, char *buf, size_t cap, size_t *len)
{
    if (json_is_string(v)) {
        if (json_string_length(v) >= cap) return -1;
        memcpy(buf, json_string_value(v), json_string_length(v));
        *len = json_string_length(v);
    } else if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) return -1;
        *len = (size_t)snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    } else {
        return -1;
    }
    buf[*len] = 0;
    return 0;
}

int tk_subscribe_parse(const tk_config_t *cfg, json_t *obj, tk_sub_req_t *req, char *err,
                       size_t errlen)
{
    static const char *const keys[] = {"region", "lang",  "priority", "category", "replay",
                                       "since",  "epoch", "token",    "client"};
    char buf[1024];
    size_t len;
    tk_sub_req_init(req);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (!v || json_is_null(v)) continue;
        bool list = i == 0 || i == 1 || i == 3;
        if (list && (json_is_string(v) || json_is_array(v))) {
            if (apply_param(cfg, req, keys[i], NULL, 0, v, err, errlen)) return -1;
            continue;
        }
        if (list || value_text(v, buf, sizeof buf, &len)) {
            snprintf(err, errlen, "%s has the wrong type", keys[i]);
            return -1;
        }
        if (apply_param(cfg, req, keys[i], buf, len, NULL, err, errlen)) return -1;
    }
    return 0;
}

int tk_sub_req_check(const tk_config_t *cfg, const tk_sub_req_t *req, char *err, size_t errlen)
{
    if (req->replay > cfg->replay_max) {
        snprintf(err, errlen, "replay %d is over the maximum %d", req->replay, cfg->replay_max);
        return -1;
    }
    if (req->limit > cfg->replay_max) {
        snprintf(err, errlen, "limit %d is over the maximum %d", req->limit, cfg->replay_max);
        return -1;
    }
    if (req->wait_s > TK_WAIT_MAX_S) {
        snprintf(err, errlen, "wait_s %d is over the maximum %d", req->wait_s, TK_WAIT_MAX_S);
        return -1;
    }
    return 0;
}

static json_t *names_json(tk_name_kind_t kind, uint64_t mask, int max)
{
    json_t *a = json_array();
    for (int i = 0; a && i < max; i++)
        if (mask >> i & 1 && tk_name_of(kind, i) &&
            json_array_append_new(a, json_string(tk_name_of(kind, i)))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* NULL when out of memory, never an object with a key left out (a hello
 * would then show a wider filter than the client has). */
json_t *tk_filter_to_json(const tk_filter_t *f)
{
    json_t *o = json_object();
    int bad = 0;
    if (f->regions != TK_ALL64)
        bad |= json_object_set_new(o, "region",
                                   names_json(TK_NAME_REGION, f->regions, TK_MAX_REGIONS));
    if (f->langs != TK_ALL32)
        bad |= json_object_set_new(o, "lang", names_json(TK_NAME_LANG, f->langs, TK_MAX_LANGS));
    bad |= json_object_set_new(o, "priority", json_string(tk_priority_name(f->min_priority)));
    if (f->categories != TK_ALL32)
        bad |= json_object_set_new(o, "category",
                                   names_json(TK_NAME_CATEGORY, f->categories, TK_MAX_CATEGORIES));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
