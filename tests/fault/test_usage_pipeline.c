/* Fault tests of the usage worker's pipeline (usage_batch.h, kafka_consumer.h): batch N+1's
 * database work runs while batch N's results are in flight, and N's offsets are stored only
 * after N's acks. 30 events on one partition, batches of 10 (all produced before the worker
 * starts, so the batches are 0-9, 10-19, 20-29); two of batch 2's and 3's messages re-send
 * events of the batch before (the next batch reads what the one in flight wrote). The worker
 * is crashed (abort, as a kill would) inside the overlap:
 *  - after_records:2   batch 2 written, batch 1's results queued and not yet acknowledged;
 *  - after_results:1   batch 1's results acknowledged, its offsets not yet stored, batch 2
 *                      written (its results not published).
 * At the crash both batches' usage records are in MongoDB, and the group has committed no
 * offset. After a restart every event is charged exactly once and every input answered; the
 * messages of batch 2, which charged before the crash, are answered as the charge. (On the
 * sequential loop the second case fails: batch 2 is not yet written when batch 1's results are
 * acknowledged.) */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "usage_kit.h"

enum { N = 30, BATCH = 10 };

static const int default_order[3] = { 0, 1, 2 };

/* The source event of message i: messages 12 and 25 re-send events 3 and 14. */
static int source_of(int i)
{
	return i == 12 ? 3 : i == 25 ? 14 : i;
}

/* The group's committed offset of partition 0 (RD_KAFKA_OFFSET_INVALID: none). */
static int64_t committed(const struct uk_env *env)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);

	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	ck_assert(rd_kafka_conf_set(conf, "group.id", env->group, errstr, sizeof(errstr)) ==
		  RD_KAFKA_CONF_OK);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	rd_kafka_topic_partition_list_add(parts, env->topic, 0);
	ck_assert_int_eq(rd_kafka_committed(rk, parts, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	int64_t off = parts->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(parts);
	rd_kafka_destroy(rk);
	return off;
}

/* Every result of env so far (at least N: the ones before the crash come again), as JSON. */
static json_t *all_results(const struct uk_env *env)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(env->results, N + BATCH + 1, 8000, &msgs);
	json_t *all = json_array();

	ck_assert_msg(n >= N, "got %zu results, want at least %d", n, N);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_loads(msgs[i].value, 0, NULL);
		ck_assert_msg(r != NULL, "result is not JSON: %s", msgs[i].value);
		json_array_append_new(all, r);
	}
	tk_msgs_free(msgs, n);
	return all;
}

static void crash_inside_the_overlap(const char *fault, int results_at_crash)
{
	struct uk_env env;
	struct uk_org orgs[3];
	const char *values[N], *keys[N];
	const char *crash_env[] = { fault, "BATCH_MAX=10", "BATCH_WAIT_MS=200",
				    "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	const char *calm_env[] = { "BATCH_MAX=10", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	int distinct = 0;

	uk_env_init(&env, "usage_pipeline", 1);
	uk_seed_orgs(&env, orgs, 3, "pipe-org", 50, 50, 1000);
	for (int i = 0; i < N; i++) {
		char buf[512], id[32];
		int src = source_of(i);
		long long spus = 1 + (src * 7) % 13;
		snprintf(id, sizeof(id), "p-%d", src);
		uk_event_json(buf, sizeof(buf), id, orgs[src % 3].id, spus);
		if (src == i) {
			uk_ref_charge(&orgs[src % 3], spus, default_order);
			distinct++;
		}
		values[i] = strdup(buf);
		keys[i] = orgs[src % 3].id;
	}
	tk_produce_many(env.topic, keys, values, N);

	ck_assert_int_eq(uk_run_worker(&env, crash_env, 5000), 128 + SIGABRT);

	/* At the crash: batches 1 and 2 written (10 + 9 distinct events: message 12 re-sends
	 * event 3 of batch 1, answered from its record), nothing committed. */
	json_t *recs = tk_mongo_find(env.db, "payments_usage_records", "{}");
	ck_assert_int_eq(json_array_size(recs), 2 * BATCH - 1);
	json_decref(recs);
	int64_t off = committed(&env);
	ck_assert_msg(off < 0, "offset %lld committed before batch 1 was settled", (long long)off);
	if (results_at_crash >= 0) {
		struct tk_msg *msgs = NULL;
		size_t n = tk_consume(env.results, N, 5000, &msgs);
		ck_assert_int_eq(n, results_at_crash);
		tk_msgs_free(msgs, n);
	}

	ck_assert_int_eq(uk_run_worker(&env, calm_env, 9000), 0);
	for (int o = 0; o < 3; o++)
		uk_check_org(&env, &orgs[o]);
	recs = tk_mongo_find(env.db, "payments_usage_records", "{}");
	ck_assert_int_eq(json_array_size(recs), distinct);
	json_decref(recs);
	ck_assert_int_eq(committed(&env), N);
	json_t *all = all_results(&env);
	for (int i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), "p-%d", source_of(i));
		ck_assert_msg(uk_find_result(all, id, NULL) != NULL, "no result for %s", id);
		if (i >= BATCH && i < 2 * BATCH && source_of(i) == i)
			ck_assert_msg(uk_find_result(all, id, "applied") != NULL,
				      "%s (charged before the crash) not answered applied", id);
	}
	ck_assert_int_ge(uk_count_results(all, "p-3", "duplicate"), 1);
	ck_assert_int_ge(uk_count_results(all, "p-14", "duplicate"), 1);
	json_decref(all);
	for (int i = 0; i < N; i++)
		free((char *)values[i]);
	tk_mongo_drop(env.db);
}

START_TEST(crash_while_batch_1_acks_are_pending_and_batch_2_is_written)
{
	crash_inside_the_overlap("BW_FAULT_AT=after_records:2", -1);
}
END_TEST

START_TEST(crash_after_batch_1_acks_before_its_offsets_with_batch_2_written)
{
	crash_inside_the_overlap("BW_FAULT_AT=after_results:1", BATCH);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_pipeline");
	TCase *tc = tcase_create("overlap");

	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, crash_while_batch_1_acks_are_pending_and_batch_2_is_written);
	tcase_add_test(tc, crash_after_batch_1_acks_before_its_offsets_with_batch_2_written);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
