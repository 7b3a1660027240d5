/* test_sub_policy: the shared subscription policy (shared/sub_policy) as a table, run
 * against the policy itself and against each worker's use of it (the sync worker's pick of
 * a customer's subscriptions; the stripe worker's subscription decision), and the period
 * rules (shared/sub_period): which invoice line opens a period (never a proration line,
 * never blindly the first), the subscription's own period, and when a period resets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_api.h"
#include "stripe_decide.h"
#include "stripe_event.h"
#include "sub_period.h"
#include "sub_policy.h"
#include "sync_subscription.h"
#include "testkit.h"

/* The policy table (docs/stripe-worker.md). deleted: the subscription was deleted
 * (customer.subscription.deleted; the API lists it as canceled). */
static const struct row {
	const char *status;
	int deleted, enterprise, past_due_keeps;
	enum bw_sub_effect effect;
	const char *stored_status;
} table[] = {
	{ "active", 0, 0, 1, BW_SUB_PLAN, "active" },
	{ "trialing", 0, 0, 1, BW_SUB_PLAN, "trialing" },
	{ "past_due", 0, 0, 1, BW_SUB_PLAN, "past_due" },
	{ "past_due", 0, 0, 0, BW_SUB_NONE, "past_due" },
	{ "incomplete", 0, 0, 1, BW_SUB_NONE, "incomplete" },
	{ "incomplete_expired", 0, 0, 1, BW_SUB_NONE, "incomplete_expired" },
	{ "unpaid", 0, 0, 1, BW_SUB_NONE, "unpaid" },
	{ "paused", 0, 0, 1, BW_SUB_NONE, "paused" },
	{ "canceled", 0, 0, 1, BW_SUB_NONE, "canceled" },
	{ "active", 1, 0, 1, BW_SUB_NONE, "canceled" },
	{ "active", 0, 1, 1, BW_SUB_UNCHANGED, "active" },
	{ "canceled", 1, 1, 1, BW_SUB_UNCHANGED, "canceled" },
	{ "some_future_status", 0, 0, 1, BW_SUB_NONE, "some_future_status" },
};
#define NROWS ((int)(sizeof(table) / sizeof(table[0])))

START_TEST(policy_table)
{
	const struct row *r = &table[_i];
	struct bw_sub_policy p = { r->past_due_keeps };
	struct bw_sub_verdict v;

	bw_sub_policy_decide(&p, &(struct bw_sub_facts){ r->status, r->deleted, r->enterprise },
			     &v);
	ck_assert_msg(v.effect == r->effect, "row %d (%s): effect %d, want %d", _i, r->status,
		      v.effect, r->effect);
	ck_assert_str_eq(v.stored_status, r->stored_status);
	ck_assert_ptr_nonnull(v.reason);
}
END_TEST

/* Ended for good (no cancellation pending any more): canceled and incomplete_expired only;
 * the sync's pick carries the picked subscription's cancel_at_period_end and cancel_at. */
START_TEST(ended_statuses_and_the_pending_cancellation)
{
	static const char *const live[] = { "active", "trialing", "past_due", "incomplete",
					    "unpaid", "paused", "some_future_status", NULL };
	struct bw_sub_policy p = { 1 };
	struct bw_sub_state st;
	struct bw_err err;

	ck_assert_int_eq(bw_sub_policy_ended("canceled"), 1);
	ck_assert_int_eq(bw_sub_policy_ended("incomplete_expired"), 1);
	for (size_t i = 0; live[i]; i++)
		ck_assert_int_eq(bw_sub_policy_ended(live[i]), 0);
	ck_assert_int_eq(bw_sub_policy_ended(NULL), 0);
	json_t *subs = json_pack("[{sssssIsbsI}]", "id", "sub_1", "status", "active", "created",
				 (json_int_t)10, "cancel_at_period_end", 1, "cancel_at",
				 (json_int_t)2000);
	ck_assert_int_eq(bw_sync_pick_subscription(subs, &p, &st, &err), 0);
	ck_assert_int_eq(st.cancel_at_period_end, 1);
	ck_assert_int_eq(st.cancel_at_s, 2000);
	json_decref(subs);
	subs = json_pack("[{sssssI}]", "id", "sub_1", "status", "active", "created",
			 (json_int_t)10);
	ck_assert_int_eq(bw_sync_pick_subscription(subs, &p, &st, &err), 0);
	ck_assert_int_eq(st.cancel_at_period_end, 0);
	ck_assert_int_eq(st.cancel_at_s, 0);
	json_decref(subs);
}
END_TEST

/* A subscription as the API lists it: an add-on item first, the base item second, the
 * period on the items (2025 shape). */
static json_t *api_subscription(const char *id, const char *status, long long created)
{
	json_t *s = json_pack(
		"{sssssIs{s[{sss{sss{ssss}}sIsI}{sss{sss{ssssss}}sIsI}]}}", "id", id, "status",
		status, "created", (json_int_t)created, "items", "data", "id", "si_addon", "price",
		"id", "price_addon", "metadata", "price_type", "addon", "tier", "addon",
		"current_period_start", (json_int_t)1000, "current_period_end", (json_int_t)2000,
		"id", "si_base", "price", "id", "price_team", "metadata", "price_type", "base",
		"tier", "team", "included_spus", "5000", "current_period_start", (json_int_t)1000,
		"current_period_end", (json_int_t)2000);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* The sync worker's use: the API shows the row's subscription (a deleted one as canceled). */
START_TEST(policy_table_in_the_sync_worker)
{
	const struct row *r = &table[_i];
	struct bw_sub_policy p = { r->past_due_keeps };
	struct bw_sub_state st;
	struct bw_err err;
	json_t *subs;

	if (r->enterprise)
		return; /* the enterprise rows are the document's, see the integration test */
	subs = json_pack("[o]", api_subscription("sub_1", r->deleted ? "canceled" : r->status, 10));
	ck_assert_int_eq(bw_sync_pick_subscription(subs, &p, &st, &err), 0);
	ck_assert_str_eq(st.status, r->stored_status);
	ck_assert_str_eq(st.subscription_id, "sub_1");
	if (r->effect == BW_SUB_PLAN) {
		ck_assert_int_eq(st.live, 1);
		ck_assert_str_eq(st.subscription_type, "team"); /* the base item, not the add-on */
		ck_assert_int_eq(st.allowance, 5000);
		ck_assert_str_eq(st.price_id, "price_team");
		ck_assert_int_eq(st.period_start_s, 1000);
	} else {
		ck_assert_int_eq(st.live, 0);
		ck_assert_str_eq(st.subscription_type, "none");
		ck_assert_int_eq(st.allowance, 0);
	}
	json_decref(subs);
}
END_TEST

/* The stripe worker's use: a customer.subscription.* webhook carrying the row's
 * subscription (the API object in the event), parsed as the worker parses it, then the
 * worker's verdict over the stored customer (enterprise or not). */
START_TEST(policy_table_in_the_stripe_worker)
{
	const struct row *r = &table[_i];
	struct bw_sub_policy p = { r->past_due_keeps };
	struct bw_stripe_cust c;
	struct bw_stripe_event ev;
	struct bw_sub_verdict v;
	struct bw_err err;
	json_t *sub = api_subscription("sub_1", r->status, 10);
	json_t *event = json_pack("{sssssIs{so}}", "id", "evt_1", "type",
				  r->deleted ? "customer.subscription.deleted"
					     : "customer.subscription.updated",
				  "created", (json_int_t)20, "data", "object", sub);
	char *text = json_dumps(event, JSON_COMPACT);

	ck_assert_int_eq(bw_stripe_event_parse((const unsigned char *)text, strlen(text), 1 << 20,
					       &ev, &err), 0);
	memset(&c, 0, sizeof(c));
	c.found = 1;
	c.enterprise = r->enterprise;
	bw_stripe_sub_verdict(&p, &c, &ev, &v);
	ck_assert_msg(v.effect == r->effect, "row %d (%s): effect %d, want %d", _i, r->status,
		      v.effect, r->effect);
	ck_assert_str_eq(v.stored_status, r->stored_status);
	/* the plan is the base item's, not the add-on listed first */
	ck_assert_str_eq(ev.tier, "team");
	ck_assert_int_eq(ev.included_spus, 5000);
	ck_assert_str_eq(ev.price_id, "price_team");
	ck_assert_int_eq(ev.period_start, 1000);
	bw_stripe_event_cleanup(&ev);
	free(text);
	json_decref(event);
}
END_TEST

START_TEST(the_base_item_is_marked_else_the_first_unmarked)
{
	json_t *s = api_subscription("sub_1", "active", 1);
	const json_t *bi = bw_sub_policy_base_item(s);
	ck_assert_str_eq(json_string_value(json_object_get(bi, "id")), "si_base");
	json_decref(s);

	/* no base mark: the first item without a price_type (an old price), not the add-on */
	s = json_loads("{\"items\":{\"data\":[{\"id\":\"a\",\"price\":{\"metadata\":{\"price_type\":"
		       "\"addon\"}}},{\"id\":\"b\",\"price\":{\"metadata\":{\"tier\":\"team\"}}}]}}",
		       0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(bw_sub_policy_base_item(s), "id")), "b");
	json_decref(s);
	s = json_loads("{\"items\":{\"data\":[{\"id\":\"a\",\"price\":{\"metadata\":{\"price_type\":"
		       "\"addon\"}}}]}}", 0, NULL);
	ck_assert_ptr_null(bw_sub_policy_base_item(s));
	json_decref(s);
	s = json_loads("{\"items\":{\"data\":[]}}", 0, NULL);
	ck_assert_ptr_null(bw_sub_policy_base_item(s));
	json_decref(s);
}
END_TEST

/* Invoice vectors: which period the invoice opens for its subscription. */
static const struct {
	const char *name, *json;
	int found;
	long long start, end;
} invoices[] = {
	{ "older shape: the subscription line",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":[{\"type\":\"subscription\","
	  "\"subscription\":\"sub_1\",\"proration\":false,\"period\":{\"start\":200,\"end\":300}}]}}",
	  1, 200, 300 },
	{ "older shape: renewal after an upgrade, proration lines first",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":["
	  "{\"type\":\"invoiceitem\",\"proration\":true,\"subscription\":\"sub_1\","
	  "\"period\":{\"start\":150,\"end\":200}},"
	  "{\"type\":\"invoiceitem\",\"proration\":true,\"subscription\":\"sub_1\","
	  "\"period\":{\"start\":150,\"end\":200}},"
	  "{\"type\":\"subscription\",\"proration\":false,\"subscription\":\"sub_1\","
	  "\"period\":{\"start\":200,\"end\":300}}]}}",
	  1, 200, 300 },
	{ "2025 shape: proration line first, then the subscription item's line",
	  "{\"parent\":{\"type\":\"subscription_details\",\"subscription_details\":{"
	  "\"subscription\":\"sub_1\"}},\"lines\":{\"data\":["
	  "{\"parent\":{\"type\":\"subscription_item_details\",\"subscription_item_details\":{"
	  "\"proration\":true,\"subscription\":\"sub_1\"}},\"period\":{\"start\":150,\"end\":200}},"
	  "{\"parent\":{\"type\":\"subscription_item_details\",\"subscription_item_details\":{"
	  "\"proration\":false,\"subscription\":\"sub_1\"}},\"period\":{\"start\":200,\"end\":300}}"
	  "]}}",
	  1, 200, 300 },
	{ "a proration-only invoice opens no period",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":[{\"type\":\"invoiceitem\","
	  "\"proration\":true,\"period\":{\"start\":150,\"end\":200}}]}}",
	  0, 0, 0 },
	{ "another subscription's line is not ours",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":[{\"type\":\"subscription\","
	  "\"subscription\":\"sub_2\",\"proration\":false,\"period\":{\"start\":900,\"end\":999}},"
	  "{\"type\":\"subscription\",\"subscription\":\"sub_1\",\"proration\":false,"
	  "\"period\":{\"start\":200,\"end\":300}}]}}",
	  1, 200, 300 },
	{ "a cycle restart: the newest own line",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":["
	  "{\"parent\":{\"subscription_item_details\":{\"proration\":false,\"subscription\":"
	  "\"sub_1\"}},\"period\":{\"start\":100,\"end\":200}},"
	  "{\"parent\":{\"subscription_item_details\":{\"proration\":false,\"subscription\":"
	  "\"sub_1\"}},\"period\":{\"start\":170,\"end\":270}}]}}",
	  1, 170, 270 },
	{ "an invoice item line (2025 shape) is not the subscription's",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":[{\"parent\":{\"type\":"
	  "\"invoice_item_details\",\"invoice_item_details\":{\"invoice_item\":\"ii_1\"}},"
	  "\"period\":{\"start\":5,\"end\":5}}]}}",
	  0, 0, 0 },
	{ "no lines", "{\"subscription\":\"sub_1\"}", 0, 0, 0 },
	{ "a period that is no unix time",
	  "{\"subscription\":\"sub_1\",\"lines\":{\"data\":[{\"type\":\"subscription\","
	  "\"period\":{\"start\":-1,\"end\":300}}]}}",
	  0, 0, 0 },
};

START_TEST(invoice_period_vectors)
{
	json_t *inv = json_loads(invoices[_i].json, 0, NULL);
	struct bw_period p = { -1, -1 };

	ck_assert_msg(inv != NULL, "vector %s is not JSON", invoices[_i].name);
	int found = bw_sub_period_of_invoice(inv, NULL, &p);
	ck_assert_msg(found == invoices[_i].found, "%s: found %d", invoices[_i].name, found);
	if (found) {
		ck_assert_int_eq(p.start, invoices[_i].start);
		ck_assert_int_eq(p.end, invoices[_i].end);
	}
	ck_assert_str_eq(bw_sub_period_invoice_subscription(inv), "sub_1");
	json_decref(inv);
}
END_TEST

START_TEST(subscription_period_and_paid_invoice)
{
	json_t *s = json_loads("{\"current_period_start\":10,\"current_period_end\":20}", 0, NULL);
	struct bw_period p;
	ck_assert_int_eq(bw_sub_period_of_subscription(s, &p), 1);
	ck_assert_int_eq(p.start, 10);
	json_decref(s);
	s = api_subscription("sub_1", "active", 1); /* on the items */
	ck_assert_int_eq(bw_sub_period_of_subscription(s, &p), 1);
	ck_assert_int_eq(p.start, 1000);
	ck_assert_int_eq(p.end, 2000);
	json_decref(s);

	json_t *inv = json_loads("{\"status\":\"paid\"}", 0, NULL);
	ck_assert_int_eq(bw_sub_period_invoice_paid(inv), 1);
	json_decref(inv);
	inv = json_loads("{\"status\":\"open\",\"paid\":false}", 0, NULL);
	ck_assert_int_eq(bw_sub_period_invoice_paid(inv), 0);
	json_decref(inv);
	inv = json_loads("{\"paid\":true}", 0, NULL);
	ck_assert_int_eq(bw_sub_period_invoice_paid(inv), 1);
	json_decref(inv);
}
END_TEST

START_TEST(a_period_resets_once_and_never_back)
{
	struct bw_period_stored none = { 0, 0, 0, 0 };
	struct bw_period_stored older = { 1, 100, 1, 100 };
	struct bw_period_stored same = { 1, 200, 1, 200 };
	struct bw_period_stored period_moved = { 1, 100, 1, 200 }; /* subscription.updated first */
	struct bw_period_stored newer_period = { 1, 100, 1, 300 };

	ck_assert_int_eq(bw_sub_period_reset_due(&none, 200), 1);
	ck_assert_int_eq(bw_sub_period_reset_due(&older, 200), 1);
	ck_assert_int_eq(bw_sub_period_reset_due(&same, 200), 0);
	ck_assert_int_eq(bw_sub_period_reset_due(&period_moved, 200), 1);
	ck_assert_int_eq(bw_sub_period_reset_due(&newer_period, 200), 0);
}
END_TEST

/* The sync resets only a paid period, as the stripe worker's invoice.paid does. */
START_TEST(the_sync_resets_only_a_paid_period)
{
	struct bw_sub_policy p = { 1 };
	struct bw_sub_state st;
	struct bw_err err;
	json_t *sub = api_subscription("sub_1", "active", 10), *subs;
	json_t *inv = json_pack("{sssssss{s[{sss{sIsI}sbss}]}}", "id", "in_1", "status", "open",
				"subscription", "sub_1", "lines", "data", "type", "subscription",
				"period", "start", (json_int_t)1000, "end", (json_int_t)2000,
				"proration", 0, "subscription", "sub_1");
	struct bw_period_stored old_period = { 1, 500000, 1, 500000 };
	struct bw_period_stored cutover = { 0, 0, 1, 1000000 };

	json_object_set(sub, "latest_invoice", inv);
	subs = json_pack("[o]", sub);
	ck_assert_int_eq(bw_sync_pick_subscription(subs, &p, &st, &err), 0);
	ck_assert_int_eq(st.period_paid, 0); /* open: the new period has not been paid */
	ck_assert_int_eq(bw_sync_reset_due(&st, &old_period), 0);
	json_object_set_new(inv, "status", json_string("paid"));
	ck_assert_int_eq(bw_sync_pick_subscription(subs, &p, &st, &err), 0);
	ck_assert_int_eq(st.period_paid, 1);
	ck_assert_int_eq(bw_sync_reset_due(&st, &old_period), 1);
	/* a document with no reset marker that already holds this period: a cut-over's
	 * opening balance, not a renewal */
	ck_assert_int_eq(bw_sync_reset_due(&st, &cutover), 0);
	/* a paid invoice of another period (a proration-only invoice after a plan change) */
	json_object_set_new(json_array_get(json_object_get(json_object_get(inv, "lines"), "data"), 0),
			    "proration", json_true());
	ck_assert_int_eq(bw_sync_pick_subscription(subs, &p, &st, &err), 0);
	ck_assert_int_eq(st.period_paid, 0);
	json_decref(inv);
	json_decref(subs);
}
END_TEST

START_TEST(stripe_date_header)
{
	ck_assert_int_eq(bw_stripe_api_parse_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
	ck_assert_int_eq(bw_stripe_api_parse_date(""), -1);
	ck_assert_int_eq(bw_stripe_api_parse_date(NULL), -1);
	ck_assert_int_eq(bw_stripe_api_parse_date("not a date"), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sub_policy");
	TCase *tc = tcase_create("pure");

	tcase_add_loop_test(tc, policy_table, 0, NROWS);
	tcase_add_loop_test(tc, policy_table_in_the_sync_worker, 0, NROWS);
	tcase_add_loop_test(tc, policy_table_in_the_stripe_worker, 0, NROWS);
	tcase_add_test(tc, the_base_item_is_marked_else_the_first_unmarked);
	tcase_add_test(tc, ended_statuses_and_the_pending_cancellation);
	tcase_add_loop_test(tc, invoice_period_vectors, 0,
			    (int)(sizeof(invoices) / sizeof(invoices[0])));
	tcase_add_test(tc, subscription_period_and_paid_invoice);
	tcase_add_test(tc, a_period_resets_once_and_never_back);
	tcase_add_test(tc, the_sync_resets_only_a_paid_period);
	tcase_add_test(tc, stripe_date_header);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
