/* test_guard.c - the pure parts of admission (guard.c): token claims
 * (regions, langs) on the shared name-list rules and allowed origins. Links guard.o; the daemon globals it refers to for the
 * connection-level parts are stubbed here. */
#include <arpa/inet.h>
#include <jwt.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "tickerd/config.h"
#include "fixture.h"
#include "tickerd/guard.h"
#include "tickerd/metrics.h"

#define NOW_S 1732752000

static const char secret[] = "test-secret-0123456789";
static char err[256];

static uint64_t region(const char *name)
{
    int i = tk_name_lookup(TK_NAME_REGION, name, strlen(name));
    assert_true(i >= 0);
    return 1ULL << i;
}

static uint64_t lang(const char *name)
{
    int i = tk_name_lookup(TK_NAME_LANG, name, strlen(name));
    assert_true(i >= 0);
    return 1ULL << i;
}

/* A HS256 token carrying the claims object; the caller frees it. */
static char *token(const char *claims)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)), 0);
    char *t = jwt_encode_str(jwt);
    assert_non_null(t);
    jwt_free(jwt);
    return t;
}

/* tk_grant_from_token on a token with claims. */
static int grant(const char *claims, tk_grant_t *g)
{
    char *t = token(claims);
    err[0] = 0;
    int rc = tk_grant_from_token(secret, t, NOW_S, g, err, sizeof err);
    free(t);
    return rc;
}

static void test_claims_absent(void **state)
{
    tk_grant_t g;
    assert_int_equal(grant("{\"sub\":\"x\"}", &g), 0);
    assert_true(g.regions == TK_ALL64);
    assert_true(g.langs == TK_ALL32);
}

/* POST /v1/items needs a token whose publish claim is true (SPEC §3). */
static void test_publish_claim(void **state)
{
    tk_grant_t g;
    assert_int_equal(grant("{\"publish\":true}", &g), 0);
    assert_true(g.publish);
    assert_int_equal(grant("{\"publish\":false}", &g), 0);
    assert_false(g.publish);
    assert_int_equal(grant("{\"publish\":\"true\"}", &g), 0); /* a string is no claim */
    assert_false(g.publish);
    assert_int_equal(grant("{}", &g), 0);
    assert_false(g.publish);
    char *yes = token("{\"publish\":true}"), *no = token("{\"regions\":[\"mena\"]}");
    assert_int_equal(tk_grant_publish(secret, yes, NOW_S, err, sizeof err), 0);
    assert_int_equal(tk_grant_publish(secret, no, NOW_S, err, sizeof err), 403);
    assert_int_equal(tk_grant_publish(secret, "garbage", NOW_S, err, sizeof err), 401);
    assert_int_equal(tk_grant_publish(secret, NULL, NOW_S, err, sizeof err), 401);
    assert_int_equal(tk_grant_publish("", yes, NOW_S, err, sizeof err), 403);
    free(yes);
    free(no);
}

/* One case rule, one list rule: the claims read like any other list. */
static void test_claims_lists(void **state)
{
    static const struct {
        const char *claims;
        const char *regions[3];
        const char *langs[3];
    } ok[] = {
        {"{\"regions\":[\"mena\"],\"langs\":[\"ar\"]}", {"mena"}, {"ar"}},
        {"{\"regions\":[\"MENA\",\"Palestine\"],\"langs\":[\"AR\",\"En\"]}",
         {"mena", "palestine"},
         {"ar", "en"}},
        {"{\"regions\":\"MENA, Palestine\",\"langs\":\" ES \"}", {"mena", "palestine"}, {"es"}},
        {"{\"regions\":[\" europe \",\"EUROPE\"],\"langs\":\"en,EN\"}", {"europe"}, {"en"}},
        /* Names this node does not know grant nothing; the others still do. */
        {"{\"regions\":[\"narnia\",\"Asia\"],\"langs\":\"klingon,ar\"}", {"asia"}, {"ar"}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        tk_grant_t g;
        assert_int_equal(grant(ok[i].claims, &g), 0);
        uint64_t r = 0, l = 0;
        for (int k = 0; k < 3 && ok[i].regions[k]; k++)
            r |= region(ok[i].regions[k]);
        for (int k = 0; k < 3 && ok[i].langs[k]; k++)
            l |= lang(ok[i].langs[k]);
        assert_true(g.regions == r);
        assert_true(g.langs == l);
    }
    /* Empty lists grant nothing (but global items). */
    tk_grant_t g;
    assert_int_equal(grant("{\"regions\":[],\"langs\":\"\"}", &g), 0);
    assert_true(g.regions == 0);
    assert_true(g.langs == 0);
}

static void test_claims_refused(void **state)
{
    static const char *const bad[] = {
        "{\"regions\":\"mena,\"}",
        "{\"regions\":\",mena\"}",
        "{\"regions\":\"mena,,asia\"}",
        "{\"regions\":[\"mena\",\"\"]}",
        "{\"regions\":[\" \"]}",
        "{\"langs\":[\"en\",1]}",
        "{\"langs\":5}",
        "{\"regions\":{\"mena\":1}}",
        "{\"regions\":true}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tk_grant_t g = {1, 1, 0, false};
        assert_int_equal(grant(bad[i], &g), -1);
        assert_string_equal(err, "token claims regions/langs must be lists of names");
    }
}

/* A claim in upper case narrows a query in lower case, and the other way. */
static void test_claims_narrow_query(void **state)
{
    tk_grant_t g;
    tk_sub_req_t req;
    assert_int_equal(grant("{\"regions\":[\"MENA\",\"Europe\"],\"langs\":\"AR\"}", &g), 0);
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_parse(cfg, "region=mena&lang=Ar", &req, err, sizeof err), 0);
    assert_int_equal(tk_grant_apply(&g, &req, err, sizeof err), 0);
    assert_true(req.filter.regions == region("mena"));
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_parse(cfg, "region=EUROPE,asia", &req, err, sizeof err), 0);
    assert_int_equal(tk_grant_apply(&g, &req, err, sizeof err), -1);
    assert_string_equal(err, "the token does not allow these regions");
    tk_sub_req_init(&req);
    assert_int_equal(tk_query_parse(cfg, "", &req, err, sizeof err), 0);
    assert_int_equal(tk_grant_apply(&g, &req, err, sizeof err), 0);
    assert_true(req.filter.regions == (region("mena") | region("europe")));
    assert_true(req.filter.langs == lang("ar"));
}

static void test_origin_listed(void **state)
{
    const char *list = " https://news.example , https://TV.example:8443,http://a";
    assert_true(tk_origin_listed(list, "https://news.example"));
    assert_true(tk_origin_listed(list, "https://tv.example:8443"));
    assert_true(tk_origin_listed(list, "HTTPS://NEWS.EXAMPLE"));
    assert_true(tk_origin_listed(list, "http://a"));
    assert_false(tk_origin_listed(list, "https://tv.example"));
    assert_false(tk_origin_listed(list, "https://news.example.evil"));
    assert_false(tk_origin_listed(list, "http://"));
    assert_false(tk_origin_listed(list, ""));
    assert_false(tk_origin_listed("", "https://news.example"));
    assert_true(tk_origin_listed("https://news.example", "https://news.example"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_absent),       cmocka_unit_test(test_publish_claim),
        cmocka_unit_test(test_claims_lists),        cmocka_unit_test(test_claims_refused),
        cmocka_unit_test(test_claims_narrow_query), cmocka_unit_test(test_origin_listed),
    };
    return cmocka_run_group_tests_name("guard", tests, setup, teardown);
}
