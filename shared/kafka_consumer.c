/* kafka_consumer: see kafka_consumer.h.
 *
 * Flow of one batch: poll (fills c->batch) -> fn() -> store offsets (success) or rewind
 * (failure). The rebalance callback runs inside rd_kafka_consumer_poll() on this thread,
 * so it may process c->batch itself before partitions are taken away. */
#include "kafka_consumer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "kafka_producer.h"
#include "kafka_stats.h"
#include "log.h"
#include "metrics.h"

struct bw_consumer {
	rd_kafka_t *rk;
	char *topic;
	int batch_max, batch_wait_ms, idle_exit_ms, backoff_max_ms;
	rd_kafka_message_t **batch; /* owned messages, batch_max slots */
	size_t count;
	bw_batch_fn fn;             /* set during run() */
	void *opaque;
	int backoff_ms;
	int64_t last_activity;      /* last message or assignment: the idle exit counts from it */
	int64_t started_at;
	int assigned_once;          /* a rebalance has assigned (possibly zero) partitions */
	int fatal;                  /* a fatal handler error happened inside a callback */
	struct bw_err fatal_err;
};

/* How long a started batch waits for one more message before it is handed over. */
#define BW_CONSUMER_LINGER_MS 2

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void batch_release(struct bw_consumer *c)
{
	for (size_t i = 0; i < c->count; i++)
		rd_kafka_message_destroy(c->batch[i]);
	c->count = 0;
}

/* Per partition in the batch: lowest offset (for rewind) or highest + 1 (for store). */
static rd_kafka_topic_partition_list_t *batch_offsets(struct bw_consumer *c, int for_store)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);

	for (size_t i = 0; i < c->count; i++) {
		const rd_kafka_message_t *m = c->batch[i];
		const char *topic = rd_kafka_topic_name(m->rkt);
		rd_kafka_topic_partition_t *tp =
			rd_kafka_topic_partition_list_find(list, topic, m->partition);
		if (!tp) {
			tp = rd_kafka_topic_partition_list_add(list, topic, m->partition);
			tp->offset = for_store ? m->offset + 1 : m->offset;
		} else if (for_store && m->offset + 1 > tp->offset) {
			tp->offset = m->offset + 1;
		} else if (!for_store && m->offset < tp->offset) {
			tp->offset = m->offset;
		}
	}
	return list;
}

static void sleep_ms(int ms, volatile sig_atomic_t *stop)
{
	while (ms > 0 && !(stop && *stop)) {
		int step = ms > 100 ? 100 : ms;
		struct timespec ts = { 0, (long)step * 1000000L };
		nanosleep(&ts, NULL);
		bw_metrics_heartbeat(); /* backing off is alive */
		ms -= step;
	}
}

/* Runs the handler on the buffered batch and settles its offsets. Returns 0, or -1 when
 * the handler failed (the batch is rewound, or on FATAL c->fatal is set). */
static int batch_process(struct bw_consumer *c)
{
	struct bw_err err;
	rd_kafka_topic_partition_list_t *list;
	int64_t started;
	int rc;

	if (c->count == 0)
		return 0;
	bw_err_clear(&err);
	bw_metrics_add(BW_M_BATCHES, 1);
	started = now_us();
	rc = c->fn(c->opaque, c->batch, c->count, &err);
	bw_metrics_batch(c->count, now_us() - started, rc == 0);
	bw_metrics_heartbeat();
	if (rc == 0) {
		list = batch_offsets(c, 1);
		rd_kafka_resp_err_t rerr = rd_kafka_offsets_store(c->rk, list);
		if (rerr)
			/* Partitions revoked meanwhile: the new owner redelivers; effects are
			 * idempotent, so this is informational. */
			bw_log(BW_LOG_WARN, NULL, "offsets_store: %s", rd_kafka_err2str(rerr));
		rd_kafka_topic_partition_list_destroy(list);
		bw_fault_point("after_offset_store");
		batch_release(c);
		c->backoff_ms = 0;
		return 0;
	}
	if (err.kind == BW_ERR_FATAL) {
		c->fatal = 1;
		c->fatal_err = err;
		batch_release(c);
		return -1;
	}
	/* Transient: rewind the batch's partitions so its messages come again. */
	bw_metrics_add(BW_M_RETRIES, 1);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
	if (c->backoff_ms > c->backoff_max_ms)
		c->backoff_ms = c->backoff_max_ms;
	bw_log(BW_LOG_WARN, NULL, "batch of %zu failed (%s: %s); rewinding, retry in %d ms",
	       c->count, bw_err_kind_name(err.kind), err.msg, c->backoff_ms);
	list = batch_offsets(c, 0);
	rd_kafka_error_t *serr = rd_kafka_seek_partitions(c->rk, list, 5000);
	if (serr) {
		bw_log(BW_LOG_WARN, NULL, "seek back failed: %s", rd_kafka_error_string(serr));
		rd_kafka_error_destroy(serr);
	}
	rd_kafka_topic_partition_list_destroy(list);
	batch_release(c);
	return -1;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t rerr,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct bw_consumer *c = opaque;
	int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;

	if (rerr == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		bw_log(BW_LOG_INFO, NULL, "assigned %d partitions", parts->cnt);
		bw_metrics_rebalance(1, parts->cnt);
		c->last_activity = now_ms();
		c->assigned_once = 1;
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
	} else {
		bw_log(BW_LOG_INFO, NULL, "revoking %d partitions; settling %zu buffered",
		       parts->cnt, c->count);
		/* Finish what we hold so its offsets go out with this generation. If it fails
		 * the messages are dropped here and the new owner redelivers them. */
		if (c->fn && c->count > 0 && batch_process(c) != 0)
			batch_release(c);
		if (rd_kafka_assignment_lost(rk) == 0)
			rd_kafka_commit(rk, NULL, 0);
		if (cooperative)
			error = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
		bw_metrics_rebalance(0, parts->cnt);
	}
	if (error) {
		bw_log(BW_LOG_ERROR, NULL, "rebalance: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

struct bw_consumer *bw_consumer_new(const struct bw_consumer_conf *conf, struct bw_err *err)
{
	char errstr[512];
	rd_kafka_conf_t *kconf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *subs = NULL;
	struct bw_consumer *c = calloc(1, sizeof(*c));
	static const char *const fixed[][2] = {
		{ "enable.auto.offset.store", "false" }, /* stored only after effects are durable */
		{ "enable.auto.commit", "true" },
		{ "enable.partition.eof", "false" },
	};

	if (!c || conf->batch_max < 1) {
		bw_err_set(err, BW_ERR_FATAL, c ? "batch_max must be >= 1" : "out of memory");
		goto fail;
	}
	c->batch = calloc((size_t)conf->batch_max, sizeof(*c->batch));
	c->topic = strdup(conf->topic);
	if (!c->batch || !c->topic) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		goto fail;
	}
	c->batch_max = conf->batch_max;
	c->batch_wait_ms = conf->batch_wait_ms;
	c->idle_exit_ms = conf->idle_exit_ms;
	c->backoff_max_ms = conf->backoff_max_ms > 0 ? conf->backoff_max_ms : 10000;

	if (conf->stats_interval_ms > 0) {
		char ms[16];
		snprintf(ms, sizeof(ms), "%d", conf->stats_interval_ms);
		rd_kafka_conf_set(kconf, "statistics.interval.ms", ms, errstr, sizeof(errstr));
	}
	rd_kafka_conf_set_stats_cb(kconf, bw_kafka_stats_cb);
	if (rd_kafka_conf_set(kconf, "group.id", conf->group_id, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(kconf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(kconf, "auto.commit.interval.ms", "1000", errstr, sizeof(errstr))) {
		bw_err_set(err, BW_ERR_FATAL, "consumer config: %s", errstr);
		goto fail;
	}
	if (bw_kafka_conf_apply(kconf, conf->brokers, conf->extra_props, err) != 0)
		goto fail;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (rd_kafka_conf_set(kconf, fixed[i][0], fixed[i][1], errstr, sizeof(errstr))) {
			bw_err_set(err, BW_ERR_FATAL, "consumer config: %s", errstr);
			goto fail;
		}
	}
	rd_kafka_conf_set_opaque(kconf, c);
	rd_kafka_conf_set_rebalance_cb(kconf, on_rebalance);
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, sizeof(errstr));
	if (!c->rk) {
		bw_err_set(err, BW_ERR_FATAL, "rd_kafka_new(consumer): %s", errstr);
		goto fail;
	}
	kconf = NULL; /* owned by c->rk */
	rd_kafka_poll_set_consumer(c->rk);
	subs = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(subs, conf->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t rerr = rd_kafka_subscribe(c->rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (rerr) {
		bw_err_set(err, BW_ERR_FATAL, "subscribe %s: %s", conf->topic,
			   rd_kafka_err2str(rerr));
		goto fail;
	}
	return c;
fail:
	if (kconf)
		rd_kafka_conf_destroy(kconf);
	bw_consumer_destroy(c);
	return NULL;
}

/* The idle exit: idle_exit_ms without messages since the last message or assignment. Before
 * the group has assigned anything (a join can wait for a slow member) it waits longer, so a
 * worker does not leave before it had a chance to work. */
static int idle_expired(const struct bw_consumer *c)
{
	int64_t now = now_ms();
	int64_t join_grace = (int64_t)c->idle_exit_ms * 10 > 60000 ? (int64_t)c->idle_exit_ms * 10
								    : 60000;

	if (c->idle_exit_ms <= 0)
		return 0;
	if (!c->assigned_once)
		return now - c->started_at >= join_grace;
	return now - c->last_activity >= c->idle_exit_ms;
}

/* Handles one polled message: appends it to the batch or settles its error.
 * Returns -1 on a fatal consumer error. */
static int take_message(struct bw_consumer *c, rd_kafka_message_t *m, struct bw_err *err)
{
	if (!m->err) {
		c->batch[c->count++] = m;
		bw_metrics_add(BW_M_MSGS_IN, 1);
		return 0;
	}
	if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
		char reason[256];
		rd_kafka_fatal_error(c->rk, reason, sizeof(reason));
		rd_kafka_message_destroy(m);
		return bw_err_set(err, BW_ERR_FATAL, "consumer fatal error: %s", reason);
	}
	/* Informational (e.g. topic not yet created, broker transport): librdkafka retries. */
	bw_log(BW_LOG_WARN, NULL, "consume: %s", rd_kafka_message_errstr(m));
	rd_kafka_message_destroy(m);
	return 0;
}

int bw_consumer_run(struct bw_consumer *c, bw_batch_fn fn, void *opaque,
		    volatile sig_atomic_t *stop, struct bw_err *err)
{
	int rc = 0;

	c->fn = fn;
	c->opaque = opaque;
	c->last_activity = c->started_at = now_ms();
	bw_fault_point("before_poll");
	while (!(stop && *stop)) {
		int64_t first_at = 0;

		/* Fill a batch: block for the first message, then up to batch_wait_ms more. */
		while (c->count < (size_t)c->batch_max && !(stop && *stop)) {
			int timeout = 100;
			if (c->count > 0) {
				int64_t left = first_at + c->batch_wait_ms - now_ms();
				if (left <= 0)
					break;
				/* Under load the local queue is full and batches fill up to
				 * batch_max; when it runs dry the batch goes now instead of
				 * waiting out batch_wait_ms (latency at low and medium load). */
				timeout = left < BW_CONSUMER_LINGER_MS ? (int)left
								       : BW_CONSUMER_LINGER_MS;
			}
			rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout);
			bw_metrics_heartbeat();
			if (c->fatal)
				break;
			if (!m && c->count > 0)
				break;
			if (!m) {
				if (c->count == 0 && idle_expired(c))
					goto done;
				continue;
			}
			size_t before = c->count;
			if (take_message(c, m, err) != 0) {
				rc = -1;
				goto done;
			}
			if (c->count > before) {
				c->last_activity = now_ms();
				if (before == 0)
					first_at = c->last_activity;
			}
		}
		if (!c->fatal && batch_process(c) != 0 && !c->fatal)
			sleep_ms(c->backoff_ms, stop);
		if (c->fatal) {
			if (err)
				*err = c->fatal_err;
			rc = -1;
			goto done;
		}
	}
	/* Stopping: settle what is in hand so its offsets go out with the final commit. */
	if (batch_process(c) != 0 && c->fatal) {
		if (err)
			*err = c->fatal_err;
		rc = -1;
	}
done:
	batch_release(c);
	c->fn = NULL;
	return rc;
}

void bw_consumer_destroy(struct bw_consumer *c)
{
	if (!c)
		return;
	if (c->rk) {
		rd_kafka_commit(c->rk, NULL, 0); /* stored offsets, synchronously */
		rd_kafka_consumer_close(c->rk);
		rd_kafka_destroy(c->rk);
	}
	batch_release(c);
	free(c->batch);
	free(c->topic);
	free(c);
}
