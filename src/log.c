/* log.c - one line per event to stderr, as text or as one JSON object, with
 * levels, and two token buckets for what a flood could repeat: one for the
 * refusals of clients, one for the daemon's own trouble (Redis, lws), so
 * that a flood of bad clients cannot hide a Redis outage. It keeps the
 * first error line since a mark: the reason a start failed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tickerd/log.h"

tk_log_level_t tk_log_level = TK_LOG_INFO;
static bool log_json;
static char first_error[256];

static const char *const level_name[] = {"debug", "info", "warn", "error"};

void tk_log_configure(tk_log_level_t level, bool json)
{
    tk_log_level = level;
    log_json = json;
}

/* Appends s to out as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = 0;
    return n;
}

static void vlog(tk_log_level_t level, const char *fmt, va_list ap)
{
    char msg[1024], stamp[64];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (level == TK_LOG_ERROR && !*first_error)
        snprintf(first_error, sizeof first_error, "%.*s", (int)sizeof first_error - 1, msg);
    if (!log_json) {
        fprintf(stderr, "%s [%d] %s: %s\n", stamp, (int)getpid(), level_name[level], msg);
        return;
    }
    char esc[sizeof msg * 2];
    json_escape(esc, sizeof esc, msg);
    fprintf(stderr, "{\"ts\":\"%s\",\"pid\":%d,\"level\":\"%s\",\"msg\":\"%s\"}\n", stamp,
            (int)getpid(), level_name[level], esc);
}

void tk_log(tk_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    if (level < tk_log_level) return;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

/* A burst of 10 lines, then 5 a second; what is held back is counted and
 * said with the next line that passes. */
typedef struct bucket {
    double tokens;
    time_t last;
    unsigned long suppressed;
} bucket_t;

static bucket_t trouble = {10, 0, 0}, refusals = {10, 0, 0};

static bool take(bucket_t *b)
{
    time_t now = time(NULL);
    b->tokens += (double)(now - b->last) * 5;
    if (b->tokens > 10) b->tokens = 10;
    b->last = now;
    if (b->tokens < 1) {
        b->suppressed++;
        return false;
    }
    b->tokens--;
    if (b->suppressed) {
        tk_log(TK_LOG_WARN, "%lu similar log lines suppressed", b->suppressed);
        b->suppressed = 0;
    }
    return true;
}

void tk_log_limited(tk_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    if (level < tk_log_level || !take(&trouble)) return;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void tk_log_refused(const char *fmt, ...)
{
    va_list ap;
    if (TK_LOG_INFO < tk_log_level || !take(&refusals)) return;
    va_start(ap, fmt);
    vlog(TK_LOG_INFO, fmt, ap);
    va_end(ap);
}

const char *tk_log_first_error(void)
{
    return first_error;
}

void tk_log_first_error_reset(void)
{
    *first_error = 0;
}
