/* test_filter.c - filter matching, query strings and subscribe frames (SPEC §2). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickerd/config.h"
#include "fixture.h"
#include "tickerd/filter.h"
#include "tickerd/item.h"

static char err[256];

static int idx(tk_name_kind_t kind, const char *name)
{
    int i = tk_name_lookup(kind, name, strlen(name));
    assert_true(i >= 0);
    return i;
}

static uint64_t region(const char *name)
{
    return 1ULL << idx(TK_NAME_REGION, name);
}

static uint32_t lang(const char *name)
{
    return 1u << idx(TK_NAME_LANG, name);
}

static uint32_t cat(const char *name)
{
    return 1u << idx(TK_NAME_CATEGORY, name);
}

static tk_match_key_t key(uint64_t regions, const char *l, int prio, const char *c)
{
    return (tk_match_key_t){regions, (uint8_t)idx(TK_NAME_LANG, l), (uint8_t)prio,
                            (int8_t)(c ? idx(TK_NAME_CATEGORY, c) : TK_KEY_NO_CATEGORY)};
}

static int query(const char *q, tk_sub_req_t *req)
{
    tk_sub_req_init(req);
    err[0] = 0;
    return tk_query_parse(cfg, q, req, err, sizeof err);
}

static int subscribe(const char *json, tk_sub_req_t *req)
{
    json_error_t jerr;
    json_t *obj = json_loads(json, 0, &jerr);
    assert_non_null(obj);
    err[0] = 0;
    int rc = tk_subscribe_parse(cfg, obj, req, err, sizeof err);
    json_decref(obj);
    return rc;
}

/* --- matching --- */

static void test_filter_all(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    assert_int_equal(f.langs, TK_ALL32);
    assert_int_equal(f.categories, TK_ALL32);
    assert_int_equal(f.regions, TK_ALL64);
    assert_int_equal(f.min_priority, TK_PRIO_NORMAL);
    tk_match_key_t keys[] = {
        key(0, "en", TK_PRIO_NORMAL, NULL),
        key(region("mena") | region("europe"), "ar", TK_PRIO_FLASH, "sports"),
        {region("asia"), TK_KEY_ANY_LANG, TK_PRIO_FLASH, TK_KEY_ANY_CATEGORY},
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_true(tk_filter_match(&f, &keys[i]));
}

static void test_match_region(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    f.regions = region("mena");
    tk_match_key_t k = key(region("mena"), "en", TK_PRIO_BREAKING, NULL);
    assert_true(tk_filter_match(&f, &k));
    k.regions = region("europe");
    assert_false(tk_filter_match(&f, &k));
    /* A multi-region item matches a filter for any one of them. */
    k.regions = region("europe") | region("mena") | region("palestine");
    assert_true(tk_filter_match(&f, &k));
    k.regions = region("europe") | region("asia");
    assert_false(tk_filter_match(&f, &k));
    /* A global item matches every region filter. */
    k.regions = 0;
    assert_true(tk_filter_match(&f, &k));
    f.regions = region("us-canada");
    assert_true(tk_filter_match(&f, &k));
    /* A multi-region filter. */
    f.regions = region("asia") | region("europe");
    k.regions = region("asia");
    assert_true(tk_filter_match(&f, &k));
    k.regions = region("asia-pacific");
    assert_false(tk_filter_match(&f, &k));
}

static void test_match_lang(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    f.langs = lang("ar");
    tk_match_key_t k = key(0, "ar", TK_PRIO_BREAKING, NULL);
    assert_true(tk_filter_match(&f, &k));
    k = key(0, "en", TK_PRIO_BREAKING, NULL);
    assert_false(tk_filter_match(&f, &k));
    f.langs = lang("ar") | lang("en");
    assert_true(tk_filter_match(&f, &k));
    k = key(0, "es", TK_PRIO_BREAKING, NULL);
    assert_false(tk_filter_match(&f, &k));
    k.lang = TK_KEY_ANY_LANG;
    assert_true(tk_filter_match(&f, &k));
}

static void test_match_priority(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    f.min_priority = TK_PRIO_URGENT;
    static const struct {
        int prio;
        bool match;
    } cases[] = {{TK_PRIO_NORMAL, false},
                 {TK_PRIO_BREAKING, false},
                 {TK_PRIO_URGENT, true},
                 {TK_PRIO_FLASH, true}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tk_match_key_t k = key(0, "en", cases[i].prio, NULL);
        assert_int_equal(tk_filter_match(&f, &k), cases[i].match);
    }
    f.min_priority = TK_PRIO_NORMAL;
    tk_match_key_t k = key(0, "en", TK_PRIO_NORMAL, NULL);
    assert_true(tk_filter_match(&f, &k));
}

static void test_match_category(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    /* Category absent from the filter: everything matches, even no category. */
    tk_match_key_t none = key(0, "en", TK_PRIO_BREAKING, NULL);
    tk_match_key_t pol = key(0, "en", TK_PRIO_BREAKING, "politics");
    tk_match_key_t spo = key(0, "en", TK_PRIO_BREAKING, "sports");
    tk_match_key_t any = {0, (uint8_t)idx(TK_NAME_LANG, "en"), TK_PRIO_BREAKING,
                          TK_KEY_ANY_CATEGORY};
    assert_true(tk_filter_match(&f, &none));
    assert_true(tk_filter_match(&f, &pol));
    f.categories = cat("politics");
    assert_false(tk_filter_match(&f, &none));
    assert_true(tk_filter_match(&f, &pol));
    assert_false(tk_filter_match(&f, &spo));
    assert_true(tk_filter_match(&f, &any));
    f.categories = cat("politics") | cat("sports");
    assert_true(tk_filter_match(&f, &spo));
    assert_false(tk_filter_match(&f, &none));
}

static void test_match_combined_and_any_keys(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    f.regions = region("mena");
    f.langs = lang("en");
    f.min_priority = TK_PRIO_URGENT;
    f.categories = cat("politics");
    tk_match_key_t k = key(region("mena"), "en", TK_PRIO_URGENT, "politics");
    assert_true(tk_filter_match(&f, &k));
    k.lang = (uint8_t)idx(TK_NAME_LANG, "ar");
    assert_false(tk_filter_match(&f, &k));

    /* A retract of an unknown item routed only by its region. */
    tk_match_key_t r = {region("mena"), TK_KEY_ANY_LANG, TK_PRIO_FLASH, TK_KEY_ANY_CATEGORY};
    assert_true(tk_filter_match(&f, &r));
    r.regions = region("europe");
    assert_false(tk_filter_match(&f, &r));

    /* match_any: one matching version is enough. */
    tk_match_key_t versions[] = {key(region("mena"), "en", TK_PRIO_URGENT, "politics"),
                                 key(region("europe"), "en", TK_PRIO_URGENT, "politics")};
    assert_true(tk_filter_match_any(&f, versions, 2));
    assert_false(tk_filter_match_any(&f, versions + 1, 1));
    assert_false(tk_filter_match_any(&f, versions, 0));
}

/* --- query strings --- */

static void test_filter_equal(void **state)
{
    /* Same fields, different padding bytes: equal. */
    tk_filter_t a, b;
    memset(&a, 0x00, sizeof a);
    memset(&b, 0xa5, sizeof b);
    tk_filter_all(&a);
    tk_filter_all(&b);
    assert_true(tk_filter_equal(&a, &b));
    b.min_priority = TK_PRIO_URGENT;
    assert_false(tk_filter_equal(&a, &b));
    b = a;
    b.regions &= ~1ULL;
    assert_false(tk_filter_equal(&a, &b));
    b = a;
    b.langs = 1;
    assert_false(tk_filter_equal(&a, &b));
    b = a;
    b.categories = 0;
    assert_false(tk_filter_equal(&a, &b));

    tk_match_key_t k1, k2;
    memset(&k1, 0x00, sizeof k1);
    memset(&k2, 0xff, sizeof k2);
    k1.regions = k2.regions = region("mena");
    k1.lang = k2.lang = (uint8_t)idx(TK_NAME_LANG, "en");
    k1.priority = k2.priority = TK_PRIO_FLASH;
    k1.category = k2.category = TK_KEY_NO_CATEGORY;
    assert_true(tk_match_key_equal(&k1, &k2));
    k2.category = TK_KEY_ANY_CATEGORY;
    assert_false(tk_match_key_equal(&k1, &k2));
    k2 = k1;
    k2.lang = TK_KEY_ANY_LANG;
    assert_false(tk_match_key_equal(&k1, &k2));
    k2 = k1;
    k2.priority = TK_PRIO_NORMAL;
    assert_false(tk_match_key_equal(&k1, &k2));
    k2 = k1;
    k2.regions = 0;
    assert_false(tk_match_key_equal(&k1, &k2));
}

static void test_query_defaults(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(query("", &req), 0);
    tk_filter_t all;
    tk_filter_all(&all);
    assert_true(tk_filter_equal(&req.filter, &all));
    assert_int_equal(req.replay, -1);
    assert_int_equal(req.limit, -1);
    assert_false(req.has_since);
    assert_false(req.has_epoch);
    assert_string_equal(req.token, "");
    assert_int_equal(query(NULL, &req), 0);
    assert_int_equal(query("&&", &req), 0);
}

static void test_query_all_params(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(query("region=mena,palestine&lang=ar&priority=urgent&category=politics,"
                           "sports&replay=5&limit=7&since=1732752000000-3&epoch=abc123&token=tok",
                           &req),
                     0);
    assert_int_equal(req.filter.regions, region("mena") | region("palestine"));
    assert_int_equal(req.filter.langs, lang("ar"));
    assert_int_equal(req.filter.min_priority, TK_PRIO_URGENT);
    assert_int_equal(req.filter.categories, cat("politics") | cat("sports"));
    assert_int_equal(req.replay, 5);
    assert_int_equal(req.limit, 7);
    assert_true(req.has_since);
    assert_int_equal(req.since.ms, 1732752000000ULL);
    assert_int_equal(req.since.seq, 3);
    assert_true(req.has_epoch);
    assert_string_equal(req.epoch, "abc123");
    assert_string_equal(req.token, "tok");
}

static void test_query_percent_decoding(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(query("region=mena%2Cpalestine&lang=%61%72", &req), 0);
    assert_int_equal(req.filter.regions, region("mena") | region("palestine"));
    assert_int_equal(req.filter.langs, lang("ar"));
    assert_int_equal(query("region=mena%2cus-canada", &req), 0);
    assert_int_equal(req.filter.regions, region("mena") | region("us-canada"));
    /* '+' is a space; spaces around names are ignored. */
    assert_int_equal(query("region=mena,+europe&lang=en%20", &req), 0);
    assert_int_equal(req.filter.regions, region("mena") | region("europe"));
    assert_int_equal(req.filter.langs, lang("en"));
    /* Decoded '&' and '=' stay inside the value. */
    assert_int_equal(query("token=a%26b%3Dc%2B&replay=1", &req), 0);
    assert_string_equal(req.token, "a&b=c+");
    assert_int_equal(req.replay, 1);
    assert_int_equal(query("since=1-2&epoch=e%20f", &req), 0);
    assert_string_equal(req.epoch, "e f");
    /* A '%' that is not an escape is kept as is. */
    assert_int_equal(query("token=100%&epoch=%zz", &req), 0);
    assert_string_equal(req.token, "100%");
    assert_string_equal(req.epoch, "%zz");
}

static void test_query_unknown_params_ignored(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(query("foo=bar&x&=y&utm_source=newsletter&averyveryverylongname=1&lang=es&"
                           "REGION=narnia",
                           &req),
                     0);
    assert_int_equal(req.filter.langs, lang("es"));
    assert_int_equal(req.filter.regions, TK_ALL64);
}

static void test_query_errors(void **state)
{
    static const struct {
        const char *q;
        const char *err;
    } bad[] = {
        {"region=narnia", "unknown region 'narnia'"},
        {"region=mena,narnia", "unknown region 'narnia'"},
        {"region=", "region list is empty"},
        {"region", "region list is empty"},
        {"region=+", "region list is empty"},
        {"region=%20%09", "region list is empty"},
        {"region=mena,", "region list has an empty element"},
        {"region=,mena", "region list has an empty element"},
        {"region=,", "region list has an empty element"},
        {"region=mena,,europe", "region list has an empty element"},
        {"region=mena,+,europe", "region list has an empty element"},
        {"region=me+na", "unknown region 'me na'"},
        {"lang=fr", "unknown lang 'fr'"},
        {"lang=", "lang list is empty"},
        {"lang=en,", "lang list has an empty element"},
        {"category=weather", "unknown category 'weather'"},
        {"category=", "category list is empty"},
        {"category=,sports", "category list has an empty element"},
        {"priority=high", "unknown priority 'high'"},
        {"priority=", "unknown priority ''"},
        {"priority=urgent,flash", "unknown priority 'urgent,flash'"},
        {"replay=abc", "replay 'abc' is not a whole number"},
        {"replay=", "replay '' is not a whole number"},
        {"replay=-1", "replay '-1' is not a whole number"},
        {"replay=%2B1", "replay '+1' is not a whole number"},
        {"replay=0x10", "replay '0x10' is not a whole number"},
        {"replay=1e2", "replay '1e2' is not a whole number"},
        {"replay=1+2", "replay '1 2' is not a whole number"},
        {"replay=1.5", "replay '1.5' is not a whole number"},
        {"replay=2147483648", "replay '2147483648' is over the maximum 200"},
        {"replay=99999999999999999999999",
         "replay '99999999999999999999999' is over the maximum 200"},
        {"limit=x", "limit 'x' is not a whole number"},
        {"limit=-0", "limit '-0' is not a whole number"},
        {"since=abc", "since 'abc' is not a stream ID"},
        {"since=", "since '' is not a stream ID"},
        {"since=1732752000000", "since '1732752000000' is not a stream ID"},
        {"since=1-2-3", "since '1-2-3' is not a stream ID"},
        {"since=-1", "since '-1' is not a stream ID"},
        {"epoch=", "epoch is empty or too long"},
        {"lang=en&region=atlantis&replay=3", "unknown region 'atlantis'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tk_sub_req_t req;
        assert_int_equal(query(bad[i].q, &req), -1);
        assert_string_equal(err, bad[i].err);
    }
}

/* Whitespace around values and elements is ignored, in every parameter. */
static void test_query_whitespace(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(query("region=%09mena%0A,%0Deurope%0B&lang=+ar+&category=%0Csports+"
                           "&priority=+urgent%09&replay=+5+&limit=%0912&since=+1-2+",
                           &req),
                     0);
    assert_int_equal(req.filter.regions, region("mena") | region("europe"));
    assert_int_equal(req.filter.langs, lang("ar"));
    assert_int_equal(req.filter.categories, cat("sports"));
    assert_int_equal(req.filter.min_priority, TK_PRIO_URGENT);
    assert_int_equal(req.replay, 5);
    assert_int_equal(req.limit, 12);
    assert_int_equal(req.since.ms, 1);
    assert_int_equal(req.since.seq, 2);
    /* Duplicates count once; 2147483647 parses (the check says it is over). */
    assert_int_equal(query("region=mena,mena,MENA&replay=2147483647", &req), 0);
    assert_int_equal(req.filter.regions, region("mena"));
    assert_int_equal(req.replay, 2147483647);
    assert_int_equal(tk_sub_req_check(cfg, &req, err, sizeof err), -1);
    assert_int_equal(query("replay=0&limit=0000", &req), 0);
    assert_int_equal(req.replay, 0);
    assert_int_equal(req.limit, 0);
}

/* One case rule: names match whatever their case, and the filter echoed in
 * hello names them in lower case. */
static void test_query_case(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(
        query("region=MENA,Palestine,us-CANADA&lang=AR,En&category=Politics&priority=URGENT", &req),
        0);
    assert_int_equal(req.filter.regions,
                     region("mena") | region("palestine") | region("us-canada"));
    assert_int_equal(req.filter.langs, lang("ar") | lang("en"));
    assert_int_equal(req.filter.categories, cat("politics"));
    assert_int_equal(req.filter.min_priority, TK_PRIO_URGENT);
    json_t *j = tk_filter_to_json(&req.filter);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"region\":[\"mena\",\"palestine\",\"us-canada\"],\"lang\":"
                           "[\"en\",\"ar\"],\"priority\":\"urgent\",\"category\":[\"politics\"]}");
    free(s);
    json_decref(j);
}

static void test_query_names_against_config(void **state)
{
    tk_config_t *narrow = tk_config_create();
    assert_non_null(narrow);
    assert_int_equal(tk_config_set(narrow, "lists", "regions", "mena,europe", err, sizeof err), 0);
    tk_sub_req_t req;
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_parse(narrow, "region=europe", &req, err, sizeof err), 0);
    assert_int_equal(req.filter.regions, region("europe"));
    assert_int_equal(tk_query_parse(narrow, "region=asia", &req, err, sizeof err), -1);
    assert_string_equal(err, "unknown region 'asia'");
    tk_config_free(narrow);
}

static void test_query_arg(void **state)
{
    tk_sub_req_t req;
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_arg(cfg, &req, "priority=flash", err, sizeof err), 0);
    assert_int_equal(req.filter.min_priority, TK_PRIO_FLASH);
    assert_int_equal(tk_query_arg(cfg, &req, "replay=0", err, sizeof err), 0);
    assert_int_equal(req.replay, 0);
    assert_int_equal(tk_query_arg(cfg, &req, "whatever=1", err, sizeof err), 0);
    assert_int_equal(tk_query_arg(cfg, &req, "lang=xx", err, sizeof err), -1);
}

static void test_sub_req_check(void **state)
{
    tk_sub_req_t req;
    tk_sub_req_init(&req);
    assert_int_equal(tk_sub_req_check(cfg, &req, err, sizeof err), 0);
    req.replay = 200;
    req.limit = 200;
    assert_int_equal(tk_sub_req_check(cfg, &req, err, sizeof err), 0);
    req.replay = 201;
    assert_int_equal(tk_sub_req_check(cfg, &req, err, sizeof err), -1);
    assert_string_equal(err, "replay 201 is over the maximum 200");
    req.replay = 0;
    req.limit = 201;
    assert_int_equal(tk_sub_req_check(cfg, &req, err, sizeof err), -1);
    assert_string_equal(err, "limit 201 is over the maximum 200");
    int old = cfg->replay_max;
    cfg->replay_max = 5;
    assert_int_equal(query("replay=6", &req), 0);
    assert_int_equal(tk_sub_req_check(cfg, &req, err, sizeof err), -1);
    assert_string_equal(err, "replay 6 is over the maximum 5");
    cfg->replay_max = old;
}

/* --- subscribe frames --- */

static void test_subscribe_strings_and_arrays(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(
        subscribe("{\"type\":\"subscribe\",\"region\":\"mena,palestine\",\"lang\":[\"en\","
                  "\"ar\"],\"priority\":\"urgent\",\"category\":[\"politics\"],"
                  "\"replay\":5,\"since\":\"10-1\",\"epoch\":\"ep\",\"token\":\"t\"}",
                  &req),
        0);
    assert_int_equal(req.filter.regions, region("mena") | region("palestine"));
    assert_int_equal(req.filter.langs, lang("en") | lang("ar"));
    assert_int_equal(req.filter.min_priority, TK_PRIO_URGENT);
    assert_int_equal(req.filter.categories, cat("politics"));
    assert_int_equal(req.replay, 5);
    assert_true(req.has_since);
    assert_int_equal(req.since.ms, 10);
    assert_int_equal(req.since.seq, 1);
    assert_string_equal(req.epoch, "ep");
    assert_string_equal(req.token, "t");

    assert_int_equal(subscribe("{\"type\":\"subscribe\",\"region\":[\"europe\",\"asia\"],"
                               "\"lang\":\"es\",\"category\":\"sports,health\"}",
                               &req),
                     0);
    assert_int_equal(req.filter.regions, region("europe") | region("asia"));
    assert_int_equal(req.filter.langs, lang("es"));
    assert_int_equal(req.filter.categories, cat("sports") | cat("health"));
    assert_int_equal(req.replay, -1);
    assert_false(req.has_since);
}

static void test_subscribe_case_and_whitespace(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(
        subscribe("{\"type\":\"subscribe\",\"region\":[\"MENA\",\" Europe \",\"mena\"],"
                  "\"lang\":\"EN, Ar\",\"category\":[\"\\tSPORTS\\n\"],"
                  "\"priority\":\" Flash \",\"replay\":\" 3 \"}",
                  &req),
        0);
    assert_int_equal(req.filter.regions, region("mena") | region("europe"));
    assert_int_equal(req.filter.langs, lang("en") | lang("ar"));
    assert_int_equal(req.filter.categories, cat("sports"));
    assert_int_equal(req.filter.min_priority, TK_PRIO_FLASH);
    assert_int_equal(req.replay, 3);
    /* The string form and the array form give the same filter. */
    tk_sub_req_t req2;
    assert_int_equal(subscribe("{\"region\":\"Europe,MENA\",\"lang\":[\"ar\",\"EN\"],"
                               "\"category\":\"sports\",\"priority\":\"flash\",\"replay\":3}",
                               &req2),
                     0);
    assert_true(tk_filter_equal(&req.filter, &req2.filter));
}

static void test_names_from_json(void **state)
{
    uint64_t m = 99;
    tk_span_t bad;
    json_t *v = json_loads("[\"narnia\",\"MENA\"]", 0, NULL);
    assert_int_equal(tk_names_from_json(TK_NAME_REGION, TK_ALL64, v, 0, &m, &bad), -ENOENT);
    assert_int_equal(m, 99);
    assert_int_equal(bad.len, 6);
    assert_int_equal(
        tk_names_from_json(TK_NAME_REGION, TK_ALL64, v, TK_NAMES_SKIP_UNKNOWN, &m, NULL), 0);
    assert_int_equal(m, region("mena"));
    json_decref(v);
    v = json_loads("[]", 0, NULL);
    assert_int_equal(tk_names_from_json(TK_NAME_REGION, TK_ALL64, v, 0, &m, NULL), 0);
    assert_int_equal(m, 0);
    json_decref(v);
    v = json_loads("[\"mena\",\"\"]", 0, NULL);
    assert_int_equal(
        tk_names_from_json(TK_NAME_REGION, TK_ALL64, v, TK_NAMES_SKIP_UNKNOWN, &m, NULL), -EINVAL);
    json_decref(v);
    v = json_loads("{\"a\":1}", 0, NULL);
    assert_int_equal(tk_names_from_json(TK_NAME_REGION, TK_ALL64, v, 0, &m, NULL), -EBADMSG);
    json_decref(v);
    v = json_integer(1);
    assert_int_equal(tk_names_from_json(TK_NAME_REGION, TK_ALL64, v, 0, &m, NULL), -EBADMSG);
    json_decref(v);
    assert_int_equal(tk_names_from_json(TK_NAME_REGION, TK_ALL64, NULL, 0, &m, NULL), -EBADMSG);
}

static void test_subscribe_replaces_filter(void **state)
{
    tk_sub_req_t req;
    assert_int_equal(subscribe("{\"type\":\"subscribe\",\"region\":\"mena\",\"replay\":3}", &req),
                     0);
    /* A new subscribe starts from "all", not from the previous request. */
    assert_int_equal(subscribe("{\"type\":\"subscribe\",\"lang\":\"ar\",\"region\":null,"
                               "\"unknown\":[1,{}]}",
                               &req),
                     0);
    assert_int_equal(req.filter.regions, TK_ALL64);
    assert_int_equal(req.filter.langs, lang("ar"));
    assert_int_equal(req.replay, -1);
    assert_int_equal(subscribe("{\"type\":\"subscribe\",\"replay\":0}", &req), 0);
    assert_int_equal(req.replay, 0);
}

static void test_subscribe_errors(void **state)
{
    static const struct {
        const char *json;
        const char *err;
    } bad[] = {
        {"{\"region\":true}", "region has the wrong type"},
        {"{\"region\":[\"mena\",1]}", "region has the wrong type"},
        {"{\"region\":[[\"mena\"]]}", "region has the wrong type"},
        {"{\"region\":{\"a\":1}}", "region has the wrong type"},
        {"{\"region\":1.5}", "region has the wrong type"},
        {"{\"lang\":false}", "lang has the wrong type"},
        {"{\"priority\":[1]}", "priority has the wrong type"},
        {"{\"replay\":-1}", "replay has the wrong type"},
        {"{\"replay\":2.5}", "replay has the wrong type"},
        {"{\"replay\":true}", "replay has the wrong type"},
        {"{\"replay\":{}}", "replay has the wrong type"},
        {"{\"since\":{}}", "since has the wrong type"},
        {"{\"token\":1.0}", "token has the wrong type"},
        {"{\"region\":[]}", "region list is empty"},
        {"{\"region\":\"\"}", "region list is empty"},
        {"{\"region\":\" \"}", "region list is empty"},
        {"{\"region\":\"mena,\"}", "region list has an empty element"},
        {"{\"region\":[\"mena\",\"\"]}", "region list has an empty element"},
        {"{\"region\":[\" \"]}", "region list has an empty element"},
        {"{\"region\":[\"mena,asia\"]}", "unknown region 'mena,asia'"},
        {"{\"lang\":[]}", "lang list is empty"},
        {"{\"category\":\"sports,,health\"}", "category list has an empty element"},
        {"{\"priority\":[\"urgent\"]}", "priority has the wrong type"},
        {"{\"replay\":\"+5\"}", "replay '+5' is not a whole number"},
        {"{\"replay\":\"0x5\"}", "replay '0x5' is not a whole number"},
        {"{\"replay\":99999999999}", "replay '99999999999' is over the maximum 200"},
        {"{\"since\":[\"1-1\"]}", "since has the wrong type"},
        {"{\"region\":[\"mena\",\"narnia\"]}", "unknown region 'narnia'"},
        {"{\"region\":\"narnia\"}", "unknown region 'narnia'"},
        {"{\"lang\":[\"fr\"]}", "unknown lang 'fr'"},
        {"{\"category\":[\"weather\"]}", "unknown category 'weather'"},
        {"{\"priority\":\"meh\"}", "unknown priority 'meh'"},
        {"{\"replay\":\"ten\"}", "replay 'ten' is not a whole number"},
        {"{\"since\":\"nope\"}", "since 'nope' is not a stream ID"},
        {"{\"since\":5}", "since '5' is not a stream ID"},
        {"{\"epoch\":\"\"}", "epoch is empty or too long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tk_sub_req_t req;
        assert_int_equal(subscribe(bad[i].json, &req), -1);
        assert_string_equal(err, bad[i].err);
    }
    /* A list too long for the buffer is refused, not truncated. */
    char big[3000];
    strcpy(big, "{\"token\":\"");
    memset(big + 10, 'a', 2000);
    strcpy(big + 2010, "\"}");
    tk_sub_req_t req;
    assert_int_equal(subscribe(big, &req), -1);
}

static void test_filter_to_json(void **state)
{
    tk_filter_t f;
    tk_filter_all(&f);
    json_t *j = tk_filter_to_json(&f);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"priority\":\"normal\"}");
    free(s);
    json_decref(j);
    f.regions = region("palestine") | region("mena");
    f.langs = lang("ar");
    f.min_priority = TK_PRIO_URGENT;
    f.categories = cat("sports");
    j = tk_filter_to_json(&f);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"region\":[\"mena\",\"palestine\"],\"lang\":[\"ar\"],\"priority\":"
                           "\"urgent\",\"category\":[\"sports\"]}");
    free(s);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_all),
        cmocka_unit_test(test_match_region),
        cmocka_unit_test(test_match_lang),
        cmocka_unit_test(test_match_priority),
        cmocka_unit_test(test_match_category),
        cmocka_unit_test(test_match_combined_and_any_keys),
        cmocka_unit_test(test_filter_equal),
        cmocka_unit_test(test_query_defaults),
        cmocka_unit_test(test_query_all_params),
        cmocka_unit_test(test_query_percent_decoding),
        cmocka_unit_test(test_query_unknown_params_ignored),
        cmocka_unit_test(test_query_errors),
        cmocka_unit_test(test_query_whitespace),
        cmocka_unit_test(test_query_case),
        cmocka_unit_test(test_query_names_against_config),
        cmocka_unit_test(test_query_arg),
        cmocka_unit_test(test_sub_req_check),
        cmocka_unit_test(test_subscribe_strings_and_arrays),
        cmocka_unit_test(test_subscribe_case_and_whitespace),
        cmocka_unit_test(test_names_from_json),
        cmocka_unit_test(test_subscribe_replaces_filter),
        cmocka_unit_test(test_subscribe_errors),
        cmocka_unit_test(test_filter_to_json),
    };
    return cmocka_run_group_tests_name("filter", tests, setup, teardown);
}
