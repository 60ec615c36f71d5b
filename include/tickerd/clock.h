/* clock.h - wall-clock time, the ground floor every module may stand on:
 * stream IDs are wall-clock milliseconds, so expiry and latency are too. */
#ifndef TICKERD_CLOCK_H
#define TICKERD_CLOCK_H

#include <stdint.h>

int64_t tk_now_ms(void);
double tk_now_s(void);

#endif
