/* fuzz_query.c - query-string parsing (tk_query_parse and the checks that
 * follow it in ws.c/http.c), on the input as one NUL-terminated string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/config.h"
#include "tickerd/filter.h"

static tk_config_t *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    tk_sub_req_t req;
    if (!cfg && !(cfg = tk_config_create())) abort();
    char *q = malloc(size + 1);
    if (!q) return 0;
    memcpy(q, data, size);
    q[size] = 0;
    tk_sub_req_init(&req);
    err[0] = 0;
    if (tk_query_parse(cfg, q, &req, err, sizeof err) == 0 &&
        tk_sub_req_check(cfg, &req, err, sizeof err) == 0) {
        json_t *f = tk_filter_to_json(&req.filter);
        char *s = json_dumps(f, JSON_COMPACT);
        if (!s) abort();
        free(s);
        json_decref(f);
        if (strlen(req.token) >= sizeof req.token || strlen(req.epoch) >= sizeof req.epoch) abort();
    } else if (!err[0] || !memchr(err, 0, sizeof err)) {
        abort(); /* a refusal always says why */
    }
    free(q);
    return 0;
}
