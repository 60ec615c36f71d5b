/* fuzz_frame.c - a client's WebSocket text frame, handled as ws.c's
 * on_message does: json_loadb, then for a subscribe tk_subscribe_parse and
 * tk_sub_req_check, and the filter echoed in the new hello. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/config.h"
#include "tickerd/filter.h"

static tk_config_t *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_error_t jerr;
    tk_sub_req_t *req;
    if (!cfg && !(cfg = tk_config_create())) abort();
    json_t *o = json_loadb((const char *)data, size, 0, &jerr);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (json_is_object(o) && type && strcmp(type, "subscribe") == 0 &&
        (req = malloc(sizeof *req))) {
        err[0] = 0;
        if (tk_subscribe_parse(cfg, o, req, err, sizeof err) == 0 &&
            tk_sub_req_check(cfg, req, err, sizeof err) == 0) {
            json_t *f = tk_filter_to_json(&req->filter);
            char *s = json_dumps(f, JSON_COMPACT);
            if (!s) abort();
            free(s);
            json_decref(f);
        } else if (!err[0]) {
            abort(); /* a bad subscribe gets an error frame with a reason */
        }
        free(req);
    }
    json_decref(o);
    return 0;
}
