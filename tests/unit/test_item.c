/* test_item.c - stream entry validation (SPEC §1), item JSON and corrections. */
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
#include "tickerd/item.h"

#define ID_MS 1732752000000ULL
static const tk_id_t ID = {ID_MS, 0};

/* A NULL-terminated list of name, value pairs. */
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
static const char *const NO_FIELDS[] = {NULL};

static int idx(tk_name_kind_t kind, const char *name)
{
    int i = tk_name_lookup(kind, name, strlen(name));
    assert_true(i >= 0);
    return i;
}

static int parse_at(tk_id_t id, const char *const *kv, tk_item_t *it, tk_reject_t *rej)
{
    tk_field_t f[32];
    size_t n = 0;
    for (; kv[2 * n]; n++) {
        assert_true(n < 32);
        f[n] = (tk_field_t){kv[2 * n], strlen(kv[2 * n]), kv[2 * n + 1], strlen(kv[2 * n + 1])};
    }
    return tk_item_parse(cfg, id, f, n, it, rej);
}

static int parse(const char *const *kv, tk_item_t *it, tk_reject_t *rej)
{
    return parse_at(ID, kv, it, rej);
}

/* The reason an entry is rejected for, or TK_REJECT_NONE when accepted.
 * A rejected entry must leave the item empty. */
static tk_reason_t reason_at(tk_id_t id, const char *const *kv)
{
    tk_item_t it;
    tk_reject_t rej;
    int rc = parse_at(id, kv, &it, &rej);
    if (rc == 0) {
        tk_item_clear(&it);
        return TK_REJECT_NONE;
    }
    assert_int_equal(rc, -1);
    assert_null(it.text);
    assert_null(it.url);
    assert_null(it.source);
    assert_true(rej.reason != TK_REJECT_NONE);
    assert_true(rej.detail[0] != 0);
    return rej.reason;
}

static tk_reason_t reason(const char *const *kv)
{
    return reason_at(ID, kv);
}

/* Same, with the text field given with an explicit length (embedded NULs). */
static tk_reason_t text_reason(const char *text, size_t len)
{
    tk_field_t f = {"text", 4, text, len};
    tk_item_t it;
    tk_reject_t rej;
    if (tk_item_parse(cfg, ID, &f, 1, &it, &rej) == 0) {
        tk_item_clear(&it);
        return TK_REJECT_NONE;
    }
    assert_null(it.text);
    return rej.reason;
}

static char *repeat(const char *s, size_t times)
{
    size_t n = strlen(s);
    char *out = malloc(n * times + 1);
    assert_non_null(out);
    for (size_t i = 0; i < times; i++)
        memcpy(out + i * n, s, n);
    out[n * times] = 0;
    return out;
}

/* --- publish and defaults --- */

static void test_publish_defaults(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", "Headline"), &it, &rej), 0);
    assert_int_equal(rej.reason, TK_REJECT_NONE);
    assert_int_equal(it.id.ms, ID_MS);
    assert_int_equal(it.id.seq, 0);
    assert_int_equal(it.op, TK_OP_PUBLISH);
    assert_int_equal(it.has, TK_F_TEXT);
    assert_string_equal(it.text, "Headline");
    assert_int_equal(it.lang, cfg->default_lang);
    assert_string_equal(tk_name_of(TK_NAME_LANG, it.lang), "en");
    assert_int_equal(it.priority, TK_PRIO_BREAKING);
    assert_int_equal(it.category, -1);
    assert_int_equal(it.regions, 0);
    assert_null(it.url);
    assert_null(it.source);
    assert_int_equal(it.ttl_s, 21600);
    assert_int_equal(it.expires_ms, ID_MS + 21600 * 1000ULL);
    assert_true(tk_id_is_zero(it.ref));
    tk_item_clear(&it);
}

static void test_publish_defaults_follow_config(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    int old_lang = cfg->default_lang, old_ttl = cfg->default_ttl_s;
    cfg->default_lang = idx(TK_NAME_LANG, "ar");
    cfg->default_ttl_s = 60;
    assert_int_equal(parse_at((tk_id_t){5000, 7}, KV("text", "x"), &it, &rej), 0);
    assert_int_equal(it.lang, idx(TK_NAME_LANG, "ar"));
    assert_int_equal(it.ttl_s, 60);
    assert_int_equal(it.expires_ms, 5000 + 60000);
    tk_item_clear(&it);
    cfg->default_lang = old_lang;
    cfg->default_ttl_s = old_ttl;
}

static void test_publish_all_fields(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(
        parse(KV("lang", "ar", "region", "mena,palestine", "priority", "urgent", "category",
                 "politics", "text", "نص الخبر", "url", "https://example.com/a?b=c#d", "source",
                 "Al Mayadeen's correspondent", "ttl", "600", "op", "publish"),
              &it, &rej),
        0);
    assert_int_equal(it.op, TK_OP_PUBLISH);
    assert_int_equal(it.has, TK_F_TEXT | TK_F_LANG | TK_F_REGION | TK_F_PRIORITY | TK_F_CATEGORY |
                                 TK_F_URL | TK_F_SOURCE | TK_F_TTL);
    assert_int_equal(it.lang, idx(TK_NAME_LANG, "ar"));
    assert_int_equal(it.regions, 1ULL << idx(TK_NAME_REGION, "mena") |
                                     1ULL << idx(TK_NAME_REGION, "palestine"));
    assert_int_equal(it.priority, TK_PRIO_URGENT);
    assert_int_equal(it.category, idx(TK_NAME_CATEGORY, "politics"));
    assert_string_equal(it.text, "نص الخبر");
    assert_string_equal(it.url, "https://example.com/a?b=c#d");
    assert_string_equal(it.source, "Al Mayadeen's correspondent");
    assert_int_equal(it.ttl_s, 600);
    assert_int_equal(it.expires_ms, ID_MS + 600000);
    tk_item_clear(&it);
}

/* --- text --- */

static void test_text_required(void **state)
{
    assert_int_equal(reason(NO_FIELDS), TK_REJECT_MISSING_TEXT);
    assert_int_equal(reason(KV("lang", "en", "region", "mena")), TK_REJECT_MISSING_TEXT);
    assert_int_equal(reason(KV("text", "")), TK_REJECT_MISSING_TEXT);
    assert_int_equal(reason(KV("text", " \t\r\n ")), TK_REJECT_MISSING_TEXT);
    assert_int_equal(reason(KV("op", "update", "ref", "1-0")), TK_REJECT_MISSING_TEXT);
    assert_int_equal(reason(KV("op", "update", "ref", "1-0", "text", "  ")),
                     TK_REJECT_MISSING_TEXT);
    /* A retract needs none. */
    assert_int_equal(reason(KV("op", "retract", "ref", "1-0")), TK_REJECT_NONE);
}

static void test_text_trimmed(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", " \t Headline with  inner  spaces \n "), &it, &rej), 0);
    assert_string_equal(it.text, "Headline with  inner  spaces");
    tk_item_clear(&it);
    /* Windows line ends are whitespace too. */
    assert_int_equal(parse(KV("text", "Headline\r\n"), &it, &rej), 0);
    assert_string_equal(it.text, "Headline");
    tk_item_clear(&it);
    /* Inner tabs and newlines are kept. */
    assert_int_equal(parse(KV("text", "a\tb\nc"), &it, &rej), 0);
    assert_string_equal(it.text, "a\tb\nc");
    tk_item_clear(&it);
}

static void test_text_length(void **state)
{
    char *s = repeat("a", 1000);
    assert_int_equal(reason(KV("text", s)), TK_REJECT_NONE);
    free(s);
    s = repeat("a", 1001);
    assert_int_equal(reason(KV("text", s)), TK_REJECT_TEXT_TOO_LONG);
    free(s);
    assert_int_equal(reason(KV("text", "x")), TK_REJECT_NONE);

    /* The limit is on bytes after trimming. */
    char *body = repeat("b", 1000);
    char padded[1100];
    snprintf(padded, sizeof padded, "   %s\n\n", body);
    assert_int_equal(reason(KV("text", padded)), TK_REJECT_NONE);
    free(body);

    /* Bytes, not characters: 500 x "é" is 1000 bytes, 334 x "€" 1002. */
    s = repeat("é", 500);
    assert_int_equal(reason(KV("text", s)), TK_REJECT_NONE);
    free(s);
    s = repeat("€", 334);
    assert_int_equal(reason(KV("text", s)), TK_REJECT_TEXT_TOO_LONG);
    free(s);

    /* The limit comes from the config. */
    int old = cfg->max_text_bytes;
    cfg->max_text_bytes = 5;
    assert_int_equal(reason(KV("text", "12345")), TK_REJECT_NONE);
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", "123456"), &it, &rej), -1);
    assert_int_equal(rej.reason, TK_REJECT_TEXT_TOO_LONG);
    assert_non_null(strstr(rej.detail, "6 bytes"));
    cfg->max_text_bytes = old;
}

static void test_text_utf8_valid(void **state)
{
    static const char *const ok[] = {
        "plain ascii",       "Ünïcödé", "خبر عاجل", "Última hora: ñandú", "emoji \xf0\x9f\x93\xb0",
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xed\x9f\xbf",     /* U+D7FF */
        "\xee\x80\x80",     /* U+E000 */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "tab\tand\nnewline",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_true(tk_utf8_valid(ok[i], strlen(ok[i])));
        assert_int_equal(reason(KV("text", ok[i])), TK_REJECT_NONE);
    }
    assert_true(tk_utf8_valid("", 0));
}

static void test_text_utf8_invalid(void **state)
{
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
#define B(lit) {lit, sizeof(lit) - 1}
        B("\xc0\xaf"),                 /* overlong '/' */
        B("\xc1\xbf"),                 /* overlong */
        B("\xe0\x80\xaf"),             /* overlong, 3 bytes */
        B("\xe0\x9f\xbf"),             /* overlong U+07FF */
        B("\xf0\x80\x80\xaf"),         /* overlong, 4 bytes */
        B("\xf0\x8f\xbf\xbf"),         /* overlong U+FFFF */
        B("\xed\xa0\x80"),             /* surrogate U+D800 */
        B("\xed\xbf\xbf"),             /* surrogate U+DFFF */
        B("\xed\xa0\xbd\xed\xb2\xa9"), /* CESU-8 surrogate pair */
        B("\xf4\x90\x80\x80"),         /* U+110000 */
        B("\xf5\x80\x80\x80"),         /* lead byte past U+10FFFF */
        B("\xf8\x88\x80\x80\x80"),     /* 5-byte form */
        B("\xff"),
        B("\xfe"),
        B("\x80"),         /* lone continuation */
        B("abc\xbf"),      /* stray continuation */
        B("\xc3"),         /* truncated at the end */
        B("abc\xe2\x82"),  /* truncated 3-byte */
        B("\xf0\x9f\x93"), /* truncated 4-byte */
        B("\xc3\x28"),     /* bad continuation */
        B("\xe2\x28\xa1"),
        B("\xf0\x9f\x28\xb0"),
        B("a\0b"), /* NUL */
        B("\0"),
        B("bell\x07"),
        B("\x1b[31mred"), /* ESC */
        B("a\rb"),        /* inner CR */
        B("a\x0b"
          "b"), /* VT */
        B("a\x0c"
          "b"), /* FF */
        B("a\x7f"
          "b"), /* DEL */
#undef B
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(tk_utf8_valid(bad[i].s, bad[i].len));
        /* Surrounded by text so trimming cannot remove it. */
        char buf[64];
        buf[0] = 'x';
        memcpy(buf + 1, bad[i].s, bad[i].len);
        buf[bad[i].len + 1] = 'y';
        assert_int_equal(text_reason(buf, bad[i].len + 2), TK_REJECT_BAD_UTF8);
    }
}

/* --- lang, region, category, priority --- */

static void test_lang(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    static const char *const ok[][2] = {{"en", "en"}, {"ar", "ar"}, {"es", "es"},
                                        {"EN", "en"}, {"Ar", "ar"}, {" es ", "es"}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(parse(KV("text", "t", "lang", ok[i][0]), &it, &rej), 0);
        assert_int_equal(it.lang, idx(TK_NAME_LANG, ok[i][1]));
        assert_true(it.has & TK_F_LANG);
        tk_item_clear(&it);
    }
    assert_int_equal(reason(KV("text", "t", "lang", "fr")), TK_REJECT_BAD_LANG);
    assert_int_equal(reason(KV("text", "t", "lang", "")), TK_REJECT_BAD_LANG);
    assert_int_equal(reason(KV("text", "t", "lang", "en,ar")), TK_REJECT_BAD_LANG);
    assert_int_equal(reason(KV("text", "t", "lang", "english")), TK_REJECT_BAD_LANG);
    assert_int_equal(parse(KV("text", "t", "lang", "de"), &it, &rej), -1);
    assert_string_equal(rej.detail, "unknown lang 'de'");
}

static void test_region(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    static const struct {
        const char *v;
        const char *names[4];
    } ok[] = {
        {"mena", {"mena"}},
        {"mena,palestine", {"mena", "palestine"}},
        {"MENA, Palestine", {"mena", "palestine"}},
        {" europe ,mena ", {"europe", "mena"}},
        {"asia-pacific", {"asia-pacific"}},
        {"us-canada,latin-america,africa,asia", {"us-canada", "latin-america", "africa", "asia"}},
        {"mena,mena", {"mena"}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        uint64_t want = 0;
        for (int k = 0; k < 4 && ok[i].names[k]; k++)
            want |= 1ULL << idx(TK_NAME_REGION, ok[i].names[k]);
        assert_int_equal(parse(KV("text", "t", "region", ok[i].v), &it, &rej), 0);
        assert_int_equal(it.regions, want);
        assert_true(it.has & TK_F_REGION);
        tk_item_clear(&it);
    }
    /* Absent or empty: global. */
    assert_int_equal(parse(KV("text", "t"), &it, &rej), 0);
    assert_int_equal(it.regions, 0);
    assert_false(it.has & TK_F_REGION);
    tk_item_clear(&it);
    assert_int_equal(parse(KV("text", "t", "region", ""), &it, &rej), 0);
    assert_int_equal(it.regions, 0);
    assert_true(it.has & TK_F_REGION);
    tk_item_clear(&it);

    assert_int_equal(reason(KV("text", "t", "region", "narnia")), TK_REJECT_BAD_REGION);
    assert_int_equal(reason(KV("text", "t", "region", "mena,narnia")), TK_REJECT_BAD_REGION);
    assert_int_equal(reason(KV("text", "t", "region", "mena;palestine")), TK_REJECT_BAD_REGION);
    assert_int_equal(reason(KV("text", "t", "region", "middle east")), TK_REJECT_BAD_REGION);
    assert_int_equal(parse(KV("text", "t", "region", "mena,atlantis"), &it, &rej), -1);
    assert_string_equal(rej.detail, "unknown region 'atlantis'");
    assert_int_equal(parse(KV("text", "t", "region", "mena, Atlan tis "), &it, &rej), -1);
    assert_string_equal(rej.detail, "unknown region 'Atlan tis'");

    /* Blank is empty: global. An empty element is refused, as everywhere. */
    assert_int_equal(parse(KV("text", "t", "region", " \t "), &it, &rej), 0);
    assert_int_equal(it.regions, 0);
    tk_item_clear(&it);
    static const char *const empty_el[] = {"mena,", ",mena", "mena,,palestine", "mena, ,palestine",
                                           ",",     " , "};
    for (size_t i = 0; i < sizeof empty_el / sizeof *empty_el; i++) {
        assert_int_equal(parse(KV("text", "t", "region", empty_el[i]), &it, &rej), -1);
        assert_int_equal(rej.reason, TK_REJECT_BAD_REGION);
        assert_string_equal(rej.detail, "region list has an empty element");
    }
    /* Every configured region at once (the widest list), in any case. */
    assert_int_equal(parse(KV("text", "t", "region",
                              "AFRICA,asia,Asia-Pacific,europe,latin-america,mena,PALESTINE,"
                              "us-canada,Mena"),
                           &it, &rej),
                     0);
    assert_int_equal(it.regions, cfg->regions);
    tk_item_clear(&it);
}

/* One case rule: every name field matches whatever its case and is
 * reported in lower case. */
static void test_names_any_case(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", "t", "lang", "AR", "region", "MENA, Palestine", "priority",
                              "URGENT", "category", "Politics", "op", "Publish"),
                           &it, &rej),
                     0);
    assert_int_equal(it.lang, idx(TK_NAME_LANG, "ar"));
    assert_int_equal(it.regions, 1ULL << idx(TK_NAME_REGION, "mena") |
                                     1ULL << idx(TK_NAME_REGION, "palestine"));
    assert_int_equal(it.priority, TK_PRIO_URGENT);
    assert_int_equal(it.category, idx(TK_NAME_CATEGORY, "politics"));
    size_t len;
    char *json = tk_item_encode("item", it.id, NULL, &it, false, &len);
    assert_non_null(strstr(json, "\"lang\":\"ar\",\"region\":[\"mena\",\"palestine\"],"
                                 "\"priority\":\"urgent\",\"category\":\"politics\""));
    free(json);
    tk_item_clear(&it);
    /* The same in the json form, with a region array. */
    assert_int_equal(
        parse(KV("json", "{\"text\":\"t\",\"lang\":\"Es\",\"region\":[\"EUROPE\","
                         "\" asia \"],\"priority\":\"Flash\",\"category\":\"SPORTS\"}"),
              &it, &rej),
        0);
    assert_int_equal(it.lang, idx(TK_NAME_LANG, "es"));
    assert_int_equal(it.regions,
                     1ULL << idx(TK_NAME_REGION, "europe") | 1ULL << idx(TK_NAME_REGION, "asia"));
    assert_int_equal(it.priority, TK_PRIO_FLASH);
    assert_int_equal(it.category, idx(TK_NAME_CATEGORY, "sports"));
    tk_item_clear(&it);
}

/* A name known to the process but not in this config's list is refused. */
static void test_names_against_config_lists(void **state)
{
    char err[256];
    tk_config_t *narrow = tk_config_create();
    assert_non_null(narrow);
    assert_int_equal(tk_config_set(narrow, "lists", "regions", "mena,europe", err, sizeof err), 0);
    assert_int_equal(tk_config_set(narrow, "lists", "languages", "en", err, sizeof err), 0);
    assert_int_equal(tk_config_set(narrow, "lists", "categories", "sports", err, sizeof err), 0);
    tk_config_t *saved = cfg;
    cfg = narrow;
    assert_int_equal(reason(KV("text", "t", "region", "europe")), TK_REJECT_NONE);
    assert_int_equal(reason(KV("text", "t", "region", "asia")), TK_REJECT_BAD_REGION);
    assert_int_equal(reason(KV("text", "t", "lang", "en")), TK_REJECT_NONE);
    assert_int_equal(reason(KV("text", "t", "lang", "ar")), TK_REJECT_BAD_LANG);
    assert_int_equal(reason(KV("text", "t", "category", "sports")), TK_REJECT_NONE);
    assert_int_equal(reason(KV("text", "t", "category", "politics")), TK_REJECT_BAD_CATEGORY);
    cfg = saved;
    tk_config_free(narrow);
}

static void test_priority(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    static const struct {
        const char *v;
        int p;
    } ok[] = {{"normal", TK_PRIO_NORMAL}, {"breaking", TK_PRIO_BREAKING},
              {"urgent", TK_PRIO_URGENT}, {"flash", TK_PRIO_FLASH},
              {"FLASH", TK_PRIO_FLASH},   {" Urgent ", TK_PRIO_URGENT}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(parse(KV("text", "t", "priority", ok[i].v), &it, &rej), 0);
        assert_int_equal(it.priority, ok[i].p);
        assert_true(it.has & TK_F_PRIORITY);
        tk_item_clear(&it);
    }
    assert_int_equal(reason(KV("text", "t", "priority", "critical")), TK_REJECT_BAD_PRIORITY);
    assert_int_equal(reason(KV("text", "t", "priority", "")), TK_REJECT_BAD_PRIORITY);
    assert_int_equal(reason(KV("text", "t", "priority", "2")), TK_REJECT_BAD_PRIORITY);
    assert_int_equal(reason(KV("text", "t", "priority", "urgentx")), TK_REJECT_BAD_PRIORITY);

    assert_true(TK_PRIO_NORMAL < TK_PRIO_BREAKING && TK_PRIO_BREAKING < TK_PRIO_URGENT &&
                TK_PRIO_URGENT < TK_PRIO_FLASH);
    assert_string_equal(tk_priority_name(TK_PRIO_NORMAL), "normal");
    assert_string_equal(tk_priority_name(TK_PRIO_FLASH), "flash");
    assert_int_equal(tk_priority_lookup("Breaking", 8), TK_PRIO_BREAKING);
    assert_int_equal(tk_priority_lookup("urgent!", 7), -1);
    assert_int_equal(tk_priority_lookup("urgent!", 6), TK_PRIO_URGENT);
}

static void test_category(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    static const char *const all[] = {"politics", "economy",       "sports",     "arts-culture",
                                      "health",   "miscellaneous", "technology", "environment"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        assert_int_equal(parse(KV("text", "t", "category", all[i]), &it, &rej), 0);
        assert_int_equal(it.category, idx(TK_NAME_CATEGORY, all[i]));
        tk_item_clear(&it);
    }
    assert_int_equal(parse(KV("text", "t", "category", " Sports "), &it, &rej), 0);
    assert_int_equal(it.category, idx(TK_NAME_CATEGORY, "sports"));
    tk_item_clear(&it);
    /* Empty: no category (an update uses it to clear one). */
    assert_int_equal(parse(KV("text", "t", "category", ""), &it, &rej), 0);
    assert_int_equal(it.category, -1);
    assert_true(it.has & TK_F_CATEGORY);
    tk_item_clear(&it);
    assert_int_equal(reason(KV("text", "t", "category", "weather")), TK_REJECT_BAD_CATEGORY);
    assert_int_equal(reason(KV("text", "t", "category", "politics,sports")),
                     TK_REJECT_BAD_CATEGORY);
}

/* --- url, source, ttl --- */

static void test_url(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    static const char *const ok[] = {
        "https://example.com/a?b=c#d",    "http://x.y",
        "HTTPS://EXAMPLE.COM/Path",       "https://example.com:8443/",
        "https://user@example.com/p%20q", "https://例え.jp/記事",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(parse(KV("text", "t", "url", ok[i]), &it, &rej), 0);
        assert_string_equal(it.url, ok[i]);
        assert_true(it.has & TK_F_URL);
        tk_item_clear(&it);
    }
    assert_int_equal(parse(KV("text", "t", "url", "  https://a.example/x \n"), &it, &rej), 0);
    assert_string_equal(it.url, "https://a.example/x");
    tk_item_clear(&it);
    /* Empty: no url. */
    assert_int_equal(parse(KV("text", "t", "url", ""), &it, &rej), 0);
    assert_null(it.url);
    assert_false(it.has & TK_F_URL);
    tk_item_clear(&it);

    static const char *const bad[] = {
        "ftp://example.com/f",  "example.com/a",      "//example.com/a",
        "/relative/path",       "https://",           "http://",
        "https:///path",        "https://?q",         "https://#frag",
        "https://exa mple.com", "https://a.com/b c",  "https://a.com/\tx",
        "https://a.com/\x01",   "https://a.com/\x7f", "javascript:alert(1)",
        "mailto:a@b.c",         "https:example.com",  "https://a.com/\xc0\xaf",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(reason(KV("text", "t", "url", bad[i])), TK_REJECT_BAD_URL);

    /* At most 2048 bytes. */
    char url[2100];
    strcpy(url, "https://example.com/");
    size_t n = strlen(url);
    memset(url + n, 'a', 2048 - n);
    url[2048] = 0;
    assert_int_equal(reason(KV("text", "t", "url", url)), TK_REJECT_NONE);
    url[2048] = 'a';
    url[2049] = 0;
    assert_int_equal(reason(KV("text", "t", "url", url)), TK_REJECT_BAD_URL);
}

static void test_source(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    char *s = repeat("s", 200);
    assert_int_equal(parse(KV("text", "t", "source", s), &it, &rej), 0);
    assert_string_equal(it.source, s);
    tk_item_clear(&it);
    free(s);
    s = repeat("s", 201);
    assert_int_equal(reason(KV("text", "t", "source", s)), TK_REJECT_BAD_SOURCE);
    free(s);
    s = repeat("ب", 100); /* 200 bytes */
    assert_int_equal(reason(KV("text", "t", "source", s)), TK_REJECT_NONE);
    free(s);
    assert_int_equal(parse(KV("text", "t", "source", "  Reuters  "), &it, &rej), 0);
    assert_string_equal(it.source, "Reuters");
    tk_item_clear(&it);
    assert_int_equal(parse(KV("text", "t", "source", ""), &it, &rej), 0);
    assert_null(it.source);
    assert_false(it.has & TK_F_SOURCE);
    tk_item_clear(&it);
    assert_int_equal(reason(KV("text", "t", "source", "bad \xc3\x28")), TK_REJECT_BAD_SOURCE);
    assert_int_equal(reason(KV("text", "t", "source", "bell \x07 x")), TK_REJECT_BAD_SOURCE);
}

static void test_ttl(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    static const struct {
        const char *v;
        uint32_t s;
    } ok[] = {{"1", 1},     {"60", 60},     {"2592000", 2592000}, {" 300 ", 300},
              {"0060", 60}, {"\t2\r\n", 2}, {"02592000", 2592000}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(parse(KV("text", "t", "ttl", ok[i].v), &it, &rej), 0);
        assert_int_equal(it.ttl_s, ok[i].s);
        assert_int_equal(it.expires_ms, ID_MS + (uint64_t)ok[i].s * 1000);
        assert_true(it.has & TK_F_TTL);
        tk_item_clear(&it);
    }
    static const char *const bad[] = {
        "0",    "2592001",  "-5",   "1.5", "60s", "",    "abc",        "+60",
        "1e3",  "99999999", "0x10", " ",   "-0",  "6 0", "4294967297", "99999999999999999999999",
        "00000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(reason(KV("text", "t", "ttl", bad[i])), TK_REJECT_BAD_TTL);
}

/* --- pin --- */

static void test_pin(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", "t"), &it, &rej), 0);
    assert_false(it.pinned || it.has & TK_F_PIN);
    tk_item_clear(&it);
    static const struct {
        const char *v;
        bool pinned;
    } ok[] = {{"1", true}, {"0", false}, {" 1 ", true}, {"\t0\r\n", false}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(parse(KV("text", "t", "pin", ok[i].v), &it, &rej), 0);
        assert_int_equal(it.pinned, ok[i].pinned);
        assert_true(it.has & TK_F_PIN);
        char *json = tk_item_encode("item", it.id, NULL, &it, false, NULL);
        assert_int_equal(strstr(json, "\"pinned\":true") != NULL, ok[i].pinned);
        free(json);
        tk_item_clear(&it);
    }
    static const char *const bad[] = {"2", "01", "", "yes", "true", "-1", "1 1", "10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(reason(KV("text", "t", "pin", bad[i])), TK_REJECT_BAD_PIN);
    assert_int_equal(reason(KV("text", "t", "pin", "1", "pin", "1")), TK_REJECT_DUPLICATE_FIELD);
    /* an update carrying pin needs no text; one without pin still does;
     * a publish always does */
    assert_int_equal(reason(KV("op", "update", "ref", "1-0", "pin", "0")), TK_REJECT_NONE);
    assert_int_equal(reason(KV("op", "update", "ref", "1-0", "lang", "ar")),
                     TK_REJECT_MISSING_TEXT);
    assert_int_equal(reason(KV("pin", "1")), TK_REJECT_MISSING_TEXT);
    /* the json form: true/false and 1/0 */
    assert_int_equal(reason(KV("json", "{\"text\":\"t\",\"pin\":true}")), TK_REJECT_NONE);
    assert_int_equal(reason(KV("json", "{\"text\":\"t\",\"pin\":0}")), TK_REJECT_NONE);
    assert_int_equal(reason(KV("json", "{\"text\":\"t\",\"pin\":2}")), TK_REJECT_BAD_PIN);
    assert_int_equal(reason(KV("json", "{\"text\":\"t\",\"pin\":\"x\"}")), TK_REJECT_BAD_PIN);
    assert_int_equal(reason(KV("json", "{\"text\":\"t\",\"pin\":[1]}")), TK_REJECT_BAD_JSON);
    /* an update applies pin only when it carries it */
    tk_item_t orig, upd;
    assert_int_equal(parse(KV("text", "t", "pin", "1"), &orig, &rej), 0);
    assert_int_equal(parse_at((tk_id_t){ID_MS + 1, 0},
                              KV("op", "update", "ref", "1-0", "text", "u"), &upd, &rej),
                     0);
    assert_int_equal(tk_item_apply_update(&orig, &upd), 0);
    assert_true(orig.pinned);
    tk_item_clear(&upd);
    assert_int_equal(
        parse_at((tk_id_t){ID_MS + 2, 0}, KV("op", "update", "ref", "1-0", "pin", "0"), &upd, &rej),
        0);
    assert_int_equal(tk_item_apply_update(&orig, &upd), 0);
    assert_false(orig.pinned);
    assert_string_equal(orig.text, "u");
    tk_item_clear(&upd);
    tk_item_clear(&orig);
}

/* --- op and ref --- */

static void test_op(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", "t", "op", "PUBLISH"), &it, &rej), 0);
    assert_int_equal(it.op, TK_OP_PUBLISH);
    tk_item_clear(&it);
    assert_int_equal(parse(KV("text", "t", "op", "update", "ref", "1732751999999-3"), &it, &rej),
                     0);
    assert_int_equal(it.op, TK_OP_UPDATE);
    assert_int_equal(it.ref.ms, 1732751999999ULL);
    assert_int_equal(it.ref.seq, 3);
    assert_int_equal(it.has, TK_F_TEXT);
    tk_item_clear(&it);
    assert_int_equal(parse(KV("op", "Retract", "ref", "1-0"), &it, &rej), 0);
    assert_int_equal(it.op, TK_OP_RETRACT);
    assert_int_equal(it.has, 0);
    assert_null(it.text);
    tk_item_clear(&it);

    assert_int_equal(reason(KV("text", "t", "op", "delete")), TK_REJECT_BAD_OP);
    assert_int_equal(reason(KV("text", "t", "op", "")), TK_REJECT_BAD_OP);
    assert_int_equal(reason(KV("text", "t", "op", "updates", "ref", "1-0")), TK_REJECT_BAD_OP);
}

static void test_ref(void **state)
{
    tk_id_t id = {ID_MS, 5};
    /* Required for update and retract. */
    assert_int_equal(reason_at(id, KV("op", "update", "text", "t")), TK_REJECT_BAD_REF);
    assert_int_equal(reason_at(id, KV("op", "retract")), TK_REJECT_BAD_REF);
    assert_int_equal(reason_at(id, KV("op", "retract", "ref", "")), TK_REJECT_BAD_REF);
    /* Must be a stream ID. */
    static const char *const bad[] = {"abc", "0-0",   "1732752000000", "-1",
                                      "1-",  "1-2-3", "1.5-0",         "99999999999999999999999-0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(reason_at(id, KV("op", "retract", "ref", bad[i])), TK_REJECT_BAD_REF);
    /* Must be before the entry itself. */
    assert_int_equal(reason_at(id, KV("op", "retract", "ref", "1732752000000-5")),
                     TK_REJECT_BAD_REF);
    assert_int_equal(reason_at(id, KV("op", "retract", "ref", "1732752000000-6")),
                     TK_REJECT_BAD_REF);
    assert_int_equal(reason_at(id, KV("op", "retract", "ref", "1732752000001-0")),
                     TK_REJECT_BAD_REF);
    assert_int_equal(reason_at(id, KV("op", "retract", "ref", "1732752000000-4")), TK_REJECT_NONE);
    assert_int_equal(reason_at(id, KV("op", "update", "text", "t", "ref", " 1-0 ")),
                     TK_REJECT_NONE);
    /* A publish ignores a valid ref but still refuses a malformed one. */
    assert_int_equal(reason_at(id, KV("text", "t", "ref", "1-0")), TK_REJECT_NONE);
    assert_int_equal(reason_at(id, KV("text", "t", "ref", "nope")), TK_REJECT_BAD_REF);
}

/* --- entry shape --- */

static void test_duplicate_fields(void **state)
{
    assert_int_equal(reason(KV("text", "a", "text", "b")), TK_REJECT_DUPLICATE_FIELD);
    assert_int_equal(reason(KV("text", "a", "region", "mena", "region", "europe")),
                     TK_REJECT_DUPLICATE_FIELD);
    assert_int_equal(reason(KV("text", "a", "lang", "en", "lang", "en")),
                     TK_REJECT_DUPLICATE_FIELD);
    assert_int_equal(reason(KV("op", "retract", "ref", "1-0", "ref", "2-0")),
                     TK_REJECT_DUPLICATE_FIELD);
    assert_int_equal(reason(KV("json", "{}", "json", "{}")), TK_REJECT_DUPLICATE_FIELD);
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("text", "a", "ttl", "5", "ttl", "5"), &it, &rej), -1);
    assert_string_equal(rej.detail, "field 'ttl' given twice");
    /* Unknown fields may repeat: they are ignored. */
    assert_int_equal(reason(KV("text", "a", "author", "x", "author", "y")), TK_REJECT_NONE);
}

static void test_unknown_fields_ignored(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("author", "jane", "text", "t", "Text", "upper case is not ours",
                              "priority_level", "9", "x", "\xff\xfe"),
                           &it, &rej),
                     0);
    assert_string_equal(it.text, "t");
    assert_int_equal(it.has, TK_F_TEXT);
    assert_int_equal(it.priority, TK_PRIO_BREAKING);
    tk_item_clear(&it);
}

static void test_reject_leaves_item_empty(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    /* Strings already copied are released when a later field fails. */
    assert_int_equal(
        parse(KV("text", "t", "source", "s", "url", "https://a.b/", "ttl", "0"), &it, &rej), -1);
    assert_int_equal(rej.reason, TK_REJECT_BAD_TTL);
    assert_null(it.text);
    assert_null(it.source);
    assert_null(it.url);
    tk_item_clear(&it); /* harmless on an empty item */
}

static void test_reason_names(void **state)
{
    for (int i = 0; i < TK_REJECT_REASONS; i++) {
        assert_non_null(tk_reason_names[i]);
        for (const char *p = tk_reason_names[i]; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
    }
    assert_string_equal(tk_reason_names[TK_REJECT_MISSING_TEXT], "missing_text");
    assert_string_equal(tk_reason_names[TK_REJECT_BAD_UTF8], "bad_utf8");
    assert_string_equal(tk_reason_names[TK_REJECT_OUT_OF_ORDER], "out_of_order");
    assert_string_equal(tk_reason_names[TK_REJECT_DUPLICATE_FIELD], "duplicate_field");
}

/* --- the json form --- */

static void test_json_form(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(
        parse(KV("json", "{\"text\":\"  From JSON \",\"lang\":\"es\",\"region\":[\"mena\","
                         "\"Palestine\"],\"priority\":\"flash\",\"category\":\"health\","
                         "\"url\":\"https://e.com/x\",\"source\":\"AFP\",\"ttl\":120,"
                         "\"extra\":{\"ignored\":[1,2]},\"json\":5}"),
              &it, &rej),
        0);
    assert_string_equal(it.text, "From JSON");
    assert_int_equal(it.lang, idx(TK_NAME_LANG, "es"));
    assert_int_equal(it.regions, 1ULL << idx(TK_NAME_REGION, "mena") |
                                     1ULL << idx(TK_NAME_REGION, "palestine"));
    assert_int_equal(it.priority, TK_PRIO_FLASH);
    assert_int_equal(it.category, idx(TK_NAME_CATEGORY, "health"));
    assert_string_equal(it.url, "https://e.com/x");
    assert_string_equal(it.source, "AFP");
    assert_int_equal(it.ttl_s, 120);
    assert_int_equal(it.expires_ms, ID_MS + 120000);
    tk_item_clear(&it);

    /* Strings work as in the plain form: region a comma list, ttl a string. */
    assert_int_equal(
        parse(KV("json", "{\"text\":\"t\",\"region\":\"europe,asia\",\"ttl\":\"30\"}"), &it, &rej),
        0);
    assert_int_equal(it.regions,
                     1ULL << idx(TK_NAME_REGION, "europe") | 1ULL << idx(TK_NAME_REGION, "asia"));
    assert_int_equal(it.ttl_s, 30);
    tk_item_clear(&it);

    /* An empty region array is global. */
    assert_int_equal(parse(KV("json", "{\"text\":\"t\",\"region\":[]}"), &it, &rej), 0);
    assert_int_equal(it.regions, 0);
    tk_item_clear(&it);

    /* Update and retract. */
    assert_int_equal(
        parse(KV("json", "{\"op\":\"update\",\"ref\":\"1-0\",\"text\":\"fixed\"}"), &it, &rej), 0);
    assert_int_equal(it.op, TK_OP_UPDATE);
    assert_int_equal(it.ref.ms, 1);
    assert_int_equal(it.has, TK_F_TEXT);
    tk_item_clear(&it);
    assert_int_equal(reason(KV("json", "{\"op\":\"retract\",\"ref\":\"1-0\"}")), TK_REJECT_NONE);

    /* Plain fields next to it are not read. */
    assert_int_equal(reason(KV("json", "{\"text\":\"t\"}", "author", "x")), TK_REJECT_NONE);
}

static void test_json_form_rejects(void **state)
{
    static const struct {
        const char *json;
        tk_reason_t why;
    } bad[] = {
        {"", TK_REJECT_BAD_JSON},
        {"not json", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\"", TK_REJECT_BAD_JSON},
        {"[\"text\",\"t\"]", TK_REJECT_BAD_JSON},
        {"\"text\"", TK_REJECT_BAD_JSON},
        {"42", TK_REJECT_BAD_JSON},
        {"{\"text\":\"a\",\"text\":\"b\"}", TK_REJECT_BAD_JSON},
        {"{\"text\":42}", TK_REJECT_BAD_JSON},
        {"{\"text\":null}", TK_REJECT_BAD_JSON},
        {"{\"text\":[\"a\"]}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"lang\":[\"en\"]}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"region\":[\"mena\",5]}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"region\":[[\"mena\"]]}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"region\":{\"mena\":true}}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"ttl\":1.5}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"ttl\":true}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"priority\":3}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"t\",\"ref\":1}", TK_REJECT_BAD_JSON},
        {"{\"text\":\"a\\u0000b\"}", TK_REJECT_BAD_JSON},
        /* The plain rules still apply. */
        {"{}", TK_REJECT_MISSING_TEXT},
        {"{\"text\":\"   \"}", TK_REJECT_MISSING_TEXT},
        {"{\"text\":\"bell\\u0007\"}", TK_REJECT_BAD_UTF8},
        {"{\"text\":\"t\",\"lang\":\"fr\"}", TK_REJECT_BAD_LANG},
        {"{\"text\":\"t\",\"region\":[\"mena\",\"narnia\"]}", TK_REJECT_BAD_REGION},
        {"{\"text\":\"t\",\"region\":[\"mena\",\"\"]}", TK_REJECT_BAD_REGION},
        {"{\"text\":\"t\",\"region\":[\" \"]}", TK_REJECT_BAD_REGION},
        {"{\"text\":\"t\",\"region\":[\"mena,asia\"]}", TK_REJECT_BAD_REGION},
        {"{\"text\":\"t\",\"region\":\"mena,\"}", TK_REJECT_BAD_REGION},
        {"{\"text\":\"t\",\"ttl\":\"+60\"}", TK_REJECT_BAD_TTL},
        {"{\"text\":\"t\",\"ttl\":99999999999}", TK_REJECT_BAD_TTL},
        {"{\"text\":\"t\",\"ttl\":0}", TK_REJECT_BAD_TTL},
        {"{\"text\":\"t\",\"ttl\":-1}", TK_REJECT_BAD_TTL},
        {"{\"text\":\"t\",\"ttl\":2592001}", TK_REJECT_BAD_TTL},
        {"{\"text\":\"t\",\"url\":\"ftp://x\"}", TK_REJECT_BAD_URL},
        {"{\"op\":\"retract\"}", TK_REJECT_BAD_REF},
        {"{\"op\":\"kill\",\"ref\":\"1-0\"}", TK_REJECT_BAD_OP},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(reason(KV("json", bad[i].json)), bad[i].why);
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse(KV("json", "{\"text\":\"t\",\"ttl\":[60]}"), &it, &rej), -1);
    assert_string_equal(rej.detail, "json key 'ttl' has the wrong type");
    /* An array element is one name: a comma inside does not make two. */
    assert_int_equal(parse(KV("json", "{\"text\":\"t\",\"region\":[\"mena,asia\"]}"), &it, &rej),
                     -1);
    assert_string_equal(rej.detail, "unknown region 'mena,asia'");
    assert_int_equal(parse(KV("json", "{\"text\":\"t\",\"region\":[\"mena\",\" \"]}"), &it, &rej),
                     -1);
    assert_string_equal(rej.detail, "region list has an empty element");
}

/* --- encoding --- */

static void test_encode_item(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(
        parse(KV("lang", "en", "region", "palestine,mena", "priority", "urgent", "category",
                 "politics", "text",
                 "An Israeli drone attacked a vehicle in the town of Toul, Nabatieh District",
                 "url", "https://www.almayadeen.net/news/1", "source",
                 "Al Mayadeen's correspondent"),
              &it, &rej),
        0);
    static const char want[] =
        "{\"type\":\"item\",\"id\":\"1732752000000-0\",\"ts\":1732752000000,\"lang\":\"en\","
        "\"region\":[\"mena\",\"palestine\"],\"priority\":\"urgent\",\"category\":\"politics\","
        "\"text\":\"An Israeli drone attacked a vehicle in the town of Toul, Nabatieh District\","
        "\"url\":\"https://www.almayadeen.net/news/1\",\"source\":\"Al Mayadeen's "
        "correspondent\",\"expires\":1732773600000}";
    size_t len = 0;
    char *s = tk_item_encode("item", it.id, NULL, &it, false, &len);
    assert_non_null(s);
    assert_string_equal(s, want);
    assert_int_equal(len, sizeof want - 1);
    free(s);

    /* The replay variant ends with "replay":true. */
    static const char want_replay[] =
        "{\"type\":\"item\",\"id\":\"1732752000000-0\",\"ts\":1732752000000,\"lang\":\"en\","
        "\"region\":[\"mena\",\"palestine\"],\"priority\":\"urgent\",\"category\":\"politics\","
        "\"text\":\"An Israeli drone attacked a vehicle in the town of Toul, Nabatieh District\","
        "\"url\":\"https://www.almayadeen.net/news/1\",\"source\":\"Al Mayadeen's "
        "correspondent\",\"expires\":1732773600000,\"replay\":true}";
    s = tk_item_encode("item", it.id, NULL, &it, true, &len);
    assert_string_equal(s, want_replay);
    assert_int_equal(len, sizeof want_replay - 1);
    free(s);

    /* An update names its own ID and the original's; ts is the item's. */
    tk_id_t upd = {ID_MS + 5000, 2};
    s = tk_item_encode("update", upd, &it.id, &it, false, NULL);
    assert_non_null(s);
    static const char prefix[] = "{\"type\":\"update\",\"id\":\"1732752005000-2\",\"ref\":"
                                 "\"1732752000000-0\",\"ts\":1732752000000,\"lang\":\"en\",";
    assert_memory_equal(s, prefix, sizeof prefix - 1);
    free(s);
    tk_item_clear(&it);
}

static void test_encode_minimal_and_escaping(void **state)
{
    tk_item_t it;
    tk_reject_t rej;
    assert_int_equal(parse_at((tk_id_t){1000, 1},
                              KV("text", "He said \"stop\"\nback\\slash / é", "ttl", "5"), &it,
                              &rej),
                     0);
    size_t len;
    char *s = tk_item_encode("item", it.id, NULL, &it, false, &len);
    assert_string_equal(s, "{\"type\":\"item\",\"id\":\"1000-1\",\"ts\":1000,\"lang\":\"en\","
                           "\"region\":[],\"priority\":\"breaking\",\"text\":\"He said "
                           "\\\"stop\\\"\\nback\\\\slash / é\",\"expires\":6000}");
    assert_int_equal(len, strlen(s));
    free(s);
    tk_item_clear(&it);

    /* A retract carries no item. */
    tk_id_t ref = {1000, 1};
    s = tk_item_encode("retract", (tk_id_t){2000, 0}, &ref, NULL, false, &len);
    assert_string_equal(s, "{\"type\":\"retract\",\"id\":\"2000-0\",\"ref\":\"1000-1\"}");
    assert_int_equal(len, strlen(s));
    free(s);
    s = tk_item_encode("retract", (tk_id_t){2000, 0}, &ref, NULL, true, &len);
    assert_string_equal(
        s, "{\"type\":\"retract\",\"id\":\"2000-0\",\"ref\":\"1000-1\",\"replay\":true}");
    free(s);
}

/* --- corrections --- */

static void test_apply_update(void **state)
{
    tk_item_t orig, upd;
    tk_reject_t rej;
    assert_int_equal(
        parse(KV("text", "original", "lang", "ar", "region", "mena", "priority", "normal",
                 "category", "sports", "url", "https://a.example/1", "source", "src", "ttl", "100"),
              &orig, &rej),
        0);
    /* Only text and priority: the rest is kept, even though the update
     * itself was given defaults for lang and ttl. */
    tk_id_t uid = {ID_MS + 1000, 0};
    assert_int_equal(parse_at(uid,
                              KV("op", "update", "ref", "1732752000000-0", "text", "corrected",
                                 "priority", "flash"),
                              &upd, &rej),
                     0);
    assert_int_equal(tk_item_apply_update(&orig, &upd), 0);
    assert_string_equal(orig.text, "corrected");
    assert_int_equal(orig.priority, TK_PRIO_FLASH);
    assert_int_equal(orig.lang, idx(TK_NAME_LANG, "ar"));
    assert_int_equal(orig.regions, 1ULL << idx(TK_NAME_REGION, "mena"));
    assert_int_equal(orig.category, idx(TK_NAME_CATEGORY, "sports"));
    assert_string_equal(orig.url, "https://a.example/1");
    assert_string_equal(orig.source, "src");
    assert_int_equal(orig.ttl_s, 100);
    assert_int_equal(orig.expires_ms, ID_MS + 100000);
    assert_int_equal(orig.id.ms, ID_MS);
    assert_int_equal(orig.op, TK_OP_PUBLISH);
    assert_ptr_not_equal(orig.text, upd.text);
    tk_item_clear(&upd);

    /* Every field replaced; empty region and category clear them; ttl
     * counts from the update. */
    assert_int_equal(parse_at(uid,
                              KV("op", "update", "ref", "1732752000000-0", "text", "again", "lang",
                                 "es", "region", "", "category", "", "url", "https://b.example/2",
                                 "source", "other", "ttl", "50", "priority", "urgent"),
                              &upd, &rej),
                     0);
    assert_int_equal(tk_item_apply_update(&orig, &upd), 0);
    assert_string_equal(orig.text, "again");
    assert_int_equal(orig.lang, idx(TK_NAME_LANG, "es"));
    assert_int_equal(orig.regions, 0);
    assert_int_equal(orig.category, -1);
    assert_string_equal(orig.url, "https://b.example/2");
    assert_string_equal(orig.source, "other");
    assert_int_equal(orig.priority, TK_PRIO_URGENT);
    assert_int_equal(orig.ttl_s, 50);
    assert_int_equal(orig.expires_ms, ID_MS + 1000 + 50000);
    tk_item_clear(&upd);
    tk_item_clear(&orig);
}

static void test_item_copy(void **state)
{
    tk_item_t a, b;
    tk_reject_t rej;
    assert_int_equal(
        parse(KV("text", "t", "url", "https://x.example/", "region", "asia"), &a, &rej), 0);
    assert_int_equal(tk_item_copy(&b, &a), 0);
    assert_string_equal(b.text, "t");
    assert_string_equal(b.url, "https://x.example/");
    assert_null(b.source);
    assert_ptr_not_equal(a.text, b.text);
    assert_ptr_not_equal(a.url, b.url);
    assert_int_equal(b.regions, a.regions);
    assert_int_equal(b.expires_ms, a.expires_ms);
    tk_item_clear(&a);
    assert_string_equal(b.text, "t");
    tk_item_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_defaults),
        cmocka_unit_test(test_publish_defaults_follow_config),
        cmocka_unit_test(test_publish_all_fields),
        cmocka_unit_test(test_text_required),
        cmocka_unit_test(test_text_trimmed),
        cmocka_unit_test(test_text_length),
        cmocka_unit_test(test_text_utf8_valid),
        cmocka_unit_test(test_text_utf8_invalid),
        cmocka_unit_test(test_lang),
        cmocka_unit_test(test_region),
        cmocka_unit_test(test_names_against_config_lists),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_names_any_case),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_pin),
        cmocka_unit_test(test_op),
        cmocka_unit_test(test_ref),
        cmocka_unit_test(test_duplicate_fields),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_reject_leaves_item_empty),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_json_form),
        cmocka_unit_test(test_json_form_rejects),
        cmocka_unit_test(test_encode_item),
        cmocka_unit_test(test_encode_minimal_and_escaping),
        cmocka_unit_test(test_apply_update),
        cmocka_unit_test(test_item_copy),
    };
    return cmocka_run_group_tests_name("item", tests, setup, teardown);
}
