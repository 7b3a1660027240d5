/* fault: see fault.h. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

static char fault_step[64];
static long fault_remaining;
static char fail_step[64];

int bw_fault_init(void)
{
	const char *v = getenv("BW_FAULT_AT");
	const char *f = getenv("BW_FAULT_FAIL");
	const char *colon;
	int64_t n = 1;
	size_t len;

	fault_step[0] = '\0';
	fail_step[0] = '\0';
	if (f && *f) {
		if (strlen(f) >= sizeof(fail_step))
			return -1;
		strcpy(fail_step, f);
	}
	if (!v || !*v)
		return 0;
	colon = strchr(v, ':');
	len = colon ? (size_t)(colon - v) : strlen(v);
	if (len == 0 || len >= sizeof(fault_step))
		return -1;
	if (colon && bw_parse_int64(colon + 1, 1, 1000000000, &n) != 0)
		return -1;
	memcpy(fault_step, v, len);
	fault_step[len] = '\0';
	fault_remaining = (long)n;
	return 0;
}

void bw_fault_point(const char *step)
{
	if (fault_step[0] == '\0' || strcmp(step, fault_step) != 0)
		return;
	if (--fault_remaining > 0)
		return;
	bw_log(BW_LOG_WARN, NULL, "fault injection: aborting at step %s", step);
	abort();
}

int bw_fault_fails(const char *step)
{
	if (fail_step[0] == '\0' || strcmp(step, fail_step) != 0)
		return 0;
	bw_log(BW_LOG_WARN, NULL, "fault injection: failing step %s", step);
	return 1;
}
