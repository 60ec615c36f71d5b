/* request.h - reading an HTTP request on an lws connection: its query into
 * a subscription request. The one query reader of /v1/ws, /v1/events and
 * /v1/items, so that every endpoint refuses the same input the same way. */
#ifndef TICKERD_REQUEST_H
#define TICKERD_REQUEST_H

#include <stddef.h>

#include "tickerd/config.h"
#include "tickerd/filter.h"

struct lws;

/* The longest query parameter read (name=value, decoded). */
#define TK_QUERY_ARG_MAX 2048

/* Reads every query parameter of wsi's request into req (initialised
 * here). A parameter too long to read is an error, never skipped: skipping
 * it would widen the filter. Returns 0, or -1 with a one-line reason. */
int tk_request_query(struct lws *wsi, const tk_config_t *cfg, tk_sub_req_t *req, char *err,
                     size_t errlen);

#endif
