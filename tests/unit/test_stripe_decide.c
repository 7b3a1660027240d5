/* Unit tests of the stripe worker's decisions (stripe_decide): does an event need the org,
 * is a subscription or invoice event settled against the stored customer state, and which
 * billing period wins after a guarded write missed. Pure: no Kafka, no MongoDB. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "stripe_decide.h"
#include "stripe_store.h"
#include "testkit.h"

/* A fresh outcome with its details object; release with bw_stripe_outcome_cleanup. */
static void out_init(struct bw_stripe_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->details = json_object();
	out->status = BW_SS_APPLIED;
}

static struct bw_stripe_event ev_of(enum bw_stripe_kind kind)
{
	struct bw_stripe_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.id = "evt_new";
	ev.type = "test";
	ev.kind = kind;
	ev.created = 1000;
	return ev;
}

/* needs_org: one row per event shape; want -1 means "needs the org". */
static const struct {
	const char *name;
	enum bw_stripe_kind kind;
	const char *mode, *payment_status, *billing_reason, *subscription_id;
	int has_period;
	int want; /* -1: needs the org, else the status that settles it */
	const char *type, *org, *customer; /* NULL: "test", none, none */
} org_rows[] = {
#define NO_IDS NULL, NULL, NULL
	{ "unknown type", BW_SK_UNKNOWN, NULL, NULL, NULL, NULL, 0, BW_SS_IGNORED, NO_IDS },
	{ "checkout paid", BW_SK_CHECKOUT, "payment", "paid", NULL, NULL, 0, -1, NO_IDS },
	{ "checkout unpaid", BW_SK_CHECKOUT, "payment", "unpaid", NULL, NULL, 0, BW_SS_DEFERRED,
	  NO_IDS },
	{ "checkout free", BW_SK_CHECKOUT, "payment", "no_payment_required", NULL, NULL, 0, -1,
	  NO_IDS },
	{ "checkout async failed", BW_SK_CHECKOUT, "payment", "unpaid", NULL, NULL, 0,
	  BW_SS_PAYMENT_FAILED, "checkout.session.async_payment_failed", NULL, NULL },
	{ "subscription checkout links", BW_SK_CHECKOUT, "subscription", "paid", NULL, NULL, 0,
	  -1, NULL, "org_1", "cus_1" },
	{ "subscription checkout without org", BW_SK_CHECKOUT, "subscription", "paid", NULL,
	  NULL, 0, BW_SS_IGNORED, NULL, NULL, "cus_1" },
	{ "checkout setup mode", BW_SK_CHECKOUT, "setup", NULL, NULL, NULL, 0, BW_SS_IGNORED,
	  NULL, "org_1", "cus_1" },
	{ "checkout no mode", BW_SK_CHECKOUT, NULL, "paid", NULL, NULL, 0, BW_SS_IGNORED, NO_IDS },
	{ "subscription upsert", BW_SK_SUB_UPSERT, NULL, NULL, NULL, "sub_1", 1, -1, NO_IDS },
	{ "subscription deleted", BW_SK_SUB_DELETED, NULL, NULL, NULL, "sub_1", 0, -1, NO_IDS },
	{ "invoice cycle", BW_SK_INVOICE_PAID, NULL, NULL, "subscription_cycle", "sub_1", 1, -1,
	  NO_IDS },
	{ "invoice create", BW_SK_INVOICE_PAID, NULL, NULL, "subscription_create", "sub_1", 1,
	  -1, NO_IDS },
	{ "invoice manual", BW_SK_INVOICE_PAID, NULL, NULL, "manual", "sub_1", 1, BW_SS_IGNORED,
	  NO_IDS },
	/* no line of the subscription's own period (cut off, or none): the sync settles it */
	{ "invoice no period", BW_SK_INVOICE_PAID, NULL, NULL, "subscription_cycle", "sub_1", 0,
	  BW_SS_DEFERRED, NO_IDS },
	{ "invoice plan change, new period", BW_SK_INVOICE_PAID, NULL, NULL,
	  "subscription_update", "sub_1", 1, -1, NO_IDS },
	{ "invoice plan change, prorations only", BW_SK_INVOICE_PAID, NULL, NULL,
	  "subscription_update", "sub_1", 0, BW_SS_IGNORED, NO_IDS },
	{ "invoice no subscription", BW_SK_INVOICE_PAID, NULL, NULL, "subscription_cycle", NULL,
	  1, BW_SS_REJECTED, NO_IDS },
#undef NO_IDS
};

START_TEST(needs_org_by_event_shape)
{
	struct bw_stripe_event ev = ev_of(org_rows[_i].kind);
	struct bw_stripe_outcome out;
	int needs;

	out_init(&out);
	ev.mode = org_rows[_i].mode;
	ev.payment_status = org_rows[_i].payment_status;
	ev.billing_reason = org_rows[_i].billing_reason;
	ev.subscription_id = org_rows[_i].subscription_id;
	ev.has_period = org_rows[_i].has_period;
	if (org_rows[_i].type)
		ev.type = org_rows[_i].type;
	ev.meta_org_id = org_rows[_i].org;
	ev.customer_id = org_rows[_i].customer;
	needs = bw_stripe_needs_org(&ev, &out);
	if (org_rows[_i].want < 0) {
		ck_assert_msg(needs == 1, "%s: should need the org", org_rows[_i].name);
	} else {
		ck_assert_msg(needs == 0, "%s: should be settled", org_rows[_i].name);
		ck_assert_msg((int)out.status == org_rows[_i].want, "%s: status %s",
			      org_rows[_i].name, bw_stripe_status_name(out.status));
		ck_assert_msg(out.reason[0] != '\0', "%s: no reason", org_rows[_i].name);
		ck_assert_int_eq(out.to_dlq, out.status == BW_SS_REJECTED);
	}
	bw_stripe_outcome_cleanup(&out);
}
END_TEST

/* A stored customer with subscription sub_1 (active), last written by evt_old at 900. */
static struct bw_stripe_cust stored_sub(void)
{
	struct bw_stripe_cust c;

	memset(&c, 0, sizeof(c));
	c.found = 1;
	snprintf(c.org_id, sizeof(c.org_id), "org_1");
	snprintf(c.sub_id, sizeof(c.sub_id), "sub_1");
	snprintf(c.sub_status, sizeof(c.sub_status), "active");
	snprintf(c.sub_event_id, sizeof(c.sub_event_id), "evt_old");
	c.sub_created = 900;
	c.has_sub_created = 1;
	return c;
}

START_TEST(subscription_settled_cases)
{
	struct bw_stripe_cust c = stored_sub();
	struct bw_stripe_event ev = ev_of(BW_SK_SUB_UPSERT);
	struct bw_stripe_outcome out;

	ev.subscription_id = "sub_1";
	ev.sub_status = "active";
	out_init(&out);
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 0); /* newer: write */
	c.sub_created = 2000;
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_STALE);
	c.sub_created = 1000;
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_DEFERRED);
	ck_assert_str_eq(out.tick_reason, "subscription_same_second");
	ck_assert_str_eq(out.tick_id, "evt_new:subscription_same_second");
	snprintf(c.sub_event_id, sizeof(c.sub_event_id), "evt_new"); /* our unrecorded write */
	out.tick_reason[0] = '\0';
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_APPLIED);
	ck_assert_str_eq(out.tick_reason, "");
	bw_stripe_outcome_cleanup(&out);
}
END_TEST

START_TEST(subscription_backwards_and_foreign_deletion)
{
	struct bw_stripe_cust c = stored_sub();
	struct bw_stripe_event ev = ev_of(BW_SK_SUB_UPSERT);
	struct bw_stripe_outcome out;

	out_init(&out);
	ev.subscription_id = "sub_1";
	ev.sub_status = "incomplete";
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_DEFERRED);
	ck_assert_str_eq(out.tick_reason, "subscription_status_backwards");
	/* Another subscription's status is no step back of the stored one. */
	ev.subscription_id = "sub_2";
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 0);
	ev.kind = BW_SK_SUB_DELETED;
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_STALE);
	ck_assert_ptr_nonnull(strstr(out.reason, "sub_1"));
	ev.subscription_id = "sub_1";
	ck_assert_int_eq(bw_stripe_sub_decide(&c, &ev, &out), 0);
	/* The guarded write missed with nothing newer stored: stale. */
	bw_stripe_sub_missed(&c, &ev, &out);
	ck_assert_int_eq(out.status, BW_SS_STALE);
	bw_stripe_outcome_cleanup(&out);
}
END_TEST

START_TEST(invoice_settled_and_which_period)
{
	struct bw_stripe_cust c = stored_sub();
	struct bw_stripe_event ev = ev_of(BW_SK_INVOICE_PAID);
	struct bw_stripe_outcome out;

	out_init(&out);
	ev.subscription_id = "sub_1";
	ev.period_start = 5000;
	ev.has_period = 1;
	ck_assert_int_eq(bw_stripe_invoice_decide(&c, &ev, &out), 0);
	ev.subscription_id = "sub_other";
	ck_assert_int_eq(bw_stripe_invoice_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_DEFERRED);
	ck_assert_str_eq(out.tick_reason, "invoice_for_unknown_subscription");
	snprintf(c.reset_event_id, sizeof(c.reset_event_id), "evt_new");
	ck_assert_int_eq(bw_stripe_invoice_decide(&c, &ev, &out), 1);
	ck_assert_int_eq(out.status, BW_SS_APPLIED);
	/* After a missed reset: ours, a newer period (marker or stored period), or this one. */
	bw_stripe_invoice_missed(&c, &ev, &out);
	ck_assert_int_eq(out.status, BW_SS_APPLIED);
	snprintf(c.reset_event_id, sizeof(c.reset_event_id), "evt_other");
	c.has_reset = 1;
	c.reset_ms = 5000 * 1000 + 1;
	bw_stripe_invoice_missed(&c, &ev, &out);
	ck_assert_int_eq(out.status, BW_SS_STALE);
	c.reset_ms = 5000 * 1000;
	bw_stripe_invoice_missed(&c, &ev, &out);
	ck_assert_int_eq(out.status, BW_SS_DUPLICATE);
	ck_assert_ptr_nonnull(strstr(out.reason, "evt_other"));
	c.has_period = 1;
	c.period_ms = 6000 * 1000;
	bw_stripe_invoice_missed(&c, &ev, &out);
	ck_assert_int_eq(out.status, BW_SS_STALE);
	bw_stripe_outcome_cleanup(&out);
}
END_TEST

/* The original integration stored the billing period in unix seconds, we store a date: both
 * read as milliseconds, so "which period" compares like with like. */
START_TEST(period_in_seconds_or_date_reads_as_ms)
{
	bson_t *old = BCON_NEW("org_id", BCON_UTF8("org_1"), "stripe_current_billing_period_start",
			       BCON_INT64(1723270400));
	bson_t *ours = BCON_NEW("org_id", BCON_UTF8("org_1"), "stripe_current_billing_period_start",
				BCON_DATE_TIME(INT64_C(1723270400000)));
	struct bw_stripe_cust c;

	bw_stripe_cust_from_doc(old, &c);
	ck_assert_int_eq(c.has_period, 1);
	ck_assert_int_eq(c.period_ms, INT64_C(1723270400000));
	bw_stripe_cust_from_doc(ours, &c);
	ck_assert_int_eq(c.period_ms, INT64_C(1723270400000));
	bson_destroy(old);
	bson_destroy(ours);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_decide");
	TCase *tc = tcase_create("decide");

	tcase_add_loop_test(tc, needs_org_by_event_shape, 0,
			    sizeof(org_rows) / sizeof(org_rows[0]));
	tcase_add_test(tc, subscription_settled_cases);
	tcase_add_test(tc, subscription_backwards_and_foreign_deletion);
	tcase_add_test(tc, invoice_settled_and_which_period);
	tcase_add_test(tc, period_in_seconds_or_date_reads_as_ms);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
