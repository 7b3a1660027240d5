/* Unit tests of the stripe worker's pure logic: event parsing from fixtures shaped like
 * real Stripe payloads (both API versions), strict metadata numbers, status order, ticks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_apply.h"
#include "stripe_event.h"
#include "testkit.h"

static char *read_fixture(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf = malloc(1 << 20);

	snprintf(path, sizeof(path), "%s/stripe/%s", BW_TEST_FIXTURES_DIR, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* Parses fixture name; expect_ok says whether parsing should succeed. */
static void parse_fixture(const char *name, struct bw_stripe_event *ev, int expect_ok,
			  struct bw_err *err)
{
	size_t len;
	char *buf = read_fixture(name, &len);
	int rc;

	bw_err_clear(err);
	rc = bw_stripe_event_parse((const unsigned char *)buf, len, 1 << 20, ev, err);
	free(buf);
	if (expect_ok)
		ck_assert_msg(rc == 0, "%s: %s", name, err->msg);
	else
		ck_assert_int_eq(rc, -1);
}

static int parse_text(const char *text, struct bw_stripe_event *ev, struct bw_err *err)
{
	bw_err_clear(err);
	return bw_stripe_event_parse((const unsigned char *)text, strlen(text), 1 << 20, ev, err);
}

START_TEST(checkout_paid_reads_org_customer_and_string_credits)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("checkout_session_completed.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_CHECKOUT);
	ck_assert_str_eq(ev.id, "evt_1PcheckoutCompleted01");
	ck_assert_int_eq(ev.created, 1718000000);
	ck_assert_str_eq(ev.object_id, "cs_test_a1B2c3D4e5F6g7H8");
	ck_assert_str_eq(ev.customer_id, "cus_QabcDEF123");
	ck_assert_str_eq(ev.meta_org_id, "org_fixture");
	ck_assert_int_eq(ev.has_credits, 1);
	ck_assert_int_eq(ev.credits, 500);
	ck_assert_int_eq(bw_stripe_checkout_is_paid(&ev), 1);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(checkout_unpaid_is_not_paid_and_async_is)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("checkout_session_completed_unpaid.json", &ev, 1, &err);
	ck_assert_int_eq(bw_stripe_checkout_is_paid(&ev), 0);
	bw_stripe_event_cleanup(&ev);
	parse_fixture("checkout_session_async_payment_succeeded.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_CHECKOUT);
	ck_assert_int_eq(bw_stripe_checkout_is_paid(&ev), 1);
	ck_assert_int_eq(ev.credits, 200);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(checkout_bad_credits_is_invalid_with_reason)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("checkout_session_bad_credits.json", &ev, 0, &err);
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "metadata.credits"));
	ck_assert_str_eq(ev.id, "evt_1PcheckoutBadCredits"); /* still names itself */
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(subscription_old_api_period_on_subscription)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("customer_subscription_created.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_SUB_UPSERT);
	ck_assert_str_eq(ev.subscription_id, "sub_1PfixtureA");
	ck_assert_str_eq(ev.sub_status, "active");
	ck_assert_str_eq(ev.price_id, "price_1Pteam");
	ck_assert_str_eq(ev.tier, "team");
	ck_assert_int_eq(ev.has_included_spus, 1);
	ck_assert_int_eq(ev.included_spus, 5000);
	ck_assert_int_eq(ev.has_period, 1);
	ck_assert_int_eq(ev.period_start, 1718000000);
	ck_assert_int_eq(ev.period_end, 1720592000);
	ck_assert_ptr_null(ev.meta_org_id);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(subscription_new_api_period_from_items)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("customer_subscription_updated.json", &ev, 1, &err);
	ck_assert_int_eq(ev.has_period, 1);
	ck_assert_int_eq(ev.period_start, 1718000000);
	ck_assert_int_eq(ev.period_end, 1720592000);
	ck_assert_str_eq(ev.tier, "business");
	ck_assert_int_eq(ev.included_spus, 20000); /* integer metadata accepted too */
	bw_stripe_event_cleanup(&ev);
	parse_fixture("customer_subscription_deleted.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_SUB_DELETED);
	ck_assert_str_eq(ev.subscription_id, "sub_1PfixtureA");
	bw_stripe_event_cleanup(&ev);
}
END_TEST

/* The pending cancellation: cancel_at_period_end (absent or null: false) and cancel_at. */
START_TEST(subscription_pending_cancellation)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("customer_subscription_updated.json", &ev, 1, &err);
	ck_assert_int_eq(ev.cancel_at_period_end, 0);
	ck_assert_int_eq(ev.cancel_at, 0);
	bw_stripe_event_cleanup(&ev);
	ck_assert_int_eq(parse_text("{\"id\":\"e\",\"type\":\"customer.subscription.updated\","
				    "\"created\":1,\"data\":{\"object\":{\"id\":\"sub_1\","
				    "\"status\":\"active\",\"cancel_at_period_end\":true,"
				    "\"cancel_at\":1720592000}}}", &ev, &err), 0);
	ck_assert_int_eq(ev.cancel_at_period_end, 1);
	ck_assert_int_eq(ev.cancel_at, 1720592000);
	bw_stripe_event_cleanup(&ev);
	ck_assert_int_eq(parse_text("{\"id\":\"e\",\"type\":\"customer.subscription.updated\","
				    "\"created\":1,\"data\":{\"object\":{\"id\":\"sub_1\","
				    "\"status\":\"active\",\"cancel_at_period_end\":null,"
				    "\"cancel_at\":null}}}", &ev, &err), 0);
	ck_assert_int_eq(ev.cancel_at_period_end, 0);
	ck_assert_int_eq(ev.cancel_at, 0);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(invoice_subscription_in_both_api_versions)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("invoice_paid_cycle.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_INVOICE_PAID);
	ck_assert_str_eq(ev.subscription_id, "sub_1PfixtureA");
	ck_assert_int_eq(bw_stripe_invoice_opens_period(&ev), 1);
	/* the line's service period, not the invoice's previous usage period */
	ck_assert_int_eq(ev.period_start, 1720592000);
	ck_assert_int_eq(ev.period_end, 1723270400);
	bw_stripe_event_cleanup(&ev);
	parse_fixture("invoice_payment_succeeded_basil.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_INVOICE_PAID);
	ck_assert_str_eq(ev.subscription_id, "sub_1PfixtureA");
	ck_assert_int_eq(ev.period_start, 1720592000);
	bw_stripe_event_cleanup(&ev);
	parse_fixture("invoice_created.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_INVOICE_CREATED);
	ck_assert_str_eq(ev.customer_id, "cus_QabcDEF123");
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(invoice_period_never_from_the_invoice_fields)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	/* The invoice-level period of a cycle invoice is the previous (usage) period: without
	 * a line of the subscription's own period the invoice opens none. */
	ck_assert_int_eq(parse_text("{\"id\":\"evt_x\",\"type\":\"invoice.paid\",\"created\":5,"
				    "\"data\":{\"object\":{\"id\":\"in_x\",\"customer\":{\"id\":"
				    "\"cus_exp\"},\"billing_reason\":\"subscription_create\","
				    "\"period_start\":100,\"period_end\":200,\"subscription\":"
				    "{\"id\":\"sub_exp\"}}}}", &ev, &err), 0);
	ck_assert_str_eq(ev.customer_id, "cus_exp");    /* expanded object */
	ck_assert_str_eq(ev.subscription_id, "sub_exp");
	ck_assert_int_eq(ev.has_period, 0);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

START_TEST(unknown_type_parses_without_body)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	parse_fixture("unknown_type.json", &ev, 1, &err);
	ck_assert_int_eq(ev.kind, BW_SK_UNKNOWN);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

static const struct {
	const char *text;
	const char *reason_part;
} malformed[] = {
	{ "not json", "" },
	{ "[1,2]", "" },
	{ "{\"type\":\"invoice.paid\",\"created\":1}", "id" },
	{ "{\"id\":\"evt_1\",\"created\":1}", "type" },
	{ "{\"id\":\"evt_1\",\"type\":\"invoice.paid\"}", "created" },
	{ "{\"id\":\"evt_1\",\"type\":\"invoice.paid\",\"created\":\"1\"}", "created" },
	{ "{\"id\":7,\"type\":\"invoice.paid\",\"created\":1}", "id" },
	{ "{\"id\":\"evt_1\",\"type\":\"invoice.paid\",\"created\":1,\"data\":{}}", "data.object" },
	{ "{\"id\":\"evt_1\",\"type\":\"invoice.paid\",\"created\":1,\"data\":{\"object\":"
	  "{\"customer\":5}}}", "customer" },
	{ "{\"id\":\"e\",\"type\":\"customer.subscription.updated\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"sub_1\"}}}", "status" },
	{ "{\"id\":\"e\",\"type\":\"customer.subscription.updated\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"sub_1\",\"status\":\"active\",\"current_period_start\":\"x\"}}}",
	  "current_period_start" },
	{ "{\"id\":\"e\",\"type\":\"customer.subscription.updated\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"sub_1\",\"status\":\"active\",\"cancel_at_period_end\":\"yes\"}}}",
	  "cancel_at_period_end" },
	{ "{\"id\":\"e\",\"type\":\"customer.subscription.updated\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"sub_1\",\"status\":\"active\",\"cancel_at\":-1}}}",
	  "cancel_at" },
	{ "{\"id\":\"e\",\"type\":\"checkout.session.completed\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"cs_1\",\"mode\":\"payment\",\"payment_status\":\"paid\"}}}",
	  "metadata.credits" },
	{ "{\"id\":\"e\",\"type\":\"checkout.session.completed\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"cs_1\",\"mode\":\"payment\",\"metadata\":{\"credits\":\"0\"}}}}",
	  "metadata.credits" },
	{ "{\"id\":\"e\",\"type\":\"checkout.session.completed\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"cs_1\",\"mode\":\"payment\",\"metadata\":{\"credits\":1.5}}}}",
	  "metadata.credits" },
	{ "{\"id\":\"e\",\"type\":\"checkout.session.completed\",\"created\":1,\"data\":"
	  "{\"object\":{\"id\":\"cs_1\",\"mode\":\"payment\",\"metadata\":{\"credits\":"
	  "\"99999999999999999999\"}}}}", "metadata.credits" },
};

START_TEST(malformed_events_are_invalid)
{
	struct bw_stripe_event ev;
	struct bw_err err;

	ck_assert_int_eq(parse_text(malformed[_i].text, &ev, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	ck_assert_msg(strstr(err.msg, malformed[_i].reason_part) != NULL, "%s: '%s'",
		      malformed[_i].text, err.msg);
	bw_stripe_event_cleanup(&ev);
}
END_TEST

static const struct {
	const char *text;
	int ok;
	long long value;
} counts[] = {
	{ "\"1\"", 1, 1 },        { "\"500\"", 1, 500 },  { "42", 1, 42 },
	{ "\"1000000000000000\"", 1, 1000000000000000LL }, { "\"1000000000000001\"", 0, 0 },
	{ "\"\"", 0, 0 },         { "\" 5\"", 0, 0 },     { "\"+5\"", 0, 0 },
	{ "\"-5\"", 0, 0 },       { "\"5.0\"", 0, 0 },    { "\"0x10\"", 0, 0 },
	{ "0", 0, 0 },            { "-3", 0, 0 },         { "2.5", 0, 0 },
	{ "true", 0, 0 },         { "null", 0, 0 },       { "\"9223372036854775808\"", 0, 0 },
};

START_TEST(credit_counts_are_strict)
{
	json_t *v = json_loads(counts[_i].text, JSON_DECODE_ANY, NULL);
	struct bw_err err;
	int64_t out = -1;
	int rc;

	ck_assert_ptr_nonnull(v);
	bw_err_clear(&err);
	rc = bw_stripe_parse_count(v, "metadata.credits", 1, BW_STRIPE_MAX_CREDITS, &out, &err);
	ck_assert_msg((rc == 0) == counts[_i].ok, "%s", counts[_i].text);
	if (counts[_i].ok)
		ck_assert_int_eq(out, counts[_i].value);
	else
		ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	json_decref(v);
}
END_TEST

START_TEST(status_order)
{
	ck_assert_int_eq(bw_stripe_status_backwards("active", "incomplete"), 1);
	ck_assert_int_eq(bw_stripe_status_backwards("canceled", "active"), 1);
	ck_assert_int_eq(bw_stripe_status_backwards("active", "trialing"), 1);
	ck_assert_int_eq(bw_stripe_status_backwards("trialing", "active"), 0);
	ck_assert_int_eq(bw_stripe_status_backwards("active", "past_due"), 0);
	ck_assert_int_eq(bw_stripe_status_backwards("past_due", "active"), 0);
	ck_assert_int_eq(bw_stripe_status_backwards("", "active"), 0);
	ck_assert_int_eq(bw_stripe_status_backwards("active", "brand_new"), 0);
}
END_TEST

START_TEST(kinds_and_tick_json)
{
	char *t;
	json_t *j;

	ck_assert_int_eq(bw_stripe_kind_of("invoice.paid"), BW_SK_INVOICE_PAID);
	ck_assert_int_eq(bw_stripe_kind_of("invoice.payment_succeeded"), BW_SK_INVOICE_PAID);
	ck_assert_int_eq(bw_stripe_kind_of("checkout.session.async_payment_succeeded"),
			 BW_SK_CHECKOUT);
	ck_assert_int_eq(bw_stripe_kind_of("customer.created"), BW_SK_UNKNOWN);
	t = bw_stripe_tick_json("evt_1:unknown_customer:2", NULL, "cus_1", "unknown_customer");
	j = json_loads(t, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "scope")), "customer");
	ck_assert_str_eq(json_string_value(json_object_get(j, "tick_id")),
			 "evt_1:unknown_customer:2");
	ck_assert_str_eq(json_string_value(json_object_get(j, "stripe_customer_id")), "cus_1");
	ck_assert_ptr_null(json_object_get(j, "org_id"));
	json_decref(j);
	free(t);
	ck_assert_str_eq(bw_stripe_status_name(BW_SS_STALE), "stale");
	ck_assert_str_eq(bw_stripe_status_name(BW_SS_DEFERRED), "deferred");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_event");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, checkout_paid_reads_org_customer_and_string_credits);
	tcase_add_test(tc, checkout_unpaid_is_not_paid_and_async_is);
	tcase_add_test(tc, checkout_bad_credits_is_invalid_with_reason);
	tcase_add_test(tc, subscription_old_api_period_on_subscription);
	tcase_add_test(tc, subscription_new_api_period_from_items);
	tcase_add_test(tc, subscription_pending_cancellation);
	tcase_add_test(tc, invoice_subscription_in_both_api_versions);
	tcase_add_test(tc, invoice_period_never_from_the_invoice_fields);
	tcase_add_test(tc, unknown_type_parses_without_body);
	tcase_add_loop_test(tc, malformed_events_are_invalid, 0,
			    sizeof(malformed) / sizeof(malformed[0]));
	tcase_add_loop_test(tc, credit_counts_are_strict, 0, sizeof(counts) / sizeof(counts[0]));
	tcase_add_test(tc, status_order);
	tcase_add_test(tc, kinds_and_tick_json);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
