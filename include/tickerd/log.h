/* log.h - one-line logs to stderr (journald adds the time under systemd),
 * as text or JSON, and rate-limited variants for what a flood could
 * repeat. */
#ifndef TICKERD_LOG_H
#define TICKERD_LOG_H

#include <stdbool.h>

typedef enum { TK_LOG_DEBUG, TK_LOG_INFO, TK_LOG_WARN, TK_LOG_ERROR } tk_log_level_t;

extern tk_log_level_t tk_log_level;

/* [log] level and format (json: one JSON object a line). */
void tk_log_configure(tk_log_level_t level, bool json);

void tk_log(tk_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The daemon's own trouble (Redis, lws, slow consumers): at most a few
 * lines a second; the rest are counted and the count is logged with the
 * next line that passes. */
void tk_log_limited(tk_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A refused client (info): the same, from a budget of its own. */
void tk_log_refused(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The first error line this process logged since tk_log_first_error_reset()
 * ("" when none): what a start that failed says as its reason
 * (supervisor.c). The text is this process's own, valid until the next
 * reset. */
const char *tk_log_first_error(void);
void tk_log_first_error_reset(void);

#endif
