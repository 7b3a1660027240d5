/* Integration tests of the shared consumer loop against the real broker: offsets are stored
 * only after the handler succeeds; a failed batch is redelivered; the DLQ publisher writes the
 * original bytes with the reason and source position. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "fault.h"
#include "kafka_consumer.h"
#include "kafka_producer.h"
#include "testkit.h"

struct seen {
	int64_t offsets[64];
	int count;
	int calls;
	int fail_calls;          /* fail this many calls ... */
	enum bw_err_kind fail_kind; /* ... with this kind */
	const char *more_topic;  /* first call: produce three more messages here before failing */
	struct bw_producer *dlq;
};

static int record_batch(void *opaque, rd_kafka_message_t *const *msgs, size_t n,
			struct bw_err *err)
{
	struct seen *s = opaque;

	s->calls++;
	for (size_t i = 0; i < n && s->count < 64; i++)
		s->offsets[s->count++] = msgs[i]->offset;
	if (s->more_topic && s->calls == 1) {
		const char *values[] = { "m3", "m4", "m5" };
		tk_produce_many(s->more_topic, NULL, values, 3);
	}
	if (s->calls <= s->fail_calls)
		return bw_err_set(err, s->fail_kind, "injected failure %d", s->calls);
	if (s->dlq) {
		for (size_t i = 0; i < n; i++)
			if (bw_dlq_publish(s->dlq, "test-worker", msgs[i], "cannot process: test", err))
				return -1;
		return bw_producer_flush(s->dlq, 10000, err);
	}
	return 0;
}

static int run_consumer(const char *topic, const char *group, struct seen *s, int idle_ms)
{
	struct bw_err err;
	struct bw_consumer_conf conf = { .brokers = tk_brokers(), .group_id = group,
					 .topic = topic, .batch_max = 100, .batch_wait_ms = 200,
					 .idle_exit_ms = idle_ms, .backoff_max_ms = 200 };
	struct bw_consumer *c = bw_consumer_new(&conf, &err);
	int rc;

	ck_assert_msg(c != NULL, "consumer: %s", err.msg);
	rc = bw_consumer_run(c, record_batch, s, NULL, &err);
	bw_consumer_destroy(c);
	return rc;
}

static void produce_three(const char *topic)
{
	const char *values[] = { "m0", "m1", "m2" };
	tk_produce_many(topic, NULL, values, 3);
}

START_TEST(offsets_are_not_committed_when_processing_fails)
{
	char topic[128], group[128];
	struct seen first = { .fail_calls = 1000, .fail_kind = BW_ERR_FATAL };
	struct seen second = { 0 };
	struct seen third = { 0 };

	tk_unique(topic, sizeof(topic), "loop_fail");
	tk_unique(group, sizeof(group), "grp");
	tk_create_topic(topic, 1, 0);
	produce_three(topic);

	/* The handler fails: run() stops, nothing may be stored or committed. */
	ck_assert_int_eq(run_consumer(topic, group, &first, 15000), -1);
	ck_assert_int_eq(first.count, 3);

	/* A restarted consumer in the same group gets the same messages again. */
	ck_assert_int_eq(run_consumer(topic, group, &second, 4000), 0);
	ck_assert_int_eq(second.count, 3);
	ck_assert_int_eq(second.offsets[0], 0);
	ck_assert_int_eq(second.offsets[2], 2);

	/* Once processed, the commit holds: a third consumer gets nothing. */
	ck_assert_int_eq(run_consumer(topic, group, &third, 4000), 0);
	ck_assert_int_eq(third.count, 0);
}
END_TEST

START_TEST(transient_failure_rewinds_and_redelivers_the_batch)
{
	char topic[128], group[128];
	struct seen s = { .fail_calls = 2, .fail_kind = BW_ERR_TRANSIENT };
	struct seen after = { 0 };

	tk_unique(topic, sizeof(topic), "loop_retry");
	tk_unique(group, sizeof(group), "grp");
	tk_create_topic(topic, 1, 0);
	produce_three(topic);

	ck_assert_int_eq(run_consumer(topic, group, &s, 4000), 0);
	ck_assert_int_ge(s.calls, 3);
	/* three deliveries of the same three offsets: twice failed, once done */
	ck_assert_int_eq(s.count, 9);
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(s.offsets[i], i % 3);
	ck_assert_int_eq(run_consumer(topic, group, &after, 3000), 0);
	ck_assert_int_eq(after.count, 0);
}
END_TEST

/* A failed batch is sought back; when that seek fails, the fetch position is past the dropped
 * messages, so polling on would store the next batch's offsets over them: they would never be
 * handled. The loop must stop instead, and a restart must get every message. */
START_TEST(failed_seek_back_stops_the_loop_instead_of_skipping_the_batch)
{
	char topic[128], group[128];
	struct seen s = { .fail_calls = 1, .fail_kind = BW_ERR_TRANSIENT };
	struct seen after = { 0 };

	tk_unique(topic, sizeof(topic), "loop_seek");
	tk_unique(group, sizeof(group), "grp");
	tk_create_topic(topic, 1, 0);
	produce_three(topic);
	s.more_topic = topic;

	setenv("BW_FAULT_FAIL", "seek_back", 1);
	ck_assert_int_eq(bw_fault_init(), 0);
	ck_assert_int_eq(run_consumer(topic, group, &s, 4000), -1);
	unsetenv("BW_FAULT_FAIL");
	ck_assert_int_eq(bw_fault_init(), 0);
	ck_assert_int_eq(s.calls, 1);

	/* Nothing was committed: a restarted consumer gets all six, from offset 0. */
	ck_assert_int_eq(run_consumer(topic, group, &after, 4000), 0);
	ck_assert_int_eq(after.count, 6);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(after.offsets[i], i);
}
END_TEST

START_TEST(dlq_record_carries_original_bytes_reason_and_source)
{
	char topic[128], group[128], dlq_topic[160];
	struct bw_err err;
	struct seen s = { 0 };
	struct tk_msg *msgs = NULL;
	size_t n;

	tk_unique(topic, sizeof(topic), "loop_dlq");
	tk_unique(group, sizeof(group), "grp");
	tk_create_topic(topic, 1, 1);
	tk_produce(topic, "key-1", "\x01not json\xff");
	s.dlq = bw_producer_new(tk_brokers(), NULL, &err);
	ck_assert_msg(s.dlq != NULL, "%s", err.msg);
	ck_assert_int_eq(run_consumer(topic, group, &s, 4000), 0);
	bw_producer_destroy(s.dlq);

	snprintf(dlq_topic, sizeof(dlq_topic), "%s.dlq", topic);
	n = tk_consume(dlq_topic, 1, 15000, &msgs);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(msgs[0].len, 10);
	ck_assert_int_eq(memcmp(msgs[0].value, "\x01not json\xff", 10), 0);
	ck_assert_str_eq(msgs[0].key, "key-1");
	char *reason = tk_header(&msgs[0], "dlq.reason");
	char *src = tk_header(&msgs[0], "dlq.source.topic");
	char *part = tk_header(&msgs[0], "dlq.source.partition");
	char *off = tk_header(&msgs[0], "dlq.source.offset");
	char *worker = tk_header(&msgs[0], "dlq.worker");
	char *when = tk_header(&msgs[0], "dlq.time");
	ck_assert_str_eq(reason, "cannot process: test");
	ck_assert_str_eq(src, topic);
	ck_assert_str_eq(part, "0");
	ck_assert_str_eq(off, "0");
	ck_assert_str_eq(worker, "test-worker");
	ck_assert_ptr_nonnull(when);
	free(reason);
	free(src);
	free(part);
	free(off);
	free(worker);
	free(when);
	tk_msgs_free(msgs, n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("consumer_loop");
	TCase *tc = tcase_create("offsets");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, offsets_are_not_committed_when_processing_fails);
	tcase_add_test(tc, transient_failure_rewinds_and_redelivers_the_batch);
	tcase_add_test(tc, dlq_record_carries_original_bytes_reason_and_source);
	tcase_add_test(tc, failed_seek_back_stops_the_loop_instead_of_skipping_the_batch);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
