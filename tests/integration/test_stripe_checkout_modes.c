/* Integration tests of the stripe worker's Checkout cases beyond a paid credit purchase, as
 * Stripe sends them (tests/fixtures/stripe, 2024 and 2025 API shapes): a free checkout (100 %
 * promotion code, `payment_status: no_payment_required`) credits at once; an asynchronous
 * payment that failed is recorded and answered `payment_failed`; a subscription-mode
 * checkout links its customer to `metadata.org_id`. Real broker, real MongoDB-wire server. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static json_t *fixture_for(const char *fixture, const char *id, const char *org)
{
	json_t *ev = sk_fixture(fixture);
	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.metadata.org_id", org);
	return ev;
}

START_TEST(free_checkout_credits_at_once)
{
	struct sk_env env;
	json_t *doc, *all;

	sk_env_init(&env, "stripe_free", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, fixture_for("checkout_session_completed_free.json", "evt_f1",
					   "org-f"));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-f");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 500);
	json_decref(doc);
	doc = tk_mongo_find_one(env.db, "payments_credit_transactions",
				"{\"session_id\":\"cs_test_free1\"}");
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), "applied");
	json_decref(doc);
	all = sk_read_json(env.results, 1);
	sk_expect_status(all, "evt_f1", 0, "applied");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(async_payment_failed_is_recorded_as_payment_failed)
{
	struct sk_env env;
	json_t *doc, *all, *ev;

	sk_env_init(&env, "stripe_asyncfail", BW_STRIPE_WORKER_PATH);
	sk_seed_customer(&env, "org-af", "cus_QabcDEF123", 0, 0);
	/* The unpaid completion waits; then the bank debit fails. */
	ev = fixture_for("checkout_session_async_payment_failed.json", "evt_af0", "org-af");
	sk_set_str(ev, "type", "checkout.session.completed");
	sk_produce_free(&env, ev);
	sk_produce_free(&env, fixture_for("checkout_session_async_payment_failed.json", "evt_af1",
					   "org-af"));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-af");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 0);
	json_decref(doc);
	doc = tk_mongo_find_one(env.db, "payments_stripe_events", "{\"event_id\":\"evt_af1\"}");
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "payment_failed");
	json_decref(doc);
	all = sk_read_json(env.results, 2);
	sk_expect_status(all, "evt_af0", 0, "deferred");
	sk_expect_status(all, "evt_af1", 0, "payment_failed");
	ck_assert_str_eq(json_string_value(json_object_get(sk_result(all, "evt_af1", 0), "org_id")),
			 "org-af");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* The org's document exists without a Stripe customer (created by a usage event); the
 * subscription checkout links it, so the subscription event that names only the customer
 * maps to the org at once (no wait for the customer sync). */
START_TEST(subscription_checkout_links_customer_to_org)
{
	struct sk_env env;
	json_t *doc, *all, *ev;

	sk_env_init(&env, "stripe_submode", BW_STRIPE_WORKER_PATH);
	tk_mongo_insert(env.db, "payments_customers",
			"{\"org_id\":\"org-sm\",\"purchased_credits\":0,\"granted_credits\":100,"
			"\"balance_version\":1}");
	sk_produce_free(&env, fixture_for("checkout_session_completed_subscription.json",
					   "evt_sm1", "org-sm"));
	ev = sk_fixture("customer_subscription_created.json");
	sk_set_str(ev, "id", "evt_sm2");
	sk_set_str(ev, "data.object.customer", "cus_QsubMode1");
	json_object_del(json_object_get(json_object_get(ev, "data"), "object"), "metadata");
	sk_produce_free(&env, ev);
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-sm");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "stripe_customer_id")),
			 "cus_QsubMode1");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "stripe_subscription_id")),
			 "sub_1PfixtureA");
	json_decref(doc);
	all = sk_read_json(env.results, 2);
	sk_expect_status(all, "evt_sm1", 0, "applied");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(sk_result(all, "evt_sm1", 0), "details"),
				 "stripe_customer_id")),
			 "cus_QsubMode1");
	sk_expect_status(all, "evt_sm2", 0, "applied");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_checkout_modes");
	TCase *tc = tcase_create("checkout");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, free_checkout_credits_at_once);
	tcase_add_test(tc, async_payment_failed_is_recorded_as_payment_failed);
	tcase_add_test(tc, subscription_checkout_links_customer_to_org);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
