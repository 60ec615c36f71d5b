/* inject.h - failing an allocation on demand, for the unit tests of code
 * that must survive it (test_hub, test_embargo). The test is linked with
 * -Wl,--wrap=malloc,calloc,realloc,strdup,strndup (Makefile) and calls
 * json_set_alloc_funcs(json_alloc, free) in main. Include after
 * <cmocka.h>, once. */
#ifndef TICKERD_TEST_INJECT_H
#define TICKERD_TEST_INJECT_H

#include <stdbool.h>
#include <stddef.h>

/* Every allocation of the item, history, frame and hub code comes through
 * here. Armed, the fail_at-th allocation from then on fails; with persist,
 * every one after it too. The test's own buffers (the fake sockets, the
 * requests it hands the hub) come from the __real_ functions. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static struct {
    bool armed, persist;
    long fail_at; /* 0: count only */
    long seen, failed;
} inject;

static bool inject_fails(void)
{
    if (!inject.armed) return false;
    inject.seen++;
    if (!inject.fail_at || inject.seen < inject.fail_at) return false;
    if (inject.seen > inject.fail_at && !inject.persist) return false;
    inject.failed++;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return inject_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return inject_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return inject_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return inject_fails() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return inject_fails() ? NULL : __real_strndup(s, n);
}

static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}

#endif
