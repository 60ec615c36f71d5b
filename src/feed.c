/* feed.c - the current items rendered three ways (the /v1/items JSON, JSON
 * Feed 1.1, RSS 2.0), the ETag of an answer and the If-None-Match test.
 * Pure: every input comes in a tk_feed_t, the output is a malloc'd string.
 *
 * The choices the formats leave open (docs/protocol.md, "Feeds"): the
 * feeds list items newest first; the title is the stream key; the links
 * are built from the request's scheme and Host; text goes out as plain
 * text (JSON Feed content_text, RSS title) and as one HTML paragraph that
 * carries the item's lang and dir (content_html, RSS description), the
 * only place either format lets a direction be said. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tickerd/config.h"
#include "tickerd/feed.h"
#include "tickerd/item.h"

#define JSON_FEED_VERSION "https://jsonfeed.org/version/1.1"

static const char *const feed_path[TK_FEED_FORMATS] = {"/v1/items", "/v1/feed.json",
                                                       "/v1/feed.rss"};

const char *tk_feed_type(tk_feed_format_t fmt)
{
    static const char *const types[TK_FEED_FORMATS] = {
        "application/json",
        "application/feed+json; charset=utf-8",
        "application/rss+xml; charset=utf-8",
    };
    return types[fmt];
}

/* --- text --- */

/* The code point at s (its length in *n), or -1 for a byte that does not
 * start a well-formed UTF-8 sequence (*n = 1: it alone is replaced). */
static long utf8_next(const unsigned char *s, int *n)
{
    unsigned c = s[0];
    int len = c < 0x80                 ? 1
              : c >= 0xc2 && c <= 0xdf ? 2
              : c >= 0xe0 && c <= 0xef ? 3
              : c >= 0xf0 && c <= 0xf4 ? 4
                                       : 0;
    static const unsigned lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    *n = 1;
    if (!len) return -1;
    long cp = c & lead_mask[len];
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const long least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    *n = len;
    return cp;
}

static bool xml_char(long cp)
{
    return cp == '\t' || cp == '\n' || cp == '\r' || (cp >= 0x20 && cp != 0xfffe && cp != 0xffff);
}

/* s as valid UTF-8 of XML 1.0 characters; with markup, escaped for XML
 * and HTML. */
static void put_text(FILE *out, const char *s, bool markup)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n;
        long cp = utf8_next(p, &n);
        const char *ref = NULL;
        if (cp < 0 || !xml_char(cp))
            ref = "\xef\xbf\xbd";
        else if (markup)
            ref = cp == '&'    ? "&amp;"
                  : cp == '<'  ? "&lt;"
                  : cp == '>'  ? "&gt;"
                  : cp == '"'  ? "&quot;"
                  : cp == '\'' ? "&#39;"
                  : cp == '\r' ? "&#13;"
                               : NULL;
        if (ref)
            fputs(ref, out);
        else
            fwrite(p, 1, (size_t)n, out);
        p += n;
    }
}

void tk_xml_escape(FILE *out, const char *s)
{
    put_text(out, s, true);
}

/* A JSON string of s made valid (jansson refuses invalid UTF-8). */
static json_t *json_text(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    put_text(f, s, false);
    fclose(f);
    json_t *j = buf ? json_stringn(buf, len) : NULL;
    free(buf);
    return j;
}

bool tk_lang_rtl(const char *lang)
{
    static const char *const rtl[] = {"ar",  "arc", "ckb", "dv",  "fa", "he", "iw", "ks",
                                      "nqo", "ps",  "sd",  "syr", "ug", "ur", "yi", NULL};
    size_t n = strcspn(lang, "-_");
    for (int i = 0; rtl[i]; i++)
        if (strlen(rtl[i]) == n && strncasecmp(lang, rtl[i], n) == 0) return true;
    return false;
}

/* --- dates --- */

#define DATE_MAX 64
/* 9999-12-31T23:59:59.999Z: both formats have four-digit years, and a
 * stream ID may be any number. */
#define LAST_MS 253402300799999ULL

static void utc(uint64_t ms, struct tm *tm)
{
    time_t t = (time_t)((ms > LAST_MS ? LAST_MS : ms) / 1000);
    gmtime_r(&t, tm);
}

/* RFC 3339 in UTC with milliseconds: 2024-11-28T00:00:00.000Z. */
static void date_rfc3339(uint64_t ms, char out[DATE_MAX])
{
    struct tm tm;
    utc(ms, &tm);
    snprintf(out, DATE_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((ms > LAST_MS ? LAST_MS : ms) % 1000));
}

/* RFC 822 (as RFC 1123 writes it, four-digit year) in GMT, English names
 * whatever the locale: Thu, 28 Nov 2024 00:00:00 GMT. */
static void date_rfc822(uint64_t ms, char out[DATE_MAX])
{
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    utc(ms, &tm);
    snprintf(out, DATE_MAX, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* --- what the feed is --- */

static void put_names(FILE *out, const char *key, tk_name_kind_t kind, uint64_t mask, int max,
                      bool *first)
{
    fprintf(out, "%s%s=", *first ? "" : "&", key);
    *first = false;
    const char *sep = "";
    for (int i = 0; i < max; i++) {
        const char *name = mask >> i & 1 ? tk_name_of(kind, i) : NULL;
        if (!name) continue;
        fprintf(out, "%s%s", sep, name);
        sep = ",";
    }
}

/* The query that asks for this feed again (never the token): what the
 * filter narrows, and limit when it is not the default. "" for all. */
static void put_query(FILE *out, const tk_feed_t *f)
{
    const tk_filter_t *flt = f->filter;
    bool first = true;
    if (flt->regions != TK_ALL64)
        put_names(out, "region", TK_NAME_REGION, flt->regions, TK_MAX_REGIONS, &first);
    if (flt->langs != TK_ALL32)
        put_names(out, "lang", TK_NAME_LANG, flt->langs, TK_MAX_LANGS, &first);
    if (flt->min_priority > TK_PRIO_NORMAL) {
        fprintf(out, "%spriority=%s", first ? "" : "&", tk_priority_name(flt->min_priority));
        first = false;
    }
    if (flt->categories != TK_ALL32)
        put_names(out, "category", TK_NAME_CATEGORY, flt->categories, TK_MAX_CATEGORIES, &first);
    if (f->limit != TK_FEED_DEFAULT_LIMIT) fprintf(out, "%slimit=%d", first ? "" : "&", f->limit);
}

/* The strings that describe a feed, built once per document. */
typedef struct about {
    char *query, *self, *home, *description;
    const char *lang; /* the one language asked for, or NULL */
} about_t;

static void about_clear(about_t *a)
{
    free(a->query);
    free(a->self);
    free(a->home);
    free(a->description);
}

static int about_init(about_t *a, const tk_feed_t *f, tk_feed_format_t fmt)
{
    size_t len = 0;
    memset(a, 0, sizeof *a);
    FILE *out = open_memstream(&a->query, &len);
    if (!out) return -1;
    put_query(out, f);
    fclose(out);
    const char *q = a->query ? a->query : "";
    if (asprintf(&a->self, "%s%s%s%s", f->base, feed_path[fmt], *q ? "?" : "", q) < 0)
        a->self = NULL;
    if (asprintf(&a->home, "%s/", f->base) < 0) a->home = NULL;
    if (asprintf(&a->description, "The current items of %s, newest first%s%s%s", f->stream_key,
                 *q ? " (" : "", q, *q ? ")" : "") < 0)
        a->description = NULL;
    uint32_t l = f->filter->langs;
    if (l && !(l & (l - 1))) a->lang = tk_name_of(TK_NAME_LANG, __builtin_ctz(l));
    if (a->query && a->self && a->description && a->home) return 0;
    about_clear(a);
    return -1;
}

/* --- an item --- */

/* The item's language name; "und" (undetermined) should its index name
 * none. */
static const char *lang_of(const tk_item_t *it)
{
    const char *lang = tk_name_of(TK_NAME_LANG, it->lang);
    return lang ? lang : "und";
}

static const char *dir_of(const tk_item_t *it)
{
    return tk_lang_rtl(lang_of(it)) ? "rtl" : "ltr";
}

/* <p lang=".." dir="..">text</p>: the item's text as HTML that says its
 * direction. malloc'd, or NULL when out of memory. */
static char *paragraph(const tk_item_t *it)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) return NULL;
    fprintf(out, "<p lang=\"%s\" dir=\"%s\">", lang_of(it), dir_of(it));
    tk_xml_escape(out, it->text ? it->text : "");
    fputs("</p>", out);
    fclose(out);
    return buf;
}

/* --- /v1/items --- */

static char *render_items(const tk_feed_t *f, size_t *len)
{
    char last[TK_ID_STRLEN], *body = NULL;
    FILE *out = open_memstream(&body, len);
    if (!out) return NULL;
    tk_id_format(f->last_id, last);
    fprintf(out, "{\"epoch\":\"%s\",\"last_id\":\"%s\",\"items\":[", f->epoch, last);
    int failed = 0;
    for (int i = 0; i < f->n; i++) {
        const tk_item_t *it = &f->items[i]->item;
        char *json = tk_item_encode("item", it->id, NULL, it, false, NULL);
        failed |= !json;
        fprintf(out, "%s%s", i ? "," : "", json ? json : "null");
        free(json);
    }
    fputs("]}", out);
    fclose(out);
    if (failed) {
        free(body);
        return NULL;
    }
    return body;
}

/* --- JSON Feed 1.1 --- */

static json_t *region_names(uint64_t regions)
{
    json_t *a = json_array();
    for (int i = 0; i < TK_MAX_REGIONS; i++)
        if (regions >> i & 1) json_array_append_new(a, json_string(tk_name_of(TK_NAME_REGION, i)));
    return a;
}

/* tags: the priority, every region, the category (plain slugs, for
 * readers); _tickerd: the same as fields, for programs. */
static void json_item_tags(json_t *o, const tk_item_t *it)
{
    char expires[DATE_MAX];
    const char *category = it->category >= 0 ? tk_name_of(TK_NAME_CATEGORY, it->category) : NULL;
    json_t *tags = json_array(), *ext = json_object(), *regions = region_names(it->regions);
    json_array_append_new(tags, json_string(tk_priority_name(it->priority)));
    json_array_extend(tags, regions);
    if (category) json_array_append_new(tags, json_string(category));
    json_object_set_new(o, "tags", tags);
    date_rfc3339((uint64_t)it->expires_ms, expires);
    json_object_set_new(ext, "priority", json_string(tk_priority_name(it->priority)));
    json_object_set_new(ext, "region", regions);
    if (category) json_object_set_new(ext, "category", json_string(category));
    json_object_set_new(ext, "dir", json_string(dir_of(it)));
    json_object_set_new(ext, "expires", json_string(expires));
    json_object_set_new(o, "_tickerd", ext);
}

static json_t *json_item(const tk_item_t *it)
{
    char id[TK_ID_STRLEN], date[DATE_MAX], *html = paragraph(it);
    json_t *o = json_object();
    tk_id_format(it->id, id);
    date_rfc3339((uint64_t)tk_item_ts(it), date);
    json_object_set_new(o, "id", json_string(id));
    if (it->url) json_object_set_new(o, "url", json_text(it->url));
    json_object_set_new(o, "content_text", json_text(it->text ? it->text : ""));
    if (html) json_object_set_new(o, "content_html", json_string(html));
    free(html);
    json_object_set_new(o, "date_published", json_string(date));
    json_object_set_new(o, "language", json_string(lang_of(it)));
    if (it->source)
        json_object_set_new(o, "authors", json_pack("[{s:o}]", "name", json_text(it->source)));
    json_item_tags(o, it);
    return o;
}

static char *render_json_feed(const tk_feed_t *f, size_t *len)
{
    about_t a;
    char last[TK_ID_STRLEN];
    if (about_init(&a, f, TK_FEED_JSON)) return NULL;
    tk_id_format(f->last_id, last);
    json_t *items = json_array();
    for (int i = f->n; i-- > 0;)
        json_array_append_new(items, json_item(&f->items[i]->item));
    json_t *o = json_pack("{s:s,s:o,s:s,s:s,s:o}", "version", JSON_FEED_VERSION, "title",
                          json_text(f->stream_key), "home_page_url", a.home, "feed_url", a.self,
                          "description", json_text(a.description));
    if (o && a.lang) json_object_set_new(o, "language", json_string(a.lang));
    if (o)
        json_object_set_new(o, "_tickerd",
                            json_pack("{s:s,s:s}", "epoch", f->epoch, "last_id", last));
    if (o)
        json_object_set_new(o, "items", items);
    else
        json_decref(items);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    about_clear(&a);
    if (s) *len = strlen(s);
    return s;
}

/* --- RSS 2.0 --- */

static void rss_element(FILE *out, const char *name, const char *text)
{
    fprintf(out, "<%s>", name);
    tk_xml_escape(out, text);
    fprintf(out, "</%s>\n", name);
}

static void rss_category(FILE *out, const char *domain, const char *name)
{
    fprintf(out, "<category domain=\"%s\">", domain);
    tk_xml_escape(out, name);
    fputs("</category>\n", out);
}

static void rss_item(FILE *out, const tk_item_t *it)
{
    char id[TK_ID_STRLEN], date[DATE_MAX], *html = paragraph(it);
    tk_id_format(it->id, id);
    date_rfc822((uint64_t)tk_item_ts(it), date);
    fprintf(out, "<item xml:lang=\"%s\">\n", lang_of(it));
    rss_element(out, "title", it->text ? it->text : "");
    if (it->url) rss_element(out, "link", it->url);
    if (html) rss_element(out, "description", html); /* HTML, escaped as XML text */
    free(html);
    if (it->source) rss_element(out, "dc:creator", it->source);
    rss_category(out, "priority", tk_priority_name(it->priority));
    for (int i = 0; i < TK_MAX_REGIONS; i++)
        if (it->regions >> i & 1) rss_category(out, "region", tk_name_of(TK_NAME_REGION, i));
    if (it->category >= 0)
        rss_category(out, "category", tk_name_of(TK_NAME_CATEGORY, it->category));
    fprintf(out, "<guid isPermaLink=\"false\">%s</guid>\n<pubDate>%s</pubDate>\n</item>\n", id,
            date);
}

static char *render_rss(const tk_feed_t *f, size_t *len)
{
    about_t a;
    char *body = NULL;
    if (about_init(&a, f, TK_FEED_RSS)) return NULL;
    FILE *out = open_memstream(&body, len);
    if (!out) {
        about_clear(&a);
        return NULL;
    }
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" "
          "xmlns:atom=\"http://www.w3.org/2005/Atom\" "
          "xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n",
          out);
    if (a.lang)
        fprintf(out, "<channel xml:lang=\"%s\">\n<language>%s</language>\n", a.lang, a.lang);
    else
        fputs("<channel>\n", out);
    rss_element(out, "title", f->stream_key);
    rss_element(out, "link", a.home);
    rss_element(out, "description", a.description);
    fputs("<atom:link rel=\"self\" type=\"application/rss+xml\" href=\"", out);
    tk_xml_escape(out, a.self);
    fputs("\"/>\n<generator>tickerd/" TK_VERSION "</generator>\n"
          "<docs>https://www.rssboard.org/rss-specification</docs>\n",
          out);
    for (int i = f->n; i-- > 0;)
        rss_item(out, &f->items[i]->item);
    fputs("</channel>\n</rss>\n", out);
    fclose(out);
    about_clear(&a);
    return body;
}

char *tk_feed_render(tk_feed_format_t fmt, const tk_feed_t *f, size_t *len)
{
    size_t n = 0;
    char *s = fmt == TK_FEED_ITEMS  ? render_items(f, &n)
              : fmt == TK_FEED_JSON ? render_json_feed(f, &n)
                                    : render_rss(f, &n);
    if (len) *len = n;
    return s;
}

/* --- ETag --- */

typedef struct fnv {
    uint64_t h;
} fnv_t;

static void fnv_bytes(fnv_t *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        s->h = (s->h ^ b[i]) * 0x100000001b3ULL;
}

static void fnv_u64(fnv_t *s, uint64_t v)
{
    fnv_bytes(s, &v, sizeof v);
}

/* Strings with their NUL, so that "ab"+"c" and "a"+"bc" differ. */
static void fnv_str(fnv_t *s, const char *str)
{
    fnv_bytes(s, str ? str : "", strlen(str ? str : "") + 1);
}

void tk_feed_etag(tk_feed_format_t fmt, const tk_feed_t *f, char out[TK_FEED_ETAG_LEN])
{
    fnv_t s = {0xcbf29ce484222325ULL};
    fnv_u64(&s, (uint64_t)fmt);
    fnv_str(&s, f->epoch);
    fnv_u64(&s, f->last_id.ms);
    fnv_u64(&s, f->last_id.seq);
    fnv_str(&s, f->base);
    fnv_str(&s, f->stream_key);
    fnv_u64(&s, f->filter->regions);
    fnv_u64(&s, f->filter->langs);
    fnv_u64(&s, f->filter->categories);
    fnv_u64(&s, f->filter->min_priority);
    fnv_u64(&s, (uint64_t)(int64_t)f->limit);
    fnv_u64(&s, (uint64_t)f->n);
    for (int i = 0; i < f->n; i++) {
        fnv_u64(&s, f->items[i]->item.id.ms);
        fnv_u64(&s, f->items[i]->item.id.seq);
    }
    snprintf(out, TK_FEED_ETAG_LEN, "\"%016llx\"", (unsigned long long)s.h);
}

bool tk_etag_match(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;
    for (;;) {
        p += strspn(p, " \t,");
        if (!*p) return false;
        if (*p == '*') return true;
        if (strncmp(p, "W/", 2) == 0) p += 2;
        if (*p != '"') return false; /* not a list of entity tags */
        const char *end = strchr(p + 1, '"');
        if (!end) return false;
        size_t n = (size_t)(end - p) + 1;
        if (n == elen && memcmp(p, etag, n) == 0) return true;
        p = end + 1;
    }
}
