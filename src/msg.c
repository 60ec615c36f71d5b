/* msg.c - building and releasing shared, already-framed server messages. */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/msg.h"

const size_t tk_msg_pre = LWS_PRE;

static tk_msg_t *msg_alloc(size_t len)
{
    tk_msg_t *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->pending = 0;
    m->stamp_ms = 0;
    m->data = m->buf + LWS_PRE;
    return m;
}

/* A server-to-client text frame header (RFC 6455 §5.2: FIN, opcode 1, no
 * mask). Returns its length (2, 4 or 10). */
static size_t ws_header(unsigned char *h, size_t len)
{
    h[0] = 0x81;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

tk_msg_t *tk_msg_frame(tk_transport_t t, const char *type, const tk_id_t *id, const char *json,
                       size_t len)
{
    tk_msg_t *m;
    if (t == TK_TRANSPORT_WS) {
        unsigned char h[10];
        size_t hl = ws_header(h, len);
        if (!(m = msg_alloc(hl + len))) return NULL;
        memcpy(m->data, h, hl);
        memcpy(m->data + hl, json, len);
        return m;
    }
    if (t == TK_TRANSPORT_POLL) {
        if ((m = msg_alloc(len))) memcpy(m->data, json, len);
        return m;
    }
    char head[96];
    char idbuf[TK_ID_STRLEN];
    int hl;
    if (id) {
        tk_id_format(*id, idbuf);
        hl = snprintf(head, sizeof head, "id: %s\nevent: %s\ndata: ", idbuf, type);
    } else {
        hl = snprintf(head, sizeof head, "event: %s\ndata: ", type);
    }
    /* JSON from jansson has no raw newlines, so one data: line holds it. */
    if (!(m = msg_alloc((size_t)hl + len + 2))) return NULL;
    memcpy(m->data, head, (size_t)hl);
    memcpy(m->data + hl, json, len);
    memcpy(m->data + hl + len, "\n\n", 2);
    return m;
}

tk_msg_t *tk_msg_raw(const char *bytes, size_t len)
{
    tk_msg_t *m = msg_alloc(len);
    if (m) memcpy(m->data, bytes, len);
    return m;
}

void tk_msg_unref(tk_msg_t *m)
{
    if (m && --m->refs == 0) free(m);
}
