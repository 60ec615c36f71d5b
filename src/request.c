/* request.c - the query of an lws request, read into a subscription
 * request with filter.c's parser. */
#include <libwebsockets.h>
#include <stdio.h>

#include "tickerd/request.h"

int tk_request_query(struct lws *wsi, const tk_config_t *cfg, tk_sub_req_t *req, char *err,
                     size_t errlen)
{
    char arg[TK_QUERY_ARG_MAX + 1];
    tk_sub_req_init(req);
    for (int i = 0;; i++) {
        if (lws_hdr_copy_fragment(wsi, arg, sizeof arg, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) {
            /* -1 is both "no such fragment" and "does not fit". */
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) <= 0) break;
            snprintf(err, errlen, "query parameter %d longer than %d bytes", i + 1,
                     TK_QUERY_ARG_MAX);
            return -1;
        }
        if (tk_query_arg(cfg, req, arg, err, errlen)) return -1;
    }
    return tk_sub_req_check(cfg, req, err, errlen);
}
