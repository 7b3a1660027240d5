/* backoff: the delay before retrying something that failed, as a timespec nanosleep() accepts.
 * Used by the usage worker between conditional-update rounds of a contended org. */
#ifndef BW_BACKOFF_H
#define BW_BACKOFF_H

#include <time.h>

/* A jittered linear delay for retry round attempt (1, 2, ...): rnd (any random number)
 * modulo one more than min(attempt * step_ms, cap_ms), in milliseconds. The result is
 * normalized (0 <= tv_nsec < 1e9), so delays of a second and more are valid for nanosleep. */
struct timespec bw_backoff_jitter(int attempt, long step_ms, long cap_ms, unsigned long rnd);

#endif
