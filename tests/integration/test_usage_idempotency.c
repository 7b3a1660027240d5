/* Integration tests of the usage worker's idempotency outcomes (issue 11, defects 4 and 5):
 * every repeat of an event inside one batch gets its own outcome, a duplicate carries the
 * original charge's balance_version, and the message that charged an event, redelivered after
 * a crash that came before its result, is answered as the charge. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "usage_kit.h"

static const int default_order[3] = { 0, 1, 2 };

/* The status of the result of the message at offset (single-partition topics). */
static const char *status_at(json_t *all, long long offset)
{
	size_t i;
	json_t *r;
	json_array_foreach(all, i, r)
		if (tk_int(r, "source_offset") == offset)
			return json_string_value(json_object_get(r, "status"));
	ck_abort_msg("no result for offset %lld", offset);
	return NULL;
}

/* Defect 4: copies of one event in one batch each answer for themselves. */
START_TEST(each_copy_in_a_batch_gets_its_own_outcome)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	json_t *all, *r;

	uk_env_init(&env, "usage_copies", 1);
	snprintf(org.id, sizeof(org.id), "org-copies");
	uk_seed_org(&env, &org);
	uk_produce_event(&env, "c1", org.id, 7);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	/* one batch: two identical conflicting copies, then a copy equal to the original */
	uk_produce_event(&env, "c1", org.id, 70);
	uk_produce_event(&env, "c1", org.id, 70);
	uk_produce_event(&env, "c1", org.id, 7);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_ref_charge(&org, 7, default_order);
	uk_check_org(&env, &org);
	all = uk_results(&env, 4);
	ck_assert_int_eq(uk_count_results(all, "c1", "applied"), 1);
	ck_assert_int_eq(uk_count_results(all, "c1", "conflict"), 2);
	ck_assert_int_eq(uk_count_results(all, "c1", "duplicate"), 1);
	ck_assert_str_eq(status_at(all, 0), "applied");
	ck_assert_str_eq(status_at(all, 1), "conflict");
	ck_assert_str_eq(status_at(all, 2), "conflict");   /* identical copy of a conflict */
	ck_assert_str_eq(status_at(all, 3), "duplicate");  /* same content as the original */
	r = uk_find_result(all, "c1", "duplicate");
	ck_assert_ptr_null(json_object_get(r, "reason"));
	ck_assert_int_eq(tk_int(json_object_get(r, "breakdown"), "from_granted"), 7);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* Defect 4: a copy with other content than a rejected first copy is its own event. */
START_TEST(a_different_copy_of_a_rejected_event_is_charged_on_its_own)
{
	struct uk_env env;
	json_t *all, *r, *d;

	uk_env_init(&env, "usage_copy_rejected", 1);
	/* paid_spus_used near the int64 limit: 1000 more would overflow, 5 more do not */
	tk_mongo_insert(env.db, "payments_customers",
			"{\"org_id\":\"org-full\",\"subscription_type\":\"none\","
			"\"subscription_spu_allowance\":{\"$numberLong\":\"0\"},"
			"\"purchased_credits\":{\"$numberLong\":\"0\"},"
			"\"granted_credits\":{\"$numberLong\":\"0\"},"
			"\"paid_spus_used\":{\"$numberLong\":\"9223372036854775000\"},"
			"\"opening_balance\":{\"source\":\"none\"},"
			"\"balance_version\":{\"$numberLong\":\"1\"}}");
	uk_produce_event(&env, "o1", "org-full", 1000);
	uk_produce_event(&env, "o1", "org-full", 5);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	all = uk_results(&env, 2);
	r = uk_find_result(all, "o1", "rejected");
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "reason")), "overflow"));
	r = uk_find_result(all, "o1", "insufficient_credits");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(tk_int(json_object_get(r, "breakdown"), "from_paid"), 5);
	d = tk_mongo_find_one(env.db, "payments_customers", "{\"org_id\":\"org-full\"}");
	ck_assert_int_eq(tk_int(d, "paid_spus_used"), 9223372036854775005LL);
	json_decref(d);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* Defect 5: a duplicate reports the original charge's balance_version, not the org's. */
START_TEST(a_duplicate_carries_the_original_balance_version)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	json_t *all, *r;

	uk_env_init(&env, "usage_dup_version", 1);
	snprintf(org.id, sizeof(org.id), "org-dupv");
	uk_seed_org(&env, &org);                 /* balance_version 1 */
	uk_produce_event(&env, "v1", org.id, 5);    /* -> 2 */
	uk_produce_event(&env, "v2", org.id, 6);    /* -> 3 */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_produce_event(&env, "v1", org.id, 5);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	all = uk_results(&env, 3);
	r = uk_find_result(all, "v1", "applied");
	ck_assert_int_eq(tk_int(r, "balance_version"), 2);
	r = uk_find_result(all, "v1", "duplicate");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(tk_int(r, "balance_version"), 2);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* Defect 5: the worker dies after the usage record, before the result; the redelivered
 * message is the one that charged, so it is answered applied (README), not duplicate. */
START_TEST(redelivery_after_a_crash_after_the_record_answers_applied)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	const char *crash_env[] = { "BW_FAULT_AT=after_records:1", "RDKAFKA_SESSION_TIMEOUT_MS=6000",
				    NULL };
	const char *calm_env[] = { "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	json_t *all, *r;

	uk_env_init(&env, "usage_crash_applied", 1);
	snprintf(org.id, sizeof(org.id), "org-crash");
	uk_seed_org(&env, &org);
	uk_produce_event(&env, "f1", org.id, 9);
	ck_assert_int_eq(uk_run_worker(&env, crash_env, 5000), 128 + SIGABRT);
	ck_assert_int_eq(uk_run_worker(&env, calm_env, 9000), 0);
	uk_ref_charge(&org, 9, default_order);
	uk_check_org(&env, &org);
	all = uk_results(&env, 1);
	ck_assert_int_eq(json_array_size(all), 1);
	r = uk_find_result(all, "f1", "applied");
	ck_assert_msg(r != NULL, "status %s",
		      json_string_value(json_object_get(json_array_get(all, 0), "status")));
	ck_assert_int_eq(tk_int(r, "balance_version"), 2);
	ck_assert_int_eq(tk_int(json_object_get(r, "breakdown"), "from_granted"), 9);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_idempotency");
	TCase *tc = tcase_create("outcomes");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, each_copy_in_a_batch_gets_its_own_outcome);
	tcase_add_test(tc, a_different_copy_of_a_rejected_event_is_charged_on_its_own);
	tcase_add_test(tc, a_duplicate_carries_the_original_balance_version);
	tcase_add_test(tc, redelivery_after_a_crash_after_the_record_answers_applied);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
