/* Fault tests of the stripe worker's refund path: a purchase, a partial refund of it and
 * another event of the same refund state are in one batch; the worker aborts at each
 * bw_fault_point of the refund path and of the batch (BW_FAULT_AT=<step>), is restarted,
 * and the org must end with exactly one clawback of the refunded share. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static const char *const steps[] = {
	"refund_after_mark",     /* clawback pending on the ledger row, nothing taken */
	"refund_after_clawback", /* credits taken, row still pending */
	"refund_after_row",      /* row done, event not recorded */
	"after_event_record",    /* events recorded, no result published */
	"after_db_write",        /* whole batch in MongoDB, no result */
	"after_results",         /* results acknowledged, offsets not stored */
};

static void produce_refund(const struct sk_env *env, const char *id)
{
	json_t *ev = sk_fixture("charge_refunded.json");

	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.payment_intent", "pi_crash");
	sk_set_str(ev, "data.object.customer", "cus_crash");
	sk_set_int(ev, "data.object.amount", 5000);
	sk_set_int(ev, "data.object.amount_refunded", 2500);
	sk_produce_free(env, ev);
}

START_TEST(crash_at_each_step_claws_back_exactly_once)
{
	struct sk_env env;
	json_t *ev, *doc, *all;

	sk_env_init(&env, "stripe_refund_crash", BW_STRIPE_WORKER_PATH);
	ev = sk_checkout("evt_buy", "cs_rcrash", "cus_crash", "org-rcrash", "1000");
	sk_set_str(ev, "data.object.payment_intent", "pi_crash");
	sk_set_int(ev, "data.object.amount_total", 5000);
	sk_produce_free(&env, ev);
	produce_refund(&env, "evt_rf1");
	produce_refund(&env, "evt_rf2"); /* another event of the same refund state */

	sk_crash_and_restart(&env, steps[_i]);

	doc = sk_customer(&env, "org-rcrash");
	ck_assert_msg(tk_int(doc, "purchased_credits") == 500, "%s: purchased_credits %lld",
		      steps[_i], tk_int(doc, "purchased_credits"));
	ck_assert_int_eq(json_array_size(json_object_get(doc, "applied_clawbacks")), 1);
	json_decref(doc);
	doc = sk_ledger(&env, "cs_rcrash");
	ck_assert_int_eq(tk_int(doc, "clawed_back_credits"), 500);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "clawbacks")), 1);
	ck_assert_ptr_null(json_object_get(doc, "clawback_pending"));
	json_decref(doc);
	all = sk_read_json(env.results, 3);
	sk_expect_status(all, "evt_buy", 0, "applied");
	sk_expect_status(all, "evt_rf1", 0, "applied");
	sk_expect_status(all, "evt_rf2", 0, "duplicate");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_refund_crash");
	TCase *tc = tcase_create("refund");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, crash_at_each_step_claws_back_exactly_once, 0,
			    sizeof(steps) / sizeof(steps[0]));
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
