/* metrics: see metrics.h. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "log.h"

static _Atomic uint64_t counters[BW_M_COUNT];

static const char *names[BW_M_COUNT] = {
	"msgs_in", "batches", "db_round_trips", "applied", "duplicates", "conflicts",
	"rejected", "dlq", "retries", "version_misses", "results",
};

void bw_metrics_add(enum bw_metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&counters[m], n, memory_order_relaxed);
}

uint64_t bw_metrics_get(enum bw_metric m)
{
	return atomic_load_explicit(&counters[m], memory_order_relaxed);
}

void bw_metrics_log(const char *why)
{
	char buf[768];
	size_t used = 0;
	struct rusage ru;

	for (int i = 0; i < BW_M_COUNT && used < sizeof(buf); i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "\"%s\":%llu,", names[i],
					 (unsigned long long)bw_metrics_get((enum bw_metric)i));
	getrusage(RUSAGE_SELF, &ru);
	if (used < sizeof(buf))
		snprintf(buf + used, sizeof(buf) - used,
			 "\"cpu_user_s\":%ld.%06ld,\"cpu_sys_s\":%ld.%06ld,\"max_rss_kb\":%ld",
			 (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
			 (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
	bw_log(BW_LOG_INFO, NULL, "metrics %s {%s}", why, buf);
}
