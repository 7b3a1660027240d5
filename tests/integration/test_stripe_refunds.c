/* Integration tests of refunds and disputes of credit purchases (issue 10 item 3) as Stripe
 * sends them (tests/fixtures/stripe: charge.refunded in the 2025 and the 2020 API shapes,
 * charge.dispute.created / .closed): the purchased credits of the refunded or disputed
 * share are taken back once, cumulatively; a won dispute gives them back; spent credits
 * leave a visible debt; a refund of a payment that bought no credits is ignored. Real
 * broker, real MongoDB-wire server, balances asserted on the customer document. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static long long detail(json_t *result, const char *key)
{
	json_t *v = json_object_get(json_object_get(result, "details"), key);
	ck_assert_msg(json_is_integer(v), "details.%s missing", key);
	return json_integer_value(v);
}

/* A paid purchase of credits for amount (cents) through payment intent pi. */
static json_t *purchase(const char *id, const char *org, const char *sid, const char *pi,
			const char *credits, long long amount)
{
	json_t *ev = sk_checkout(id, sid, "cus_r", org, credits);
	sk_set_str(ev, "data.object.payment_intent", pi);
	sk_set_int(ev, "data.object.amount_total", amount);
	return ev;
}

static json_t *refund(const char *fixture, const char *id, const char *pi, long long amount,
		      long long refunded)
{
	json_t *ev = sk_fixture(fixture);
	sk_set_str(ev, "id", id);
	if (json_is_object(json_object_get(json_object_get(json_object_get(ev, "data"),
							   "object"), "payment_intent")))
		sk_set_str(ev, "data.object.payment_intent.id", pi);
	else
		sk_set_str(ev, "data.object.payment_intent", pi);
	sk_set_str(ev, "data.object.customer", "cus_r");
	sk_set_int(ev, "data.object.amount", amount);
	sk_set_int(ev, "data.object.amount_refunded", refunded);
	return ev;
}

static json_t *dispute(const char *fixture, const char *id, const char *pi, long long amount,
		       const char *status)
{
	json_t *ev = sk_fixture(fixture);
	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.payment_intent", pi);
	sk_set_int(ev, "data.object.amount", amount);
	sk_set_str(ev, "data.object.status", status);
	return ev;
}

/* Full refund, the same event re-sent, and another event of the same refund state. */
START_TEST(full_refund_takes_credits_back_once)
{
	struct sk_env env;
	const char *extra[] = { "FREE_GRANT_SPUS=0", NULL };
	json_t *doc, *all, *r;

	sk_env_init(&env, "stripe_refund_full", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, purchase("evt_p1", "org-r", "cs_r1", "pi_r1", "1000", 5000));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_ledger(&env, "cs_r1");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "payment_intent")), "pi_r1");
	json_decref(doc);

	sk_produce_free(&env, refund("charge_refunded.json", "evt_rf1", "pi_r1", 5000, 5000));
	sk_produce_free(&env, refund("charge_refunded.json", "evt_rf1", "pi_r1", 5000, 5000));
	sk_produce_free(&env, refund("charge_refunded_2020.json", "evt_rf2", "pi_r1", 5000, 5000));
	sk_produce_free(&env, refund("charge_refunded.json", "evt_rf_other", "pi_not_credits",
				      9900, 9900));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_customer(&env, "org-r");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 0);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 3); /* created+credit, one clawback */
	json_decref(doc);
	doc = sk_ledger(&env, "cs_r1");
	ck_assert_int_eq(tk_int(doc, "clawed_back_credits"), 1000);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "clawbacks")), 1);
	json_decref(doc);
	all = sk_read_json(env.results, 5);
	r = sk_expect_status(all, "evt_rf1", 0, "applied");
	ck_assert_int_eq(detail(r, "credits_taken_back"), 1000);
	ck_assert_int_eq(detail(r, "purchased_remaining"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(r, "org_id")), "org-r");
	sk_expect_status(all, "evt_rf1", 1, "duplicate");
	sk_expect_status(all, "evt_rf2", 0, "duplicate");
	sk_expect_status(all, "evt_rf_other", 0, "ignored");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* Two partial refunds (cumulative amount_refunded 1500, then 4000 of 5000) and the first
 * one re-sent late: 300, then 500 more, nothing more. Credits already spent: the debt. */
START_TEST(partial_refunds_take_the_difference_and_show_debt)
{
	struct sk_env env;
	const char *extra[] = { "FREE_GRANT_SPUS=0", NULL };
	json_t *doc, *all, *r;

	sk_env_init(&env, "stripe_refund_part", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, purchase("evt_p1", "org-rp", "cs_rp1", "pi_rp1", "1000", 5000));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	sk_set_customer_int(&env, "org-rp", "purchased_credits_used", 900); /* spent meanwhile */
	sk_produce_free(&env, refund("charge_refunded_2020.json", "evt_pr1", "pi_rp1", 5000,
				      1500));
	sk_produce_free(&env, refund("charge_refunded.json", "evt_pr2", "pi_rp1", 5000, 4000));
	sk_produce_free(&env, refund("charge_refunded_2020.json", "evt_pr1_late", "pi_rp1", 5000,
				      1500));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_customer(&env, "org-rp");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 200);
	ck_assert_int_eq(tk_int(doc, "purchased_credits_used"), 900);
	json_decref(doc);
	all = sk_read_json(env.results, 4);
	r = sk_expect_status(all, "evt_pr1", 0, "applied");
	ck_assert_int_eq(detail(r, "credits_taken_back"), 300);
	r = sk_expect_status(all, "evt_pr2", 0, "applied");
	ck_assert_int_eq(detail(r, "credits_taken_back"), 500);
	ck_assert_int_eq(detail(r, "clawed_back_credits"), 800);
	ck_assert_int_eq(detail(r, "debt"), 700);
	ck_assert_int_eq(detail(r, "purchased_remaining"), 0);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "reason")), "owes 700"));
	sk_expect_status(all, "evt_pr1_late", 0, "duplicate");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* A dispute lost (taken at .created, kept at .closed lost) and one won (given back). */
START_TEST(disputes_lost_and_won)
{
	struct sk_env env;
	const char *extra[] = { "FREE_GRANT_SPUS=0", NULL };
	json_t *doc, *all, *r;

	sk_env_init(&env, "stripe_dispute", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, purchase("evt_p1", "org-d", "cs_d1", "pi_d1", "1000", 5000));
	sk_produce_free(&env, purchase("evt_p2", "org-d", "cs_d2", "pi_d2", "600", 3000));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	sk_produce_free(&env, dispute("charge_dispute_created.json", "evt_dc1", "pi_d1", 5000,
				       "needs_response"));
	sk_produce_free(&env, dispute("charge_dispute_closed.json", "evt_dx1", "pi_d1", 5000,
				       "lost"));
	sk_produce_free(&env, dispute("charge_dispute_created.json", "evt_dc2", "pi_d2", 1500,
				       "needs_response"));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_customer(&env, "org-d");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 300); /* 1600 - 1000 - 300 */
	json_decref(doc);
	sk_produce_free(&env, dispute("charge_dispute_closed.json", "evt_dx2", "pi_d2", 1500,
				       "won"));
	sk_produce_free(&env, dispute("charge_dispute_created.json", "evt_dc2_late", "pi_d2",
				       1500, "needs_response"));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_customer(&env, "org-d");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 600);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 6); /* 2 credits, 3 clawbacks, 1 created */
	json_decref(doc);
	all = sk_read_json(env.results, 7);
	r = sk_expect_status(all, "evt_dc1", 0, "applied");
	ck_assert_int_eq(detail(r, "credits_taken_back"), 1000);
	sk_expect_status(all, "evt_dx1", 0, "applied"); /* closes it: no credits move */
	r = sk_expect_status(all, "evt_dc2", 0, "applied");
	ck_assert_int_eq(detail(r, "credits_taken_back"), 300);
	r = sk_expect_status(all, "evt_dx2", 0, "applied");
	ck_assert_int_eq(detail(r, "credits_taken_back"), -300);
	sk_expect_status(all, "evt_dc2_late", 0, "duplicate");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_refunds");
	TCase *tc = tcase_create("refunds");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, full_refund_takes_credits_back_once);
	tcase_add_test(tc, partial_refunds_take_the_difference_and_show_debt);
	tcase_add_test(tc, disputes_lost_and_won);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
