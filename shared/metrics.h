/* metrics: process-wide counters (atomic), reported as one JSON log line.
 *
 * Counters are what the benchmark and the closing notes quote: messages in, outcomes,
 * database round trips, batches. */
#ifndef BW_METRICS_H
#define BW_METRICS_H

#include <stdint.h>

enum bw_metric {
	BW_M_MSGS_IN = 0,
	BW_M_BATCHES,
	BW_M_DB_ROUND_TRIPS,
	BW_M_APPLIED,
	BW_M_DUPLICATES,
	BW_M_CONFLICTS,
	BW_M_REJECTED,
	BW_M_DLQ,
	BW_M_RETRIES,
	BW_M_VERSION_MISSES,
	BW_M_RESULTS,
	BW_M_COUNT
};

void bw_metrics_add(enum bw_metric m, uint64_t n);
uint64_t bw_metrics_get(enum bw_metric m);

/* Logs all counters plus CPU seconds and peak RSS (getrusage) at info level. */
void bw_metrics_log(const char *why);

#endif
