/* metrics: process-wide counters, gauges and histograms (atomic, cheap on the hot path),
 * rendered as Prometheus text (bw_metrics_render, served by ops_http on METRICS_PORT) and as
 * one JSON log line at exit (bw_metrics_log).
 *
 * Writers: the shared consumer loop (messages in, batches, heartbeat, rebalances), the edge
 * modules (database round trips, DLQ), the workers' batch handlers (outcomes), kafka_stats
 * (consumer lag), the ingress (HTTP requests). Every write is a relaxed atomic add or store,
 * except the rare ones (DLQ reason, lag table) which take a mutex. */
#ifndef BW_METRICS_H
#define BW_METRICS_H

#include <stddef.h>
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
	BW_M_SIG_FAILURES,   /* webhook signature checks that failed (ingress) */
	BW_M_ALERTS,         /* low-balance alerts published (usage worker) */
	BW_M_COUNT
};

/* Gauges that an owner sets (the latest value wins). */
enum bw_gauge {
	BW_G_PARTITIONS,       /* partitions assigned now; -1 before the first assignment */
	BW_G_PRODUCER_QUEUE,   /* messages waiting in the producer (set at scrape) */
	BW_G_COUNT
};

void bw_metrics_add(enum bw_metric m, uint64_t n);
uint64_t bw_metrics_get(enum bw_metric m);
void bw_metrics_gauge_set(enum bw_gauge g, int64_t v);
int64_t bw_metrics_gauge_get(enum bw_gauge g);

/* The stages of a batch, as time spent in each (microseconds, summed over batches): the
 * consumer loop adds wait, publish and ack; a handler that splits its work adds the rest. */
enum bw_stage {
	BW_STAGE_WAIT,      /* polling for the batch's messages (consumer loop) */
	BW_STAGE_PARSE,     /* parsing and validating the messages */
	BW_STAGE_READS,     /* database reads */
	BW_STAGE_COMPUTE,   /* in-memory work between the round trips (waterfall, documents) */
	BW_STAGE_WRITES,    /* database writes */
	BW_STAGE_PUBLISH,   /* queuing results, DLQ records and alerts (no waiting) */
	BW_STAGE_ACK,       /* waiting for their acknowledgements, and the steps after them */
	BW_STAGE_COUNT
};

/* Monotonic clock in microseconds: the mark that bw_metrics_stage_lap() measures from. */
int64_t bw_metrics_now_us(void);

/* Adds the time since *mark to stage and moves *mark to now, so consecutive laps with one
 * mark split a sequence of steps without gaps. */
void bw_metrics_stage_lap(enum bw_stage stage, int64_t *mark);

/* Microseconds spent in stage so far. */
uint64_t bw_metrics_stage_us(enum bw_stage stage);

/* The labels of this process: worker name and its input (or, for the ingress, output) topic.
 * Copied; call at start, before other threads read them. topic may be NULL. */
void bw_metrics_set_labels(const char *worker, const char *topic);

/* The loop is alive: stamps the heartbeat (monotonic clock). */
void bw_metrics_heartbeat(void);

/* Milliseconds since the last heartbeat (since process start when there was none). */
int64_t bw_metrics_heartbeat_age_ms(void);

/* One batch handed to a handler: its size, how long the handler took, and whether it
 * succeeded (a success stamps the time of the last successful batch). */
void bw_metrics_batch(size_t size, int64_t duration_us, int ok);

/* One DLQ record (counts BW_M_DLQ too). The reason's text up to its first ':' (sanitised,
 * at most 48 characters) becomes the label; past 32 distinct reasons they count as "other". */
void bw_metrics_dlq(const char *reason);

/* A rebalance: assign (1) or revoke (0) of n partitions; keeps BW_G_PARTITIONS. */
void bw_metrics_rebalance(int assign, int n);

/* Replaces the consumer lag table (from librdkafka statistics). At most 256 entries kept. */
struct bw_metrics_lag {
	char topic[250];
	int32_t partition;
	int64_t lag;
};
void bw_metrics_lag_replace(const struct bw_metrics_lag *rows, size_t n);

/* One HTTP answer of the ingress's webhook endpoint, by status code. */
void bw_metrics_http(unsigned status);

/* Prometheus text exposition (version 0.0.4) of everything above, plus build info. Returns a
 * new string (free()) or NULL when out of memory. */
char *bw_metrics_render(void);

/* Logs all counters, the stage times (stage_<name>_us), CPU seconds and peak RSS (getrusage)
 * at info level: one line "metrics <why> {json}". */
void bw_metrics_log(const char *why);

#endif
