/* fuzz_token.c - JWT admission (tk_grant_from_token, tk_grant_apply from
 * guard.c). The first byte picks the mode: even, the rest is the token as a
 * client sends it; odd, the rest is a claims object that the harness signs
 * (HS256 with the right or a wrong key, HS384 or alg none by bits 1-2), so
 * the claim parsing is reached past the signature check. guard.c's
 * connection-level parts need the metrics block: a NULL one below. */
#include <jwt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/clock.h"
#include "tickerd/guard.h"
#include "tickerd/metrics.h"

static const char secret[] = "fuzz-secret-0123456789";

static char *sign(const uint8_t *claims, size_t n, int how)
{
    jwt_t *jwt = NULL;
    char *json = malloc(n + 1), *tok = NULL;
    if (!json || jwt_new(&jwt)) goto out;
    memcpy(json, claims, n);
    json[n] = 0;
    if (jwt_add_grants_json(jwt, json)) goto out;
    if (how == 0 || how == 3)
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret));
    else if (how == 1)
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)"wrong", 5);
    else if (how == 2)
        jwt_set_alg(jwt, JWT_ALG_HS384, (const unsigned char *)secret, (int)strlen(secret));
    tok = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    free(json);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], *token;
    tk_grant_t g = {0, 0, 0, false};
    static tk_config_t *cfg;
    if (!cfg && !(cfg = tk_config_create())) abort();
    if (size == 0) return 0;
    if (data[0] & 1) {
        token = sign(data + 1, size - 1, data[0] >> 1 & 3);
        if (!token) return 0;
    } else {
        token = malloc(size);
        if (!token) return 0;
        memcpy(token, data + 1, size - 1);
        token[size - 1] = 0;
    }
    err[0] = 0;
    if (tk_grant_from_token(secret, token, tk_now_ms() / 1000, &g, err, sizeof err) == 0) {
        static const char *const queries[] = {"", "region=mena", "lang=ar,en",
                                              "region=europe,asia&lang=es"};
        for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
            tk_sub_req_t req;
            tk_grant_t copy = g;
            tk_sub_req_init(&req);
            if (tk_query_parse(cfg, queries[i], &req, err, sizeof err)) abort();
            if (tk_grant_apply(&copy, &req, err, sizeof err) == 0 &&
                ((req.filter.regions & ~g.regions) || (req.filter.langs & ~g.langs)))
                abort(); /* narrowing never widens past the grant */
        }
    } else if (!err[0]) {
        abort();
    }
    free(token);
    return 0;
}
