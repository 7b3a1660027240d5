/* metrics: see metrics.h. */
#include "metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"

#ifndef BW_VERSION
#define BW_VERSION "unknown"
#endif

static _Atomic uint64_t counters[BW_M_COUNT];
static _Atomic int64_t gauges[BW_G_COUNT] = { -1, 0 };

static const char *names[BW_M_COUNT] = {
	"msgs_in", "batches", "db_round_trips", "applied", "duplicates", "conflicts",
	"rejected", "dlq", "retries", "version_misses", "results", "signature_failures",
	"alerts",
};

/* Histogram upper bounds (le); the last bucket is +Inf. */
static const double size_le[] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000 };
static const double dur_le[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				 0.25,  0.5,    1,     2.5,  5,     10,   30 };
#define NSIZE (sizeof(size_le) / sizeof(size_le[0]))
#define NDUR (sizeof(dur_le) / sizeof(dur_le[0]))

static _Atomic uint64_t stage_us[BW_STAGE_COUNT];
static const char *stage_names[BW_STAGE_COUNT] = {
	"wait", "parse", "reads", "compute", "writes", "publish", "ack",
};

static _Atomic uint64_t size_buckets[NSIZE + 1], dur_buckets[NDUR + 1];
static _Atomic uint64_t size_sum, dur_sum_us;
static _Atomic int64_t heartbeat_ms, last_ok_unix_ms;
static _Atomic uint64_t rebalances[2]; /* revoke, assign */
static _Atomic uint64_t http_status[600];

static char worker_label[64] = "unknown", topic_label[250] = "";

#define MAX_REASONS 32
#define REASON_LEN 48
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER; /* reasons and the lag table */
static char reasons[MAX_REASONS + 1][REASON_LEN + 1];
static uint64_t reason_count[MAX_REASONS + 1];
static size_t nreasons;
#define MAX_LAG 256
static struct bw_metrics_lag lag_rows[MAX_LAG];
static size_t nlag;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bw_metrics_add(enum bw_metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&counters[m], n, memory_order_relaxed);
}

uint64_t bw_metrics_get(enum bw_metric m)
{
	return atomic_load_explicit(&counters[m], memory_order_relaxed);
}

void bw_metrics_gauge_set(enum bw_gauge g, int64_t v)
{
	atomic_store_explicit(&gauges[g], v, memory_order_relaxed);
}

int64_t bw_metrics_gauge_get(enum bw_gauge g)
{
	return atomic_load_explicit(&gauges[g], memory_order_relaxed);
}

void bw_metrics_set_labels(const char *worker, const char *topic)
{
	if (worker)
		snprintf(worker_label, sizeof(worker_label), "%s", worker);
	if (topic)
		snprintf(topic_label, sizeof(topic_label), "%s", topic);
	if (atomic_load(&heartbeat_ms) == 0)
		atomic_store(&heartbeat_ms, mono_ms());
}

void bw_metrics_heartbeat(void)
{
	atomic_store_explicit(&heartbeat_ms, mono_ms(), memory_order_relaxed);
}

int64_t bw_metrics_heartbeat_age_ms(void)
{
	return mono_ms() - atomic_load_explicit(&heartbeat_ms, memory_order_relaxed);
}

int64_t bw_metrics_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bw_metrics_stage_lap(enum bw_stage stage, int64_t *mark)
{
	int64_t now = bw_metrics_now_us();

	if (now > *mark)
		atomic_fetch_add_explicit(&stage_us[stage], (uint64_t)(now - *mark),
					  memory_order_relaxed);
	*mark = now;
}

uint64_t bw_metrics_stage_us(enum bw_stage stage)
{
	return atomic_load_explicit(&stage_us[stage], memory_order_relaxed);
}

static size_t bucket_of(const double *le, size_t n, double v)
{
	size_t i = 0;
	while (i < n && v > le[i])
		i++;
	return i;
}

void bw_metrics_batch(size_t size, int64_t duration_us, int ok)
{
	if (duration_us < 0)
		duration_us = 0;
	atomic_fetch_add_explicit(&size_buckets[bucket_of(size_le, NSIZE, (double)size)], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&size_sum, size, memory_order_relaxed);
	atomic_fetch_add_explicit(&dur_buckets[bucket_of(dur_le, NDUR, (double)duration_us / 1e6)],
				  1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dur_sum_us, (uint64_t)duration_us, memory_order_relaxed);
	if (ok) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		atomic_store_explicit(&last_ok_unix_ms,
				      (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
				      memory_order_relaxed);
	}
}

void bw_metrics_dlq(const char *reason)
{
	char key[REASON_LEN + 1];
	size_t n = 0, slot;

	for (; reason && reason[n] && reason[n] != ':' && n < REASON_LEN; n++) {
		unsigned char c = (unsigned char)reason[n];
		key[n] = isalnum(c) || c == ' ' || c == '_' || c == '-' || c == '.' ? (char)c : '_';
	}
	key[n] = '\0';
	if (n == 0)
		snprintf(key, sizeof(key), "unknown");
	bw_metrics_add(BW_M_DLQ, 1);
	pthread_mutex_lock(&slow_lock);
	for (slot = 0; slot < nreasons && strcmp(reasons[slot], key) != 0; slot++)
		;
	if (slot == nreasons) {
		if (nreasons < MAX_REASONS)
			snprintf(reasons[nreasons++], REASON_LEN + 1, "%s", key);
		else
			slot = MAX_REASONS; /* "other" */
	}
	reason_count[slot]++;
	pthread_mutex_unlock(&slow_lock);
}

void bw_metrics_rebalance(int assign, int n)
{
	int64_t cur = bw_metrics_gauge_get(BW_G_PARTITIONS);

	atomic_fetch_add_explicit(&rebalances[assign ? 1 : 0], 1, memory_order_relaxed);
	if (cur < 0)
		cur = 0;
	cur += assign ? n : -n;
	bw_metrics_gauge_set(BW_G_PARTITIONS, cur < 0 ? 0 : cur);
	if (!assign && cur <= 0)
		bw_metrics_lag_replace(NULL, 0);
}

void bw_metrics_lag_replace(const struct bw_metrics_lag *rows, size_t n)
{
	pthread_mutex_lock(&slow_lock);
	nlag = n < MAX_LAG ? n : MAX_LAG;
	if (nlag)
		memcpy(lag_rows, rows, nlag * sizeof(*rows));
	pthread_mutex_unlock(&slow_lock);
}

void bw_metrics_http(unsigned status)
{
	if (status < 600)
		atomic_fetch_add_explicit(&http_status[status], 1, memory_order_relaxed);
}

/* The exposition text: grows up to a hard limit (a few KB in practice). */
struct text {
	char *buf;
	size_t len, cap;
	int failed;
};

#define TEXT_MAX (1u << 20)

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap * 2;
		char *nb = cap <= TEXT_MAX ? realloc(t->buf, cap) : NULL;
		if (!nb) {
			t->failed = 1;
			return;
		}
		t->buf = nb;
		t->cap = cap;
	}
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct text *t, const char *name, const char *help, enum bw_metric m)
{
	head(t, name, "counter", help);
	put(t, "%s{worker=\"%s\"} %llu\n", name, worker_label,
	    (unsigned long long)bw_metrics_get(m));
}

static void histogram(struct text *t, const char *name, const char *help, const double *le,
		      size_t n, _Atomic uint64_t *buckets, double sum)
{
	uint64_t cum = 0;

	head(t, name, "histogram", help);
	for (size_t i = 0; i <= n; i++) {
		cum += atomic_load_explicit(&buckets[i], memory_order_relaxed);
		if (i < n)
			put(t, "%s_bucket{worker=\"%s\",le=\"%g\"} %llu\n", name, worker_label,
			    le[i], (unsigned long long)cum);
		else
			put(t, "%s_bucket{worker=\"%s\",le=\"+Inf\"} %llu\n", name, worker_label,
			    (unsigned long long)cum);
	}
	put(t, "%s_sum{worker=\"%s\"} %.6f\n%s_count{worker=\"%s\"} %llu\n", name, worker_label,
	    sum, name, worker_label, (unsigned long long)cum);
}

static void render_messages(struct text *t)
{
	static const struct { const char *status; enum bw_metric m; } outcomes[] = {
		{ "applied", BW_M_APPLIED },   { "duplicate", BW_M_DUPLICATES },
		{ "conflict", BW_M_CONFLICTS }, { "rejected", BW_M_REJECTED },
	};

	head(t, "bw_messages_received_total", "counter",
	     "Messages taken from the input topic (the ingress: webhooks received)");
	put(t, "bw_messages_received_total{worker=\"%s\",topic=\"%s\"} %llu\n", worker_label,
	    topic_label, (unsigned long long)bw_metrics_get(BW_M_MSGS_IN));
	head(t, "bw_messages_total", "counter", "Messages handled, by outcome");
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		put(t, "bw_messages_total{worker=\"%s\",topic=\"%s\",status=\"%s\"} %llu\n",
		    worker_label, topic_label, outcomes[i].status,
		    (unsigned long long)bw_metrics_get(outcomes[i].m));
	counter(t, "bw_results_published_total", "Outcome records published to the results topic",
		BW_M_RESULTS);
	counter(t, "bw_alerts_published_total",
		"Low-balance alerts published to the alerts topic (usage worker)", BW_M_ALERTS);
	head(t, "bw_dlq_records_total", "counter", "Records published to a DLQ, by reason");
	pthread_mutex_lock(&slow_lock);
	for (size_t i = 0; i <= MAX_REASONS; i++)
		if (i < nreasons || (i == MAX_REASONS && reason_count[i]))
			put(t, "bw_dlq_records_total{worker=\"%s\",reason=\"%s\"} %llu\n",
			    worker_label, i < nreasons ? reasons[i] : "other",
			    (unsigned long long)reason_count[i]);
	pthread_mutex_unlock(&slow_lock);
}

/* Only for binaries that run batches: the others would show a block of zeros. */
static void render_stages(struct text *t)
{
	uint64_t any = 0;

	for (int i = 0; i < BW_STAGE_COUNT; i++)
		any |= bw_metrics_stage_us((enum bw_stage)i);
	if (!any)
		return;
	head(t, "bw_batch_stage_seconds_total", "counter",
	     "Time spent per stage of a batch: wait (poll), parse, reads, compute, writes, publish "
	     "(queue), ack (wait for acknowledgements and the after-ack steps)");
	for (int i = 0; i < BW_STAGE_COUNT; i++)
		put(t, "bw_batch_stage_seconds_total{worker=\"%s\",stage=\"%s\"} %.6f\n",
		    worker_label, stage_names[i],
		    (double)bw_metrics_stage_us((enum bw_stage)i) / 1e6);
}

static void render_kafka(struct text *t)
{
	head(t, "bw_consumer_lag", "gauge",
	     "Messages behind the partition's end, per assigned partition (librdkafka statistics)");
	pthread_mutex_lock(&slow_lock);
	for (size_t i = 0; i < nlag; i++)
		put(t, "bw_consumer_lag{worker=\"%s\",topic=\"%s\",partition=\"%d\"} %lld\n",
		    worker_label, lag_rows[i].topic, (int)lag_rows[i].partition,
		    (long long)lag_rows[i].lag);
	pthread_mutex_unlock(&slow_lock);
	head(t, "bw_consumer_rebalances_total", "counter", "Partition assignments and revocations");
	put(t, "bw_consumer_rebalances_total{worker=\"%s\",type=\"assign\"} %llu\n", worker_label,
	    (unsigned long long)atomic_load(&rebalances[1]));
	put(t, "bw_consumer_rebalances_total{worker=\"%s\",type=\"revoke\"} %llu\n", worker_label,
	    (unsigned long long)atomic_load(&rebalances[0]));
	head(t, "bw_consumer_partitions_assigned", "gauge", "Partitions this consumer holds now");
	put(t, "bw_consumer_partitions_assigned{worker=\"%s\"} %lld\n", worker_label,
	    (long long)(bw_metrics_gauge_get(BW_G_PARTITIONS) < 0
				? 0 : bw_metrics_gauge_get(BW_G_PARTITIONS)));
	head(t, "bw_producer_queue_messages", "gauge",
	     "Messages in the producer's queue, not yet acknowledged by the broker");
	put(t, "bw_producer_queue_messages{worker=\"%s\"} %lld\n", worker_label,
	    (long long)bw_metrics_gauge_get(BW_G_PRODUCER_QUEUE));
}

static void render_http(struct text *t)
{
	int any = 0;

	for (unsigned s = 100; s < 600 && !any; s++)
		any = atomic_load_explicit(&http_status[s], memory_order_relaxed) != 0;
	if (!any && bw_metrics_get(BW_M_SIG_FAILURES) == 0)
		return;
	head(t, "bw_http_requests_total", "counter", "Webhook endpoint answers, by status code");
	for (unsigned s = 100; s < 600; s++) {
		uint64_t v = atomic_load_explicit(&http_status[s], memory_order_relaxed);
		if (v)
			put(t, "bw_http_requests_total{worker=\"%s\",code=\"%u\"} %llu\n",
			    worker_label, s, (unsigned long long)v);
	}
	counter(t, "bw_webhook_signature_failures_total", "Webhooks whose signature check failed",
		BW_M_SIG_FAILURES);
}

char *bw_metrics_render(void)
{
	struct text t = { malloc(8192), 0, 8192, 0 };
	int64_t last_ok = atomic_load(&last_ok_unix_ms);

	if (!t.buf)
		return NULL;
	head(&t, "bw_build_info", "gauge", "Build of this binary (always 1)");
	put(&t, "bw_build_info{worker=\"%s\",version=\"%s\"} 1\n", worker_label, BW_VERSION);
	render_messages(&t);
	histogram(&t, "bw_batch_size", "Messages per batch handed to the handler", size_le, NSIZE,
		  size_buckets, (double)atomic_load(&size_sum));
	histogram(&t, "bw_batch_duration_seconds", "Time the handler took per batch", dur_le,
		  NDUR, dur_buckets, (double)atomic_load(&dur_sum_us) / 1e6);
	render_stages(&t);
	counter(&t, "bw_batch_retries_total",
		"Batches (or sync steps) retried after a transient error", BW_M_RETRIES);
	counter(&t, "bw_db_round_trips_total", "MongoDB round trips", BW_M_DB_ROUND_TRIPS);
	counter(&t, "bw_version_misses_total",
		"Conditional updates that missed (balance_version or sync version moved)",
		BW_M_VERSION_MISSES);
	head(&t, "bw_last_batch_success_timestamp_seconds", "gauge",
	     "Unix time of the last batch that succeeded (0: none yet)");
	put(&t, "bw_last_batch_success_timestamp_seconds{worker=\"%s\"} %.3f\n", worker_label,
	    (double)last_ok / 1000.0);
	head(&t, "bw_loop_heartbeat_age_seconds", "gauge", "Seconds since the loop last ran");
	put(&t, "bw_loop_heartbeat_age_seconds{worker=\"%s\"} %.3f\n", worker_label,
	    (double)bw_metrics_heartbeat_age_ms() / 1000.0);
	render_kafka(&t);
	render_http(&t);
	if (t.failed) {
		free(t.buf);
		return NULL;
	}
	return t.buf;
}

void bw_metrics_log(const char *why)
{
	char buf[1024];
	size_t used = 0;
	struct rusage ru;

	for (int i = 0; i < BW_M_COUNT && used < sizeof(buf); i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "\"%s\":%llu,", names[i],
					 (unsigned long long)bw_metrics_get((enum bw_metric)i));
	for (int i = 0; i < BW_STAGE_COUNT && used < sizeof(buf); i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "\"stage_%s_us\":%llu,",
					 stage_names[i],
					 (unsigned long long)bw_metrics_stage_us((enum bw_stage)i));
	getrusage(RUSAGE_SELF, &ru);
	if (used < sizeof(buf))
		snprintf(buf + used, sizeof(buf) - used,
			 "\"cpu_user_s\":%ld.%06ld,\"cpu_sys_s\":%ld.%06ld,\"max_rss_kb\":%ld",
			 (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
			 (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
	bw_log(BW_LOG_INFO, NULL, "metrics %s {%s}", why, buf);
}
