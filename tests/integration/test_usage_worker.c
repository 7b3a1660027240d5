/* Integration tests of the usage worker binary against the real broker and MongoDB-wire
 * server: waterfall outcomes and results, redelivery, conflicts, DLQ, a randomised model test
 * against an independent reference, two workers on the same orgs. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "usage_kit.h"

static const int default_order[3] = { 0, 1, 2 };

START_TEST(waterfall_outcomes_and_results)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 10, 20, 5 } };
	json_t *all, *r, *bd, *bal;

	uk_env_init(&env, "usage_basic", 2);
	snprintf(org.id, sizeof(org.id), "org-basic");
	uk_seed_org(&env, &org);
	uk_produce_event(&env, "b1", org.id, 4);   /* 4 sub */
	uk_produce_event(&env, "b2", org.id, 10);  /* 6 sub + 4 purchased */
	uk_produce_event(&env, "b3", org.id, 25);  /* 16 purchased + 5 granted + 4 paid */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_ref_charge(&org, 4, default_order);
	uk_ref_charge(&org, 10, default_order);
	uk_ref_charge(&org, 25, default_order);
	uk_check_org(&env, &org);

	all = uk_results(&env, 3);
	r = uk_find_result(all, "b2", "applied");
	ck_assert_ptr_nonnull(r);
	bd = json_object_get(r, "breakdown");
	ck_assert_int_eq(tk_int(bd, "from_subscription"), 6);
	ck_assert_int_eq(tk_int(bd, "from_purchased"), 4);
	ck_assert_int_eq(tk_int(r, "balance_version"), 3);
	r = uk_find_result(all, "b3", "insufficient_credits");
	ck_assert_ptr_nonnull(r);
	bd = json_object_get(r, "breakdown");
	ck_assert_int_eq(tk_int(bd, "from_purchased"), 16);
	ck_assert_int_eq(tk_int(bd, "from_granted"), 5);
	ck_assert_int_eq(tk_int(bd, "from_paid"), 4);
	bal = json_object_get(r, "balances");
	ck_assert_int_eq(tk_int(bal, "total_remaining"), 0);
	ck_assert_int_eq(tk_int(bal, "paid_spus_used"), 4);
	ck_assert_int_eq(tk_int(r, "balance_version"), 4);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(new_org_gets_free_grant_and_enterprise_is_unlimited)
{
	struct uk_env env;
	struct uk_org fresh = { .cap = { 0, 0, 30 } };   /* FREE_GRANT_SPUS=30 below */
	struct uk_org ent = { .enterprise = 1, .cap = { 0, 50, 50 } };
	const char *extra[] = { "FREE_GRANT_SPUS=30", NULL };

	uk_env_init(&env, "usage_new", 1);
	snprintf(fresh.id, sizeof(fresh.id), "org-fresh");
	snprintf(ent.id, sizeof(ent.id), "org-ent");
	uk_seed_org(&env, &ent);
	uk_produce_event(&env, "n1", fresh.id, 20);
	uk_produce_event(&env, "n2", fresh.id, 20);
	uk_produce_event(&env, "n3", ent.id, 1000000);
	ck_assert_int_eq(uk_run_worker(&env, extra, 3000), 0);
	uk_ref_charge(&fresh, 20, default_order);
	uk_ref_charge(&fresh, 20, default_order);
	uk_ref_charge(&ent, 1000000, default_order);
	uk_check_org(&env, &fresh);
	uk_check_org(&env, &ent);
	json_t *doc = tk_mongo_find_one(env.db, "payments_customers", "{\"org_id\":\"org-fresh\"}");
	ck_assert_int_eq(tk_int(doc, "granted_credits"), 30);
	ck_assert_int_eq(tk_int(doc, "paid_spus_used"), 10);
	json_decref(doc);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(redelivery_is_charged_once_and_conflicts_are_not_applied)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	json_t *all;
	char buf[512];

	uk_env_init(&env, "usage_redeliver", 3);
	snprintf(org.id, sizeof(org.id), "org-r");
	uk_seed_org(&env, &org);
	for (int round = 0; round < 2; round++) {
		uk_produce_event(&env, "r1", org.id, 7);
		uk_produce_event(&env, "r2", org.id, 8);
		ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	}
	/* same id, different content: a conflict, not applied */
	uk_event_json(buf, sizeof(buf), "r1", org.id, 70);
	tk_produce(env.topic, org.id, buf);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_ref_charge(&org, 7, default_order);
	uk_ref_charge(&org, 8, default_order);
	uk_check_org(&env, &org);

	all = uk_results(&env, 5);
	ck_assert_ptr_nonnull(uk_find_result(all, "r1", "applied"));
	ck_assert_ptr_nonnull(uk_find_result(all, "r1", "duplicate"));
	ck_assert_ptr_nonnull(uk_find_result(all, "r2", "duplicate"));
	json_t *c = uk_find_result(all, "r1", "conflict");
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(json_object_get(c, "reason"));
	/* the duplicate reports what the original did */
	json_t *d = uk_find_result(all, "r2", "duplicate");
	ck_assert_int_eq(tk_int(json_object_get(d, "breakdown"), "from_granted"), 8);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(bad_messages_go_to_dlq_and_later_events_are_processed)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	char dlq[160], good[512];
	struct tk_msg *msgs = NULL;
	size_t n;
	static const char *bad[] = {
		"not json at all",
		"{\"event_id\":\"x1\",\"org_id\":\"org-d\",\"spus\":0,\"operation\":\"a\","
		"\"source\":\"b\",\"timestamp\":\"2026-11-25T12:00:00Z\"}",
		"{\"event_id\":\"x2\",\"org_id\":\"org-d\",\"spus\":1.5,\"operation\":\"a\","
		"\"source\":\"b\",\"timestamp\":\"2026-11-25T12:00:00Z\"}",
		"{\"org_id\":\"org-d\",\"spus\":3}",
	};

	uk_env_init(&env, "usage_dlq", 1);
	snprintf(org.id, sizeof(org.id), "org-d");
	uk_seed_org(&env, &org);
	for (size_t i = 0; i < 4; i++)
		tk_produce(env.topic, org.id, bad[i]);
	uk_event_json(good, sizeof(good), "good-1", org.id, 5);
	tk_produce(env.topic, org.id, good);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_ref_charge(&org, 5, default_order);
	uk_check_org(&env, &org);

	snprintf(dlq, sizeof(dlq), "%s.dlq", env.topic);
	n = tk_consume(dlq, 4, 20000, &msgs);
	ck_assert_int_eq(n, 4);
	char *r0 = tk_header(&msgs[0], "dlq.reason");
	char *r1 = tk_header(&msgs[1], "dlq.reason");
	char *r2 = tk_header(&msgs[2], "dlq.reason");
	char *r3 = tk_header(&msgs[3], "dlq.reason");
	ck_assert_ptr_nonnull(strstr(r0, "malformed JSON"));
	ck_assert_ptr_nonnull(strstr(r1, "'spus' = 0 is outside"));
	ck_assert_ptr_nonnull(strstr(r2, "'spus' must be an integer"));
	ck_assert_ptr_nonnull(strstr(r3, "'event_id' is required"));
	ck_assert_str_eq(msgs[0].value, bad[0]);
	free(r0);
	free(r1);
	free(r2);
	free(r3);
	tk_msgs_free(msgs, n);
	json_t *all = uk_results(&env, 5);
	ck_assert_ptr_nonnull(uk_find_result(all, "good-1", "applied"));
	ck_assert_ptr_nonnull(uk_find_result(all, "x1", "rejected"));
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* Random events (with duplicates) over a few orgs, against the reference. */
START_TEST(model_random_sequences_match_the_reference)
{
	struct uk_env env;
	struct uk_org orgs[5];
	enum { N = 600 };
	const char **values = calloc(N, sizeof(*values));
	const char **keys = calloc(N, sizeof(*keys));
	char (*ids)[32] = calloc(N, sizeof(*ids));
	long long *spus_of = calloc(N, sizeof(*spus_of));
	int *org_of = calloc(N, sizeof(*org_of));
	int order[3] = { 0, 2, 1 };
	const char *extra[] = { "WATERFALL_ORDER=subscription,granted,purchased", "BATCH_MAX=64",
				NULL };
	size_t n = 0;

	srand(12345);
	uk_env_init(&env, "usage_model", 4);
	for (int o = 0; o < 5; o++) {
		memset(&orgs[o], 0, sizeof(orgs[o]));
		snprintf(orgs[o].id, sizeof(orgs[o].id), "model-org-%d", o);
		orgs[o].cap[0] = (o == 0) ? 0 : 50 * o;
		orgs[o].cap[1] = 300 + 40 * o;
		orgs[o].cap[2] = 100;
		orgs[o].enterprise = (o == 4);
		uk_seed_org(&env, &orgs[o]);
	}
	int distinct = 0;
	for (size_t i = 0; i < N; i++) {
		char buf[512];
		int o;
		long long spus;
		if (distinct > 0 && rand() % 5 == 0) {
			/* duplicate of an earlier event, same content */
			int j = rand() % distinct;
			o = org_of[j];
			spus = spus_of[j];
			memmove(ids[i], ids[j], sizeof(ids[i]));
		} else {
			o = rand() % 5;
			spus = 1 + rand() % 25;
			snprintf(ids[distinct], sizeof(ids[distinct]), "m-%d", distinct);
			org_of[distinct] = o;
			spus_of[distinct] = spus;
			uk_ref_charge(&orgs[o], spus, order);
			if ((size_t)distinct != i)
				memmove(ids[i], ids[distinct], sizeof(ids[i]));
			distinct++;
		}
		uk_event_json(buf, sizeof(buf), ids[i], orgs[o].id, spus);
		values[n] = strdup(buf);
		keys[n] = orgs[o].id;
		n++;
	}
	tk_produce_many(env.topic, keys, values, n);
	ck_assert_int_eq(uk_run_worker(&env, extra, 4000), 0);
	for (int o = 0; o < 5; o++)
		uk_check_org(&env, &orgs[o]);
	json_t *recs = tk_mongo_find(env.db, "payments_usage_records", "{}");
	ck_assert_int_eq(json_array_size(recs), distinct);
	json_decref(recs);
	for (size_t i = 0; i < n; i++)
		free((char *)values[i]);
	free(values);
	free(keys);
	free(ids);
	free(spus_of);
	free(org_of);
	tk_mongo_drop(env.db);
}
END_TEST

/* Two worker processes in one group; events of the same orgs keyed by event id so they
 * spread over partitions and both workers update the same org documents concurrently;
 * half of them are delivered twice. */
START_TEST(two_workers_on_the_same_orgs_never_double_charge)
{
	struct uk_env env;
	struct uk_org orgs[3];
	enum { DISTINCT = 1500 };
	const char **values = calloc(DISTINCT * 2, sizeof(*values));
	const char **keys = calloc(DISTINCT * 2, sizeof(*keys));
	const char *extra[] = { "IDLE_EXIT_MS=5000", "BATCH_MAX=50", NULL };
	size_t n = 0;

	uk_env_init(&env, "usage_two", 6);
	uk_seed_orgs(&env, orgs, 3, "shared-org", 1000, 2000, 100);
	/* Start both workers first so they share the partitions while events flow. */
	pid_t a = uk_start_worker(&env, extra);
	pid_t b = uk_start_worker(&env, extra);
	for (int i = 0; i < DISTINCT; i++) {
		char buf[512], id[32];
		int o = i % 3;
		long long spus = 1 + (i * 7) % 13;
		snprintf(id, sizeof(id), "t-%d", i);
		uk_event_json(buf, sizeof(buf), id, orgs[o].id, spus);
		uk_ref_charge(&orgs[o], spus, default_order);
		values[n] = strdup(buf);
		keys[n++] = strdup(id);
		if (i % 2 == 0) { /* redelivered copy under another key: another partition */
			values[n] = strdup(buf);
			char k2[40];
			snprintf(k2, sizeof(k2), "copy-%s", id);
			keys[n++] = strdup(k2);
		}
	}
	tk_produce_many(env.topic, keys, values, n);
	ck_assert_int_eq(tk_wait(a, 240000), 0);
	ck_assert_int_eq(tk_wait(b, 240000), 0);
	for (int o = 0; o < 3; o++)
		uk_check_org(&env, &orgs[o]);
	uk_free_strings(values, keys, n);
	tk_mongo_drop(env.db);
}
END_TEST

/* A rebalance in the middle of the stream, caused by a worker killed with SIGKILL (no
 * shutdown, no commit): its partitions move to the survivor, which redelivers what the
 * dead one had not committed. Nothing is charged twice, nothing is lost. */
START_TEST(a_worker_killed_mid_stream_loses_and_doubles_nothing)
{
	struct uk_env env;
	struct uk_org orgs[4];
	enum { N = 3000 };
	const char **values = calloc(N, sizeof(*values));
	const char **keys = calloc(N, sizeof(*keys));
	const char *extra[] = { "BATCH_MAX=25", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	const char *survivor_extra[] = { "BATCH_MAX=25", "RDKAFKA_SESSION_TIMEOUT_MS=6000",
					 "IDLE_EXIT_MS=12000", NULL };
	struct tk_msg *msgs = NULL;
	size_t n;

	uk_env_init(&env, "usage_kill", 6);
	uk_seed_orgs(&env, orgs, 4, "kill-org", 500, 1500, 100);
	for (int i = 0; i < N; i++) {
		char buf[512], id[32];
		int o = i % 4;
		long long spus = 1 + i % 9;
		snprintf(id, sizeof(id), "k-%d", i);
		uk_event_json(buf, sizeof(buf), id, orgs[o].id, spus);
		uk_ref_charge(&orgs[o], spus, default_order);
		values[i] = strdup(buf);
		keys[i] = strdup(id); /* spread one org's events over partitions (and workers) */
	}
	pid_t victim = uk_start_worker(&env, extra);
	pid_t survivor = uk_start_worker(&env, survivor_extra);
	tk_produce_many(env.topic, keys, values, N);
	/* kill one worker once results are flowing, in the middle of its batches */
	n = tk_consume(env.results, N / 4, 60000, &msgs);
	ck_assert_int_ge(n, N / 4);
	tk_msgs_free(msgs, n);
	kill(victim, SIGKILL);
	ck_assert_int_eq(tk_wait(victim, 10000), 128 + SIGKILL);
	ck_assert_int_eq(tk_wait(survivor, 240000), 0);
	for (int o = 0; o < 4; o++)
		uk_check_org(&env, &orgs[o]);
	n = tk_consume(env.results, 100000, 8000, &msgs);
	ck_assert_int_ge(n, N); /* every event answered at least once */
	tk_msgs_free(msgs, n);
	uk_free_strings(values, keys, N);
	tk_mongo_drop(env.db);
}
END_TEST

/* An event is identified by (org_id, event_id): the same event_id in two orgs is two events,
 * both charged, each with its own record and its own balances, in one batch or in two. (This
 * replaced the test of the cross-org reversal, which the per-org key made unnecessary.) */
START_TEST(the_same_event_id_in_two_orgs_charges_both)
{
	struct uk_env env;
	struct uk_org x = { .cap = { 0, 0, 100 } }, y = { .cap = { 0, 50, 100 } };
	json_t *all, *recs;

	uk_env_init(&env, "usage_two_orgs", 1);
	snprintf(x.id, sizeof(x.id), "org-x");
	snprintf(y.id, sizeof(y.id), "org-y");
	uk_seed_org(&env, &x);
	uk_seed_org(&env, &y);
	uk_produce_event(&env, "shared-id", x.id, 10);  /* one batch: both orgs */
	uk_produce_event(&env, "shared-id", y.id, 20);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_produce_event(&env, "shared-2", x.id, 3);    /* separate batches */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_produce_event(&env, "shared-2", y.id, 4);
	uk_produce_event(&env, "shared-2", y.id, 4);    /* a re-send in y: a duplicate in y only */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	uk_ref_charge(&x, 10, default_order);
	uk_ref_charge(&y, 20, default_order);
	uk_ref_charge(&x, 3, default_order);
	uk_ref_charge(&y, 4, default_order);
	uk_check_org(&env, &x);
	uk_check_org(&env, &y);
	all = uk_results(&env, 5);
	size_t i, applied = 0, dups = 0;
	json_t *r;
	json_array_foreach(all, i, r) {
		const char *st = json_string_value(json_object_get(r, "status"));
		applied += strcmp(st, "applied") == 0;
		dups += strcmp(st, "duplicate") == 0;
		if (strcmp(json_string_value(json_object_get(r, "org_id")), "org-y") == 0 &&
		    strcmp(json_string_value(json_object_get(r, "event_id")), "shared-id") == 0)
			ck_assert_int_eq(tk_int(json_object_get(r, "breakdown"), "from_purchased"), 20);
	}
	ck_assert_int_eq(applied, 4);
	ck_assert_int_eq(dups, 1);
	recs = tk_mongo_find(env.db, "payments_usage_records", "{\"event_id\":\"shared-id\"}");
	ck_assert_int_eq(json_array_size(recs), 2);
	json_decref(recs);
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(sigterm_stops_cleanly_and_commits)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 1000 } };
	struct tk_msg *msgs = NULL;
	size_t n;

	uk_env_init(&env, "usage_sigterm", 2);
	snprintf(org.id, sizeof(org.id), "org-term");
	uk_seed_org(&env, &org);
	pid_t pid = uk_start_worker(&env, NULL);
	for (int i = 0; i < 20; i++) {
		char id[32];
		snprintf(id, sizeof(id), "st-%d", i);
		uk_produce_event(&env, id, org.id, 3);
		uk_ref_charge(&org, 3, default_order);
	}
	n = tk_consume(env.results, 20, 60000, &msgs);
	ck_assert_int_eq(n, 20);
	tk_msgs_free(msgs, n);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tk_wait(pid, 30000), 0);
	/* A restarted worker finds everything committed: no result is published again. */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 3000), 0);
	n = tk_consume(env.results, 21, 5000, &msgs);
	ck_assert_int_eq(n, 20);
	tk_msgs_free(msgs, n);
	uk_check_org(&env, &org);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_worker");
	TCase *tc = tcase_create("worker");

	tcase_set_timeout(tc, 280);
	tcase_add_test(tc, waterfall_outcomes_and_results);
	tcase_add_test(tc, new_org_gets_free_grant_and_enterprise_is_unlimited);
	tcase_add_test(tc, redelivery_is_charged_once_and_conflicts_are_not_applied);
	tcase_add_test(tc, bad_messages_go_to_dlq_and_later_events_are_processed);
	tcase_add_test(tc, model_random_sequences_match_the_reference);
	tcase_add_test(tc, two_workers_on_the_same_orgs_never_double_charge);
	tcase_add_test(tc, sigterm_stops_cleanly_and_commits);
	tcase_add_test(tc, a_worker_killed_mid_stream_loses_and_doubles_nothing);
	tcase_add_test(tc, the_same_event_id_in_two_orgs_charges_both);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
