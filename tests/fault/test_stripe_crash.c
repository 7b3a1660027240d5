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

START_TEST(crash_at_each_step_credits_exactly_once)
{
	struct sk_env env;
	json_t *ev, *doc, *all;

	sk_env_init(&env, "stripe_crash", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, sk_checkout("evt_k1", "cs_crash", "cus_crash", "org-crash", "250"));
	/* another event of the same session */
	ev = sk_checkout("evt_k2", "cs_crash", "cus_crash", "org-crash", "250");
	sk_set_str(ev, "type", "checkout.session.async_payment_succeeded");
	sk_produce_free(&env, ev);

	sk_crash_and_restart(&env, steps[_i]);

	doc = sk_customer(&env, "org-crash");
	ck_assert_msg(tk_int(doc, "purchased_credits") == 250, "%s: purchased_credits %lld",
		      steps[_i], tk_int(doc, "purchased_credits"));
	ck_assert_int_eq(json_array_size(json_object_get(doc, "applied_sessions")), 1);
	json_decref(doc);
	doc = sk_ledger(&env, "cs_crash");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), "applied");
	ck_assert_int_eq(tk_int(doc, "credits"), 250);
	json_decref(doc);
	/* After the restart both events have a result; k1 is the one that credited. */
	all = sk_read_json(env.results, 2);
	sk_expect_status(all, "evt_k1", 0, "applied");
	sk_expect_status(all, "evt_k2", 0, "duplicate");
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
