/* fuzz_config.c - the INI config file (tk_config_load_file and
 * tk_config_validate, as --check-config and SIGHUP use them) and Redis URL
 * parsing. The input is written to a memfd that is read back by path; it is
 * also given, as one string, to tk_redis_url_parse. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tickerd/config.h"

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
    return 0;
}
