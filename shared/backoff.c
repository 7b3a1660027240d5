/* backoff: see backoff.h. */
#include "backoff.h"

struct timespec bw_backoff_jitter(int attempt, long step_ms, long cap_ms, unsigned long rnd)
{
	struct timespec ts;
	long bound = 0, ms;

	/* min(attempt * step_ms, cap_ms) without overflowing the product */
	if (attempt > 0 && step_ms > 0 && cap_ms > 0)
		bound = attempt > cap_ms / step_ms ? cap_ms : attempt * step_ms;
	if (bound > cap_ms)
		bound = cap_ms;
	ms = (long)(rnd % ((unsigned long)bound + 1));
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	return ts;
}
