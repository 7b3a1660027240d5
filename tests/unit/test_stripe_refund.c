/* Unit tests of the refund and dispute logic: parsing charge.refunded (2025 and 2020 API
 * shapes) and charge.dispute.* fixtures, the exact share floor(credits * part / whole), and
 * the cumulative clawback plan (table-driven). Pure: no Kafka, no MongoDB. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_decide.h"
#include "stripe_event.h"
#include "testkit.h"

static void parse_fixture(const char *name, struct bw_stripe_event *ev)
{
	char path[512];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	struct bw_err err;

	snprintf(path, sizeof(path), "%s/stripe/%s", BW_TEST_FIXTURES_DIR, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	buf = malloc(1 << 16);
	ck_assert_ptr_nonnull(buf);
	len = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	bw_err_clear(&err);
	ck_assert_msg(bw_stripe_event_parse((const unsigned char *)buf, len, 1 << 20, ev,
					    &err) == 0, "%s: %s", name, err.msg);
	free(buf);
}

START_TEST(refund_and_dispute_fixtures_parse)
{
	struct bw_stripe_event ev;

	parse_fixture("charge_refunded.json", &ev);
	ck_assert_int_eq(ev.kind, BW_SK_REFUND);
	ck_assert_int_eq(ev.is_dispute, 0);
	ck_assert_str_eq(ev.payment_intent, "pi_3PabcDEF123");
	ck_assert_str_eq(ev.charge_id, "ch_3RrefundFull1");
	ck_assert_int_eq(ev.amount, 5000);
	ck_assert_int_eq(ev.amount_refunded, 5000);
	bw_stripe_event_cleanup(&ev);
	parse_fixture("charge_refunded_2020.json", &ev); /* expanded payment_intent, customer */
	ck_assert_str_eq(ev.payment_intent, "pi_3PabcDEF123");
	ck_assert_str_eq(ev.customer_id, "cus_QabcDEF123");
	ck_assert_int_eq(ev.amount_refunded, 1500);
	bw_stripe_event_cleanup(&ev);
	parse_fixture("charge_dispute_created.json", &ev);
	ck_assert_int_eq(ev.kind, BW_SK_REFUND);
	ck_assert_int_eq(ev.is_dispute, 1);
	ck_assert_str_eq(ev.charge_id, "ch_3RrefundFull1");
	ck_assert_str_eq(ev.dispute_status, "needs_response");
	bw_stripe_event_cleanup(&ev);
	parse_fixture("checkout_session_completed.json", &ev);
	ck_assert_str_eq(ev.payment_intent, "pi_3PabcDEF123");
	ck_assert_int_eq(ev.amount, 5000);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(refund_above_amount_is_invalid)
{
	const char *text = "{\"id\":\"evt_1\",\"type\":\"charge.refunded\",\"created\":1,"
			   "\"data\":{\"object\":{\"id\":\"ch_1\",\"amount\":100,"
			   "\"amount_refunded\":101,\"payment_intent\":\"pi_1\"}}}";
	struct bw_stripe_event ev;
	struct bw_err err;

	bw_err_clear(&err);
	ck_assert_int_eq(bw_stripe_event_parse((const unsigned char *)text, strlen(text), 4096,
					       &ev, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(share_is_exact_floor)
{
	ck_assert_int_eq(bw_stripe_share(1000, 1500, 5000), 300);
	ck_assert_int_eq(bw_stripe_share(1000, 1, 3), 333);
	ck_assert_int_eq(bw_stripe_share(7, 5000, 5000), 7);
	ck_assert_int_eq(bw_stripe_share(7, 9000, 5000), 7);  /* part clamped */
	ck_assert_int_eq(bw_stripe_share(7, 10, 0), 0);
	ck_assert_int_eq(bw_stripe_share(BW_STRIPE_MAX_CREDITS, BW_STRIPE_MAX_AMOUNT - 1,
					 BW_STRIPE_MAX_AMOUNT),
			 BW_STRIPE_MAX_CREDITS - 1); /* 10^30 intermediate, no overflow */
}
END_TEST

/* The row before: credits 1000 for 5000 cents, refunded, disputed, taken, closed. */
static const struct {
	const char *name, *type, *status;
	int64_t amount, refunded_amount;             /* of the event */
	int64_t refunded, disputed, taken, closed;   /* the row before */
	int want;                                    /* plan's return */
	int64_t delta, next_refunded, next_disputed, next_taken;
} plans[] = {
	{ "full refund", "charge.refunded", NULL, 5000, 5000, 0, 0, 0, 0, 0, 1000, 1000, 0, 1000 },
	{ "re-sent full refund", "charge.refunded", NULL, 5000, 5000, 1000, 0, 1000, 0, 1, 0, 1000,
	  0, 1000 },
	{ "second partial", "charge.refunded", NULL, 5000, 4000, 300, 0, 300, 0, 0, 500, 800, 0,
	  800 },
	{ "older partial late", "charge.refunded", NULL, 5000, 1500, 800, 0, 800, 0, 1, 0, 800, 0,
	  800 },
	{ "free charge", "charge.refunded", NULL, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0 },
	{ "dispute created", "charge.dispute.created", "needs_response", 2500, 0, 0, 0, 0, 0, 0,
	  500, 0, 500, 500 },
	{ "dispute lost", "charge.dispute.closed", "lost", 2500, 0, 0, 500, 500, 0, 0, 0, 0, 500,
	  500 },
	{ "dispute won", "charge.dispute.closed", "won", 2500, 0, 0, 500, 500, 0, 0, -500, 0, 0,
	  0 },
	{ "created after close", "charge.dispute.created", "needs_response", 2500, 0, 0, 0, 0, 1,
	  1, 0, 0, 0, 0 },
	{ "refund plus dispute capped", "charge.refunded", NULL, 5000, 5000, 0, 500, 500, 0, 0,
	  500, 1000, 500, 1000 },
};

START_TEST(clawback_plan_table)
{
	struct bw_stripe_event ev;
	struct bw_stripe_claw row = { 1000, 5000, 0, 0, 0, 0 }, next;
	struct bw_stripe_outcome out;
	int64_t delta = 42;
	int rc;

	memset(&ev, 0, sizeof(ev));
	memset(&out, 0, sizeof(out));
	out.details = json_object();
	ev.id = "evt_x";
	ev.type = plans[_i].type;
	ev.kind = BW_SK_REFUND;
	ev.is_dispute = strncmp(ev.type, "charge.dispute.", 15) == 0;
	ev.dispute_status = plans[_i].status;
	ev.amount = plans[_i].amount;
	ev.amount_refunded = plans[_i].refunded_amount;
	row.refunded = plans[_i].refunded;
	row.disputed = plans[_i].disputed;
	row.taken = plans[_i].taken;
	row.dispute_closed = (int)plans[_i].closed;
	rc = bw_stripe_clawback_plan(&ev, &row, &next, &delta, &out);
	ck_assert_msg(rc == plans[_i].want, "%s: plan %d", plans[_i].name, rc);
	if (rc == 1)
		ck_assert_int_eq(out.status, BW_SS_DUPLICATE);
	if (rc == -1)
		ck_assert_int_eq(out.status, BW_SS_IGNORED);
	if (rc != 0) {
		bw_stripe_outcome_cleanup(&out);
		return;
	}
	ck_assert_msg(delta == plans[_i].delta, "%s: delta %lld", plans[_i].name,
		      (long long)delta);
	ck_assert_int_eq(next.refunded, plans[_i].next_refunded);
	ck_assert_int_eq(next.disputed, plans[_i].next_disputed);
	ck_assert_int_eq(next.taken, plans[_i].next_taken);
	bw_stripe_outcome_cleanup(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_refund");
	TCase *tc = tcase_create("refund");

	tcase_add_test(tc, refund_and_dispute_fixtures_parse);
	tcase_add_test(tc, refund_above_amount_is_invalid);
	tcase_add_test(tc, share_is_exact_floor);
	tcase_add_loop_test(tc, clawback_plan_table, 0, sizeof(plans) / sizeof(plans[0]));
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
