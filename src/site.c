/* site.c - the worker's site as every connection finds it (the user pointer
 * of the lws context, which net.c sets), and the hub operations that every
 * lws transport shares. */
#include <libwebsockets.h>
#include <stdio.h>

#include "tickerd/guard.h"
#include "tickerd/reply.h"
#include "tickerd/site.h"

tk_site_t *tk_site_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static struct lws *wsi_of(tk_client_t *c)
{
    return ((tk_conn_t *)c)->wsi;
}

bool tk_conn_busy(tk_client_t *c)
{
    return lws_partial_buffered(wsi_of(c));
}

size_t tk_conn_room(tk_client_t *c)
{
    return tk_socket_room(wsi_of(c));
}

void tk_conn_want_write(tk_client_t *c)
{
    lws_callback_on_writable(wsi_of(c));
}

void tk_conn_closing(tk_client_t *c, uint16_t code)
{
    if (!tk_site_of(wsi_of(c))->stopping)
        lws_set_timeout(wsi_of(c), PENDING_TIMEOUT_CLOSE_SEND, code ? 5 : 1);
}

const char *tk_conn_peer(tk_client_t *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", tk_guard_client(wsi_of(c)));
    return buf;
}

int tk_conn_write_raw(tk_client_t *c, unsigned char *data, size_t len)
{
    return lws_write(wsi_of(c), data, len, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

int tk_conn_write_http(tk_client_t *c, unsigned char *data, size_t len)
{
    return lws_write(wsi_of(c), data, len, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}
