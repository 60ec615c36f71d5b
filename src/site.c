/* site.c - the worker's site as every connection finds it: the user pointer
 * of the lws context the connection belongs to (net.c sets it). */
#include <libwebsockets.h>

#include "tickerd/site.h"

tk_site_t *tk_site_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}
