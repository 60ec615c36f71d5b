/* fuzz_config.c - the INI config file (tk_config_load_file and
 * tk_config_validate, as --check-config and SIGHUP use them) and Redis URL
 * parsing. The input is written to a memfd that is read back by path; it is
 * also given, as one string, to tk_redis_url_parse, and, as a list, to the
 * shared parsers of parse.h. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tickerd/config.h"
#include "tickerd/parse.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    tk_redis_url_t url;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-config", 0)) < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    tk_config_t *cfg = tk_config_create();
    if (!cfg) abort();
    err[0] = 0;
    if (tk_config_load_file(cfg, path, err, sizeof err) == 0) {
        if (tk_config_validate(cfg, err, sizeof err)) abort(); /* load validates */
        if (tk_redis_url_parse(cfg->redis_url, &url, err, sizeof err)) abort();
        tk_redis_url_clear(&url);
    } else if (!err[0]) {
        abort(); /* a refused config always says why */
    }
    tk_config_free(cfg);

    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (tk_redis_url_parse(s, &url, err, sizeof err) == 0) {
        if (!url.host == !url.path) abort(); /* exactly one of the two */
        if (url.port < 1 || url.port > 65535) abort();
        tk_redis_url_clear(&url);
    }
    free(s);

    /* The shared parsers (parse.h) on the same bytes, as a list: no element
     * is empty, padded or holds a comma; a number reads back as its digits;
     * a network's prefix fits its family. */
    tk_list_iter_t it;
    tk_span_t el;
    tk_list_init(&it, (const char *)data, size);
    while (tk_list_next(&it, &el) > 0) {
        if (!el.len || tk_is_space((unsigned char)el.s[0]) ||
            tk_is_space((unsigned char)el.s[el.len - 1]) || memchr(el.s, ',', el.len))
            abort();
        int v;
        if (tk_parse_int(el.s, el.len, 0, INT_MAX, &v) == 0) {
            char digits[16];
            size_t z = 0;
            while (z + 1 < el.len && el.s[z] == '0')
                z++;
            int n = snprintf(digits, sizeof digits, "%d", v);
            if (v < 0 || (size_t)n != el.len - z || memcmp(digits, el.s + z, (size_t)n)) abort();
        }
        tk_cidr_t c;
        if (tk_cidr_parse(el.s, el.len, &c) == 0 && (c.family == AF_INET    ? c.bits > 32
                                                     : c.family == AF_INET6 ? c.bits > 128
                                                                            : 1))
            abort();
    }
    return 0;
}
