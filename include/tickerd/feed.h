/* feed.h - the current items as documents: the /v1/items JSON, a JSON Feed
 * 1.1 and an RSS 2.0 channel, the ETag that names one answer, and the
 * If-None-Match test. Pure functions, no I/O: http.c reads the request and
 * the history, these turn what it read into bytes. */
#ifndef TICKERD_FEED_H
#define TICKERD_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tickerd/filter.h"
#include "tickerd/history.h"
#include "tickerd/id.h"

/* limit= when the request gives none (SPEC §3). */
#define TK_FEED_DEFAULT_LIMIT 20

/* An ETag: '"', 16 hex digits, '"', NUL. */
#define TK_FEED_ETAG_LEN 19

typedef enum { TK_FEED_ITEMS, TK_FEED_JSON, TK_FEED_RSS, TK_FEED_FORMATS } tk_feed_format_t;

/* What one answer is made of. Every pointer is the caller's and is only
 * read. items are the current items oldest first, as tk_history_current
 * gives them; the feeds list them newest first. */
typedef struct tk_feed {
    const char *epoch;
    tk_id_t last_id;           /* the history's newest event */
    const char *base;          /* "scheme://host[:port]", for the feeds' links */
    const char *stream_key;    /* names the channel */
    const tk_filter_t *filter; /* what was asked, after the token narrowed it */
    int limit;
    tk_state_t *const *items;
    int n;
} tk_feed_t;

/* The document of format fmt: malloc'd, NUL-terminated (its length in
 * *len), or NULL when out of memory. */
char *tk_feed_render(tk_feed_format_t fmt, const tk_feed_t *f, size_t *len);

/* The Content-Type of format fmt. */
const char *tk_feed_type(tk_feed_format_t fmt);

/* The strong ETag of the answer of format fmt to f, into out. It changes
 * whenever the document could: with any new event (last_id), the epoch,
 * the set of items given (an expiry or an eviction drops one without a new
 * event), the filter, the limit and the links. */
void tk_feed_etag(tk_feed_format_t fmt, const tk_feed_t *f, char out[TK_FEED_ETAG_LEN]);

/* Whether an If-None-Match header value (a list of entity tags, or "*")
 * names etag, compared weakly (RFC 9110 13.1.2: W/"x" matches "x"). */
bool tk_etag_match(const char *if_none_match, const char *etag);

/* Whether language name lang is written right to left (ar, fa, he, ur, ...;
 * only its primary subtag counts). */
bool tk_lang_rtl(const char *lang);

/* Text fit for XML 1.0 character data and attribute values: &, <, >, " and
 * ' as references, every character XML 1.0 forbids (C0 controls but tab,
 * newline and carriage return; U+FFFE, U+FFFF) and every byte that is not
 * UTF-8 replaced by U+FFFD; a carriage return as a reference, so that it
 * survives line-end normalisation. Written to out. */
void tk_xml_escape(FILE *out, const char *s);

#endif
