/* Integration tests of the pipelined consumer loop (kafka_consumer.h,
 * bw_consumer_run_pipelined) against the real broker, with a handler that records every call:
 *  - batch N is settled after batch N+1's apply and before N+1's publish (the overlap), and
 *    the group's committed offset is never past the batches settled so far;
 *  - the last batch is settled when the loop idles, long before the idle exit;
 *  - a failed settle of N (transient) discards N+1 unpublished and both come again;
 *  - a fatal settle of N stores neither N nor N+1: a new consumer starts at N. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka_consumer.h"
#include "testkit.h"

enum { NMSG = 30, MAXCALLS = 512, IDLE_MS = 5000 };

enum step { APPLY, PUBLISH, SETTLE, DISCARD };

struct call {
	enum step step;
	int64_t first, last; /* the batch's offsets (one partition) */
	long long at_ms;
	int ok;
};

struct rec {
	struct call calls[MAXCALLS];
	int ncalls;
	int fail_settle;            /* the fail_settle-th settle call fails (0: none) ... */
	enum bw_err_kind fail_kind; /* ... with this kind */
	int settles;
	int64_t settled_end;        /* every offset below was settled */
	int ahead;                  /* committed offsets seen past settled_end */
	rd_kafka_t *peek;           /* same group, not subscribed: reads committed offsets */
	rd_kafka_topic_partition_list_t *parts;
};

struct tbatch {
	int64_t first, last;
};

/* The group's committed offset must never be past what was settled. */
static void check_committed(struct rec *r)
{
	if (rd_kafka_committed(r->peek, r->parts, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	int64_t off = r->parts->elems[0].offset;
	if (off >= 0 && off > r->settled_end)
		r->ahead++;
}

static void record(struct rec *r, enum step step, const struct tbatch *b, int ok)
{
	ck_assert_int_lt(r->ncalls, MAXCALLS);
	r->calls[r->ncalls++] = (struct call){ step, b->first, b->last, tk_now_ms(), ok };
}

static int t_apply(void *opaque, rd_kafka_message_t *const *msgs, size_t count, void **state,
		   struct bw_err *err)
{
	struct rec *r = opaque;
	struct tbatch *b = malloc(sizeof(*b));

	(void)err;
	ck_assert_ptr_nonnull(b);
	b->first = msgs[0]->offset;
	b->last = msgs[count - 1]->offset;
	check_committed(r);
	usleep(300 * 1000); /* the database work: long enough for auto-commits (1 s) to run */
	record(r, APPLY, b, 1);
	*state = b;
	return 0;
}

static int t_publish(void *opaque, void *state, struct bw_err *err)
{
	(void)err;
	record(opaque, PUBLISH, state, 1);
	return 0;
}

static int t_settle(void *opaque, void *state, struct bw_err *err)
{
	struct rec *r = opaque;
	struct tbatch *b = state;

	check_committed(r);
	if (++r->settles == r->fail_settle) {
		record(r, SETTLE, b, 0);
		return bw_err_set(err, r->fail_kind, "injected: acks of %lld..%lld failed",
				  (long long)b->first, (long long)b->last);
	}
	record(r, SETTLE, b, 1);
	r->settled_end = b->last + 1;
	return 0;
}

static void t_discard(void *opaque, void *state)
{
	record(opaque, DISCARD, state, 1);
	free(state);
}

static const struct bw_batch_handler recorder = { t_apply, t_publish, t_settle, t_discard };

static int run_pipelined(const char *topic, const char *group, struct rec *r)
{
	char errstr[256];
	struct bw_err err;
	struct bw_consumer_conf conf = { .brokers = tk_brokers(), .group_id = group,
					 .topic = topic, .batch_max = 10, .batch_wait_ms = 200,
					 .idle_exit_ms = IDLE_MS, .backoff_max_ms = 200 };
	rd_kafka_conf_t *pconf = rd_kafka_conf_new();
	struct bw_consumer *c = bw_consumer_new(&conf, &err);
	int rc;

	ck_assert_msg(c != NULL, "consumer: %s", err.msg);
	ck_assert(rd_kafka_conf_set(pconf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	ck_assert(rd_kafka_conf_set(pconf, "group.id", group, errstr, sizeof(errstr)) ==
		  RD_KAFKA_CONF_OK);
	r->peek = rd_kafka_new(RD_KAFKA_CONSUMER, pconf, errstr, sizeof(errstr));
	ck_assert_msg(r->peek != NULL, "%s", errstr);
	r->parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(r->parts, topic, 0);
	rc = bw_consumer_run_pipelined(c, &recorder, r, NULL, &err);
	bw_consumer_destroy(c);
	rd_kafka_topic_partition_list_destroy(r->parts);
	rd_kafka_destroy(r->peek);
	return rc;
}

/* Index of the first call of step on the batch starting at first, from index from; -1. */
static int find(const struct rec *r, enum step step, int64_t first, int from)
{
	for (int i = from; i < r->ncalls; i++)
		if (r->calls[i].step == step && r->calls[i].first == first)
			return i;
	return -1;
}

/* Offsets the next consumer of group gets first (-1: none within the idle time). */
/* The index of the first settle call that failed, or -1. */
static int first_failed_settle(const struct rec *r)
{
	for (int i = 0; i < r->ncalls; i++)
		if (r->calls[i].step == SETTLE && !r->calls[i].ok)
			return i;
	return -1;
}

static int64_t next_offset(const char *topic, const char *group)
{
	struct rec r = { .fail_settle = 0 };

	ck_assert_int_eq(run_pipelined(topic, group, &r), 0);
	return r.ncalls ? r.calls[0].first : -1;
}

static void setup(char *topic, size_t tlen, char *group, size_t glen, const char *name)
{
	const char *values[NMSG];
	char buf[NMSG][16];

	tk_unique(topic, tlen, name);
	tk_unique(group, glen, "grp");
	tk_create_topic(topic, 1, 0);
	for (int i = 0; i < NMSG; i++) {
		snprintf(buf[i], sizeof(buf[i]), "m%d", i);
		values[i] = buf[i];
	}
	tk_produce_many(topic, NULL, values, NMSG);
}

START_TEST(batch_is_settled_after_the_next_apply_and_before_its_publish)
{
	char topic[128], group[128];
	static struct rec r;
	int applies[MAXCALLS], nb = 0;

	memset(&r, 0, sizeof(r));
	setup(topic, sizeof(topic), group, sizeof(group), "pipe_order");
	ck_assert_int_eq(run_pipelined(topic, group, &r), 0);

	for (int i = 0; i < r.ncalls; i++)
		if (r.calls[i].step == APPLY)
			applies[nb++] = i;
	ck_assert_int_ge(nb, 2);
	ck_assert_int_eq(r.calls[applies[0]].first, 0);
	for (int k = 0; k < nb; k++) {
		const struct call *a = &r.calls[applies[k]];
		int pub = find(&r, PUBLISH, a->first, applies[k]);
		int set = find(&r, SETTLE, a->first, applies[k]);
		int dis = find(&r, DISCARD, a->first, applies[k]);
		ck_assert_msg(pub > applies[k] && set > pub && dis > set,
			      "batch %lld: apply %d publish %d settle %d discard %d",
			      (long long)a->first, applies[k], pub, set, dis);
		ck_assert(r.calls[set].ok);
		if (k + 1 < nb) {
			const struct call *next = &r.calls[applies[k + 1]];
			int next_pub = find(&r, PUBLISH, next->first, applies[k + 1]);
			/* contiguous batches, and the overlap: N+1 applied before N settled,
			 * N settled before N+1 published */
			ck_assert_int_eq(next->first, a->last + 1);
			ck_assert_msg(applies[k + 1] < set && set < next_pub,
				      "batch %lld settled at %d: next apply %d, next publish %d",
				      (long long)a->first, set, applies[k + 1], next_pub);
		} else {
			ck_assert_int_eq(a->last, NMSG - 1);
			/* the last one is settled when the loop idles, not at the idle exit */
			ck_assert_int_lt(r.calls[set].at_ms - r.calls[pub].at_ms, IDLE_MS / 2);
		}
	}
	ck_assert_int_eq(r.ahead, 0);
	ck_assert_int_eq(next_offset(topic, group), -1); /* everything committed */
}
END_TEST

START_TEST(failed_settle_brings_back_the_batch_and_the_next)
{
	char topic[128], group[128];
	static struct rec r;
	int failed;

	memset(&r, 0, sizeof(r));
	r.fail_settle = 2;
	r.fail_kind = BW_ERR_TRANSIENT;
	setup(topic, sizeof(topic), group, sizeof(group), "pipe_fail");
	ck_assert_int_eq(run_pipelined(topic, group, &r), 0);

	failed = first_failed_settle(&r);
	ck_assert_int_ge(failed, 0);
	const struct call *f = &r.calls[failed];
	/* N+1 (applied before N's settle) was discarded without a publish */
	int next_apply = -1;
	for (int i = failed - 1; i >= 0 && next_apply < 0; i--)
		if (r.calls[i].step == APPLY && r.calls[i].first == f->last + 1)
			next_apply = i;
	ck_assert_int_ge(next_apply, 0);
	int dis = find(&r, DISCARD, f->last + 1, next_apply);
	int pub = find(&r, PUBLISH, f->last + 1, next_apply);
	ck_assert_int_gt(dis, failed);
	ck_assert_msg(pub > dis, "the batch after the failed one published at %d (discard %d)", pub,
		      dis);
	/* the next apply starts again at the failed batch's first offset */
	int again = -1;
	for (int i = failed + 1; i < r.ncalls && again < 0; i++)
		if (r.calls[i].step == APPLY)
			again = i;
	ck_assert_int_ge(again, 0);
	ck_assert_int_eq(r.calls[again].first, f->first);
	/* and every offset is settled in the end */
	ck_assert_int_eq(r.settled_end, NMSG);
	ck_assert_int_eq(r.ahead, 0);
	ck_assert_int_eq(next_offset(topic, group), -1);
}
END_TEST

START_TEST(fatal_settle_stores_neither_the_batch_nor_the_next)
{
	char topic[128], group[128];
	static struct rec r;
	int failed;

	memset(&r, 0, sizeof(r));
	r.fail_settle = 2;
	r.fail_kind = BW_ERR_FATAL;
	setup(topic, sizeof(topic), group, sizeof(group), "pipe_fatal");
	ck_assert_int_eq(run_pipelined(topic, group, &r), -1);
	failed = first_failed_settle(&r);
	ck_assert_int_ge(failed, 0);
	int64_t failed_first = r.calls[failed].first, next_first = r.calls[failed].last + 1;
	ck_assert_int_gt(failed_first, 0);
	/* the batch after it was applied before the failed settle, and never published */
	int next_apply = find(&r, APPLY, next_first, 0);
	ck_assert_int_ge(next_apply, 0);
	ck_assert_int_lt(next_apply, failed);
	ck_assert_int_eq(find(&r, PUBLISH, next_first, 0), -1);
	ck_assert_int_eq(r.ahead, 0);
	/* a new consumer of the group starts at the failed batch */
	ck_assert_int_eq(next_offset(topic, group), failed_first);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("consumer_pipeline");
	TCase *tc = tcase_create("pipeline");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, batch_is_settled_after_the_next_apply_and_before_its_publish);
	tcase_add_test(tc, failed_settle_brings_back_the_batch_and_the_next);
	tcase_add_test(tc, fatal_settle_stores_neither_the_batch_nor_the_next);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
