/* loadgen_run: the `run` mode of bw-bench-loadgen (loadgen.h). A thread produces the event
 * stream (at full speed or at --rate), while the main thread reads the results topic and
 * matches each result to its send by event_id (a re-send to its second send) for the
 * produce-to-result latency. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "loadgen.h"

struct run {
	const struct opts *o;
	struct plan plan;
	_Atomic int64_t *send_us;    /* message -> monotonic send time (0: not yet) */
	_Atomic long sent;
	_Atomic int64_t first_send_us;
	_Atomic int produce_failed;
	_Atomic int stop;
	rd_kafka_t *producer;
};

static int event_json(char *buf, size_t len, const struct run *r, long u, int64_t ts_us)
{
	char org[32];
	lg_org_name(&r->plan, org, sizeof(org), r->plan.uniq_org[u]);
	return snprintf(buf, len,
			"{\"event_id\":\"%s-%ld\",\"org_id\":\"%s\",\"spus\":%d,"
			"\"operation\":\"llm_call\",\"source\":\"bench\","
			"\"timestamp\":\"2026-11-25T12:00:00Z\",\"llm_provider\":\"openai\","
			"\"llm_model\":\"gpt-4o-mini\",\"prompt_tokens\":900,"
			"\"completion_tokens\":100,\"total_tokens\":1000,"
			"\"bench_ts_us\":%" PRId64 "}",
			r->o->prefix, u, org, r->plan.uniq_spus[u], ts_us);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct run *r = opaque;
	(void)rk;
	if (m->err) {
		if (atomic_fetch_add(&r->produce_failed, 1) == 0)
			fprintf(stderr, "loadgen: delivery failed: %s\n", rd_kafka_err2str(m->err));
	}
}

static void *produce_thread(void *arg)
{
	struct run *r = arg;
	const struct opts *o = r->o;
	int64_t *wall_ts = calloc((size_t)r->plan.nuniq + 1, sizeof(*wall_ts));
	int64_t start = 0;
	char buf[1024], key[32];

	if (!wall_ts) {
		atomic_store(&r->produce_failed, 1);
		return NULL;
	}
	for (long i = 0; i < r->plan.n && !atomic_load(&r->stop); i++) {
		long u = r->plan.msg_uniq[i];
		if (o->rate > 0 && i > 0) {
			/* token bucket: message i may go at start + i / rate */
			int64_t due = start + (int64_t)((double)i * 1e6 / o->rate);
			int64_t wait = due - lg_now_us();
			if (wait > 0) {
				struct timespec ts = { wait / 1000000, (long)(wait % 1000000) * 1000 };
				nanosleep(&ts, NULL);
			}
		}
		if (r->plan.first_msg[u] == i)
			wall_ts[u] = lg_wall_us();   /* a re-send is the same bytes: same bench_ts_us */
		int len = event_json(buf, sizeof(buf), r, u, wall_ts[u]);
		int klen = lg_org_name(&r->plan, key, sizeof(key), r->plan.uniq_org[u]);
		for (;;) {
			int64_t t = lg_now_us();
			atomic_store(&r->send_us[i], t);
			rd_kafka_resp_err_t err = rd_kafka_producev(
				r->producer, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(key, (size_t)klen),
				RD_KAFKA_V_VALUE(buf, (size_t)len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
			if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
				if (i == 0) {
					start = t;
					atomic_store(&r->first_send_us, t);
				}
				break;
			}
			if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				fprintf(stderr, "loadgen: produce: %s\n", rd_kafka_err2str(err));
				atomic_store(&r->produce_failed, 1);
				free(wall_ts);
				return NULL;
			}
			rd_kafka_poll(r->producer, 10);
		}
		atomic_fetch_add(&r->sent, 1);
		rd_kafka_poll(r->producer, 0);
	}
	rd_kafka_flush(r->producer, 60000);
	free(wall_ts);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, long n, double p)
{
	if (n == 0)
		return -1;
	long i = (long)ceil(p * (double)n) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

/* Per second of sending: how many, latency p50 and max (lat is not yet sorted). */
static void print_series(const int64_t *lat, const int64_t *sent, long n, int64_t first)
{
	int64_t *buf = calloc((size_t)n + 1, sizeof(*buf));
	long last_sec = 0;

	if (!buf)
		return;
	for (long i = 0; i < n; i++)
		if ((sent[i] - first) / 1000000 > last_sec)
			last_sec = (long)((sent[i] - first) / 1000000);
	for (long sec = 0; sec <= last_sec; sec++) {
		long k = 0;
		for (long i = 0; i < n; i++)
			if ((sent[i] - first) / 1000000 == sec)
				buf[k++] = lat[i];
		qsort(buf, (size_t)k, sizeof(*buf), cmp_i64);
		fprintf(stderr, "{\"second\":%ld,\"sent\":%ld,\"p50_ms\":%.1f,\"max_ms\":%.1f}\n", sec,
			k, pct_ms(buf, k, 0.5), pct_ms(buf, k, 1.0));
	}
	free(buf);
}

static const char *const statuses[] = { "applied", "insufficient_credits", "duplicate",
					"conflict", "rejected" };
#define NSTATUS 5

static const char *const pprops[] = { "linger.ms", "2", "acks", "all", "enable.idempotence",
				      "true", "queue.buffering.max.messages", "1000000", NULL };

static int64_t plan_spus(const struct plan *p)
{
	int64_t spus = 0;
	for (long u = 0; u < p->nuniq; u++)
		spus += p->uniq_spus[u];
	return spus;
}

int lg_mode_produce(const struct opts *o)
{
	struct run r;
	int rc = 1;

	memset(&r, 0, sizeof(r));
	r.o = o;
	if (lg_plan_build(&r.plan, o) != 0)
		goto done;
	r.send_us = calloc((size_t)o->events, sizeof(*r.send_us));
	if (!r.send_us)
		goto done;
	r.producer = lg_kafka_new(RD_KAFKA_PRODUCER, pprops, &r, on_delivery);
	if (!r.producer)
		goto done;
	produce_thread(&r);   /* in this thread: produces everything, then flushes */
	rc = atomic_load(&r.sent) == o->events && !atomic_load(&r.produce_failed) &&
			     rd_kafka_outq_len(r.producer) == 0
		     ? 0
		     : 3;
	printf("{\"mode\":\"produce\",\"events\":%ld,\"unique_events\":%ld,\"resends\":%ld,"
	       "\"unique_spus\":%" PRId64 ",\"sent\":%ld,\"failed\":%d}\n",
	       o->events, r.plan.nuniq, o->events - r.plan.nuniq, plan_spus(&r.plan),
	       atomic_load(&r.sent), atomic_load(&r.produce_failed));
done:
	if (r.producer)
		rd_kafka_destroy(r.producer);
	free(r.send_us);
	lg_plan_free(&r.plan);
	return rc;
}

int lg_mode_run(const struct opts *o)
{
	struct run r;
	rd_kafka_t *reader = NULL;
	pthread_t th;
	int started = 0, rc = 1;
	int64_t *lat = NULL, *lat_sent = NULL, *lat_all = NULL, last_result = 0, last_progress;
	long nlat = 0, nall = 0, results = 0, unmatched = 0, counts[NSTATUS + 1] = { 0 };
	unsigned char *seen = NULL;
	char prefix_dash[128];
	size_t plen;

	memset(&r, 0, sizeof(r));
	r.o = o;
	snprintf(prefix_dash, sizeof(prefix_dash), "%s-", o->prefix);
	plen = strlen(prefix_dash);
	if (lg_plan_build(&r.plan, o) != 0)
		goto done;
	r.send_us = calloc((size_t)o->events, sizeof(*r.send_us));
	lat = calloc((size_t)o->events, sizeof(*lat));
	lat_sent = calloc((size_t)o->events, sizeof(*lat_sent));
	lat_all = calloc((size_t)o->events, sizeof(*lat_all));
	seen = calloc((size_t)r.plan.nuniq + 1, 1);
	if (!r.send_us || !lat || !lat_sent || !lat_all || !seen)
		goto done;
	reader = lg_reader_new(o->results);
	if (!reader)
		goto done;
	/* Let the fetcher reach the (empty) results partitions before the clock starts. */
	for (int i = 0; i < 5; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 100);
		if (m)
			rd_kafka_message_destroy(m);
	}
	r.producer = lg_kafka_new(RD_KAFKA_PRODUCER, pprops, &r, on_delivery);
	if (!r.producer)
		goto done;
	if (pthread_create(&th, NULL, produce_thread, &r) != 0)
		goto done;
	started = 1;
	last_progress = lg_now_us();
	while (results < o->events) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 100);
		int64_t t = lg_now_us();
		if (!m) {
			if (atomic_load(&r.produce_failed) ||
			    (double)(t - last_progress) > o->timeout_s * 1e6)
				break;
			continue;
		}
		if (m->err) {
			rd_kafka_message_destroy(m);
			continue;
		}
		last_progress = t;
		json_t *j = json_loadb(m->payload, m->len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "event_id"));
		const char *st = json_string_value(json_object_get(j, "status"));
		int si = NSTATUS;
		for (int k = 0; st && k < NSTATUS; k++)
			if (strcmp(st, statuses[k]) == 0)
				si = k;
		counts[si]++;
		results++;
		last_result = t;
		long u = -1;
		if (id && strncmp(id, prefix_dash, plen) == 0) {
			char *end = NULL;
			errno = 0;
			long v = strtol(id + plen, &end, 10);
			if (errno == 0 && end && *end == '\0' && v >= 0 && v < r.plan.nuniq)
				u = v;
		}
		if (u < 0 || seen[u] >= 2 || (seen[u] == 1 && r.plan.dup_msg[u] < 0)) {
			unmatched++;
		} else {
			long msg = seen[u] == 0 ? r.plan.first_msg[u] : r.plan.dup_msg[u];
			int64_t s = atomic_load(&r.send_us[msg]);
			seen[u]++;
			if (s > 0) {
				lat_all[nall++] = t - s;
				if ((double)(s - atomic_load(&r.first_send_us)) >= o->warmup_s * 1e6) {
					lat_sent[nlat] = s;
					lat[nlat++] = t - s;
				}
			}
		}
		json_decref(j);
		rd_kafka_message_destroy(m);
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	started = 0;
	if (o->series)
		print_series(lat, lat_sent, nlat, atomic_load(&r.first_send_us));
	qsort(lat, (size_t)nlat, sizeof(*lat), cmp_i64);
	qsort(lat_all, (size_t)nall, sizeof(*lat_all), cmp_i64);
	{
		int64_t first = atomic_load(&r.first_send_us);
		double secs = first && last_result > first ? (double)(last_result - first) / 1e6 : 0;
		int64_t spus = plan_spus(&r.plan);
		printf("{\"mode\":\"run\",\"events\":%ld,\"unique_events\":%ld,\"resends\":%ld,"
		       "\"unique_spus\":%" PRId64 ",\"sent\":%ld,\"results\":%ld,"
		       "\"unmatched\":%ld,",
		       o->events, r.plan.nuniq, o->events - r.plan.nuniq, spus,
		       atomic_load(&r.sent), results, unmatched);
		for (int k = 0; k < NSTATUS; k++)
			printf("\"%s\":%ld,", statuses[k], counts[k]);
		printf("\"other_status\":%ld,\"seconds\":%.3f,\"events_per_s\":%.1f,"
		       "\"target_rate\":%.1f,\"warmup_s\":%.1f,\"latency_events\":%ld,"
		       "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"p99_all_ms\":%.2f,"
		       "\"max_all_ms\":%.2f}\n",
		       counts[NSTATUS], secs, secs > 0 ? (double)results / secs : 0, o->rate,
		       o->warmup_s, nlat, pct_ms(lat, nlat, 0.50), pct_ms(lat, nlat, 0.99),
		       pct_ms(lat, nlat, 1.0), pct_ms(lat_all, nall, 0.99),
		       pct_ms(lat_all, nall, 1.0));
	}
	rc = results == o->events && !atomic_load(&r.produce_failed) ? 0 : 3;
	if (rc)
		fprintf(stderr, "loadgen: %ld of %ld results (produce failures %d)\n", results,
			o->events, atomic_load(&r.produce_failed));
done:
	if (started) {
		atomic_store(&r.stop, 1);
		pthread_join(th, NULL);
	}
	if (r.producer)
		rd_kafka_destroy(r.producer);
	if (reader) {
		rd_kafka_consumer_close(reader);
		rd_kafka_destroy(reader);
	}
	free(lat);
	free(lat_sent);
	free(lat_all);
	free(seen);
	free(r.send_us);
	lg_plan_free(&r.plan);
	return rc;
}

