/* head.h - the head of a connection's first HTTP request (request line,
 * header lines, empty line), read by listener.c before libwebsockets sees
 * the connection, so that a request too large for lws's buffers gets its
 * answer (SPEC §6: 414 or 431) instead of a silent close. Pure: unit-tested
 * and fuzzed. */
#ifndef TICKERD_HEAD_H
#define TICKERD_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/* The limits, each allowed exactly and refused one over: */
#define TK_REQUEST_LINE_MAX 4096 /* bytes of the request line, without its CRLF (414) */
#define TK_QUERY_PARAMS_MAX 32   /* query parameters (414) */
#define TK_HEAD_MAX 8192         /* bytes of the whole head, CRLFs included (431) */
#define TK_HEAD_FIELDS_MAX 50    /* header lines (431) */

/* lws's header store must hold every head under the limits above: its
 * values, and 8 bytes of bookkeeping for each header it does not know. */
#define TK_LWS_HEADER_DATA (TK_HEAD_MAX + 8 * TK_HEAD_FIELDS_MAX + 512)

/* Scans buf[0..len), the start of a request. Returns the head's length
 * (> 0) once all of it is there within the limits; 0 while more is needed
 * (len < TK_HEAD_MAX guaranteed then); -414 or -431 as soon as a limit is
 * known to be passed. Lines end with LF, optionally preceded by CR. */
int tk_head_scan(const char *buf, size_t len);

/* The longest request body tickerd takes (POST /v1/items): allowed exactly,
 * refused 413 one over. */
#define TK_BODY_MAX 16384

/* How a request's body is framed, read from its head. */
typedef struct tk_head_body {
    bool bodyless_method; /* GET, HEAD or OPTIONS: a body is refused (400) */
    bool publish;         /* POST /v1/items, the one request that takes a body;
                           * a body on any other is refused 405 */
    bool chunked;         /* a Transfer-Encoding header: refused (411) */
    bool expect_continue; /* Expect: 100-continue */
    long long length;     /* Content-Length; -1 when there is none */
    size_t cl_off, cl_len; /* the Content-Length line in the head (cl_len 0: none) */
} tk_head_body_t;

/* Reads the framing of the body from head[0..len), a whole head as
 * tk_head_scan measured it. Returns 0, or -1 when Content-Length is not
 * one whole number (repeated, a list, signed, over 18 digits). */
int tk_head_body(const char *head, size_t len, tk_head_body_t *out);

#endif
