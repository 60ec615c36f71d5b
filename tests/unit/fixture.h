/* fixture.h - the group fixture the unit tests share: one configuration
 * with every default, created before a group and freed after it. Include
 * after <cmocka.h>. */
#ifndef TICKERD_TEST_FIXTURE_H
#define TICKERD_TEST_FIXTURE_H

#include "tickerd/config.h"

static tk_config_t *cfg;

static int setup(void **state)
{
    (void)state;
    cfg = tk_config_create();
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tk_config_free(cfg);
    return 0;
}

#endif
