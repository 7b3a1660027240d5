/* Fault tests of the stripe worker's checkout credit path: the worker aborts at each
 * bw_fault_point (BW_FAULT_AT=<step>), is restarted, and the org must end with exactly one
 * credit of the session, whatever the step, with a duplicate event of the session queued
 * behind it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static const char *const steps[] = {
	"checkout_after_ledger",         /* ledger row pending, nothing credited */
	"checkout_after_credit",         /* credited, ledger still pending */
	"checkout_after_ledger_applied", /* credited, ledger applied, event not recorded */
	"after_event_record",            /* event recorded, no result published */
	"after_db_write",                /* whole batch in MongoDB, no result */
	"after_results",                 /* results acknowledged, offsets not stored */
};

static json_t *checkout(const char *id)
{
	json_t *ev = sk_fixture("checkout_session_completed.json");
	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.id", "cs_crash");
	sk_set_str(ev, "data.object.customer", "cus_crash");
	sk_set_str(ev, "data.object.metadata.org_id", "org-crash");
	sk_set_str(ev, "data.object.metadata.credits", "250");
	return ev;
}

START_TEST(crash_at_each_step_credits_exactly_once)
{
	struct sk_env env;
	char fault[96];
	/* A crashed member holds its partition until its session times out: keep it short,
	 * and let the restarted worker wait past it before it counts as idle. */
	const char *extra[] = { fault, "FREE_GRANT_SPUS=0", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	const char *clean[] = { "FREE_GRANT_SPUS=0", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	json_t *ev, *doc, *all;
	int rc;

	sk_env_init(&env, "stripe_crash", BW_STRIPE_WORKER_PATH);
	ev = checkout("evt_k1");
	sk_produce(&env, ev);
	json_decref(ev);
	ev = checkout("evt_k2"); /* another event of the same session */
	sk_set_str(ev, "type", "checkout.session.async_payment_succeeded");
	sk_produce(&env, ev);
	json_decref(ev);

	snprintf(fault, sizeof(fault), "BW_FAULT_AT=%s", steps[_i]);
	rc = sk_run_worker(&env, extra, 2500);
	ck_assert_msg(rc >= 128, "%s: worker should have crashed, exit %d", steps[_i], rc);
	ck_assert_int_eq(sk_run_worker(&env, clean, 9000), 0);

	doc = sk_customer(&env, "org-crash");
	ck_assert_msg(tk_int(doc, "purchased_credits") == 250, "%s: purchased_credits %lld",
		      steps[_i], tk_int(doc, "purchased_credits"));
	ck_assert_int_eq(json_array_size(json_object_get(doc, "applied_sessions")), 1);
	json_decref(doc);
	doc = tk_mongo_find_one(env.db, "payments_credit_transactions",
				"{\"session_id\":\"cs_crash\"}");
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), "applied");
	ck_assert_int_eq(tk_int(doc, "credits"), 250);
	json_decref(doc);
	/* After the restart both events have a result; k1 is the one that credited. */
	all = sk_read_json(env.results, 2);
	ck_assert_ptr_nonnull(sk_result(all, "evt_k1", 0));
	ck_assert_str_eq(sk_status(sk_result(all, "evt_k1", 0)), "applied");
	ck_assert_str_eq(sk_status(sk_result(all, "evt_k2", 0)), "duplicate");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_crash");
	TCase *tc = tcase_create("checkout");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, crash_at_each_step_credits_exactly_once, 0,
			    sizeof(steps) / sizeof(steps[0]));
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
