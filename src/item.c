/* item.c - validation of stream entries (SPEC §1) into items, corrections
 * applied to items, and the JSON text of an item. Pure: no I/O, no state. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tickerd/item.h"
#include "tickerd/parse.h"

const char *const tk_reason_names[TK_REJECT_REASONS] = {
    [TK_REJECT_NONE] = "none",
    [TK_REJECT_MISSING_TEXT] = "missing_text",
    [TK_REJECT_TEXT_TOO_LONG] = "text_too_long",
    [TK_REJECT_BAD_UTF8] = "bad_utf8",
    [TK_REJECT_BAD_LANG] = "bad_lang",
    [TK_REJECT_BAD_REGION] = "bad_region",
    [TK_REJECT_BAD_PRIORITY] = "bad_priority",
    [TK_REJECT_BAD_CATEGORY] = "bad_category",
    [TK_REJECT_BAD_URL] = "bad_url",
    [TK_REJECT_BAD_SOURCE] = "bad_source",
    [TK_REJECT_BAD_TTL] = "bad_ttl",
    [TK_REJECT_BAD_OP] = "bad_op",
    [TK_REJECT_BAD_REF] = "bad_ref",
    [TK_REJECT_UNKNOWN_REF] = "unknown_ref",
    [TK_REJECT_RETRACTED_REF] = "retracted_ref",
    [TK_REJECT_OUT_OF_ORDER] = "out_of_order",
    [TK_REJECT_BAD_JSON] = "bad_json",
    [TK_REJECT_DUPLICATE_FIELD] = "duplicate_field",
    [TK_REJECT_BAD_ENTRY] = "bad_entry",
    [TK_REJECT_BAD_PIN] = "bad_pin",
};

static const char *const priority_names[] = {"normal", "breaking", "urgent", "flash"};

#define MAX_URL_BYTES TK_MAX_URL_BYTES
#define MAX_SOURCE_BYTES TK_MAX_SOURCE_BYTES
#define MAX_TTL_S TK_MAX_TTL_S

const char *tk_priority_name(int prio)
{
    return prio >= 0 && prio < 4 ? priority_names[prio] : "breaking";
}

int tk_priority_lookup(const char *s, size_t len)
{
    return tk_keyword(s, len, priority_names, 4);
}

bool tk_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n') return false;
            if (c == 0x7f) return false;
            i++;
            continue;
        }
        int n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        if (i + (size_t)n >= len) return false;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += (size_t)n + 1;
    }
    return true;
}

/* Trims v[0..n) in place (parse.h's rule). */
static void trim(const char **v, size_t *n)
{
    tk_span_t t = tk_trim(*v, *n);
    *v = t.s;
    *n = t.len;
}

static int reject(tk_reject_t *rej, tk_reason_t reason, const char *fmt, const char *v, size_t n)
{
    rej->reason = reason;
    snprintf(rej->detail, sizeof rej->detail, fmt, (int)(n > 60 ? 60 : n), v);
    return -1;
}

/* A region list: empty or blank = global (mask 0). */
static int parse_regions(const tk_config_t *cfg, const char *v, size_t n, uint64_t *out,
                         tk_reject_t *rej)
{
    tk_span_t bad;
    int rc = tk_name_list_parse(TK_NAME_REGION, cfg->regions, v, n, 0, out, &bad);
    if (rc == -EINVAL)
        return reject(rej, TK_REJECT_BAD_REGION, "region list has an empty element%.*s", "", 0);
    if (rc) return reject(rej, TK_REJECT_BAD_REGION, "unknown region '%.*s'", bad.s, bad.len);
    return 0;
}

static bool url_ok(const char *v, size_t n)
{
    size_t scheme;
    if (n > 7 && strncasecmp(v, "http://", 7) == 0)
        scheme = 7;
    else if (n > 8 && strncasecmp(v, "https://", 8) == 0)
        scheme = 8;
    else
        return false;
    if (v[scheme] == '/' || v[scheme] == '?' || v[scheme] == '#') return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f) return false;
    return tk_utf8_valid(v, n);
}

static int parse_ttl(const char *v, size_t n, uint32_t *out)
{
    int ttl;
    if (tk_parse_int(v, n, 1, MAX_TTL_S, &ttl)) return -1;
    *out = (uint32_t)ttl;
    return 0;
}

/* An entry refused for want of memory is counted and logged as such. */
static int out_of_memory(tk_reject_t *rej)
{
    return reject(rej, TK_REJECT_BAD_ENTRY, "out of memory%.*s", "", 0);
}

static int set_text(char **dst, const char *v, size_t n, tk_reject_t *rej)
{
    *dst = strndup(v, n);
    return *dst ? 0 : out_of_memory(rej);
}

/* Validates one known field into item. Returns 0, 1 for an unknown field
 * (ignored) or -1 with rej filled. */
static int parse_field(const tk_config_t *cfg, const tk_field_t *f, tk_item_t *item,
                       tk_reject_t *rej)
{
    const char *v = f->value;
    size_t n = f->value_len;
    const char *name = f->name;
    size_t nl = f->name_len;
#define IS(s) (nl == sizeof(s) - 1 && memcmp(name, s, nl) == 0)
    if (IS("text")) {
        /* Trim first: a trailing CR/LF is whitespace, not a control char. */
        trim(&v, &n);
        if (!tk_utf8_valid(v, n))
            return reject(rej, TK_REJECT_BAD_UTF8, "text is not UTF-8%.*s", "", 0);
        if (n == 0) return 0;
        if (n > (size_t)cfg->max_text_bytes) {
            rej->reason = TK_REJECT_TEXT_TOO_LONG;
            snprintf(rej->detail, sizeof rej->detail, "text is %zu bytes, over %d", n,
                     cfg->max_text_bytes);
            return -1;
        }
        item->has |= TK_F_TEXT;
        return set_text(&item->text, v, n, rej);
    }
    trim(&v, &n);
    if (IS("lang")) {
        int idx = tk_name_parse(TK_NAME_LANG, cfg->langs, v, n);
        if (idx < 0) return reject(rej, TK_REJECT_BAD_LANG, "unknown lang '%.*s'", v, n);
        item->lang = (uint8_t)idx;
        item->has |= TK_F_LANG;
    } else if (IS("region")) {
        if (parse_regions(cfg, v, n, &item->regions, rej)) return -1;
        item->has |= TK_F_REGION;
    } else if (IS("priority")) {
        int p = tk_priority_lookup(v, n);
        if (p < 0) return reject(rej, TK_REJECT_BAD_PRIORITY, "unknown priority '%.*s'", v, n);
        item->priority = (uint8_t)p;
        item->has |= TK_F_PRIORITY;
    } else if (IS("category")) {
        int idx = n ? tk_name_parse(TK_NAME_CATEGORY, cfg->categories, v, n) : -1;
        if (n && idx < 0)
            return reject(rej, TK_REJECT_BAD_CATEGORY, "unknown category '%.*s'", v, n);
        item->category = (int8_t)idx;
        item->has |= TK_F_CATEGORY;
    } else if (IS("url")) {
        if (n == 0) return 0;
        if (n > MAX_URL_BYTES || !url_ok(v, n))
            return reject(rej, TK_REJECT_BAD_URL,
                          "url '%.*s' is not an absolute http(s) URL of at most 2048 bytes", v, n);
        item->has |= TK_F_URL;
        return set_text(&item->url, v, n, rej);
    } else if (IS("source")) {
        if (n == 0) return 0;
        if (n > MAX_SOURCE_BYTES || !tk_utf8_valid(v, n))
            return reject(rej, TK_REJECT_BAD_SOURCE, "source is not UTF-8 of at most 200 bytes%.*s",
                          "", 0);
        item->has |= TK_F_SOURCE;
        return set_text(&item->source, v, n, rej);
    } else if (IS("ttl")) {
        if (parse_ttl(v, n, &item->ttl_s))
            return reject(rej, TK_REJECT_BAD_TTL, "ttl '%.*s' is not whole seconds in 1..2592000",
                          v, n);
        item->has |= TK_F_TTL;
    } else if (IS("pin")) {
        if (n != 1 || (*v != '0' && *v != '1'))
            return reject(rej, TK_REJECT_BAD_PIN, "pin '%.*s' is not 0 or 1", v, n);
        item->pinned = *v == '1';
        item->has |= TK_F_PIN;
    } else if (IS("op")) {
        static const char *const ops[] = {
            [TK_OP_PUBLISH] = "publish", [TK_OP_UPDATE] = "update", [TK_OP_RETRACT] = "retract"};
        int op = tk_keyword(v, n, ops, 3);
        if (op < 0) return reject(rej, TK_REJECT_BAD_OP, "unknown op '%.*s'", v, n);
        item->op = (tk_op_t)op;
    } else if (IS("ref")) {
        if (tk_id_parse(v, n, &item->ref) || tk_id_is_zero(item->ref))
            return reject(rej, TK_REJECT_BAD_REF, "ref '%.*s' is not a stream ID", v, n);
    } else {
        return 1;
    }
#undef IS
    return 0;
}

static bool known_field(const char *name, size_t nl)
{
    static const char *const known[] = {"text",   "lang", "region", "priority", "category", "url",
                                        "source", "ttl",  "pin",    "op",       "ref",      "json"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strlen(known[i]) == nl && memcmp(known[i], name, nl) == 0) return true;
    return false;
}

static int check_duplicates(const tk_field_t *fields, size_t n, tk_reject_t *rej)
{
    for (size_t i = 0; i < n; i++) {
        if (!known_field(fields[i].name, fields[i].name_len)) continue;
        for (size_t j = i + 1; j < n; j++)
            if (fields[j].name_len == fields[i].name_len &&
                memcmp(fields[j].name, fields[i].name, fields[i].name_len) == 0)
                return reject(rej, TK_REJECT_DUPLICATE_FIELD, "field '%.*s' given twice",
                              fields[i].name, fields[i].name_len);
    }
    return 0;
}

/* The `json` form: turns the object into string fields, then validates them
 * as if they had come one by one. */
static int parse_json_entry(const tk_config_t *cfg, tk_id_t id, const char *text, size_t len,
                            tk_item_t *item, tk_reject_t *rej)
{
    json_error_t jerr;
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return reject(rej, TK_REJECT_BAD_JSON, "json is not a JSON object%.*s", "", 0);
    }
    size_t n = json_object_size(obj), k = 0;
    tk_field_t *fields = calloc(n ? n : 1, sizeof *fields);
    char **owned = calloc(n ? n : 1, sizeof *owned);
    int rc = -1;
    const char *key;
    json_t *val;
    if (!fields || !owned) goto oom;
    json_object_foreach(obj, key, val)
    {
        tk_field_t *f = &fields[k];
        f->name = key;
        f->name_len = strlen(key);
        if (strcmp(key, "json") == 0 || !known_field(key, f->name_len)) continue;
        if (json_is_string(val)) {
            f->value = json_string_value(val);
            f->value_len = json_string_length(val);
        } else if (strcmp(key, "pin") == 0 && (json_is_boolean(val) || json_is_integer(val))) {
            /* true/false or 1/0, read as the string rules read "1"/"0" */
            f->value = json_is_true(val) || json_integer_value(val) == 1    ? "1"
                       : json_is_false(val) || json_integer_value(val) == 0 ? "0"
                                                                            : "?";
            f->value_len = 1;
        } else if (strcmp(key, "ttl") == 0 && json_is_integer(val)) {
            owned[k] = malloc(24);
            if (!owned[k]) goto oom;
            snprintf(owned[k], 24, "%lld", (long long)json_integer_value(val));
            f->value = owned[k];
            f->value_len = strlen(owned[k]);
        } else if (strcmp(key, "region") == 0 && json_is_array(val)) {
            /* Joined with commas for the string rules, so each element
             * must be one name: not blank and without a comma. */
            size_t i, total = 1;
            json_t *el;
            json_array_foreach(val, i, el)
            {
                if (!json_is_string(el)) goto bad_type;
                const char *es = json_string_value(el);
                size_t en = json_string_length(el);
                if (!tk_trim(es, en).len) {
                    rc = reject(rej, TK_REJECT_BAD_REGION, "region list has an empty element%.*s",
                                "", 0);
                    goto out;
                }
                if (memchr(es, ',', en) || memchr(es, 0, en)) {
                    rc = reject(rej, TK_REJECT_BAD_REGION, "unknown region '%.*s'", es, en);
                    goto out;
                }
                total += en + 1;
            }
            owned[k] = calloc(1, total);
            if (!owned[k]) goto oom;
            json_array_foreach(val, i, el)
            {
                if (i) strcat(owned[k], ",");
                strcat(owned[k], json_string_value(el));
            }
            f->value = owned[k];
            f->value_len = strlen(owned[k]);
        } else {
            goto bad_type;
        }
        k++;
        continue;
    bad_type:
        rc =
            reject(rej, TK_REJECT_BAD_JSON, "json key '%.*s' has the wrong type", key, strlen(key));
        goto out;
    }
    rc = tk_item_parse(cfg, id, fields, k, item, rej);
    goto out;
oom:
    rc = out_of_memory(rej);
out:
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(fields);
    json_decref(obj);
    return rc;
}

static int check_required(const tk_config_t *cfg, tk_item_t *item, tk_reject_t *rej)
{
    if (item->op != TK_OP_PUBLISH && tk_id_is_zero(item->ref))
        return reject(rej, TK_REJECT_BAD_REF, "%.*supdate and retract need a ref", "", 0);
    /* An update that carries `pin` may leave the text as it is. */
    if (item->op != TK_OP_RETRACT && !(item->has & TK_F_TEXT) &&
        !(item->op == TK_OP_UPDATE && item->has & TK_F_PIN))
        return reject(rej, TK_REJECT_MISSING_TEXT, "%.*stext is missing or empty", "", 0);
    if (item->op != TK_OP_PUBLISH && tk_id_cmp(item->ref, item->id) >= 0)
        return reject(rej, TK_REJECT_BAD_REF, "%.*sref is not before the entry", "", 0);
    /* Defaults fill what the entry did not carry; `has` still tells an
     * update which fields replace the original's. */
    if (!(item->has & TK_F_LANG)) item->lang = (uint8_t)cfg->default_lang;
    if (!(item->has & TK_F_PRIORITY)) item->priority = TK_PRIO_BREAKING;
    if (!(item->has & TK_F_TTL)) item->ttl_s = (uint32_t)cfg->default_ttl_s;
    item->expires_ms = (int64_t)item->id.ms + (int64_t)item->ttl_s * 1000;
    return 0;
}

int tk_item_parse(const tk_config_t *cfg, tk_id_t id, const tk_field_t *fields, size_t nfields,
                  tk_item_t *item, tk_reject_t *rej)
{
    memset(item, 0, sizeof *item);
    memset(rej, 0, sizeof *rej);
    item->id = id;
    item->category = -1;
    if (check_duplicates(fields, nfields, rej)) return -1;
    for (size_t i = 0; i < nfields; i++)
        if (fields[i].name_len == 4 && memcmp(fields[i].name, "json", 4) == 0)
            return parse_json_entry(cfg, id, fields[i].value, fields[i].value_len, item, rej);
    for (size_t i = 0; i < nfields; i++) {
        if (parse_field(cfg, &fields[i], item, rej) < 0) goto fail;
    }
    if (check_required(cfg, item, rej) == 0) return 0;
fail:
    tk_item_clear(item);
    return -1;
}

static int replace_str(char **dst, const char *src)
{
    char *copy = src ? strdup(src) : NULL;
    if (src && !copy) return -1;
    free(*dst);
    *dst = copy;
    return 0;
}

int tk_item_apply_update(tk_item_t *dst, const tk_item_t *upd)
{
    if (upd->has & TK_F_TEXT && replace_str(&dst->text, upd->text)) return -1;
    if (upd->has & TK_F_URL && replace_str(&dst->url, upd->url)) return -1;
    if (upd->has & TK_F_SOURCE && replace_str(&dst->source, upd->source)) return -1;
    if (upd->has & TK_F_LANG) dst->lang = upd->lang;
    if (upd->has & TK_F_REGION) dst->regions = upd->regions;
    if (upd->has & TK_F_PRIORITY) dst->priority = upd->priority;
    if (upd->has & TK_F_CATEGORY) dst->category = upd->category;
    if (upd->has & TK_F_PIN) dst->pinned = upd->pinned;
    if (upd->has & TK_F_TTL) {
        dst->ttl_s = upd->ttl_s;
        dst->expires_ms = upd->expires_ms;
    }
    return 0;
}

int tk_item_copy(tk_item_t *dst, const tk_item_t *src)
{
    *dst = *src;
    dst->text = dst->url = dst->source = NULL;
    if (replace_str(&dst->text, src->text) || replace_str(&dst->url, src->url) ||
        replace_str(&dst->source, src->source)) {
        tk_item_clear(dst);
        return -1;
    }
    return 0;
}

void tk_item_clear(tk_item_t *item)
{
    free(item->text);
    free(item->url);
    free(item->source);
    item->text = item->url = item->source = NULL;
}

static json_t *id_json(tk_id_t id)
{
    char buf[TK_ID_STRLEN];
    tk_id_format(id, buf);
    return json_string(buf);
}

/* Returns nonzero when a field could not be added. */
static int add_fields(json_t *o, const tk_item_t *item)
{
    json_t *regions = json_array();
    int bad = !regions;
    for (int i = 0; regions && i < TK_MAX_REGIONS; i++)
        if (item->regions >> i & 1)
            bad |= json_array_append_new(regions, json_string(tk_name_of(TK_NAME_REGION, i)));
    bad |= json_object_set_new(o, "ts", json_integer((json_int_t)item->id.ms));
    bad |= json_object_set_new(o, "lang", json_string(tk_name_of(TK_NAME_LANG, item->lang)));
    bad |= json_object_set_new(o, "region", regions);
    bad |= json_object_set_new(o, "priority", json_string(tk_priority_name(item->priority)));
    if (item->category >= 0)
        bad |= json_object_set_new(o, "category",
                                   json_string(tk_name_of(TK_NAME_CATEGORY, item->category)));
    bad |= json_object_set_new(o, "text", json_string(item->text ? item->text : ""));
    if (item->url) bad |= json_object_set_new(o, "url", json_string(item->url));
    if (item->source) bad |= json_object_set_new(o, "source", json_string(item->source));
    bad |= json_object_set_new(o, "expires", json_integer((json_int_t)item->expires_ms));
    if (item->pinned) bad |= json_object_set_new(o, "pinned", json_true());
    return bad;
}

/* Every key is checked: under a failed allocation jansson leaves a key out
 * and carries on, and a frame without its "id" or "text" must never be
 * sent. */
char *tk_item_encode(const char *type, tk_id_t event_id, const tk_id_t *ref, const tk_item_t *item,
                     bool replay, size_t *len)
{
    json_t *o = json_object();
    int bad = json_object_set_new(o, "type", json_string(type));
    bad |= json_object_set_new(o, "id", id_json(event_id));
    if (ref) bad |= json_object_set_new(o, "ref", id_json(*ref));
    if (item && o) bad |= add_fields(o, item);
    if (replay) bad |= json_object_set_new(o, "replay", json_true());
    char *s = bad ? NULL : tk_json_dump(o, len);
    json_decref(o);
    return s;
}

char *tk_json_dump(const json_t *o, size_t *len)
{
    size_t n = o ? json_dumpb(o, NULL, 0, JSON_COMPACT) : 0;
    char *s = n ? malloc(n + 1) : NULL;
    if (!s) return NULL;
    if (json_dumpb(o, s, n, JSON_COMPACT) != n) {
        free(s);
        return NULL;
    }
    s[n] = 0;
    if (len) *len = n;
    return s;
}

/* The names of cfg's list of one kind, in name-table order. */
static json_t *names_json(tk_name_kind_t kind, uint64_t mask)
{
    json_t *a = json_array();
    for (int i = 0; a && i < 64; i++)
        if (mask >> i & 1 && tk_name_of(kind, i))
            json_array_append_new(a, json_string(tk_name_of(kind, i)));
    return a;
}

json_t *tk_item_lists_json(const tk_config_t *cfg)
{
    json_t *prios = json_array();
    for (int p = 0; prios && p < (int)(sizeof priority_names / sizeof *priority_names); p++)
        json_array_append_new(prios, json_string(priority_names[p]));
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i}}", "languages",
        names_json(TK_NAME_LANG, cfg->langs), "regions", names_json(TK_NAME_REGION, cfg->regions),
        "categories", names_json(TK_NAME_CATEGORY, cfg->categories), "priorities", prios,
        "default_lang", tk_name_of(TK_NAME_LANG, cfg->default_lang), "limits", "max_text_bytes",
        cfg->max_text_bytes, "max_source_bytes", MAX_SOURCE_BYTES, "max_url_bytes", MAX_URL_BYTES,
        "max_ttl_s", MAX_TTL_S, "replay_max", cfg->replay_max, "default_ttl_s", cfg->default_ttl_s);
}

int tk_item_check(const tk_config_t *cfg, tk_id_t id, const tk_field_t *fields, size_t nfields,
                  tk_reject_t *rej)
{
    tk_item_t item;
    if (tk_item_parse(cfg, id, fields, nfields, &item, rej)) return -1;
    tk_item_clear(&item);
    return 0;
}

int tk_item_check_json(const tk_config_t *cfg, tk_id_t id, const char *body, size_t len,
                       tk_reject_t *rej)
{
    tk_field_t f = {"json", 4, body, len};
    return tk_item_check(cfg, id, &f, 1, rej);
}
