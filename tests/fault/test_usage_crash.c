/* Fault tests of the usage worker: it is crashed (abort, as a kill would) at each step of a
 * batch — after the balance write, after the usage records, after the results, after the
 * offset store — then restarted. The final balances and records must equal the reference:
 * nothing charged twice, nothing lost (invariants 1, 2, 6). */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "usage_kit.h"

static const int default_order[3] = { 0, 1, 2 };

static void crash_then_recover(const char *step)
{
	struct uk_env env;
	struct uk_org orgs[3];
	enum { N = 120 };
	const char *values[N], *keys[N];
	char fault[96];
	/* A crashed member holds its partitions until its session times out: keep it short. */
	const char *crash_env[] = { fault, "BATCH_MAX=10", "BATCH_WAIT_MS=50",
				    "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	const char *calm_env[] = { "BATCH_MAX=10", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	int distinct = 0;

	uk_env_init(&env, "usage_crash", 2);
	uk_seed_orgs(&env, orgs, 3, "crash-org", 40, 80, 100);
	for (int i = 0; i < N; i++) {
		char buf[512], id[32];
		int o = i % 3;
		int dup = (i % 7 == 6); /* a repeat of the event two before, same content */
		int src = dup ? i - 3 : i;
		long long spus = 1 + (src * 5) % 11;
		snprintf(id, sizeof(id), "c-%d", src);
		uk_event_json(buf, sizeof(buf), id, orgs[src % 3].id, spus);
		if (!dup) {
			uk_ref_charge(&orgs[o], spus, default_order);
			distinct++;
		}
		values[i] = strdup(buf);
		keys[i] = orgs[src % 3].id;
	}
	tk_produce_many(env.topic, keys, values, N);

	/* Crash at the step in the third batch; then again at its first occurrence after a
	 * restart (the redelivered batch); then run to the end. */
	snprintf(fault, sizeof(fault), "BW_FAULT_AT=%s:3", step);
	ck_assert_int_eq(uk_run_worker(&env, crash_env, 5000), 128 + SIGABRT);
	snprintf(fault, sizeof(fault), "BW_FAULT_AT=%s:1", step);
	ck_assert_int_eq(uk_run_worker(&env, crash_env, 9000), 128 + SIGABRT);
	ck_assert_int_eq(uk_run_worker(&env, calm_env, 9000), 0);

	for (int o = 0; o < 3; o++)
		uk_check_org(&env, &orgs[o]);
	json_t *recs = tk_mongo_find(env.db, "payments_usage_records", "{}");
	ck_assert_int_eq(json_array_size(recs), distinct);
	json_decref(recs);

	/* Every input message has at least one result (results are at-least-once). */
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(env.results, 100000, 8000, &msgs);
	ck_assert_int_ge(n, N);
	tk_msgs_free(msgs, n);
	for (int i = 0; i < N; i++)
		free((char *)values[i]);
	tk_mongo_drop(env.db);
}

START_TEST(crash_after_db_write)
{
	crash_then_recover("after_db_write");
}
END_TEST

START_TEST(crash_after_records)
{
	crash_then_recover("after_records");
}
END_TEST

START_TEST(crash_after_results)
{
	crash_then_recover("after_results");
}
END_TEST

START_TEST(crash_after_offset_store)
{
	crash_then_recover("after_offset_store");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_crash");
	TCase *tc = tcase_create("crash");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, crash_after_db_write);
	tcase_add_test(tc, crash_after_records);
	tcase_add_test(tc, crash_after_results);
	tcase_add_test(tc, crash_after_offset_store);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
