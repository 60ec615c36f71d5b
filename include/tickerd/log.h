/* log.h - one-line logs to stderr (journald adds the time under systemd),
 * and a rate-limited variant for refusals a flood could repeat. */
#ifndef TICKERD_LOG_H
#define TICKERD_LOG_H

typedef enum { TK_LOG_DEBUG, TK_LOG_INFO, TK_LOG_WARN, TK_LOG_ERROR } tk_log_level_t;

extern tk_log_level_t tk_log_level;

void tk_log(tk_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* At most a few lines a second; the rest are counted and the count is
 * logged with the next line that passes. */
void tk_log_limited(tk_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
