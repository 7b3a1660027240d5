/* Integration tests of the usage worker on a database shaped like the original integration's
 * (issue 9): customer documents without version fields, with null and missing fields and
 * overdrawn counters; usage records without event_id; the backend's organizations and its
 * index; ledger rows keyed session_id (one session credited twice); stripe_events. Two workers
 * start on it and charge events; one assertion per case. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usage_kit.h"

#define ORG_A "65a1b2c3d4e5f60718293a4b" /* an organizations _id as a string */
#define ORG_B "old-nogrant"
#define ORG_C "old-overdrawn"
#define ORG_D "old-opening"
#define D_EVENTS 40

static struct uk_env env;
static json_t *results, *old_before;

static const char *const old_records[] = {
	"{\"org_id\":\"" ORG_A "\",\"spus\":5,\"operation\":\"llm_call\",\"source\":\"api\","
	"\"timestamp\":{\"$date\":\"2026-01-02T03:04:05Z\"},\"llm_provider\":\"openai\","
	"\"llm_model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,"
	"\"total_tokens\":15,\"actual_cost\":0.001}",
	"{\"org_id\":\"" ORG_D "\",\"spus\":20,\"operation\":\"paid_usage\",\"source\":\"api\","
	"\"timestamp\":{\"$date\":\"2026-01-03T00:00:00Z\"}}",
	"{\"org_id\":\"" ORG_D "\",\"spus\":7,\"operation\":\"doc_processing\",\"source\":\"ui\","
	"\"timestamp\":{\"$date\":\"2026-01-03T00:00:01Z\"}}",
};

static const char *const old_customers[] = {
	"{\"org_id\":\"" ORG_A "\",\"user_id\":\"u1\",\"stripe_customer_id\":null,"
	"\"subscription_type\":\"team\",\"subscription_spu_allowance\":100,"
	"\"subscription_spus_used\":10,\"purchased_credits\":0,\"purchased_credits_used\":0,"
	"\"granted_credits\":100,\"granted_credits_used\":20,"
	"\"created_at\":{\"$date\":\"2025-06-01T00:00:00Z\"}}",
	"{\"org_id\":\"" ORG_B "\",\"user_id\":\"u2\",\"stripe_customer_id\":null,"
	"\"created_at\":{\"$date\":\"2025-06-01T00:00:00Z\"}}",
	"{\"org_id\":\"" ORG_C "\",\"subscription_type\":\"individual\","
	"\"subscription_spu_allowance\":null,\"purchased_credits\":50,"
	"\"purchased_credits_used\":80,\"granted_credits\":100,\"granted_credits_used\":100}",
	"{\"org_id\":\"" ORG_D "\",\"subscription_type\":null,\"subscription_spu_allowance\":0,"
	"\"subscription_spus_used\":0,\"purchased_credits\":200,\"purchased_credits_used\":50,"
	"\"granted_credits\":100,\"granted_credits_used\":100}",
};

static const char *const old_other[][2] = {
	{ "organizations", "{\"_id\":{\"$oid\":\"" ORG_A "\"},\"name\":\"Acme\",\"type\":\"team\"}" },
	{ "organizations", "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4c\"},\"type\":\"enterprise\"}" },
	{ "payments_credit_transactions", "{\"session_id\":\"cs_old_1\",\"org_id\":\"" ORG_D "\","
	  "\"credits\":100,\"created_at\":{\"$date\":\"2025-07-01T00:00:00Z\"}}" },
	{ "payments_credit_transactions", "{\"session_id\":\"cs_old_1\",\"org_id\":\"" ORG_D "\","
	  "\"credits\":100,\"created_at\":{\"$date\":\"2025-07-01T00:00:00Z\"}}" },
	{ "payments_credit_transactions", "{\"session_id\":\"cs_old_2\",\"org_id\":\"" ORG_C "\","
	  "\"credits\":50,\"processed_at\":{\"$date\":\"2025-07-02T00:00:00Z\"}}" },
	{ "stripe_events", "{\"stripe_event_id\":\"evt_old_1\",\"type\":\"checkout.session."
	  "completed\",\"data\":{},\"created\":1700000000,\"processed\":true}" },
};

static const char *old_filter = "{\"hash\":{\"$exists\":false},\"status\":{\"$exists\":false}}";

static void produce(const char *event_id, const char *org, long long spus, const char *key)
{
	char buf[512];
	uk_event_json(buf, sizeof(buf), event_id, org, spus);
	tk_produce(env.topic, key, buf);
}

static void build_fixture(const struct uk_env *e)
{
	for (size_t i = 0; i < sizeof(old_customers) / sizeof(old_customers[0]); i++)
		tk_mongo_insert(e->db, "payments_customers", old_customers[i]);
	for (size_t i = 0; i < sizeof(old_records) / sizeof(old_records[0]); i++)
		tk_mongo_insert(e->db, "payments_usage_records", old_records[i]);
	for (size_t i = 0; i < sizeof(old_other) / sizeof(old_other[0]); i++)
		tk_mongo_insert(e->db, old_other[i][0], old_other[i][1]);
	/* the backend's own (and only) billing index */
	json_decref(tk_mongo_command(e->db, "{\"createIndexes\":\"payments_usage_records\","
				     "\"indexes\":[{\"key\":{\"org_id\":1,\"timestamp\":1},"
				     "\"name\":\"org_id_1_timestamp_1\"}]}"));
}

/* Once for the whole case: the fixture, two workers at once (the first touch of every old org
 * races), then the backend makes A enterprise and the stripe worker credits C. */
static void setup(void)
{
	const char *two[] = { "IDLE_EXIT_MS=5000", "BATCH_MAX=8", NULL };

	uk_env_init(&env, "usage_old", 4);
	build_fixture(&env);
	old_before = tk_mongo_find(env.db, "payments_usage_records", old_filter);
	pid_t w1 = uk_start_worker(&env, two);
	pid_t w2 = uk_start_worker(&env, two);
	produce("a1", ORG_A, 10, ORG_A);
	produce("b1", ORG_B, 30, ORG_B);
	produce("c1", ORG_C, 10, ORG_C);
	for (int i = 0; i < D_EVENTS; i++) {
		char id[32];
		snprintf(id, sizeof(id), "d-%d", i);
		produce(id, ORG_D, 3, id); /* keyed by id: over both workers */
	}
	ck_assert_int_eq(tk_wait(w1, 120000), 0);
	ck_assert_int_eq(tk_wait(w2, 120000), 0);
	json_decref(tk_mongo_command(env.db, "{\"update\":\"organizations\",\"updates\":[{\"q\":"
				     "{\"_id\":{\"$oid\":\"" ORG_A "\"}},\"u\":{\"$set\":"
				     "{\"type\":\"enterprise\"}}}]}"));
	json_decref(tk_mongo_command(env.db, "{\"update\":\"payments_customers\",\"updates\":[{\"q\":"
				     "{\"org_id\":\"" ORG_C "\"},\"u\":{\"$inc\":{\"purchased_credits\":"
				     "{\"$numberLong\":\"20\"},\"balance_version\":"
				     "{\"$numberLong\":\"1\"}}}}]}"));
	produce("a2", ORG_A, 1000000, ORG_A);
	produce("c2", ORG_C, 15, ORG_C);
	produce("d-0", ORG_D, 3, ORG_D); /* a re-send */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	results = uk_results(&env, 3 + D_EVENTS + 3);
}

static void teardown(void)
{
	json_decref(results);
	json_decref(old_before);
	tk_mongo_drop(env.db);
}

static json_t *customer(const char *org)
{
	char filter[128];
	snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", org);
	json_t *d = tk_mongo_find_one(env.db, "payments_customers", filter);
	ck_assert_ptr_nonnull(d);
	return d;
}

static long long member_or_0(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return v ? tk_int(o, key) : 0;
}

static const json_t *breakdown(const char *event_id, const char *status)
{
	json_t *r = uk_find_result(results, event_id, status);
	ck_assert_msg(r != NULL, "no %s result for %s", status, event_id);
	return json_object_get(r, "breakdown");
}

START_TEST(enterprise_through_organizations_is_unlimited_from_the_next_event)
{
	json_t *a1 = uk_find_result(results, "a1", "applied");
	json_t *a2 = uk_find_result(results, "a2", "applied");
	ck_assert_ptr_nonnull(a1);
	ck_assert_ptr_nonnull(a2);
	ck_assert(json_is_false(json_object_get(json_object_get(a1, "balances"), "unlimited")));
	ck_assert(json_is_true(json_object_get(json_object_get(a2, "balances"), "unlimited")));
	ck_assert_int_eq(tk_int(json_object_get(a2, "breakdown"), "from_subscription"), 1000000);
	json_t *d = customer(ORG_A); /* nobody edited payments_customers */
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "team");
	json_decref(d);
}
END_TEST

START_TEST(old_usage_records_are_unchanged)
{
	json_t *after = tk_mongo_find(env.db, "payments_usage_records", old_filter);
	ck_assert_int_eq(json_array_size(after), 3);
	ck_assert_msg(json_equal(after, old_before), "old usage records changed");
	json_decref(after);
	/* and the backend's index is still there */
	json_t *r = tk_mongo_command(env.db, "{\"listIndexes\":\"payments_usage_records\"}");
	char *text = json_dumps(r, 0);
	ck_assert_ptr_nonnull(strstr(text, "org_id_1_timestamp_1"));
	free(text);
	json_decref(r);
}
END_TEST

START_TEST(a_missing_grant_reads_as_the_free_grant)
{
	ck_assert_int_eq(tk_int(breakdown("b1", "applied"), "from_granted"), 30);
	json_t *d = customer(ORG_B);
	ck_assert_int_eq(tk_int(d, "granted_credits"), 100); /* materialised at the first touch */
	ck_assert_int_eq(tk_int(d, "granted_credits_used"), 30);
	json_decref(d);
}
END_TEST

START_TEST(an_overdrawn_bucket_charges_overage_and_is_not_repaid_by_a_purchase)
{
	ck_assert_int_eq(tk_int(breakdown("c1", "insufficient_credits"), "from_paid"), 10);
	/* 20 bought afterwards: all of it is available, none repays the old overdraft */
	ck_assert_int_eq(tk_int(breakdown("c2", "applied"), "from_purchased"), 15);
}
END_TEST

START_TEST(the_opening_balance_is_recorded_once_and_invariant_2_holds)
{
	static const char *const orgs[] = { ORG_A, ORG_B, ORG_C, ORG_D };
	static const int openings[] = { 1, 0, 1, 1 };
	static const char *const used[] = { "subscription_spus_used", "purchased_credits_used",
					    "granted_credits_used", "paid_spus_used" };
	static const char *const from[] = { "from_subscription", "from_purchased",
					    "from_granted", "from_paid" };

	for (size_t o = 0; o < 4; o++) {
		char filter[160];
		long long sum[4] = { 0, 0, 0, 0 };
		size_t i;
		json_t *r, *d = customer(orgs[o]);
		snprintf(filter, sizeof(filter), "{\"_id.org_id\":\"%s\",\"_id.opening_balance\":"
			 "{\"$exists\":true}}", orgs[o]);
		json_t *open = tk_mongo_find(env.db, "payments_usage_records", filter);
		ck_assert_msg(json_array_size(open) == (size_t)openings[o], "%s: %zu openings",
			      orgs[o], json_array_size(open));
		if (openings[o])
			ck_assert_str_eq(json_string_value(json_object_get(json_array_get(open, 0),
									   "source")),
					 "original_integration");
		json_decref(open);
		snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", orgs[o]);
		json_t *recs = tk_mongo_find(env.db, "payments_usage_records", filter);
		json_array_foreach(recs, i, r)
			for (int k = 0; k < 4; k++)
				sum[k] += member_or_0(r, from[k]); /* old records: 0 */
		for (int k = 0; k < 4; k++)
			ck_assert_msg(sum[k] == tk_int(d, used[k]), "%s: %s %lld, records %lld",
				      orgs[o], used[k], tk_int(d, used[k]), sum[k]);
		json_decref(recs);
		json_decref(d);
	}
	/* D: its old counters opened it, then its 40 events took purchased credits */
	json_t *d = customer(ORG_D);
	ck_assert_int_eq(tk_int(d, "purchased_credits_used"), 50 + 3 * D_EVENTS);
	ck_assert_int_eq(tk_int(d, "granted_credits_used"), 100);
	json_decref(d);
	ck_assert_ptr_nonnull(uk_find_result(results, "d-0", "duplicate"));
}
END_TEST

START_TEST(old_duplicate_ledger_rows_are_logged_not_fatal)
{
	char buf[1 << 16];
	FILE *f = fopen(env.log, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "cs_old_1"));
	ck_assert_ptr_null(strstr(buf, "cs_old_2"));
}
END_TEST

/* Two customer documents for one org: the worker refuses to start, exit 2, naming them. */
START_TEST(duplicate_customer_documents_stop_the_worker_with_exit_2)
{
	struct uk_env e;
	char buf[1 << 15];

	uk_env_init(&e, "usage_dup_customers", 1);
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"dup-org-1\",\"granted_credits\":100}");
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"dup-org-1\",\"granted_credits\":100}");
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"dup-org-2\"}");
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"dup-org-2\"}");
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"fine-org\"}");
	ck_assert_int_eq(uk_run_worker(&e, NULL, 3000), 2);
	FILE *f = fopen(e.log, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "dup-org-1"));
	ck_assert_ptr_nonnull(strstr(buf, "dup-org-2"));
	ck_assert_ptr_nonnull(strstr(buf, "merge"));
	ck_assert_ptr_null(strstr(buf, "fine-org"));
	tk_mongo_drop(e.db);
}
END_TEST

/* An earlier deploy's unique index on event_id alone is dropped (by its name), so the same
 * event_id in two orgs is charged in both. */
START_TEST(an_old_event_id_index_does_not_block_the_same_id_in_two_orgs)
{
	struct uk_env e;
	struct uk_org x = { .cap = { 0, 0, 100 } }, y = { .cap = { 0, 0, 100 } };
	char buf[512];
	static const int order[3] = { 0, 1, 2 };

	uk_env_init(&e, "usage_old_index", 1);
	json_decref(tk_mongo_command(e.db, "{\"createIndexes\":\"payments_usage_records\","
				     "\"indexes\":[{\"key\":{\"event_id\":1},\"name\":\"event_id_1\","
				     "\"unique\":true}]}"));
	snprintf(x.id, sizeof(x.id), "idx-x");
	snprintf(y.id, sizeof(y.id), "idx-y");
	uk_seed_org(&e, &x);
	uk_seed_org(&e, &y);
	uk_event_json(buf, sizeof(buf), "same-id", x.id, 4);
	tk_produce(e.topic, x.id, buf);
	uk_event_json(buf, sizeof(buf), "same-id", y.id, 6);
	tk_produce(e.topic, y.id, buf);
	ck_assert_int_eq(uk_run_worker(&e, NULL, 3000), 0);
	uk_ref_charge(&x, 4, order);
	uk_ref_charge(&y, 6, order);
	uk_check_org(&e, &x);
	uk_check_org(&e, &y);
	tk_mongo_drop(e.db);
}
END_TEST

/* A crash after the write that opened an old org, before its rows: the next batch writes the
 * opening row from the pending entry, once, and invariant 2 holds. */
START_TEST(an_opening_interrupted_by_a_crash_is_recorded_by_the_next_batch)
{
	struct uk_env e;
	char buf[512];
	const char *crash[] = { "BW_FAULT_AT=after_db_write:1", "RDKAFKA_SESSION_TIMEOUT_MS=6000",
				NULL };
	const char *calm[] = { "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };

	uk_env_init(&e, "usage_open_crash", 1);
	tk_mongo_insert(e.db, "payments_customers",
			"{\"org_id\":\"crash-old\",\"purchased_credits\":100,"
			"\"purchased_credits_used\":30,\"granted_credits\":100,"
			"\"granted_credits_used\":100}");
	uk_event_json(buf, sizeof(buf), "k1", "crash-old", 5);
	tk_produce(e.topic, "crash-old", buf);
	ck_assert_int_eq(uk_run_worker(&e, crash, 5000), 128 + SIGABRT);
	ck_assert_int_eq(uk_run_worker(&e, calm, 9000), 0);
	json_t *open = tk_mongo_find(e.db, "payments_usage_records",
				     "{\"_id.opening_balance\":{\"$exists\":true}}");
	ck_assert_int_eq(json_array_size(open), 1);
	ck_assert_int_eq(tk_int(json_array_get(open, 0), "from_purchased"), 30);
	ck_assert_int_eq(tk_int(json_array_get(open, 0), "from_granted"), 100);
	json_decref(open);
	json_t *d = tk_mongo_find_one(e.db, "payments_customers", "{\"org_id\":\"crash-old\"}");
	json_t *k1 = tk_mongo_find_one(e.db, "payments_usage_records", "{\"event_id\":\"k1\"}");
	ck_assert_ptr_nonnull(k1);
	ck_assert_int_eq(tk_int(k1, "from_purchased"), 5);
	ck_assert_int_eq(tk_int(d, "purchased_credits_used"), 35); /* 30 opening + 5 */
	ck_assert_int_eq(tk_int(d, "granted_credits_used"), 100);
	json_decref(k1);
	json_decref(d);
	tk_mongo_drop(e.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_old_data");
	TCase *tc = tcase_create("old_database");
	TCase *tc2 = tcase_create("start");

	tcase_set_timeout(tc, 200);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, enterprise_through_organizations_is_unlimited_from_the_next_event);
	tcase_add_test(tc, old_usage_records_are_unchanged);
	tcase_add_test(tc, a_missing_grant_reads_as_the_free_grant);
	tcase_add_test(tc, an_overdrawn_bucket_charges_overage_and_is_not_repaid_by_a_purchase);
	tcase_add_test(tc, the_opening_balance_is_recorded_once_and_invariant_2_holds);
	tcase_add_test(tc, old_duplicate_ledger_rows_are_logged_not_fatal);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tc2, 120);
	tcase_add_test(tc2, duplicate_customer_documents_stop_the_worker_with_exit_2);
	tcase_add_test(tc2, an_old_event_id_index_does_not_block_the_same_id_in_two_orgs);
	tcase_add_test(tc2, an_opening_interrupted_by_a_crash_is_recorded_by_the_next_batch);
	suite_add_tcase(s, tc2);
	return tk_run_suite(s);
}
