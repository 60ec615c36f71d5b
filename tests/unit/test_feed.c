/* test_feed.c - the renderers of /v1/items, /v1/feed.json and
 * /v1/feed.rss, their ETag and the If-None-Match test (SPEC §3). Items
 * come from a real history, so that what the history leaves out
 * (retracted, expired) is what the feeds leave out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickerd/config.h"
#include "fixture.h"
#include "tickerd/feed.h"
#include "tickerd/history.h"
#include "tickerd/item.h"

#define T0 1732752000000LL /* 2024-11-28T00:00:00Z, a Thursday */
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define BASE "http://news.example:8080"
#define FFFD "\xef\xbf\xbd"

/* --- helpers --- */

static char *escaped(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    tk_xml_escape(f, s);
    fclose(f);
    assert_int_equal(strlen(buf), len);
    return buf;
}

static void assert_escape(const char *in, const char *want)
{
    char *got = escaped(in);
    assert_string_equal(got, want);
    free(got);
}

static void add(tk_history_t *h, int64_t ms, const char *const *kv)
{
    tk_field_t f[32];
    tk_reject_t rej;
    tk_item_t it;
    size_t n = 0;
    for (; kv[2 * n]; n++)
        f[n] = (tk_field_t){kv[2 * n], strlen(kv[2 * n]), kv[2 * n + 1], strlen(kv[2 * n + 1])};
    assert_int_equal(tk_item_parse(cfg, (tk_id_t){(uint64_t)ms, 0}, f, n, &it, &rej), 0);
    assert_non_null(tk_history_add(h, &it, &rej));
}

/* A feed over the current items of h that f asks for; the items are in
 * st (room for 64). */
typedef struct fixture {
    tk_filter_t filter;
    tk_state_t *st[64 + TK_PINNED_MAX];
    tk_feed_t feed;
} fixture_t;

static void current(fixture_t *fx, const tk_history_t *h, int limit, int64_t now)
{
    fx->feed = (tk_feed_t){.epoch = "e1",
                           .last_id = tk_history_last_id(h),
                           .base = BASE,
                           .stream_key = "ticker:breaking",
                           .filter = &fx->filter,
                           .limit = limit,
                           .items = fx->st};
    fx->feed.n = tk_history_current(h, &fx->filter, limit, now, fx->st);
}

static json_t *render_json(tk_feed_format_t fmt, const tk_feed_t *f)
{
    size_t len;
    char *s = tk_feed_render(fmt, f, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j) fail_msg("not JSON (%s): %s", err.text, s);
    free(s);
    return j;
}

static char *render_rss(const tk_feed_t *f)
{
    size_t len;
    char *s = tk_feed_render(TK_FEED_RSS, f, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static uint32_t lang(const char *name)
{
    return 1u << tk_name_lookup(TK_NAME_LANG, name, strlen(name));
}

/* The body of the n-th <item> (from 0) of an RSS document, malloc'd. */
static char *rss_item(const char *rss, int n)
{
    const char *p = rss;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "<item ");
        assert_non_null(p);
        p++;
    }
    const char *end = strstr(p, "</item>");
    assert_non_null(end);
    return strndup(p - 1, (size_t)(end - p + 1));
}

/* --- escaping --- */

static void test_escape_specials(void **state)
{
    assert_escape("a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    assert_escape("]]>", "]]&gt;");
    assert_escape("x]]>]]>y", "x]]&gt;]]&gt;y");
    assert_escape("&amp;", "&amp;amp;");
    assert_escape("", "");
    assert_escape("plain text", "plain text");
    /* tab and newline are XML characters; a CR would be normalised away */
    assert_escape("a\tb\nc\rd", "a\tb\nc&#13;d");
}

static void test_escape_control_chars(void **state)
{
    assert_escape("a\x01"
                  "b",
                  "a" FFFD "b");
    assert_escape("\x08\x0b\x0c\x1f", FFFD FFFD FFFD FFFD);
    assert_escape("\x1f\x20", FFFD " "); /* one under the first allowed, and at it */
    assert_escape("\x7f", "\x7f");       /* allowed by XML 1.0 */
    /* U+FFFD is kept; U+FFFE and U+FFFF are not characters */
    assert_escape("\xef\xbf\xbd", FFFD);
    assert_escape("\xef\xbf\xbe", FFFD);
    assert_escape("\xef\xbf\xbf", FFFD);
}

static void test_escape_bad_utf8(void **state)
{
    assert_escape("\xff", FFFD);
    assert_escape("a\x80z", "a" FFFD "z");         /* a lone continuation byte */
    assert_escape("\xc0\x80", FFFD FFFD);          /* an overlong NUL */
    assert_escape("\xe0\x80\xaf", FFFD FFFD FFFD); /* an overlong '/' */
    assert_escape("\xe2\x82", FFFD FFFD);          /* cut short at the end */
    assert_escape("\xe2\x82z", FFFD FFFD "z");
    assert_escape("\xed\x9f\xbf", "\xed\x9f\xbf");          /* U+D7FF */
    assert_escape("\xed\xa0\x80", FFFD FFFD FFFD);          /* U+D800, a surrogate */
    assert_escape("\xed\xbf\xbf", FFFD FFFD FFFD);          /* U+DFFF */
    assert_escape("\xee\x80\x80", "\xee\x80\x80");          /* U+E000 */
    assert_escape("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");  /* U+10FFFF */
    assert_escape("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* U+110000 */
    assert_escape("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD);
}

static void test_escape_multibyte_intact(void **state)
{
    static const char ar[] = "مسيّرة إسرائيلية تستهدف سيارة في بلدة طول";
    assert_escape(ar, ar);
    assert_escape("é ñ € 😀", "é ñ € 😀");
    assert_escape("مراسل <الميادين>", "مراسل &lt;الميادين&gt;");
}

static void test_lang_rtl(void **state)
{
    assert_true(tk_lang_rtl("ar"));
    assert_true(tk_lang_rtl("AR"));
    assert_true(tk_lang_rtl("ar-eg"));
    assert_true(tk_lang_rtl("he"));
    assert_true(tk_lang_rtl("fa"));
    assert_true(tk_lang_rtl("ur"));
    assert_false(tk_lang_rtl("en"));
    assert_false(tk_lang_rtl("es"));
    assert_false(tk_lang_rtl("a"));
    assert_false(tk_lang_rtl("arx"));
    assert_false(tk_lang_rtl(""));
}

/* --- documents --- */

static void test_empty(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    fixture_t fx;
    tk_filter_all(&fx.filter);
    current(&fx, h, 20, T0);
    json_t *j = render_json(TK_FEED_ITEMS, &fx.feed);
    assert_string_equal(json_string_value(json_object_get(j, "epoch")), "e1");
    assert_string_equal(json_string_value(json_object_get(j, "last_id")), "0-0");
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    j = render_json(TK_FEED_JSON, &fx.feed);
    assert_string_equal(json_string_value(json_object_get(j, "version")),
                        "https://jsonfeed.org/version/1.1");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "ticker:breaking");
    assert_string_equal(json_string_value(json_object_get(j, "home_page_url")), BASE "/");
    assert_string_equal(json_string_value(json_object_get(j, "feed_url")), BASE "/v1/feed.json");
    assert_null(json_object_get(j, "language"));
    assert_true(json_is_array(json_object_get(j, "items")));
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    char *rss = render_rss(&fx.feed);
    assert_true(
        strncmp(rss, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"", 56) == 0);
    assert_non_null(strstr(rss, "<channel>\n<title>ticker:breaking</title>\n<link>" BASE
                                "/</link>\n<description>"));
    assert_non_null(strstr(rss, "href=\"" BASE "/v1/feed.rss\""));
    assert_int_equal(count(rss, "<item"), 0);
    assert_null(strstr(rss, "<language>"));
    assert_non_null(strstr(rss, "</channel>\n</rss>\n"));
    free(rss);
    tk_history_free(h);
}

static void test_one_item_json_feed(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    add(h, T0 + 123,
        KV("text", "Drone strike near Toul", "lang", "en", "region", "mena,palestine", "priority",
           "urgent", "category", "politics", "url", "https://news.example/a?b=1&c=2", "source",
           "Al Mayadeen's correspondent", "ttl", "60"));
    fixture_t fx;
    tk_filter_all(&fx.filter);
    current(&fx, h, 20, T0 + 1000);
    json_t *j = render_json(TK_FEED_JSON, &fx.feed);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *it = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(it, "id")), "1732752000123-0");
    assert_string_equal(json_string_value(json_object_get(it, "url")),
                        "https://news.example/a?b=1&c=2");
    assert_string_equal(json_string_value(json_object_get(it, "content_text")),
                        "Drone strike near Toul");
    assert_string_equal(json_string_value(json_object_get(it, "content_html")),
                        "<p lang=\"en\" dir=\"ltr\">Drone strike near Toul</p>");
    assert_string_equal(json_string_value(json_object_get(it, "date_published")),
                        "2024-11-28T00:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(it, "language")), "en");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(it, "authors"), 0), "name")),
                        "Al Mayadeen's correspondent");
    json_t *tags = json_object_get(it, "tags");
    assert_int_equal(json_array_size(tags), 4);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "urgent");
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "mena");
    assert_string_equal(json_string_value(json_array_get(tags, 2)), "palestine");
    assert_string_equal(json_string_value(json_array_get(tags, 3)), "politics");
    json_t *ext = json_object_get(it, "_tickerd");
    assert_string_equal(json_string_value(json_object_get(ext, "priority")), "urgent");
    assert_int_equal(json_array_size(json_object_get(ext, "region")), 2);
    assert_string_equal(json_string_value(json_object_get(ext, "category")), "politics");
    assert_string_equal(json_string_value(json_object_get(ext, "dir")), "ltr");
    assert_string_equal(json_string_value(json_object_get(ext, "expires")),
                        "2024-11-28T00:01:00.123Z");
    json_decref(j);
    tk_history_free(h);
}

static void test_one_item_rss(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    add(h, T0 + 123,
        KV("text", "A & B <b>bold</b> ]]> \"q\"", "region", "mena", "priority", "flash", "category",
           "economy", "url", "https://news.example/a?b=1&c=2", "source", "S & T"));
    fixture_t fx;
    tk_filter_all(&fx.filter);
    current(&fx, h, 20, T0 + 1000);
    char *rss = render_rss(&fx.feed);
    char *item = rss_item(rss, 0);
    assert_string_equal(item,
                        "<item xml:lang=\"en\">\n"
                        "<title>A &amp; B &lt;b&gt;bold&lt;/b&gt; ]]&gt; &quot;q&quot;</title>\n"
                        "<link>https://news.example/a?b=1&amp;c=2</link>\n"
                        "<description>&lt;p lang=&quot;en&quot; dir=&quot;ltr&quot;&gt;"
                        "A &amp;amp; B &amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt; ]]&amp;gt; "
                        "&amp;quot;q&amp;quot;&lt;/p&gt;</description>\n"
                        "<dc:creator>S &amp; T</dc:creator>\n"
                        "<category domain=\"priority\">flash</category>\n"
                        "<category domain=\"region\">mena</category>\n"
                        "<category domain=\"category\">economy</category>\n"
                        "<guid isPermaLink=\"false\">1732752000123-0</guid>\n"
                        "<pubDate>Thu, 28 Nov 2024 00:00:00 GMT</pubDate>\n");
    assert_int_equal(count(rss, "]]>"), 0);
    free(item);
    free(rss);
    tk_history_free(h);
}

static void test_item_without_url(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    add(h, T0, KV("text", "global, no url"));
    fixture_t fx;
    tk_filter_all(&fx.filter);
    current(&fx, h, 20, T0);
    json_t *j = render_json(TK_FEED_JSON, &fx.feed);
    json_t *it = json_array_get(json_object_get(j, "items"), 0);
    assert_null(json_object_get(it, "url"));
    assert_null(json_object_get(it, "authors"));
    assert_int_equal(json_array_size(json_object_get(it, "tags")), 1); /* the priority */
    assert_int_equal(json_array_size(json_object_get(json_object_get(it, "_tickerd"), "region")),
                     0);
    assert_null(json_object_get(json_object_get(it, "_tickerd"), "category"));
    json_decref(j);
    char *rss = render_rss(&fx.feed);
    char *item = rss_item(rss, 0);
    assert_null(strstr(item, "<link>"));
    assert_null(strstr(item, "<dc:creator>"));
    assert_null(strstr(item, "domain=\"region\""));
    assert_int_equal(count(item, "<category"), 1);
    free(item);
    free(rss);
    tk_history_free(h);
}

static void test_dates(void **state)
{
    static const struct {
        int64_t ms;
        const char *rfc3339, *rfc822;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z", "Thu, 01 Jan 1970 00:00:00 GMT"},
        {999, "1970-01-01T00:00:00.999Z", "Thu, 01 Jan 1970 00:00:00 GMT"},
        {1000, "1970-01-01T00:00:01.000Z", "Thu, 01 Jan 1970 00:00:01 GMT"},
        {951782400000LL, "2000-02-29T00:00:00.000Z", "Tue, 29 Feb 2000 00:00:00 GMT"},
        {T0 - 1, "2024-11-27T23:59:59.999Z", "Wed, 27 Nov 2024 23:59:59 GMT"},
        {1735689599000LL, "2024-12-31T23:59:59.000Z", "Tue, 31 Dec 2024 23:59:59 GMT"},
        /* the last four-digit year, and past it (a stream ID may be any number) */
        {253402300799999LL, "9999-12-31T23:59:59.999Z", "Fri, 31 Dec 9999 23:59:59 GMT"},
        {253402300800000LL, "9999-12-31T23:59:59.999Z", "Fri, 31 Dec 9999 23:59:59 GMT"},
        {INT64_MAX, "9999-12-31T23:59:59.999Z", "Fri, 31 Dec 9999 23:59:59 GMT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tk_state_t st = {.item = {.id = {(uint64_t)cases[i].ms, 0},
                                  .text = "t",
                                  .category = -1,
                                  .expires_ms = cases[i].ms}};
        tk_state_t *items[] = {&st};
        tk_filter_t all;
        tk_filter_all(&all);
        tk_feed_t f = {.epoch = "e",
                       .base = BASE,
                       .stream_key = "k",
                       .filter = &all,
                       .limit = 20,
                       .items = items,
                       .n = 1};
        json_t *j = render_json(TK_FEED_JSON, &f);
        json_t *it = json_array_get(json_object_get(j, "items"), 0);
        assert_string_equal(json_string_value(json_object_get(it, "date_published")),
                            cases[i].rfc3339);
        json_decref(j);
        char *rss = render_rss(&f), want[80];
        snprintf(want, sizeof want, "<pubDate>%s</pubDate>", cases[i].rfc822);
        if (!strstr(rss, want)) fail_msg("case %zu: no %s in %s", i, want, rss);
        free(rss);
    }
}

/* An item built by hand with what validation would refuse: the renderers
 * still give well-formed output. */
static void test_unclean_text(void **state)
{
    tk_state_t st = {.item = {.id = {T0, 0},
                              .text = "bell\x07 bad\xff ]]> nul-ish\x01 ok",
                              .source = "src\x02",
                              .category = -1,
                              .expires_ms = T0 + 1}};
    tk_state_t *items[] = {&st};
    tk_filter_t all;
    tk_filter_all(&all);
    tk_feed_t f = {.epoch = "e",
                   .base = BASE,
                   .stream_key = "k",
                   .filter = &all,
                   .limit = 20,
                   .items = items,
                   .n = 1};
    json_t *j = render_json(TK_FEED_JSON, &f);
    json_t *it = json_array_get(json_object_get(j, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(it, "content_text")),
                        "bell" FFFD " bad" FFFD " ]]> nul-ish" FFFD " ok");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(it, "authors"), 0), "name")),
                        "src" FFFD);
    json_decref(j);
    char *rss = render_rss(&f);
    assert_non_null(
        strstr(rss, "<title>bell" FFFD " bad" FFFD " ]]&gt; nul-ish" FFFD " ok</title>"));
    for (const char *p = rss; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n') fail_msg("control byte %d in the RSS", *p);
    free(rss);
}

static void test_many_newest_first(void **state)
{
    tk_history_t *h = tk_history_create(100, 100);
    char text[32];
    for (int i = 0; i < 30; i++) {
        snprintf(text, sizeof text, "item %d", i);
        add(h, T0 + i, KV("text", text, "lang", i % 2 ? "ar" : "en"));
    }
    fixture_t fx;
    tk_filter_all(&fx.filter);
    current(&fx, h, 25, T0 + 100);
    assert_int_equal(fx.feed.n, 25);
    json_t *j = render_json(TK_FEED_ITEMS, &fx.feed);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 25);
    for (int i = 0; i < 25; i++) { /* /v1/items: oldest first */
        snprintf(text, sizeof text, "item %d", i + 5);
        assert_string_equal(json_string_value(json_object_get(json_array_get(items, i), "text")),
                            text);
    }
    json_decref(j);
    j = render_json(TK_FEED_JSON, &fx.feed);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 25);
    for (int i = 0; i < 25; i++) { /* the feeds: newest first */
        snprintf(text, sizeof text, "item %d", 29 - i);
        json_t *it = json_array_get(items, i);
        assert_string_equal(json_string_value(json_object_get(it, "content_text")), text);
        const char *l = json_string_value(json_object_get(it, "language"));
        assert_string_equal(l, (29 - i) % 2 ? "ar" : "en");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(it, "_tickerd"), "dir")),
            (29 - i) % 2 ? "rtl" : "ltr");
    }
    json_decref(j);
    char *rss = render_rss(&fx.feed);
    assert_int_equal(count(rss, "<item "), 25);
    assert_int_equal(count(rss, "<item xml:lang=\"ar\">"), 13); /* 29, 27, ..., 5 */
    assert_int_equal(count(rss, "dir=&quot;rtl&quot;"), 13);
    char *first = rss_item(rss, 0), *last = rss_item(rss, 24);
    assert_non_null(strstr(first, "<title>item 29</title>"));
    assert_non_null(strstr(last, "<title>item 5</title>"));
    free(first);
    free(last);
    free(rss);
    tk_history_free(h);
}

static void test_update_and_retract(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    add(h, T0, KV("text", "first, wrong"));
    add(h, T0 + 1, KV("text", "second, retracted"));
    add(h, T0 + 2, KV("text", "third"));
    add(h, T0 + 3, KV("op", "update", "ref", "1732752000000-0", "text", "first, corrected"));
    add(h, T0 + 4, KV("op", "retract", "ref", "1732752000001-0"));
    fixture_t fx;
    tk_filter_all(&fx.filter);
    current(&fx, h, 20, T0 + 10);
    assert_int_equal(fx.feed.n, 2);
    json_t *j = render_json(TK_FEED_JSON, &fx.feed);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")),
                        "1732752000002-0");
    json_t *fixed = json_array_get(items, 1);
    assert_string_equal(json_string_value(json_object_get(fixed, "id")), "1732752000000-0");
    assert_string_equal(json_string_value(json_object_get(fixed, "content_text")),
                        "first, corrected");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "_tickerd"), "last_id")),
        "1732752000004-0");
    json_decref(j);
    char *rss = render_rss(&fx.feed);
    assert_null(strstr(rss, "1732752000001-0"));
    assert_null(strstr(rss, "retracted"));
    assert_null(strstr(rss, "wrong"));
    assert_non_null(strstr(rss, "<title>first, corrected</title>"));
    assert_int_equal(count(rss, "<item "), 2);
    free(rss);
    tk_history_free(h);
}

static void test_one_language_asked(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    add(h, T0, KV("text", "مسيّرة إسرائيلية", "lang", "ar", "region", "mena"));
    add(h, T0 + 1, KV("text", "English", "lang", "en", "region", "mena"));
    fixture_t fx;
    tk_filter_all(&fx.filter);
    fx.filter.langs = lang("ar");
    current(&fx, h, 20, T0 + 10);
    assert_int_equal(fx.feed.n, 1);
    char *rss = render_rss(&fx.feed);
    assert_non_null(strstr(rss, "<channel xml:lang=\"ar\">\n<language>ar</language>\n"));
    assert_non_null(strstr(rss, "<item xml:lang=\"ar\">\n<title>مسيّرة إسرائيلية</title>"));
    assert_non_null(
        strstr(rss, "&lt;p lang=&quot;ar&quot; dir=&quot;rtl&quot;&gt;مسيّرة إسرائيلية"));
    assert_null(strstr(rss, "English"));
    free(rss);
    json_t *j = render_json(TK_FEED_JSON, &fx.feed);
    assert_string_equal(json_string_value(json_object_get(j, "language")), "ar");
    assert_string_equal(json_string_value(json_object_get(j, "feed_url")),
                        BASE "/v1/feed.json?lang=ar");
    json_t *it = json_array_get(json_object_get(j, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(it, "content_html")),
                        "<p lang=\"ar\" dir=\"rtl\">مسيّرة إسرائيلية</p>");
    json_decref(j);
    /* two languages: no language for the feed, each item has its own */
    fx.filter.langs = lang("ar") | lang("en");
    current(&fx, h, 20, T0 + 10);
    assert_int_equal(fx.feed.n, 2);
    rss = render_rss(&fx.feed);
    assert_null(strstr(rss, "<language>"));
    assert_non_null(strstr(rss, "<channel>\n"));
    assert_int_equal(count(rss, "<item xml:lang=\"en\">"), 1);
    assert_int_equal(count(rss, "<item xml:lang=\"ar\">"), 1);
    free(rss);
    j = render_json(TK_FEED_JSON, &fx.feed);
    assert_null(json_object_get(j, "language"));
    json_decref(j);
    tk_history_free(h);
}

static void test_self_link_names_the_filter(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    fixture_t fx;
    tk_filter_all(&fx.filter);
    fx.filter.regions = 1ULL << tk_name_lookup(TK_NAME_REGION, "mena", 4) |
                        1ULL << tk_name_lookup(TK_NAME_REGION, "europe", 6);
    fx.filter.langs = lang("en");
    fx.filter.min_priority = TK_PRIO_URGENT;
    fx.filter.categories = 1u << tk_name_lookup(TK_NAME_CATEGORY, "sports", 6);
    current(&fx, h, 5, T0);
    json_t *j = render_json(TK_FEED_JSON, &fx.feed);
    assert_string_equal(json_string_value(json_object_get(j, "feed_url")),
                        BASE "/v1/feed.json?region=europe,mena&lang=en&priority=urgent"
                             "&category=sports&limit=5");
    const char *d = json_string_value(json_object_get(j, "description"));
    assert_non_null(strstr(d, "ticker:breaking"));
    assert_non_null(strstr(d, "region=europe,mena&lang=en"));
    json_decref(j);
    char *rss = render_rss(&fx.feed);
    assert_non_null(strstr(rss, "href=\"" BASE "/v1/feed.rss?region=europe,mena&amp;lang=en"
                                "&amp;priority=urgent&amp;category=sports&amp;limit=5\""));
    free(rss);
    /* the default limit is left out; priority normal is no filter */
    tk_filter_all(&fx.filter);
    fx.filter.min_priority = TK_PRIO_NORMAL;
    current(&fx, h, TK_FEED_DEFAULT_LIMIT, T0);
    j = render_json(TK_FEED_JSON, &fx.feed);
    assert_string_equal(json_string_value(json_object_get(j, "feed_url")), BASE "/v1/feed.json");
    json_decref(j);
    tk_history_free(h);
}

/* --- ETag --- */

static void etag_of(tk_feed_format_t fmt, const tk_feed_t *f, char out[TK_FEED_ETAG_LEN])
{
    tk_feed_etag(fmt, f, out);
    assert_int_equal(strlen(out), TK_FEED_ETAG_LEN - 1);
    assert_true(out[0] == '"' && out[TK_FEED_ETAG_LEN - 2] == '"');
}

static void test_etag_changes_with_the_answer(void **state)
{
    tk_history_t *h = tk_history_create(10, 100);
    add(h, T0, KV("text", "short", "ttl", "1"));
    add(h, T0 + 1, KV("text", "long"));
    fixture_t fx;
    tk_filter_all(&fx.filter);
    char a[TK_FEED_ETAG_LEN], b[TK_FEED_ETAG_LEN];
    current(&fx, h, 20, T0 + 500);
    etag_of(TK_FEED_RSS, &fx.feed, a);
    etag_of(TK_FEED_RSS, &fx.feed, b);
    assert_string_equal(a, b); /* the same answer, the same tag */
    /* an expiry: no new event, one item fewer */
    current(&fx, h, 20, T0 + 1000);
    assert_int_equal(fx.feed.n, 1);
    etag_of(TK_FEED_RSS, &fx.feed, b);
    assert_string_not_equal(a, b);
    current(&fx, h, 20, T0 + 500);
    char base[TK_FEED_ETAG_LEN];
    etag_of(TK_FEED_RSS, &fx.feed, base);
    assert_string_equal(base, a);
    /* each input on its own */
    tk_feed_t f = fx.feed;
    etag_of(TK_FEED_JSON, &f, b);
    assert_string_not_equal(base, b);
    etag_of(TK_FEED_ITEMS, &f, b);
    assert_string_not_equal(base, b);
    f.epoch = "e2";
    etag_of(TK_FEED_RSS, &f, b);
    assert_string_not_equal(base, b);
    f = fx.feed;
    f.last_id.seq++;
    etag_of(TK_FEED_RSS, &f, b);
    assert_string_not_equal(base, b);
    f = fx.feed;
    f.base = "http://other.example";
    etag_of(TK_FEED_RSS, &f, b);
    assert_string_not_equal(base, b);
    f = fx.feed;
    f.limit = 19;
    etag_of(TK_FEED_RSS, &f, b);
    assert_string_not_equal(base, b);
    f = fx.feed;
    tk_filter_t other = fx.filter;
    other.min_priority = TK_PRIO_URGENT;
    f.filter = &other;
    etag_of(TK_FEED_RSS, &f, b);
    assert_string_not_equal(base, b);
    f = fx.feed;
    f.n = 1;
    etag_of(TK_FEED_RSS, &f, b);
    assert_string_not_equal(base, b);
    tk_history_free(h);
}

static void test_etag_match(void **state)
{
    const char *e = "\"0123456789abcdef\"";
    assert_true(tk_etag_match("\"0123456789abcdef\"", e));
    assert_true(tk_etag_match("W/\"0123456789abcdef\"", e));
    assert_true(tk_etag_match("\"x\", \"0123456789abcdef\"", e));
    assert_true(tk_etag_match("\"x\",W/\"0123456789abcdef\" ,\"y\"", e));
    assert_true(tk_etag_match("  \"0123456789abcdef\"  ", e));
    assert_true(tk_etag_match("*", e));
    assert_false(tk_etag_match("", e));
    assert_false(tk_etag_match("\"0123456789abcde\"", e));   /* one short */
    assert_false(tk_etag_match("\"0123456789abcdef0\"", e)); /* one long */
    assert_false(tk_etag_match("0123456789abcdef", e));      /* unquoted */
    assert_false(tk_etag_match("\"0123456789abcdef", e));    /* unterminated */
    assert_false(tk_etag_match("\"x\", \"y\"", e));
    assert_false(tk_etag_match("w/\"0123456789abcdef\"", e)); /* W/ is case-sensitive */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_specials),
        cmocka_unit_test(test_escape_control_chars),
        cmocka_unit_test(test_escape_bad_utf8),
        cmocka_unit_test(test_escape_multibyte_intact),
        cmocka_unit_test(test_lang_rtl),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_one_item_json_feed),
        cmocka_unit_test(test_one_item_rss),
        cmocka_unit_test(test_item_without_url),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_unclean_text),
        cmocka_unit_test(test_many_newest_first),
        cmocka_unit_test(test_update_and_retract),
        cmocka_unit_test(test_one_language_asked),
        cmocka_unit_test(test_self_link_names_the_filter),
        cmocka_unit_test(test_etag_changes_with_the_answer),
        cmocka_unit_test(test_etag_match),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
