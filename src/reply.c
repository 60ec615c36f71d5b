/* reply.c - whole HTTP/1.1 responses written on an lws connection, and the
 * room left in a connection's socket. */
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "tickerd/guard.h"
#include "tickerd/log.h"
#include "tickerd/metrics.h"
#include "tickerd/reply.h"

static const char *status_text(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

int tk_http_respond(struct lws *wsi, unsigned status, const char *type, const char *body,
                    size_t len, const char *extra)
{
    char head[2048];
    /* HEAD: the same status and headers, Content-Length included, no body;
     * 204 and 304 never carry one. (A long-poll has given its header table
     * back by the time it is answered: it is a GET.) */
    bool bodyless = status == 204 || status == 304 ||
                    lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    bool own_cache = extra && strcasestr(extra, "Cache-Control:");
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "%sX-Content-Type-Options: nosniff\r\n%s\r\n",
                      status, status_text(status), type, status == 304 || status == 204 ? 0 : len,
                      own_cache ? "" : "Cache-Control: no-cache\r\n", extra ? extra : "");
    if (hl < 0 || (size_t)hl >= sizeof head) return -1;
    size_t total = (size_t)hl + (bodyless ? 0 : len);
    unsigned char *buf = malloc(LWS_PRE + total);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, head, (size_t)hl);
    if (!bodyless) memcpy(buf + LWS_PRE + hl, body, len);
    int rc = lws_write(wsi, buf + LWS_PRE, total, LWS_WRITE_RAW);
    free(buf);
    return rc < 0 ? -1 : 0;
}

int tk_http_text(struct lws *wsi, unsigned status, const char *text, const char *extra)
{
    char body[512];
    int n = snprintf(body, sizeof body, "%s\n", text);
    if (status >= 400) {
        tk_log_refused("refused %s: HTTP %u: %s", tk_guard_client(wsi), status, text);
        tk_metrics_refused(status);
    }
    return tk_http_respond(wsi, status, "text/plain; charset=utf-8", body,
                           (size_t)n < sizeof body ? (size_t)n : sizeof body - 1, extra);
}

size_t tk_socket_room(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi), sndbuf = 0, queued = 0;
    socklen_t len = sizeof sndbuf;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) ||
        ioctl(fd, SIOCOUTQ, &queued) || sndbuf <= 0)
        return SIZE_MAX;
    return queued < sndbuf / 2 ? (size_t)(sndbuf / 2 - queued) : 0;
}
