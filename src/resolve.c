/* resolve.c - name lookups on the loop's thread pool (see resolve.h). A
 * request owns itself: it is freed in libuv's callback, whether its owner
 * still wants the answer or gave it up. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/resolve.h"

struct tk_resolve {
    uv_getaddrinfo_t req;
    tk_resolve_cb cb; /* NULL once given up */
    void *data;
    unsigned turn;
    char host[256];
};

static bool is_numeric(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The turn-th address of res (modulo their count) as text. */
static int pick(const struct addrinfo *res, unsigned turn, char *ip)
{
    unsigned n = 0;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        n++;
    if (!n) return UV_EAI_NONAME;
    for (unsigned i = 0; i < turn % n; i++)
        res = res->ai_next;
    return uv_ip_name(res->ai_addr, ip, TK_IP_MAX);
}

static void on_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    tk_resolve_t *r = req->data;
    char ip[TK_IP_MAX];
    if (r->cb) {
        if (!status) status = pick(res, r->turn, ip);
        r->cb(r->data, r->host, status ? NULL : ip, status);
    }
    uv_freeaddrinfo(res);
    free(r);
}

int tk_resolve_start(uv_loop_t *loop, const char *host, unsigned turn, tk_resolve_cb cb, void *data,
                     char *ip, tk_resolve_t **req)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    *req = NULL;
    if (is_numeric(host)) { /* no thread: a pool busy with slow names cannot hold it up */
        snprintf(ip, TK_IP_MAX, "%s", host);
        return 1;
    }
    tk_resolve_t *r = calloc(1, sizeof *r);
    if (!r) return UV_ENOMEM;
    if (snprintf(r->host, sizeof r->host, "%s", host) >= (int)sizeof r->host) {
        free(r);
        return UV_EINVAL;
    }
    r->cb = cb;
    r->data = data;
    r->turn = turn;
    r->req.data = r;
    int rc = uv_getaddrinfo(loop, &r->req, on_done, r->host, NULL, &hints);
    if (rc) {
        free(r);
        return rc;
    }
    *req = r;
    return 0;
}

const char *tk_resolve_host(const tk_resolve_t *req)
{
    return req->host;
}

void tk_resolve_cancel(tk_resolve_t *req)
{
    if (!req) return;
    req->cb = NULL;
    uv_cancel((uv_req_t *)&req->req); /* too late when it is running: then ignored */
}
