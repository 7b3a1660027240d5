/* Integration tests of the stripe worker on a database shaped like the original
 * integration's (../shared/SEED.md): customer documents without version fields or markers,
 * billing periods stored as unix seconds, ledger rows keyed `session_id` (two rows for one
 * session, as its double credits left them), and its `stripe_events` audit log. Stripe
 * re-sends events for three days, so events the old code handled arrive after the cut-over:
 * none of them may be applied again. Real broker, real MongoDB-wire server. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static const long long p3 = 1723270400, p4 = 1725948800;

static json_t *event(const char *fixture, const char *id)
{
	json_t *ev = sk_fixture(fixture);
	sk_set_str(ev, "id", id);
	return ev;
}

static json_t *checkout(const char *id, const char *org, const char *sid, const char *credits)
{
	return sk_checkout(id, sid, "cus_old", org, credits);
}

static json_t *invoice(const char *id, long long start, long long end)
{
	json_t *ev = event("invoice_paid_cycle.json", id);
	sk_set_str(ev, "data.object.customer", "cus_old");
	sk_set_str(ev, "data.object.subscription", "sub_old");
	sk_set_str(ev, "data.object.lines.data.0.subscription", "sub_old"); /* its own line */
	sk_set_int(ev, "data.object.lines.data.0.period.start", start);
	sk_set_int(ev, "data.object.lines.data.0.period.end", end);
	return ev;
}

/* The old code's customer document: no balance_version, no markers of ours, the period in
 * unix seconds, the old code's field names. */
static void seed_old_customer(const struct sk_env *env, const char *org, long long period)
{
	char doc[1024];

	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"%s\",\"user_id\":\"u1\",\"stripe_customer_id\":\"cus_old\","
		 "\"user_name\":\"Ada\",\"user_email\":\"ada@example.com\","
		 "\"created_at\":{\"$date\":\"2024-05-01T00:00:00Z\"},"
		 "\"purchased_credits\":500,\"purchased_credits_used\":120,"
		 "\"granted_credits\":100,\"granted_credits_used\":100,"
		 "\"subscription_spus_used\":3000,\"subscription_type\":\"individual\","
		 "\"stripe_subscription_status\":\"active\",\"stripe_subscription_id\":\"sub_old\","
		 "\"stripe_subscription_item_id\":\"si_old\",\"subscription_spu_allowance\":5000,"
		 "\"stripe_current_billing_period_start\":%lld,"
		 "\"stripe_current_billing_period_end\":%lld,"
		 "\"stripe_payments_portal_enabled\":true}",
		 org, period, period + 2678400);
	tk_mongo_insert(env->db, "payments_customers", doc);
}

/* A ledger row as the old code wrote it (some versions wrote processed_at). */
static void seed_old_ledger(const struct sk_env *env, const char *org, const char *sid,
			    int with_processed_at)
{
	char doc[512];

	snprintf(doc, sizeof(doc),
		 "{\"session_id\":\"%s\",\"org_id\":\"%s\",\"credits\":500,"
		 "\"created_at\":{\"$date\":\"2024-06-01T00:00:00Z\"}%s}",
		 sid, org,
		 with_processed_at ? ",\"processed_at\":{\"$date\":\"2024-06-01T00:00:01Z\"}" : "");
	tk_mongo_insert(env->db, "payments_credit_transactions", doc);
}

/* An entry of the old code's stripe_events audit log. */
static void seed_old_event(const struct sk_env *env, const char *event_id, const char *type,
			   int processed)
{
	char doc[512];

	snprintf(doc, sizeof(doc),
		 "{\"stripe_event_id\":\"%s\",\"type\":\"%s\",\"data\":{},\"created\":%lld,"
		 "\"processed\":%s,\"created_at\":{\"$date\":\"2024-08-10T00:00:00Z\"}}",
		 event_id, type, p3, processed ? "true" : "false");
	tk_mongo_insert(env->db, "stripe_events", doc);
}

/* A session the old code credited (its ledger rows are keyed session_id, two of them: its
 * double credit) is re-sent after the cut-over: not credited again. The worker starts on
 * that ledger (no unique index to build over it), logs the old duplicate, and a new
 * session of the same org is credited once, its row keyed session_id too. */
START_TEST(old_ledger_session_is_not_credited_again)
{
	struct sk_env env;
	json_t *doc, *all, *rows;
	FILE *log;
	char line[2048];
	int warned = 0;

	sk_env_init(&env, "stripe_old_ledger", BW_STRIPE_WORKER_PATH);
	seed_old_customer(&env, "org-old", p3);
	seed_old_ledger(&env, "org-old", "cs_old1", 0);
	seed_old_ledger(&env, "org-old", "cs_old1", 1);
	seed_old_ledger(&env, "org-old", "cs_old2", 1);
	sk_produce_free(&env, checkout("evt_resent1", "org-old", "cs_old1", "500"));
	sk_produce_free(&env, checkout("evt_resent2", "org-old", "cs_old2", "500"));
	sk_produce_free(&env, checkout("evt_new", "org-old", "cs_new", "250"));
	sk_produce_free(&env, checkout("evt_new_again", "org-old", "cs_new", "250"));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);

	doc = sk_customer(&env, "org-old");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 750);
	ck_assert_int_eq(tk_int(doc, "purchased_credits_used"), 120);
	json_decref(doc);
	rows = tk_mongo_find(env.db, "payments_credit_transactions", "{\"session_id\":\"cs_new\"}");
	ck_assert_uint_eq(json_array_size(rows), 1);
	ck_assert_int_eq(tk_int(json_array_get(rows, 0), "credits"), 250);
	json_decref(rows);
	rows = tk_mongo_find(env.db, "payments_credit_transactions", "{\"session_id\":\"cs_old1\"}");
	ck_assert_uint_eq(json_array_size(rows), 2); /* the old rows, untouched */
	json_decref(rows);

	all = sk_read_json(env.results, 4);
	sk_expect_status(all, "evt_resent1", 0, "duplicate");
	sk_expect_status(all, "evt_resent2", 0, "duplicate");
	sk_expect_status(all, "evt_new", 0, "applied");
	sk_expect_status(all, "evt_new_again", 0, "duplicate");
	json_decref(all);

	log = fopen(env.log, "r");
	ck_assert_ptr_nonnull(log);
	while (fgets(line, sizeof(line), log))
		warned |= strstr(line, "cs_old1") != NULL &&
			  strstr(line, "more than one ledger row") != NULL;
	fclose(log);
	ck_assert_msg(warned, "no start-up warning naming the old duplicate ledger rows");
	tk_mongo_drop(env.db);
}
END_TEST

/* Events the old code recorded in stripe_events are not applied again: its renewal invoice
 * (the period's usage was reset by it, usage since then is real) and a checkout. One it
 * recorded as not processed is applied. A renewal invoice it never saw resets the old
 * document, whose period the old code stored in unix seconds. */
START_TEST(old_stripe_events_are_not_applied_again)
{
	struct sk_env env;
	json_t *doc, *all;

	sk_env_init(&env, "stripe_old_events", BW_STRIPE_WORKER_PATH);
	seed_old_customer(&env, "org-oe", p3);
	seed_old_event(&env, "evt_old_renewal", "invoice.paid", 1);
	seed_old_event(&env, "evt_old_checkout", "checkout.session.completed", 1);
	seed_old_event(&env, "evt_old_failed", "checkout.session.completed", 0);
	sk_produce_free(&env, invoice("evt_old_renewal", p3, p4));
	sk_produce_free(&env, checkout("evt_old_checkout", "org-oe", "cs_oe1", "400"));
	sk_produce_free(&env, checkout("evt_old_failed", "org-oe", "cs_oe2", "100"));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-oe");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 3000); /* not reset again */
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 600);        /* 500 + 100 */
	json_decref(doc);

	sk_produce_free(&env, invoice("evt_next_renewal", p4, p4 + 2678400));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-oe");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 0);
	json_decref(doc);

	all = sk_read_json(env.results, 4);
	sk_expect_status(all, "evt_old_renewal", 0, "duplicate");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(sk_result(all, "evt_old_renewal", 0), "details"),
				 "original_status")),
			 "previous_integration");
	sk_expect_status(all, "evt_old_checkout", 0, "duplicate");
	sk_expect_status(all, "evt_old_failed", 0, "applied");
	sk_expect_status(all, "evt_next_renewal", 0, "applied");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* The billing period is the old contract: unix seconds as an integer, which the backend's
 * pages read. A subscription event and the renewal invoice on an old document (its period in
 * seconds) store the new period in seconds, not as a date, and the renewal resets the
 * period's usage exactly once: the second event of the same invoice does not. */
START_TEST(period_stays_unix_seconds)
{
	struct sk_env env;
	json_t *doc, *ev, *all;

	sk_env_init(&env, "stripe_old_period", BW_STRIPE_WORKER_PATH);
	seed_old_customer(&env, "org-op", p3);
	ev = event("customer_subscription_updated.json", "evt_op_sub");
	sk_set_int(ev, "created", p4 + 5);
	sk_set_str(ev, "data.object.id", "sub_old");
	sk_set_str(ev, "data.object.customer", "cus_old");
	sk_set_int(ev, "data.object.items.data.0.current_period_start", p4);
	sk_set_int(ev, "data.object.items.data.0.current_period_end", p4 + 2678400);
	sk_produce_free(&env, ev);
	sk_produce_free(&env, invoice("evt_op_renewal", p4, p4 + 2678400));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-op");
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_start"), p4);
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_end"), p4 + 2678400);
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 0);
	json_decref(doc);

	sk_set_customer_int(&env, "org-op", "subscription_spus_used", 42); /* usage meanwhile */
	sk_produce_free(&env, invoice("evt_op_renewal_again", p4, p4 + 2678400));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-op");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 42); /* not reset again */
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_start"), p4);
	json_decref(doc);

	all = sk_read_json(env.results, 3);
	sk_expect_status(all, "evt_op_sub", 0, "applied");
	sk_expect_status(all, "evt_op_renewal", 0, "applied");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_olddata");
	TCase *tc = tcase_create("olddata");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, old_ledger_session_is_not_credited_again);
	tcase_add_test(tc, old_stripe_events_are_not_applied_again);
	tcase_add_test(tc, period_stays_unix_seconds);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
