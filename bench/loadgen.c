/* bw-bench-loadgen: the usage benchmark's load generator and ceiling probes.
 *
 *   bw-bench-loadgen run   --topic T --results R [--events N] [--orgs M] [--dup F] [--zipf S]
 *                          [--seed X] [--rate EPS] [--prefix P] [--timeout-s S] [--series 1]
 *                          [--warmup-s W]
 *       Produces N usage events (keyed by org_id, Zipf-skewed orgs, a fraction F re-sent
 *       unchanged) to T as fast as the broker takes them, or at EPS events/s (token bucket),
 *       while consuming R; matches every result to its send by event_id and prints one JSON
 *       line: events, results per status, seconds from the first send to the last result,
 *       events/s, and produce-to-result latency p50/p99/max in ms. --series 1 also writes
 *       one line per second of sending (count, p50, max latency) to stderr.
 *       --warmup-s W leaves the events sent in the first W seconds out of p50/p99 (they are
 *       still counted, and p99_all_ms has every event).
 *   bw-bench-loadgen count --topic T --events N
 *       The pipe ceiling: reads T from the beginning with no processing until N messages.
 *   bw-bench-loadgen store --db D [--events N] [--orgs M] [--dup F] [--zipf S] [--seed X]
 *                          [--batch B] [--compound-index 1]
 *       The store ceiling: the same event stream cut into batches of B; per batch one
 *       unordered bulk of conditional updates, one per distinct org
 *       ({org_id, balance_version: v} -> $inc the counter, $set balance_version v+1).
 *       --compound-index 1 first creates a unique {org_id, balance_version} index.
 *       --records 1 also inserts, per batch, one unordered bulk of usage records (one per new
 *       event, shaped like the worker's): the store's rate for the worker's whole write set.
 *
 * The event stream depends only on (events, orgs, dup, zipf, seed), so every scenario of a
 * bench run gets the same topic contents (except bench_ts_us, the send time).
 * KAFKA_BROKERS and MONGO_URI come from the environment (local stack defaults). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "err.h"
#include "mongo.h"

struct opts {
	const char *mode, *topic, *results, *db, *prefix;
	long events, orgs, batch;
	int compound_index;   /* store: also a unique {org_id, balance_version} index */
	int series;           /* run: per-second latency lines on stderr */
	int records;          /* store: also insert a usage record per new event */
	double dup, zipf, rate, timeout_s, warmup_s;
	uint64_t seed;
	int hex_orgs;         /* org ids as 24-hex strings (an organizations _id): the worker
			       * then reads organizations once per batch */
};

/* One message of the stream: a new event (src = its unique index) or a re-send of src. */
struct plan {
	long n, nuniq;
	long *msg_uniq;       /* message -> unique event index */
	long *uniq_org;       /* unique event -> org rank */
	int *uniq_spus;
	long *first_msg;      /* unique event -> message index of its first send */
	long *dup_msg;        /* unique event -> message index of its re-send, or -1 */
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static void plan_free(struct plan *p)
{
	free(p->msg_uniq);
	free(p->uniq_org);
	free(p->uniq_spus);
	free(p->first_msg);
	free(p->dup_msg);
	memset(p, 0, sizeof(*p));
}

/* Zipf(s) over orgs ranks 0..m-1 via a precomputed CDF and binary search. */
static int plan_build(struct plan *p, const struct opts *o)
{
	double *cdf = calloc((size_t)o->orgs, sizeof(*cdf));
	uint64_t s = o->seed;
	double sum = 0;
	long n = o->events;

	memset(p, 0, sizeof(*p));
	p->n = n;
	p->msg_uniq = calloc((size_t)n, sizeof(long));
	p->uniq_org = calloc((size_t)n, sizeof(long));
	p->uniq_spus = calloc((size_t)n, sizeof(int));
	p->first_msg = calloc((size_t)n, sizeof(long));
	p->dup_msg = calloc((size_t)n, sizeof(long));
	if (!cdf || !p->msg_uniq || !p->uniq_org || !p->uniq_spus || !p->first_msg ||
	    !p->dup_msg) {
		free(cdf);
		plan_free(p);
		return -1;
	}
	for (long r = 0; r < o->orgs; r++) {
		sum += 1.0 / pow((double)(r + 1), o->zipf);
		cdf[r] = sum;
	}
	for (long i = 0; i < n; i++) {
		long src = -1;
		if (p->nuniq > 0 && rng_unit(&s) < o->dup) {
			for (int t = 0; t < 4 && src < 0; t++) {
				long c = (long)(rng_next(&s) % (uint64_t)p->nuniq);
				if (p->dup_msg[c] < 0)
					src = c;
			}
		}
		if (src >= 0) {
			p->dup_msg[src] = i;
			p->msg_uniq[i] = src;
			continue;
		}
		long u = p->nuniq++;
		double x = rng_unit(&s) * sum;
		long lo = 0, hi = o->orgs - 1;
		while (lo < hi) {
			long mid = lo + (hi - lo) / 2;
			if (cdf[mid] < x)
				lo = mid + 1;
			else
				hi = mid;
		}
		p->uniq_org[u] = lo;
		p->uniq_spus[u] = 1 + (int)(rng_next(&s) % 50);
		p->first_msg[u] = i;
		p->dup_msg[u] = -1;
		p->msg_uniq[i] = u;
	}
	free(cdf);
	return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* props: name, value pairs ending with NULL; opaque set: a producer with on_delivery. */
static rd_kafka_t *kafka_new(rd_kafka_type_t type, const char *const *props, void *opaque)
{
	char errstr[512];
	const char *brokers = getenv("KAFKA_BROKERS");
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers ? brokers : "127.0.0.1:9092",
			      errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		goto fail;
	for (; props && props[0]; props += 2)
		if (rd_kafka_conf_set(conf, props[0], props[1], errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK)
			goto fail;
	if (opaque) {
		rd_kafka_conf_set_opaque(conf, opaque);
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	}
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (rk)
		return rk;
	conf = NULL;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	fprintf(stderr, "loadgen: kafka: %s\n", errstr);
	return NULL;
}

/* Assigns every partition of topic from the beginning (no group: nothing is committed). */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_topic_partition_list_t *list = NULL;
	int rc = -1;

	for (int attempt = 0; attempt < 20; attempt++) {
		if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    md->topic_cnt == 1 && md->topics[0].partition_cnt > 0)
			break;
		if (md)
			rd_kafka_metadata_destroy(md);
		md = NULL;
		struct timespec ts = { 0, 250000000L };
		nanosleep(&ts, NULL);
	}
	if (!md) {
		fprintf(stderr, "loadgen: no metadata for topic %s\n", topic);
		goto done;
	}
	list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(list, topic, md->topics[0].partitions[i].id)
			->offset = RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rc = 0;
done:
	if (list)
		rd_kafka_topic_partition_list_destroy(list);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return rc;
}

static rd_kafka_t *reader_new(const char *topic)
{
	static const char *const props[] = { "group.id", "bw-bench-reader",
					     "enable.auto.commit", "false",
					     "enable.partition.eof", "false",
					     "fetch.wait.max.ms", "5", NULL };
	rd_kafka_t *rk = kafka_new(RD_KAFKA_CONSUMER, props, NULL);

	if (rk)
		rd_kafka_poll_set_consumer(rk);
	if (rk && assign_all(rk, topic) != 0) {
		rd_kafka_destroy(rk);
		rk = NULL;
	}
	return rk;
}

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

/* The org id of org number n: "org-<n>", or 24 hex digits with --hex-orgs. */
static int hex_orgs;

static int org_name(char *buf, size_t len, long n)
{
	return hex_orgs ? snprintf(buf, len, "%024lx", n) : snprintf(buf, len, "org-%ld", n);
}

static int event_json(char *buf, size_t len, const struct run *r, long u, int64_t ts_us)
{
	char org[32];
	org_name(org, sizeof(org), r->plan.uniq_org[u]);
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
			int64_t wait = due - now_us();
			if (wait > 0) {
				struct timespec ts = { wait / 1000000, (long)(wait % 1000000) * 1000 };
				nanosleep(&ts, NULL);
			}
		}
		if (r->plan.first_msg[u] == i)
			wall_ts[u] = wall_us();   /* a re-send is the same bytes: same bench_ts_us */
		int len = event_json(buf, sizeof(buf), r, u, wall_ts[u]);
		int klen = org_name(key, sizeof(key), r->plan.uniq_org[u]);
		for (;;) {
			int64_t t = now_us();
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

static int mode_run(const struct opts *o)
{
	static const char *const pprops[] = { "linger.ms", "2", "acks", "all",
					      "enable.idempotence", "true",
					      "queue.buffering.max.messages", "1000000", NULL };
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
	if (plan_build(&r.plan, o) != 0)
		goto done;
	r.send_us = calloc((size_t)o->events, sizeof(*r.send_us));
	lat = calloc((size_t)o->events, sizeof(*lat));
	lat_sent = calloc((size_t)o->events, sizeof(*lat_sent));
	lat_all = calloc((size_t)o->events, sizeof(*lat_all));
	seen = calloc((size_t)r.plan.nuniq + 1, 1);
	if (!r.send_us || !lat || !lat_sent || !lat_all || !seen)
		goto done;
	reader = reader_new(o->results);
	if (!reader)
		goto done;
	/* Let the fetcher reach the (empty) results partitions before the clock starts. */
	for (int i = 0; i < 5; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 100);
		if (m)
			rd_kafka_message_destroy(m);
	}
	r.producer = kafka_new(RD_KAFKA_PRODUCER, pprops, &r);
	if (!r.producer)
		goto done;
	if (pthread_create(&th, NULL, produce_thread, &r) != 0)
		goto done;
	started = 1;
	last_progress = now_us();
	while (results < o->events) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 100);
		int64_t t = now_us();
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
		int64_t spus = 0;
		for (long u = 0; u < r.plan.nuniq; u++)
			spus += r.plan.uniq_spus[u];
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
	plan_free(&r.plan);
	return rc;
}

static int mode_count(const struct opts *o)
{
	rd_kafka_t *rk = reader_new(o->topic);
	long n = 0;
	int64_t first = 0, last = 0, last_progress = now_us();

	if (!rk)
		return 1;
	while (n < o->events) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		int64_t t = now_us();
		if (!m) {
			if ((double)(t - last_progress) > o->timeout_s * 1e6)
				break;
			continue;
		}
		if (!m->err) {
			if (n++ == 0)
				first = t;
			last = t;
			last_progress = t;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	double secs = (double)(last - first) / 1e6;
	printf("{\"mode\":\"count\",\"messages\":%ld,\"seconds\":%.3f,\"events_per_s\":%.1f}\n", n,
	       secs, secs > 0 ? (double)n / secs : 0);
	return n == o->events ? 0 : 3;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* --records 1: a usage record per new event of [start, end), shaped like the worker's
 * (event fields, the event again under "event", hash, breakdown, Kafka position), inserted
 * with one unordered bulk. Returns the number inserted, or -1. */
static long insert_records(mongoc_collection_t *coll, const struct plan *p, long start, long end)
{
	bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
	mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, opts);
	bson_t reply;
	bson_error_t error;
	long n = 0;

	for (long i = start; i < end; i++) {
		long u = p->msg_uniq[i];
		char id[48], org[32];
		if (p->first_msg[u] != i)
			continue;   /* a re-send: the worker answers it from the existing record */
		snprintf(id, sizeof(id), "ev-%ld", u);
		org_name(org, sizeof(org), p->uniq_org[u]);
		bson_t *ev = BCON_NEW(
			"event_id", BCON_UTF8(id), "org_id", BCON_UTF8(org), "spus",
			BCON_INT64(p->uniq_spus[u]), "operation", BCON_UTF8("llm_call"), "source",
			BCON_UTF8("bench"), "timestamp", BCON_UTF8("2026-11-25T12:00:00Z"),
			"llm_provider", BCON_UTF8("openai"), "llm_model", BCON_UTF8("gpt-4o-mini"),
			"prompt_tokens", BCON_INT64(900), "completion_tokens", BCON_INT64(100),
			"total_tokens", BCON_INT64(1000), "bench_ts_us", BCON_INT64(i));
		bson_t *doc = bson_new();
		bson_concat(doc, ev);   /* the event's fields at the top level, and again: */
		BSON_APPEND_DOCUMENT(doc, "event", ev);
		BCON_APPEND(doc, "hash",
			    BCON_UTF8("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
			    "status", BCON_UTF8("applied"), "from_subscription", BCON_INT64(0),
			    "from_purchased", BCON_INT64(0), "from_granted", BCON_INT64(p->uniq_spus[u]),
			    "from_paid", BCON_INT64(0), "balance_version", BCON_INT64(1), "processed_at",
			    BCON_DATE_TIME(bw_mongo_now_ms()), "kafka_topic", BCON_UTF8("usage.events"),
			    "kafka_partition", BCON_INT32(0), "kafka_offset", BCON_INT64(i));
		bson_destroy(ev);
		mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, &error);
		bson_destroy(doc);
		n++;
	}
	if (n > 0 && !mongoc_bulk_operation_execute(bulk, &reply, &error)) {
		fprintf(stderr, "loadgen: record insert: %s\n", error.message);
		n = -1;
	}
	if (n != 0)
		bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	bson_destroy(opts);
	return n;
}

static int mode_store(const struct opts *o)
{
	const char *uri = getenv("MONGO_URI");
	struct bw_err err;
	struct bw_mongo *m = NULL;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL, *rcoll = NULL;
	struct plan p;
	int64_t *version = calloc((size_t)o->orgs, sizeof(*version));
	long *orgs = calloc((size_t)o->batch, sizeof(*orgs));
	long updates = 0, bulks = 0, misses = 0, records = 0;
	int64_t t0, t1;
	int rc = 1;

	bw_err_clear(&err);
	memset(&p, 0, sizeof(p));
	if (!version || !orgs || plan_build(&p, o) != 0)
		goto done;
	m = bw_mongo_new(uri ? uri : "mongodb://127.0.0.1:27017", o->db, "bw-bench-store", &err);
	if (!m || bw_mongo_ensure_indexes(m, &err) != 0) {
		fprintf(stderr, "loadgen: mongo: %s\n", err.msg);
		goto done;
	}
	client = bw_mongo_pop(m);
	coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	rcoll = bw_mongo_coll(m, client, BW_COLL_USAGE_RECORDS);
	if (o->compound_index) {
		/* mongo-java-server answers a filter from an index only when the filter's fields
		 * are exactly the index's: without this, {org_id, balance_version} scans. */
		bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(BW_COLL_CUSTOMERS), "indexes", "[",
				       "{", "key", "{", "org_id", BCON_INT32(1), "balance_version",
				       BCON_INT32(1), "}", "name", BCON_UTF8("org_id_1_balance_version_1"),
				       "unique", BCON_BOOL(true), "}", "]");
		bson_error_t ierr;
		int iok = (int)mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL,
									 &ierr);
		bson_destroy(cmd);
		if (!iok) {
			fprintf(stderr, "loadgen: create index: %s\n", ierr.message);
			goto done;
		}
	}
	t0 = now_us();
	for (long start = 0; start < p.n; start += o->batch) {
		long end = start + o->batch < p.n ? start + o->batch : p.n, norgs = 0;
		bson_t *bopts = BCON_NEW("ordered", BCON_BOOL(false));
		bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
		mongoc_bulk_operation_t *bulk =
			mongoc_collection_create_bulk_operation_with_opts(coll, bopts);
		bson_t reply;
		bson_error_t error;

		for (long i = start; i < end; i++)
			orgs[norgs++] = p.uniq_org[p.msg_uniq[i]];
		qsort(orgs, (size_t)norgs, sizeof(*orgs), cmp_long);
		for (long i = 0; i < norgs; i++) {
			char id[32];
			if (i > 0 && orgs[i] == orgs[i - 1])
				continue;
			org_name(id, sizeof(id), orgs[i]);
			int64_t v = version[orgs[i]];
			bson_t *f = BCON_NEW("org_id", BCON_UTF8(id), "balance_version",
					     BCON_INT64(v));
			bson_t *u = BCON_NEW("$inc", "{", "granted_credits_used", BCON_INT64(1),
					     "}", "$set", "{", "balance_version", BCON_INT64(v + 1),
					     "}");
			mongoc_bulk_operation_update_one_with_opts(bulk, f, u, v ? NULL : upsert,
								   &error);
			bson_destroy(f);
			bson_destroy(u);
			version[orgs[i]] = v + 1;
			updates++;
		}
		int ok = (int)mongoc_bulk_operation_execute(bulk, &reply, &error);
		bson_iter_t it;
		if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it)) {
			uint32_t alen = 0;
			const uint8_t *data = NULL;
			bson_iter_array(&it, &alen, &data);
			bson_t arr;
			if (bson_init_static(&arr, data, alen))
				misses += bson_count_keys(&arr);
		} else if (!ok) {
			fprintf(stderr, "loadgen: bulk: %s\n", error.message);
			bson_destroy(&reply);
			mongoc_bulk_operation_destroy(bulk);
			bson_destroy(bopts);
			bson_destroy(upsert);
			goto done;
		}
		bulks++;
		bson_destroy(&reply);
		if (o->records) {
			long k = insert_records(rcoll, &p, start, end);
			if (k < 0) {
				mongoc_bulk_operation_destroy(bulk);
				bson_destroy(bopts);
				bson_destroy(upsert);
				goto done;
			}
			records += k;
		}
		mongoc_bulk_operation_destroy(bulk);
		bson_destroy(bopts);
		bson_destroy(upsert);
	}
	t1 = now_us();
	{
		double secs = (double)(t1 - t0) / 1e6;
		printf("{\"mode\":\"store\",\"events\":%ld,\"bulks\":%ld,\"updates\":%ld,"
		       "\"records\":%ld,\"misses\":%ld,\"seconds\":%.3f,\"events_per_s\":%.1f,"
		       "\"updates_per_s\":%.1f}\n",
		       p.n, bulks, updates, records, misses, secs,
		       secs > 0 ? (double)p.n / secs : 0,
		       secs > 0 ? (double)updates / secs : 0);
	}
	rc = misses == 0 ? 0 : 3;
done:
	if (coll)
		mongoc_collection_destroy(coll);
	if (rcoll)
		mongoc_collection_destroy(rcoll);
	if (client)
		bw_mongo_push(m, client);
	bw_mongo_destroy(m);
	plan_free(&p);
	free(version);
	free(orgs);
	return rc;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || !end || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

#define OPT(field) offsetof(struct opts, field)

/* Command-line options: strings are borrowed from argv; numbers are range-checked. */
static const struct option_def {
	const char *name;
	char kind;          /* 's' string, 'l' long, 'i' int, 'd' double, 'u' uint64_t */
	double lo, hi;
	size_t off;
} options[] = {
	{ "--topic", 's', 0, 0, OPT(topic) },         { "--results", 's', 0, 0, OPT(results) },
	{ "--db", 's', 0, 0, OPT(db) },               { "--prefix", 's', 0, 0, OPT(prefix) },
	{ "--events", 'l', 1, 1e8, OPT(events) },     { "--orgs", 'l', 1, 1e8, OPT(orgs) },
	{ "--batch", 'l', 1, 1e6, OPT(batch) },       { "--dup", 'd', 0, 0.9, OPT(dup) },
	{ "--zipf", 'd', 0, 10, OPT(zipf) },          { "--rate", 'd', 0, 1e9, OPT(rate) },
	{ "--timeout-s", 'd', 1, 1e6, OPT(timeout_s) },
	{ "--warmup-s", 'd', 0, 1e6, OPT(warmup_s) }, { "--records", 'i', 0, 1, OPT(records) },
	{ "--series", 'i', 0, 1, OPT(series) },
	{ "--compound-index", 'i', 0, 1, OPT(compound_index) },
	{ "--seed", 'u', 0, 1e15, OPT(seed) },
	{ "--hex-orgs", 'i', 0, 1, OPT(hex_orgs) },
};

static int set_option(struct opts *o, const char *name, const char *value)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct option_def *d = &options[i];
		char *field = (char *)o + d->off;
		double num = 0;
		if (strcmp(name, d->name) != 0)
			continue;
		if (d->kind == 's') {
			*(const char **)(void *)field = value;
			return 0;
		}
		if (parse_num(value, d->lo, d->hi, &num) != 0)
			return -1;
		if (d->kind == 'l')
			*(long *)(void *)field = (long)num;
		else if (d->kind == 'i')
			*(int *)(void *)field = (int)num;
		else if (d->kind == 'u')
			*(uint64_t *)(void *)field = (uint64_t)num;
		else
			*(double *)(void *)field = num;
		return 0;
	}
	return -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: bw-bench-loadgen run|count|store [--topic T] [--results R] "
			"[--db D] [--events N] [--orgs M] [--dup F] [--zipf S] [--seed X] "
			"[--rate EPS] [--batch B] [--prefix P] [--timeout-s S] "
			"[--compound-index 0|1] [--records 0|1] [--series 0|1] [--warmup-s S] "
			"[--hex-orgs 0|1]\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .prefix = "bench", .events = 200000, .orgs = 10000, .batch = 500,
			  .dup = 0.05, .zipf = 1.1, .timeout_s = 60, .seed = 42 };

	if (argc < 2) {
		usage();
		return 2;
	}
	o.mode = argv[1];
	for (int i = 2; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v || set_option(&o, k, v) != 0) {
			fprintf(stderr, "loadgen: bad option %s %s\n", k, v ? v : "(missing)");
			usage();
			return 2;
		}
	}
	hex_orgs = o.hex_orgs;
	if (strcmp(o.mode, "run") == 0 && o.topic && o.results)
		return mode_run(&o);
	if (strcmp(o.mode, "count") == 0 && o.topic)
		return mode_count(&o);
	if (strcmp(o.mode, "store") == 0 && o.db)
		return mode_store(&o);
	usage();
	return 2;
}
