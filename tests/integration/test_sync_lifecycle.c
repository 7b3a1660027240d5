/* Stripe lifecycle end to end, the sync worker's side: its binary (and the stripe worker's
 * for the ordering check) against the real broker, the MongoDB-wire server and the Stripe
 * API stub. The sync applies the one subscription policy both workers share
 * (shared/sub_policy), resets a period only when its invoice is paid, and orders with
 * Stripe's clock (issue #10 items 1, 2, 5 and 6). */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_plans.h"
#include "customer_doc.h"
#include "lifecycle_kit.h"

/* The sync worker under the shared policy: an incomplete subscription gives nothing; an
 * enterprise org (by the backend's organizations document) keeps its plan; a deleted
 * customer is cleared and a new one created with a new idempotency key; another product's
 * customer is recorded and skipped; a new period resets only once its invoice is paid; and
 * the ordering time stored is Stripe's clock (here 10 minutes behind the local one), so a
 * webhook created after the read is applied, not answered stale. */
START_TEST(sync_applies_the_policy_with_stripes_clock)
{
	struct lc e;
	json_t *st = stub_fixture(), *subs, *cust, *invs, *all, *d;
	long long stripe_now = (long long)time(NULL) - 600;
	const char *ent_org = "65a1b2c3d4e5f60718293a4b";

	lc_add_addon_price(st);
	json_object_set_new(st, "now", json_integer(stripe_now));
	subs = json_object_get(st, "subscriptions");
	cust = json_object_get(st, "customers");
	invs = json_object();
	json_object_set_new(st, "invoices", invs);
	json_object_set_new(cust, "cus_inc", json_pack("{sss{ss}}", "id", "cus_inc", "metadata",
							"org_id", "org_inc"));
	json_array_append_new(subs, lc_api_sub("sub_inc", "cus_inc", "incomplete", P0, "price_team",
					    P0, NULL));
	json_object_set_new(cust, "cus_ent", json_pack("{sss{ss}}", "id", "cus_ent", "metadata",
							"org_id", ent_org));
	json_array_append_new(subs, lc_api_sub("sub_ent", "cus_ent", "canceled", P0, "price_team", P0,
					    NULL));
	json_object_set_new(cust, "cus_other", json_pack("{sss{ss}}", "id", "cus_other",
							  "metadata", "product", "other_app"));
	json_object_set_new(cust, "cus_open", json_pack("{sss{ss}}", "id", "cus_open", "metadata",
							 "org_id", "org_open"));
	json_array_append_new(subs, lc_api_sub("sub_org_open", "cus_open", "active", P0, "price_team",
					    P1, "in_open"));
	json_object_set_new(invs, "in_open", lc_api_invoice("in_open", "sub_org_open", "open", P1));
	json_object_set_new(cust, "cus_paid", json_pack("{sss{ss}}", "id", "cus_paid", "metadata",
							 "org_id", "org_paid"));
	json_array_append_new(subs, lc_api_sub("sub_org_paid", "cus_paid", "active", P0, "price_team",
					    P1, "in_paid"));
	json_object_set_new(invs, "in_paid", lc_api_invoice("in_paid", "sub_org_paid", "paid", P1));
	lc_init(&e, "lc_sync", st);

	sk_seed_customer(&e.sk, "org_inc", "cus_inc", 0, 0);
	lc_seed_period(&e, ent_org, "cus_ent", "team", 5000, 10, P0, 2);
	char org_doc[256];
	snprintf(org_doc, sizeof(org_doc),
		 "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Big Co\",\"type\":\"enterprise\"}", ent_org);
	tk_mongo_insert(e.sk.db, "organizations", org_doc);
	sk_seed_customer(&e.sk, "org_gone", "cus_gone", 0, 0);
	lc_seed_period(&e, "org_open", "cus_open", "team", 5000, 300, P0, 4);
	lc_seed_period(&e, "org_paid", "cus_paid", "team", 5000, 300, P0, 4);

	lc_tick(&e, "t_inc", "org_inc", NULL);
	lc_tick(&e, "t_ent", ent_org, NULL);
	lc_tick(&e, "t_gone", "org_gone", NULL);
	lc_tick(&e, "t_gone2", "org_gone", NULL);
	lc_tick(&e, "t_other", NULL, "cus_other");
	lc_tick(&e, "t_open", "org_open", NULL);
	lc_tick(&e, "t_paid", "org_paid", NULL);
	lc_run_sync(&e, NULL);
	all = sk_read_json(e.sk.results, 7);

	lc_expect(all, "t_inc", "applied");
	d = sk_customer(&e.sk, "org_inc");
	ck_assert_str_eq(lc_str(d, "subscription_type"), "none");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 0);
	ck_assert_str_eq(lc_str(d, "stripe_subscription_status"), "incomplete");
	json_decref(d);

	lc_expect(all, "t_ent", "applied");
	d = sk_customer(&e.sk, ent_org);
	ck_assert_str_eq(lc_str(d, "subscription_type"), "team");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 5000);
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 10);
	ck_assert_str_eq(lc_str(d, "stripe_subscription_status"), "active");
	ck_assert_int_eq(tk_int(d, "balance_version"), 2);
	json_decref(d);

	/* the deleted customer is cleared, the next tick creates a new one with a new key */
	lc_expect(all, "t_gone", "applied");
	lc_expect(all, "t_gone2", "applied");
	ck_assert_int_eq(tk_int(json_object_get(lc_last_result(all, "t_gone2"), "counts"),
				"customers_created"), 1);
	d = sk_customer(&e.sk, "org_gone");
	ck_assert_str_eq(lc_str(d, "stripe_customer_id"), "cus_for_org_gone");
	ck_assert_int_eq(tk_int(d, "stripe_customers_deleted"), 1);
	ck_assert_str_eq(lc_str(d, "subscription_type"), "none");
	json_decref(d);
	json_t *reqs = stub_requests(&e.stub), *q;
	size_t i;
	int posts = 0;
	json_array_foreach(reqs, i, q) {
		if (strcmp(lc_str(q, "method"), "POST") != 0)
			continue;
		posts++;
		ck_assert_str_eq(lc_str(q, "idempotency_key"), "bw-sync-customer-org_gone-g1");
		ck_assert_ptr_nonnull(strstr(lc_str(q, "body"), "metadata%5Bproduct%5D=doc_router"));
	}
	ck_assert_int_eq(posts, 1);
	json_decref(reqs);

	/* another product's customer: recorded, skipped, no org document */
	lc_expect(all, "t_other", "skipped");
	d = tk_mongo_find_one(e.sk.db, "payments_foreign_customers", "{\"_id\":\"cus_other\"}");
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(lc_str(d, "product"), "other_app");
	json_decref(d);

	/* a new period resets only when its invoice is paid */
	d = sk_customer(&e.sk, "org_open");
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 300);
	ck_assert_int_eq(tk_int(d, "stripe_current_billing_period_start"),
			 P1);
	json_decref(d);
	d = sk_customer(&e.sk, "org_paid");
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 0);
	ck_assert_int_eq(sk_date_ms(json_object_get(d, "subscription_spus_reset_period_start")),
			 P1 * 1000);
	ck_assert_int_eq(tk_int(d, "balance_version"), 5);
	/* Stripe's clock, not the local one */
	ck_assert_int_eq(tk_int(d, "stripe_subscription_event_created"), stripe_now);
	json_decref(d);
	json_decref(all);

	/* a webhook Stripe created a minute after the sync's read (9 minutes before the local
	 * clock): newer than the read, so applied */
	json_t *ev = sk_fixture("customer_subscription_updated.json");
	sk_set_str(ev, "id", "evt_after_read");
	sk_set_int(ev, "created", stripe_now + 60);
	sk_set_str(ev, "data.object.id", "sub_org_paid");
	sk_set_str(ev, "data.object.customer", "cus_paid");
	sk_set_str(ev, "data.object.metadata.org_id", "org_paid");
	sk_produce(&e.sk, ev);
	json_decref(ev);
	lc_run_stripe(&e, NULL);
	all = sk_read_json(e.sk.results, 8);
	lc_expect(all, "evt_after_read", "applied");
	d = sk_customer(&e.sk, "org_paid");
	ck_assert_str_eq(lc_str(d, "subscription_type"), "business");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 20000);
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 0);
	json_decref(d);
	json_decref(all);
	lc_done(&e);
}
END_TEST

/* The org's GET /v1/orgs/{org}/subscription answer (bw-api's answer function over the
 * stored document; new reference). */
static json_t *shown(struct lc *e, const char *org)
{
	json_t *d = sk_customer(&e->sk, org), *ans = bw_api_subscription_state(org, d);

	ck_assert_ptr_nonnull(ans);
	json_decref(d);
	return ans;
}

/* $set of the stored cancel flag (a value an earlier writer left). */
static void seed_cancel_flag(struct lc *e, const char *org, int v)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "{\"update\":\"payments_customers\",\"updates\":[{\"q\":{\"org_id\":\"%s\"},"
		 "\"u\":{\"$set\":{\"%s\":%s}}}]}", org, BW_CUST_CANCEL_AT_END,
		 v ? "true" : "false");
	json_decref(tk_mongo_command(e->sk.db, cmd));
}

/* A stub subscription of org's customer with Stripe's cancel fields. */
static json_t *cancel_sub(const char *org, const char *status, int at_period_end,
			  long long cancel_at)
{
	char sub[64], cus[64];
	json_t *s;

	snprintf(sub, sizeof(sub), "sub_%s", org);
	snprintf(cus, sizeof(cus), "cus_%s", org);
	s = lc_api_sub(sub, cus, status, P0, "price_team", P1, NULL);
	json_object_set_new(s, "cancel_at_period_end", json_boolean(at_period_end));
	json_object_set_new(s, "cancel_at", cancel_at ? json_integer(cancel_at) : json_null());
	return s;
}

/* The sync reconciles cancel_at_period_end and cancel_at from the API's subscription
 * objects (a cancellation in the billing portal whose webhook was lost shows after a
 * customer sync): set, cleared (undone in Stripe), cleared for an ended subscription; a
 * webhook stored after the API read is newer and kept. */
START_TEST(sync_reconciles_cancel_at_period_end)
{
	struct lc e;
	json_t *st = stub_fixture(), *subs, *cust, *all, *ans;
	long long stripe_now = (long long)time(NULL), end = P1 + 2592000;
	const char *orgs[] = { "org_sx_set", "org_sx_undo", "org_sx_end", "org_sx_new" };
	const char *tick[] = { "t_sx_set", "t_sx_undo", "t_sx_end", "t_sx_new" };

	lc_add_addon_price(st);
	json_object_set_new(st, "now", json_integer(stripe_now));
	subs = json_object_get(st, "subscriptions");
	cust = json_object_get(st, "customers");
	for (size_t i = 0; i < 4; i++) {
		char cus[64];
		snprintf(cus, sizeof(cus), "cus_%s", orgs[i]);
		json_object_set_new(cust, cus, json_pack("{sss{ss}}", "id", cus, "metadata",
							 "org_id", orgs[i]));
	}
	json_array_append_new(subs, cancel_sub("org_sx_set", "active", 1, end));
	json_array_append_new(subs, cancel_sub("org_sx_undo", "active", 0, 0));
	json_array_append_new(subs, cancel_sub("org_sx_end", "canceled", 1, end));
	json_array_append_new(subs, cancel_sub("org_sx_new", "active", 0, 0));
	lc_init(&e, "lc_sync_cancel", st);
	for (size_t i = 0; i < 4; i++) {
		char cus[64];
		snprintf(cus, sizeof(cus), "cus_%s", orgs[i]);
		lc_seed_period(&e, orgs[i], cus, "team", 5000, 10, P1, 1);
	}
	seed_cancel_flag(&e, "org_sx_undo", 1);
	seed_cancel_flag(&e, "org_sx_end", 1);
	/* cancelled by a webhook Stripe created after the sync's read */
	seed_cancel_flag(&e, "org_sx_new", 1);
	sk_set_customer_int(&e.sk, "org_sx_new", "stripe_subscription_event_created",
			    stripe_now + 3600);
	for (size_t i = 0; i < 4; i++)
		lc_tick(&e, tick[i], orgs[i], NULL);
	lc_run_sync(&e, NULL);
	all = sk_read_json(e.sk.results, 4);
	for (size_t i = 0; i < 4; i++)
		lc_expect(all, tick[i], "applied");
	json_decref(all);

	ans = shown(&e, "org_sx_set");
	ck_assert(json_is_true(json_object_get(ans, "cancel_at_period_end")));
	ck_assert_int_eq(tk_int(ans, "cancel_at"), end);
	json_decref(ans);
	ans = shown(&e, "org_sx_undo");
	ck_assert(json_is_false(json_object_get(ans, "cancel_at_period_end")));
	ck_assert(json_is_null(json_object_get(ans, "cancel_at")));
	json_decref(ans);
	ans = shown(&e, "org_sx_end");
	ck_assert_str_eq(lc_str(ans, "status"), "canceled");
	ck_assert(json_is_false(json_object_get(ans, "cancel_at_period_end")));
	ck_assert(json_is_null(json_object_get(ans, "cancel_at")));
	json_decref(ans);
	ans = shown(&e, "org_sx_new");
	ck_assert(json_is_true(json_object_get(ans, "cancel_at_period_end")));
	json_decref(ans);
	lc_done(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sync_lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, sync_applies_the_policy_with_stripes_clock);
	tcase_add_test(tc, sync_reconciles_cancel_at_period_end);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
