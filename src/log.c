/* log.c - stderr logging with levels and a token bucket for floods. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "tickerd/log.h"

tk_log_level_t tk_log_level = TK_LOG_INFO;

static const char *const level_name[] = {"debug", "info", "warn", "error"};

static void vlog(tk_log_level_t level, const char *fmt, va_list ap)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%d] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, (int)getpid(), level_name[level]);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    fprintf(stderr, "%s\n", line);
}

void tk_log(tk_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    if (level < tk_log_level) return;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void tk_log_limited(tk_log_level_t level, const char *fmt, ...)
{
    static double tokens = 10;
    static time_t last;
    static unsigned long suppressed;
    time_t now = time(NULL);
    va_list ap;
    if (level < tk_log_level) return;
    tokens += (double)(now - last) * 5;
    if (tokens > 10) tokens = 10;
    last = now;
    if (tokens < 1) {
        suppressed++;
        return;
    }
    tokens--;
    if (suppressed) {
        tk_log(TK_LOG_WARN, "%lu similar log lines suppressed", suppressed);
        suppressed = 0;
    }
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}
