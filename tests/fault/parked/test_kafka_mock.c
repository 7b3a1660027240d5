/* Protocol errors the real broker cannot be made to give, against librdkafka's mock cluster
 * (issue 11): the project's real consumer loop (shared/kafka_consumer.c) and idempotent
 * producer (shared/kafka_producer.c), no services needed.
 *
 *  commit_errors: OffsetCommit answers NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE and
 *    REQUEST_TIMED_OUT several times and the group coordinator moves to another broker while
 *    the loop runs. Every message is handled exactly once (one member, no rebalance), no
 *    batch's offset is committed before its handler returned, and the offsets end committed:
 *    a second consumer of the group gets exactly the messages produced after the first.
 *  fatal_producer: the handler publishes each message with the worker producer and flushes;
 *    during batch 3 the idempotent producer raises a fatal error. The handler reports it as
 *    FATAL (bw_producer_flush), bw_consumer_run() returns -1 FATAL and the committed offset
 *    is the first offset of the failed batch (nothing of it stored).
 * Each case prints a FIGURES line. */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_consumer.h"
#include "fault_kit.h"
#include "kafka_producer.h"
#include "testkit.h"

/* ApiKey of OffsetCommit (rdkafka_protocol.h is not installed). */
#define API_OFFSET_COMMIT 8
#define PARTS 3
#define MSGS 300

struct mock {
	rd_kafka_t *rk; /* owns the cluster */
	rd_kafka_mock_cluster_t *mc;
	char brokers[256];
};

static void mock_start(struct mock *m, int nbrokers)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(m->rk != NULL, "%s", errstr);
	m->mc = rd_kafka_mock_cluster_new(m->rk, nbrokers);
	ck_assert_ptr_nonnull(m->mc);
	snprintf(m->brokers, sizeof(m->brokers), "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
}

static void mock_stop(struct mock *m)
{
	rd_kafka_mock_cluster_destroy(m->mc);
	rd_kafka_destroy(m->rk);
}

/* Produces n messages "v<i>" round-robin over the topic's partitions (keyless, partition
 * i % parts), waiting for every acknowledgement. */
static void produce(const char *brokers, const char *topic, int parts, int from, int n)
{
	char errstr[256], val[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	for (int i = from; i < from + n; i++) {
		int len = snprintf(val, sizeof(val), "v%d", i);
		ck_assert_int_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
						   RD_KAFKA_V_PARTITION(i % parts),
						   RD_KAFKA_V_VALUE(val, (size_t)len),
						   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
						   RD_KAFKA_V_END),
				 0);
	}
	ck_assert_int_eq(rd_kafka_flush(rk, 10000), 0);
	rd_kafka_destroy(rk);
}

/* The group's committed offsets of topic's parts partitions, read by a separate client
 * (OffsetFetch). Negative: none committed. */
static void committed(rd_kafka_t *rk, const char *topic, int parts, int64_t *out)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);

	for (int p = 0; p < parts; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	ck_assert_int_eq(rd_kafka_committed(rk, l, 10000), 0);
	for (int p = 0; p < parts; p++)
		out[p] = l->elems[p].offset;
	rd_kafka_topic_partition_list_destroy(l);
}

static rd_kafka_t *group_reader(const char *brokers, const char *group)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	return rk;
}

/* ---- commit / coordinator errors ---------------------------------------------------- */

static const rd_kafka_resp_err_t commit_errs[] = {
	RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
	RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
	RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
};
#define COMMIT_ERRS 3

/* The next COMMIT_ERRS OffsetCommit requests to broker answer these errors. */
static void push_errors(rd_kafka_mock_cluster_t *mc, int broker)
{
	ck_assert_int_eq(rd_kafka_mock_broker_push_request_error_rtts(
				 mc, broker, API_OFFSET_COMMIT, COMMIT_ERRS, commit_errs[0], 0,
				 commit_errs[1], 0, commit_errs[2], 0),
			 0);
}

static size_t stack_left(rd_kafka_mock_cluster_t *mc, int broker)
{
	size_t cnt = 0;
	ck_assert_int_eq(rd_kafka_mock_broker_error_stack_cnt(mc, broker, API_OFFSET_COMMIT,
							      &cnt),
			 0);
	return cnt;
}

struct commit_run {
	rd_kafka_t *reader;  /* OffsetFetch of the group, from outside */
	const char *topic;
	int handled[PARTS][2 * MSGS];
	rd_kafka_mock_cluster_t *mc; /* NULL: no coordinator move */
	const char *group, *brokers;
	int moved_at;         /* messages handled when the coordinator moved to broker 2 */
	int total, batches, early_commits, want;
	long long done_at;    /* when total reached want */
	int linger_ms;        /* keep running this long after that (auto-commits) */
	volatile sig_atomic_t stop;
};

/* Once the first half is handled and broker 1 has answered all its errors, the coordinator
 * moves to broker 2 (the next commit sent to broker 1 gets NOT_COORDINATOR from the mock),
 * broker 2 gets the same errors and the second half is produced. Done once every message is
 * handled and broker 2 answered its errors too. */
static void maybe_move(struct commit_run *r)
{
	if (r->mc && !r->moved_at && r->total >= r->want / 2 && stack_left(r->mc, 1) == 0) {
		ck_assert_int_eq(rd_kafka_mock_coordinator_set(r->mc, "group", r->group, 2), 0);
		push_errors(r->mc, 2);
		r->moved_at = r->total;
		/* The second half arrives now: its commits must go through broker 2. */
		produce(r->brokers, r->topic, PARTS, MSGS / 2, MSGS / 2);
	}
	if (r->total >= r->want && !r->done_at &&
	    (!r->mc || (r->moved_at && stack_left(r->mc, 2) == 0)))
		r->done_at = tk_now_ms();
}

static int commit_handler(void *opaque, rd_kafka_message_t *const *msgs, size_t n,
			  struct bw_err *err)
{
	struct commit_run *r = opaque;
	int64_t first[PARTS], comm[PARTS];

	(void)err;
	for (int p = 0; p < PARTS; p++)
		first[p] = -1;
	for (size_t i = 0; i < n; i++) {
		int p = msgs[i]->partition;
		if (first[p] < 0 || msgs[i]->offset < first[p])
			first[p] = msgs[i]->offset;
	}
	/* Nothing of this batch may be committed while its handler runs (checked at its end,
	 * after a slow batch's work: a store before the handler returned would be committed by
	 * the 1 s auto-commit within the run's 30 batches). */
	nanosleep(&(struct timespec){ 0, 100000000L }, NULL); /* a slow batch: the run spans
							       several auto-commits */
	committed(r->reader, r->topic, PARTS, comm);
	for (int p = 0; p < PARTS; p++)
		if (first[p] >= 0 && comm[p] > first[p])
			r->early_commits++;
	for (size_t i = 0; i < n; i++)
		r->handled[msgs[i]->partition][msgs[i]->offset]++;
	r->total += (int)n;
	r->batches++;
	maybe_move(r);
	return 0;
}

static int run_until_done(struct bw_consumer *c, struct commit_run *r)
{
	struct bw_err err;
	/* The loop's own stop flag is checked between polls; a watcher sets it once every
	 * message is handled and linger_ms passed (the handler sees the count). */
	bw_err_clear(&err);
	long long deadline = tk_now_ms() + 60000;
	while (!r->stop && tk_now_ms() < deadline) {
		/* Run in slices: idle_exit_ms ends run() when nothing arrives for 500 ms. */
		int rc = bw_consumer_run(c, commit_handler, r, &r->stop, &err);
		if (rc != 0)
			return rc;
		maybe_move(r);
		if (r->done_at && tk_now_ms() - r->done_at >= r->linger_ms)
			r->stop = 1;
	}
	return 0;
}

START_TEST(commit_errors)
{
	static struct commit_run r;
	struct mock m;
	char topic[64], group[64];
	struct bw_err err;
	int64_t comm[PARTS];
	long long t0 = tk_now_ms();

	mock_start(&m, 3);
	tk_unique(topic, sizeof(topic), "mock.commit");
	tk_unique(group, sizeof(group), "mock-commit-g");
	ck_assert_int_eq(rd_kafka_mock_topic_create(m.mc, topic, PARTS, 1), 0);
	ck_assert_int_eq(rd_kafka_mock_coordinator_set(m.mc, "group", group, 1), 0);
	produce(m.brokers, topic, PARTS, 0, MSGS / 2);

	memset(&r, 0, sizeof(r));
	r.brokers = m.brokers;
	r.reader = group_reader(m.brokers, group);
	r.topic = topic;
	r.want = MSGS;
	r.linger_ms = 3000; /* three auto-commit intervals after the last message */
	r.mc = m.mc;
	r.group = group;
	push_errors(m.mc, 1);

	const char *props[] = { "session.timeout.ms=6000", "heartbeat.interval.ms=500", NULL };
	struct bw_consumer_conf cc = {
		.brokers = m.brokers, .group_id = group, .topic = topic, .batch_max = 10,
		.batch_wait_ms = 50, .idle_exit_ms = 500, .backoff_max_ms = 1000,
		.extra_props = props,
	};
	struct bw_consumer *c = bw_consumer_new(&cc, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_int_eq(run_until_done(c, &r), 0);
	ck_assert_msg(r.stop, "not done: %d of %d handled, coordinator moved at %d, errors left "
		      "%zu + %zu", r.total, MSGS, r.moved_at, stack_left(m.mc, 1),
		      stack_left(m.mc, 2));
	bw_consumer_destroy(c); /* final synchronous commit */

	int dup = 0, lost = 0;
	for (int i = 0; i < MSGS; i++) {
		int h = r.handled[i % PARTS][i / PARTS];
		lost += h == 0;
		dup += h > 1;
	}
	committed(r.reader, topic, PARTS, comm);
	int committed_ok = 0;
	for (int p = 0; p < PARTS; p++)
		committed_ok += comm[p] == MSGS / PARTS;

	/* Second life of the group: exactly the messages produced since. */
	produce(m.brokers, topic, PARTS, MSGS, 30);
	struct commit_run *r2 = calloc(1, sizeof(*r2));
	r2->reader = r.reader;
	r2->topic = topic;
	r2->want = 30;
	r2->linger_ms = 0;
	/* Only the final synchronous commit of bw_consumer_destroy() commits here, and the
	 * coordinator answers it with the three errors first. */
	const char *props2[] = { "session.timeout.ms=6000", "heartbeat.interval.ms=500",
				 "auto.commit.interval.ms=600000", NULL };
	cc.extra_props = props2;
	c = bw_consumer_new(&cc, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_int_eq(run_until_done(c, r2), 0);
	push_errors(m.mc, 2);
	bw_consumer_destroy(c);
	committed(r.reader, topic, PARTS, comm);
	int final_ok = 0;
	for (int p = 0; p < PARTS; p++)
		final_ok += comm[p] == (MSGS + 30) / PARTS;
	size_t final_left = stack_left(m.mc, 2);
	int second_old = 0;
	for (int p = 0; p < PARTS; p++)
		for (int o = 0; o < MSGS / PARTS; o++)
			second_old += r2->handled[p][o];

	char fig[768];
	snprintf(fig, sizeof(fig),
		 "FIGURES mock_commit_errors sent=%d applied=%d duplicates=%d dlq=0 lost=%d "
		 "double_applied=%d; commit errors answered=%d (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, REQUEST_TIMED_OUT on each coordinator), coordinator moved at %d handled, "
		 "batches=%d, committed_before_handler_returned=%d, partitions committed to the "
		 "end=%d/%d, second consumer: %d new of 30, %d old redelivered, its final commit (errors answered %zu of 3) committed %d/%d partitions, %.1f s",
		 MSGS + 30, r.total + r2->total, dup, lost, dup, 2 * COMMIT_ERRS,
		 r.moved_at, r.batches, r.early_commits, committed_ok, PARTS, r2->total,
		 second_old, COMMIT_ERRS - final_left, final_ok, PARTS,
		 (tk_now_ms() - t0) / 1000.0);
	fk_figures_line(fig);

	ck_assert_int_eq(lost, 0);
	ck_assert_int_eq(dup, 0);
	ck_assert_int_eq(r.early_commits, 0);
	ck_assert_int_eq(committed_ok, PARTS);
	ck_assert_int_eq(r2->total, 30);
	ck_assert_int_eq(second_old, 0);
	ck_assert_int_eq(final_ok, PARTS);
	free(r2);
	rd_kafka_destroy(r.reader);
	mock_stop(&m);
}
END_TEST

/* ---- fatal producer error -------------------------------------------------------------- */

struct fatal_run {
	struct bw_producer *p;
	const char *out_topic;
	int batches, handled_ok;
	int64_t failed_first; /* first offset of the batch that failed */
};

static int fatal_handler(void *opaque, rd_kafka_message_t *const *msgs, size_t n,
			 struct bw_err *err)
{
	struct fatal_run *r = opaque;

	r->batches++;
	for (size_t i = 0; i < n; i++)
		if (bw_producer_send(r->p, r->out_topic, NULL, 0, msgs[i]->payload, msgs[i]->len,
				     NULL, err) != 0)
			goto failed;
	if (r->batches == 3)
		/* What the broker's fencing (INVALID_PRODUCER_EPOCH and the like) raises in an
		 * idempotent producer: a fatal error, every queued message fails. */
		rd_kafka_test_fatal_error(bw_producer_handle(r->p),
					  RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
					  "mock: producer fenced");
	if (bw_producer_flush(r->p, 10000, err) != 0)
		goto failed;
	r->handled_ok += (int)n;
	return 0;
failed:
	r->failed_first = msgs[0]->offset;
	return -1;
}

START_TEST(fatal_producer)
{
	struct mock m;
	char topic[64], out[64], group[64];
	struct bw_err err;
	struct fatal_run r = { 0 };
	int64_t comm[1];
	volatile sig_atomic_t stop = 0;

	mock_start(&m, 1);
	tk_unique(topic, sizeof(topic), "mock.fatal.in");
	tk_unique(out, sizeof(out), "mock.fatal.out");
	tk_unique(group, sizeof(group), "mock-fatal-g");
	ck_assert_int_eq(rd_kafka_mock_topic_create(m.mc, topic, 1, 1), 0);
	ck_assert_int_eq(rd_kafka_mock_topic_create(m.mc, out, 1, 1), 0);
	produce(m.brokers, topic, 1, 0, 100);

	r.p = bw_producer_new(m.brokers, NULL, &err);
	ck_assert_msg(r.p != NULL, "%s", err.msg);
	r.out_topic = out;
	r.failed_first = -1;
	const char *props[] = { "session.timeout.ms=6000", "heartbeat.interval.ms=500", NULL };
	struct bw_consumer_conf cc = {
		.brokers = m.brokers, .group_id = group, .topic = topic, .batch_max = 10,
		.batch_wait_ms = 50, .idle_exit_ms = 5000, .backoff_max_ms = 500,
		.extra_props = props,
	};
	struct bw_consumer *c = bw_consumer_new(&cc, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	bw_err_clear(&err);
	int rc = bw_consumer_run(c, fatal_handler, &r, &stop, &err);
	bw_consumer_destroy(c); /* commits what was stored */

	rd_kafka_t *reader = group_reader(m.brokers, group);
	committed(reader, topic, 1, comm);
	rd_kafka_destroy(reader);
	char fig[512];
	snprintf(fig, sizeof(fig),
		 "FIGURES mock_fatal_producer sent=100 applied=%d duplicates=0 dlq=0 lost=0 "
		 "double_applied=0; run()=%d kind=%s, batches=%d, failed batch from offset %lld, "
		 "committed offset %lld (\"%s\")",
		 r.handled_ok, rc, bw_err_kind_name(err.kind), r.batches,
		 (long long)r.failed_first, (long long)comm[0], err.msg);
	fk_figures_line(fig);
	bw_producer_destroy(r.p);
	mock_stop(&m);

	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(err.kind, BW_ERR_FATAL);
	ck_assert_int_eq(r.batches, 3); /* stopped at the failed batch, no retry */
	ck_assert_int_ge(r.failed_first, 1);
	ck_assert_int_eq(comm[0], r.failed_first); /* nothing of the failed batch stored */
	ck_assert_int_eq(r.handled_ok, (int)r.failed_first);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kafka_mock");
	TCase *tc = tcase_create("mock");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, commit_errors);
	tcase_add_test(tc, fatal_producer);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
