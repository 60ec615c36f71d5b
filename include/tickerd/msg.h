/* msg.h - reference-counted, already-framed server messages. One buffer is
 * built per event and transport and shared by every client that gets it;
 * clients only hold references. */
#ifndef TICKERD_MSG_H
#define TICKERD_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/id.h"

/* A long-poll (poll.c) "frame" is the event's bare JSON: an answer joins
 * them into one body. */
typedef enum { TK_TRANSPORT_WS, TK_TRANSPORT_SSE, TK_TRANSPORT_POLL, TK_TRANSPORTS } tk_transport_t;

typedef struct tk_msg {
    uint32_t refs;
    uint32_t len;        /* bytes at data, framing included */
    uint32_t pending;    /* live sends not yet written (fan-out histogram) */
    int64_t stamp_ms;    /* stream-ID time of a live event; 0 = untracked */
    unsigned char *data; /* the frame; TK_MSG_PRE bytes of headroom before */
    unsigned char buf[];
} tk_msg_t;

/* Headroom lws wants before a buffer handed to lws_write(). */
extern const size_t tk_msg_pre;

/* Builds a frame holding json (len bytes) for transport t: a WebSocket text
 * frame header, the SSE lines "id:"/"event:"/"data:", or the JSON alone
 * (long-poll). id may be NULL.
 * Returns a message with one reference, or NULL. */
tk_msg_t *tk_msg_frame(tk_transport_t t, const char *type, const tk_id_t *id, const char *json,
                       size_t len);
/* Raw bytes (an SSE comment, say), copied. */
tk_msg_t *tk_msg_raw(const char *bytes, size_t len);

static inline tk_msg_t *tk_msg_ref(tk_msg_t *m)
{
    m->refs++;
    return m;
}
void tk_msg_unref(tk_msg_t *m);

#endif
