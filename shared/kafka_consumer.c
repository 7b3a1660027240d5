/* kafka_consumer: see kafka_consumer.h.
 *
 * Flow of one batch: poll (fills c->batch) -> apply() -> settle the held batch (store its
 * offsets) -> publish() -> hold this one (c->held). A failure anywhere rewinds what is in
 * hand. A bw_batch_fn runs as a handler whose apply() does it all (plain_handler): it is
 * settled at once. The rebalance callback runs inside rd_kafka_consumer_poll() on this
 * thread, so it may settle c->held and process c->batch itself before partitions are taken
 * away. */
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
	rd_kafka_message_t **batch; /* being filled: owned messages, batch_max slots */
	size_t count;
	rd_kafka_message_t **held;  /* published, acks in flight: owned messages, batch_max slots */
	size_t nheld;
	void *held_state;           /* the handler's state of the held batch */
	int64_t held_us;            /* handler time of the held batch so far */
	const struct bw_batch_handler *h; /* set during run() */
	void *opaque;               /* the handler's */
	bw_batch_fn fn;             /* bw_consumer_run()'s, behind plain_handler */
	void *fn_opaque;
	int backoff_ms;
	int64_t last_activity;      /* last message or assignment: the idle exit counts from it */
	int64_t started_at;
	int assigned_once;          /* a rebalance has assigned (possibly zero) partitions */
	int fatal;                  /* a fatal handler error happened inside a callback */
	struct bw_err fatal_err;
};

/* How long a started batch waits for one more message before it is handed over, and how long
 * the loop waits for a first message before it settles the held batch. */
#define BW_CONSUMER_LINGER_MS 2

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void batch_release(struct bw_consumer *c)
{
	for (size_t i = 0; i < c->count; i++)
		rd_kafka_message_destroy(c->batch[i]);
	c->count = 0;
}

/* Drops the held batch without storing anything: the handler's state first (it may point into
 * the messages), then the messages. */
static void held_drop(struct bw_consumer *c)
{
	if (c->held_state)
		c->h->discard(c->opaque, c->held_state);
	c->held_state = NULL;
	for (size_t i = 0; i < c->nheld; i++)
		rd_kafka_message_destroy(c->held[i]);
	c->nheld = 0;
}

/* Adds the partitions of msgs to list: per partition the lowest offset (for a rewind) or the
 * highest + 1 (for_store). Merges with what list holds already. */
static void offsets_add(rd_kafka_topic_partition_list_t *list, rd_kafka_message_t *const *msgs,
			size_t count, int for_store)
{
	for (size_t i = 0; i < count; i++) {
		const rd_kafka_message_t *m = msgs[i];
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
}

/* Stores the offsets after msgs: their effects are durable and their outputs acknowledged. */
static void offsets_store(struct bw_consumer *c, rd_kafka_message_t *const *msgs, size_t count)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);

	offsets_add(list, msgs, count, 1);
	rd_kafka_resp_err_t rerr = rd_kafka_offsets_store(c->rk, list);
	if (rerr)
		/* Partitions revoked meanwhile: the new owner redelivers; effects are
		 * idempotent, so this is informational. */
		bw_log(BW_LOG_WARN, NULL, "offsets_store: %s", rd_kafka_err2str(rerr));
	rd_kafka_topic_partition_list_destroy(list);
	bw_fault_point("after_offset_store");
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

/* A batch failed with err: nothing more is stored. FATAL sets c->fatal. Otherwise the held
 * batch and the buffered one are sought back to their first offsets (a failed held batch takes
 * the next one with it, since offsets are stored in order), so both come again after the
 * backoff; if that seek fails, FATAL too (a later batch would be stored over them). Both are
 * dropped. Returns -1. */
static int batch_fail(struct bw_consumer *c, const struct bw_err *err)
{
	if (err->kind == BW_ERR_FATAL) {
		c->fatal = 1;
		c->fatal_err = *err;
	} else {
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
		bw_metrics_add(BW_M_RETRIES, 1);
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
		if (c->backoff_ms > c->backoff_max_ms)
			c->backoff_ms = c->backoff_max_ms;
		bw_log(BW_LOG_WARN, NULL, "batch of %zu failed (%s: %s); rewinding %zu, retry in %d ms",
		       c->nheld ? c->nheld : c->count, bw_err_kind_name(err->kind), err->msg,
		       c->nheld + c->count, c->backoff_ms);
		offsets_add(list, c->held, c->nheld, 0);
		offsets_add(list, c->batch, c->count, 0);
		rd_kafka_error_t *serr = rd_kafka_seek_partitions(c->rk, list, 5000);
		const char *why = serr ? rd_kafka_error_string(serr) : NULL;
		for (int i = 0; !why && i < list->cnt; i++)
			if (list->elems[i].err)
				why = rd_kafka_err2str(list->elems[i].err);
		if (!why && bw_fault_fails("seek_back"))
			why = "injected";
		if (why) {
			/* The fetch position is past the dropped messages: a later batch's offsets
			 * would be stored over them and they would never be handled. Stop instead;
			 * a restart resumes from the committed offsets. */
			c->fatal = 1;
			bw_err_set(&c->fatal_err, BW_ERR_FATAL,
				   "seek back after a failed batch failed (%s): stopping so that a "
				   "restart resumes from the committed offsets", why);
			bw_log(BW_LOG_ERROR, NULL, "%s", c->fatal_err.msg);
		}
		if (serr)
			rd_kafka_error_destroy(serr);
		rd_kafka_topic_partition_list_destroy(list);
	}
	held_drop(c);
	batch_release(c);
	return -1;
}

/* Settles the held batch: settle() waits for its outputs' acks, then its offsets are stored.
 * Returns 0 (also when nothing is held), or -1 with err (the batch is still held). */
static int held_settle(struct bw_consumer *c, struct bw_err *err)
{
	int64_t mark = bw_metrics_now_us(), started = mark;
	int rc;

	if (c->nheld == 0)
		return 0;
	rc = c->h->settle(c->opaque, c->held_state, err);
	bw_metrics_stage_lap(BW_STAGE_ACK, &mark);
	bw_metrics_batch(c->nheld, c->held_us + (mark - started), rc == 0);
	if (rc != 0)
		return -1;
	offsets_store(c, c->held, c->nheld);
	held_drop(c);
	c->backoff_ms = 0;
	return 0;
}

/* held_settle(), and batch_fail() when it fails. Returns 0 or -1. */
static int held_finish(struct bw_consumer *c)
{
	struct bw_err err;

	bw_err_clear(&err);
	if (held_settle(c, &err) != 0)
		return batch_fail(c, &err);
	return 0;
}

/* Runs the buffered batch: apply(); then the held batch before it is settled (its acks came in
 * meanwhile); then publish(), and the batch is held. A handler without publish() (a
 * bw_batch_fn) is settled at once. Returns 0, or -1 after batch_fail(). */
static int batch_process(struct bw_consumer *c)
{
	struct bw_err err;
	void *state = NULL;
	int64_t mark, started;
	int rc;

	if (c->count == 0)
		return 0;
	bw_err_clear(&err);
	bw_metrics_add(BW_M_BATCHES, 1);
	started = bw_metrics_now_us();
	rc = c->h->apply(c->opaque, c->batch, c->count, &state, &err);
	int64_t handler_us = bw_metrics_now_us() - started;
	struct bw_err herr;
	bw_err_clear(&herr);
	if (held_settle(c, &herr) != 0) {
		/* Stored in order: this batch goes back with the one before it. */
		if (state)
			c->h->discard(c->opaque, state);
		return batch_fail(c, &herr);
	}
	if (rc == 0 && c->h->publish) {
		mark = bw_metrics_now_us();
		rc = c->h->publish(c->opaque, state, &err);
		handler_us += bw_metrics_now_us() - mark;
		bw_metrics_stage_lap(BW_STAGE_PUBLISH, &mark);
	}
	bw_metrics_heartbeat();
	if (rc != 0) {
		bw_metrics_batch(c->count, handler_us, 0);
		if (state)
			c->h->discard(c->opaque, state);
		return batch_fail(c, &err);
	}
	if (!c->h->publish) {
		bw_metrics_batch(c->count, handler_us, 1);
		offsets_store(c, c->batch, c->count);
		batch_release(c);
		c->backoff_ms = 0;
		return 0;
	}
	rd_kafka_message_t **spare = c->held; /* empty: settled above */
	c->held = c->batch;
	c->nheld = c->count;
	c->held_state = state;
	c->held_us = handler_us;
	c->batch = spare;
	c->count = 0;
	return 0;
}

/* Everything in hand, settled: the buffered batch processed, then the held one. */
static int batch_finish(struct bw_consumer *c)
{
	if (batch_process(c) != 0)
		return -1;
	return held_finish(c);
}

/* bw_consumer_run()'s bw_batch_fn, as a handler whose apply() does everything. */
static int plain_apply(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
		       void **state, struct bw_err *err)
{
	struct bw_consumer *c = opaque;

	*state = NULL;
	return c->fn(c->fn_opaque, msgs, count, err);
}

static const struct bw_batch_handler plain_handler = { plain_apply, NULL, NULL, NULL };

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
		bw_log(BW_LOG_INFO, NULL, "revoking %d partitions; settling %zu held, %zu buffered",
		       parts->cnt, c->nheld, c->count);
		/* Finish what we hold so its offsets go out with this generation. If it fails
		 * the messages are dropped here and the new owner redelivers them. */
		if (c->h)
			batch_finish(c);
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
	c->held = calloc((size_t)conf->batch_max, sizeof(*c->held));
	c->topic = strdup(conf->topic);
	if (!c->batch || !c->held || !c->topic) {
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

static int run(struct bw_consumer *c, volatile sig_atomic_t *stop, struct bw_err *err)
{
	int rc = 0, idle = 0;

	c->last_activity = c->started_at = now_ms();
	bw_fault_point("before_poll");
	while (!(stop && *stop) && !idle) {
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
			} else if (c->nheld > 0) {
				/* Nothing new yet: settle the held batch rather than idle with
				 * its offsets unstored. */
				timeout = BW_CONSUMER_LINGER_MS;
			}
			int64_t mark = bw_metrics_now_us();
			rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout);
			bw_metrics_stage_lap(BW_STAGE_WAIT, &mark);
			bw_metrics_heartbeat();
			if (c->fatal)
				break;
			if (!m && c->count > 0)
				break;
			if (!m && c->nheld > 0) {
				if (held_finish(c) != 0 && !c->fatal)
					sleep_ms(c->backoff_ms, stop);
				if (c->fatal)
					break;
				continue;
			}
			if (!m) {
				if (idle_expired(c)) {
					idle = 1;
					break;
				}
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
	if (batch_finish(c) != 0 && c->fatal) {
		if (err)
			*err = c->fatal_err;
		rc = -1;
	}
done:
	held_drop(c); /* only after a fatal error: nothing of it is stored */
	batch_release(c);
	c->h = NULL;
	return rc;
}

int bw_consumer_run(struct bw_consumer *c, bw_batch_fn fn, void *opaque,
		    volatile sig_atomic_t *stop, struct bw_err *err)
{
	c->fn = fn;
	c->fn_opaque = opaque;
	c->h = &plain_handler;
	c->opaque = c;
	return run(c, stop, err);
}

int bw_consumer_run_pipelined(struct bw_consumer *c, const struct bw_batch_handler *h,
			      void *opaque, volatile sig_atomic_t *stop, struct bw_err *err)
{
	c->h = h;
	c->opaque = opaque;
	return run(c, stop, err);
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
	free(c->held);
	free(c->topic);
	free(c);
}
