/* Stripe lifecycle end to end, as real Stripe accounts send it: the stripe worker binary
 * (and the sync worker's where the two meet) against the real broker, the MongoDB-wire
 * server and the Stripe API stub, payloads in the 2025 API shapes and the older ones, every
 * balance asserted. The stripe worker applies the one subscription policy both workers share
 * (shared/sub_policy): issue #10's sequences of items 1, 2 and 5. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "api_kit.h"
#include "api_plans.h"
#include "customer_doc.h"
#include "lifecycle_kit.h"

/* Every sequence of the issue through the stripe worker, balances asserted (every balance
 * write bumps balance_version by one). */
START_TEST(stripe_worker_sequences)
{
	struct lc e;
	json_t *all, *d;
	long long T = 1765000000;
	const char *ent_org = "65a1b2c3d4e5f60718293a4c";

	lc_init(&e, "lc_stripe", NULL);
	/* incomplete then active, then its first invoice */
	sk_seed_customer(&e.sk, "org_ia", "cus_ia", 0, 50);
	lc_send(&e, lc_sub_event("evt_ia1", "customer.subscription.created", T + 1, "sub_ia", "cus_ia",
			   "org_ia", "incomplete", "team", 5000, P1));
	lc_send(&e, lc_sub_event("evt_ia2", "customer.subscription.updated", T + 2, "sub_ia", "cus_ia",
			   "org_ia", "active", "team", 5000, P1));
	lc_send(&e, lc_invoice_2025("in_ia", T + 3, "cus_ia", "org_ia", "sub_ia", "subscription_create",
			      P1));
	/* incomplete then expired */
	sk_seed_customer(&e.sk, "org_ie", "cus_ie", 0, 0);
	lc_send(&e, lc_sub_event("evt_ie1", "customer.subscription.created", T + 1, "sub_ie", "cus_ie",
			   "org_ie", "incomplete", "team", 5000, P1));
	lc_send(&e, lc_sub_event("evt_ie2", "customer.subscription.updated", T + 2, "sub_ie", "cus_ie",
			   "org_ie", "incomplete_expired", "team", 5000, P1));
	/* renewal after an upgrade: 2025 shape, older shape, and a cycle restart */
	lc_seed_period(&e, "org_up", "cus_up", "team", 5000, 4000, P0, 1);
	lc_send(&e, lc_sub_event("evt_up1", "customer.subscription.updated", T + 1, "sub_org_up",
			   "cus_up", "org_up", "active", "business", 20000, P0));
	lc_send(&e, lc_invoice_2025("in_up", T + 2, "cus_up", "org_up", "sub_org_up",
			      "subscription_cycle", P1));
	lc_seed_period(&e, "org_old", "cus_old", "team", 5000, 4000, P0, 1);
	lc_send(&e, lc_sub_event("evt_old1", "customer.subscription.updated", T + 1, "sub_org_old",
			   "cus_old", "org_old", "active", "business", 20000, P0));
	lc_send(&e, lc_invoice_old("in_old", T + 2, "cus_old", "sub_org_old", "subscription_cycle", P1));
	lc_send(&e, lc_invoice_old("in_old", T + 3, "cus_old", "sub_org_old", "subscription_cycle", P1));
	lc_seed_period(&e, "org_cyc", "cus_cyc", "team", 5000, 700, P0, 1);
	lc_send(&e, lc_invoice_2025("in_cyc", T + 2, "cus_cyc", "org_cyc", "sub_org_cyc",
			      "subscription_update", P0 + 864000));
	lc_seed_period(&e, "org_pro", "cus_pro", "team", 5000, 700, P0, 1);
	json_t *pro = lc_invoice_2025("in_pro", T + 2, "cus_pro", "org_pro", "sub_org_pro",
				   "subscription_update", P0);
	json_array_remove(json_object_get(json_object_get(json_object_get(json_object_get(pro,
		"data"), "object"), "lines"), "data"), 1); /* proration lines only */
	lc_send(&e, pro);
	/* enterprise orgs: by subscription_type, and by the backend's organizations */
	lc_seed_period(&e, "org_ent", "cus_ent", "enterprise", 0, 123, P0, 1);
	lc_send(&e, lc_sub_event("evt_ent1", "customer.subscription.deleted", T + 1, "sub_org_ent",
			   "cus_ent", "org_ent", "canceled", "team", 5000, P0));
	char org_doc[256];
	snprintf(org_doc, sizeof(org_doc),
		 "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Big Co\",\"type\":\"enterprise\"}", ent_org);
	tk_mongo_insert(e.sk.db, "organizations", org_doc);
	lc_seed_period(&e, ent_org, "cus_ent2", "team", 5000, 10, P0, 1);
	lc_send(&e, lc_sub_event("evt_ent2", "customer.subscription.deleted", T + 1, "sub_65a1b2c3d4e5f60718293a4c",
			   "cus_ent2", ent_org, "canceled", "team", 5000, P0));
	/* past_due keeps the allowance (default) */
	lc_seed_period(&e, "org_pd", "cus_pd", "team", 5000, 10, P0, 1);
	lc_send(&e, lc_sub_event("evt_pd", "customer.subscription.updated", T + 1, "sub_org_pd",
			   "cus_pd", "org_pd", "past_due", "team", 5000, P0));
	/* the other mode (the worker runs with STRIPE_LIVEMODE=false) */
	sk_seed_customer(&e.sk, "org_live", "cus_live", 0, 0);
	json_t *live = lc_sub_event("evt_live", "customer.subscription.created", T + 1, "sub_live",
				 "cus_live", "org_live", "active", "team", 5000, P0);
	sk_set(live, "livemode", json_true());
	lc_send(&e, live);
	/* another product's customer, recorded by the sync: no org, no DLQ, no tick */
	tk_mongo_insert(e.sk.db, "payments_foreign_customers",
			"{\"_id\":\"cus_foreign\",\"stripe_customer_id\":\"cus_foreign\","
			"\"product\":\"other_app\"}");
	lc_send(&e, lc_sub_event("evt_foreign", "customer.subscription.created", T + 1, "sub_f",
			   "cus_foreign", NULL, "active", "team", 5000, P0));
	/* customer.deleted clears the customer and its subscription */
	lc_seed_period(&e, "org_cd", "cus_cd", "team", 5000, 10, P0, 1);
	json_t *cd = json_pack("{sssssIsbs{s{sssssbs{ss}}}}", "id", "evt_cd", "type",
			       "customer.deleted", "created", (json_int_t)(T + 1), "livemode", 0,
			       "data", "object", "id", "cus_cd", "object", "customer", "deleted", 1,
			       "metadata", "org_id", "org_cd");
	lc_send(&e, cd);
	/* the deletion of a subscription that is not the stored one: a customer sync tick */
	lc_seed_period(&e, "org_nd", "cus_nd", "team", 5000, 10, P0, 1);
	lc_send(&e, lc_sub_event("evt_nd", "customer.subscription.deleted", T + 1, "sub_not_stored",
			   "cus_nd", "org_nd", "canceled", "team", 5000, P0));

	const char *extra[] = { "STRIPE_LIVEMODE=false", NULL };
	lc_run_stripe(&e, extra);
	all = sk_read_json(e.sk.results, 19);

	lc_expect(all, "evt_ia1", "applied");
	lc_expect(all, "evt_ia2", "applied");
	lc_expect(all, "in_ia", "applied");
	lc_expect_doc(&e, "org_ia", "team", 5000, 0, "active", 4);

	lc_expect(all, "evt_ie1", "applied");
	lc_expect(all, "evt_ie2", "applied");
	lc_expect_doc(&e, "org_ie", "none", 0, 0, "incomplete_expired", 3);

	/* the plan change takes the new allowance at once, the usage carries over, and the
	 * renewal (proration lines first) resets it */
	lc_expect(all, "evt_up1", "applied");
	lc_expect(all, "in_up", "applied");
	lc_expect_doc(&e, "org_up", "business", 20000, 0, "active", 3);
	d = sk_customer(&e.sk, "org_up");
	ck_assert_int_eq(sk_date_ms(json_object_get(d, "subscription_spus_reset_period_start")),
			 P1 * 1000);
	ck_assert_int_eq(tk_int(d, "stripe_current_billing_period_start"),
			 P1);
	json_decref(d);
	lc_expect(all, "evt_old1", "applied");
	ck_assert_str_eq(sk_status(sk_result(all, "in_old", 0)), "applied");
	ck_assert_str_eq(sk_status(sk_result(all, "in_old", 1)), "duplicate");
	lc_expect_doc(&e, "org_old", "business", 20000, 0, "active", 3);
	/* billing_reason subscription_update with a new period start: resets; a proration-only
	 * invoice of the same period does not */
	lc_expect(all, "in_cyc", "applied");
	lc_expect_doc(&e, "org_cyc", "team", 5000, 0, "active", 2);
	lc_expect(all, "in_pro", "ignored");
	lc_expect_doc(&e, "org_pro", "team", 5000, 700, "active", 1);

	/* enterprise orgs: recorded, ignored with the reason, unchanged */
	lc_expect(all, "evt_ent1", "ignored");
	ck_assert_ptr_nonnull(strstr(lc_str(lc_last_result(all, "evt_ent1"), "reason"), "enterprise"));
	lc_expect_doc(&e, "org_ent", "enterprise", 0, 123, "active", 1);
	lc_expect(all, "evt_ent2", "ignored");
	lc_expect_doc(&e, ent_org, "team", 5000, 10, "active", 1);
	d = tk_mongo_find_one(e.sk.db, "payments_stripe_events", "{\"event_id\":\"evt_ent1\"}");
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(lc_str(d, "status"), "ignored");
	json_decref(d);

	lc_expect(all, "evt_pd", "applied");
	lc_expect_doc(&e, "org_pd", "team", 5000, 10, "past_due", 2);

	lc_expect(all, "evt_live", "ignored");
	lc_expect_doc(&e, "org_live", "none", 0, 0, NULL, 1);
	d = tk_mongo_find_one(e.sk.db, "payments_stripe_events", "{\"event_id\":\"evt_live\"}");
	ck_assert_ptr_nonnull(d);
	json_decref(d);

	lc_expect(all, "evt_foreign", "ignored");

	lc_expect(all, "evt_cd", "applied");
	d = sk_customer(&e.sk, "org_cd");
	ck_assert_ptr_null(json_object_get(d, "stripe_customer_id"));
	ck_assert_ptr_null(json_object_get(d, "stripe_subscription_id"));
	ck_assert_int_eq(tk_int(d, "stripe_customers_deleted"), 1);
	json_decref(d);
	lc_expect_doc(&e, "org_cd", "none", 0, 10, "canceled", 2);

	lc_expect(all, "evt_nd", "stale");
	lc_expect_doc(&e, "org_nd", "team", 5000, 10, "active", 1);
	json_decref(all);

	/* ticks: the deletion that is not the stored one asked for one; the foreign customer
	 * and the other mode for none */
	json_t *ticks = sk_read_json(e.sk.ticks, 1), *t;
	size_t i;
	int nd = 0;
	json_array_foreach(ticks, i, t) {
		const char *cus = lc_str(t, "stripe_customer_id");
		ck_assert_str_ne(cus, "cus_foreign");
		ck_assert_str_ne(cus, "cus_live");
		if (strcmp(lc_str(t, "org_id"), "org_nd") == 0)
			nd++;
	}
	ck_assert_int_eq(nd, 1);
	json_decref(ticks);
	struct tk_msg *msgs = NULL;
	size_t dlq = tk_consume(e.sk.dlq, 1, 1500, &msgs);
	tk_msgs_free(msgs, dlq);
	ck_assert_uint_eq(dlq, 0);
	lc_done(&e);
}
END_TEST

/* Another product's customer end to end: its first event waits for the customer sync (one
 * tick); the sync finds the customer tagged with another product and records it; the
 * waiting event and every later one are recorded and ignored: no DLQ, no further tick. */
START_TEST(another_products_customer_costs_one_tick)
{
	struct lc e;
	json_t *st = stub_fixture(), *all;
	struct tk_msg *msgs = NULL;

	json_object_set_new(json_object_get(st, "customers"), "cus_other",
			    json_pack("{sss{ss}}", "id", "cus_other", "metadata", "product",
				      "other_app"));
	lc_init(&e, "lc_foreign", st);
	lc_send(&e, lc_sub_event("evt_o1", "customer.subscription.created", 1765000001, "sub_o",
			      "cus_other", NULL, "active", "team", 5000, P0));
	/* the stripe worker waits (backing off, a tick per wait) while the sync runs */
	const char *waits[] = { "STRIPE_UNKNOWN_CUSTOMER_RETRIES=40", "STRIPE_BACKOFF_MAX_MS=300",
				NULL };
	pid_t pid = lc_spawn_stripe(&e, waits);
	lc_run_sync(&e, NULL);
	ck_assert_int_eq(tk_wait(pid, 60000), 0);
	size_t ticks_before = tk_consume(e.sk.ticks, 1000, 1500, &msgs);
	tk_msgs_free(msgs, ticks_before);
	ck_assert_uint_ge(ticks_before, 1);

	/* recorded as another product's: this event and the next are ignored, no tick */
	lc_send(&e, lc_sub_event("evt_o2", "customer.subscription.updated", 1765000002, "sub_o",
			      "cus_other", NULL, "active", "team", 5000, P0));
	lc_run_stripe(&e, waits);
	all = lc_read_all(e.sk.results);
	lc_expect(all, "evt_o1", "ignored");
	lc_expect(all, "evt_o2", "ignored");
	lc_expect(all, lc_last_tick_id(all), "skipped");
	json_decref(all);
	size_t ticks_after = tk_consume(e.sk.ticks, 1000, 1500, &msgs);
	tk_msgs_free(msgs, ticks_after);
	ck_assert_uint_eq(ticks_after, ticks_before);
	size_t dlq = tk_consume(e.sk.dlq, 1, 1000, &msgs);
	tk_msgs_free(msgs, dlq);
	ck_assert_uint_eq(dlq, 0);
	lc_done(&e);
}
END_TEST

/* customer.subscription.* with cancel_at_period_end (and cancel_at) as Stripe sends it. */
static json_t *cancel_event(const char *id, const char *type, long long created, const char *org,
			    const char *status, int at_period_end, long long cancel_at)
{
	char sub[64], cus[64];
	json_t *ev;

	snprintf(sub, sizeof(sub), "sub_%s", org);
	snprintf(cus, sizeof(cus), "cus_%s", org);
	ev = lc_sub_event(id, type, created, sub, cus, org, status, "team", 5000, P0);
	sk_set(ev, "data.object.cancel_at_period_end", json_boolean(at_period_end));
	sk_set(ev, "data.object.cancel_at", cancel_at ? json_integer(cancel_at) : json_null());
	return ev;
}

/* What GET /v1/orgs/{org}/subscription answers from the org's stored document (bw-api's own
 * answer function; new reference). */
static json_t *shown(struct lc *e, const char *org)
{
	json_t *d = sk_customer(&e->sk, org), *ans = bw_api_subscription_state(org, d);

	ck_assert_ptr_nonnull(ans);
	json_decref(d);
	return ans;
}

static void expect_cancel(struct lc *e, const char *org, int at_period_end, long long cancel_at)
{
	json_t *ans = shown(e, org);
	json_t *v = json_object_get(ans, "cancel_at_period_end");

	ck_assert_msg(json_is_boolean(v) && json_boolean_value(v) == at_period_end,
		      "%s: cancel_at_period_end %s, want %d", org, json_is_true(v) ? "true" : "false",
		      at_period_end);
	if (cancel_at)
		ck_assert_int_eq(tk_int(ans, "cancel_at"), cancel_at);
	else
		ck_assert_msg(json_is_null(json_object_get(ans, "cancel_at")), "%s: cancel_at set",
			      org);
	json_decref(ans);
}

/* A cancellation made in Stripe (billing portal, dashboard) shows in bw-api's subscription
 * read: the stripe worker stores cancel_at_period_end and cancel_at from every subscription
 * event it applies, under its ordering (an older event is stale and changes nothing); an
 * ended subscription (deleted) has nothing pending: both cleared. */
START_TEST(cancel_at_period_end_follows_subscription_events)
{
	struct lc e;
	json_t *all;
	long long T = 1766000000, at = P1 + 86400;
	const char *orgs[] = { "org_cx_set", "org_cx_clear", "org_cx_old", "org_cx_del",
			       "org_cx_at" };

	lc_init(&e, "lc_cancel", NULL);
	for (size_t i = 0; i < sizeof(orgs) / sizeof(orgs[0]); i++) {
		char cus[64];
		snprintf(cus, sizeof(cus), "cus_%s", orgs[i]);
		lc_seed_period(&e, orgs[i], cus, "team", 5000, 10, P0, 1);
	}
	/* cancelled in the portal */
	lc_send(&e, cancel_event("evt_cx1", "customer.subscription.updated", T + 10, "org_cx_set",
				 "active", 1, 0));
	/* cancelled, then undone */
	lc_send(&e, cancel_event("evt_cx2", "customer.subscription.updated", T + 10, "org_cx_clear",
				 "active", 1, 0));
	lc_send(&e, cancel_event("evt_cx3", "customer.subscription.updated", T + 20, "org_cx_clear",
				 "active", 0, 0));
	/* cancelled, then an older event (before the cancel) arrives late */
	lc_send(&e, cancel_event("evt_cx4", "customer.subscription.updated", T + 20, "org_cx_old",
				 "active", 1, 0));
	lc_send(&e, cancel_event("evt_cx5", "customer.subscription.created", T + 5, "org_cx_old",
				 "active", 0, 0));
	/* cancelled at the period's end, then the period ended: deleted (Stripe keeps the flag) */
	lc_send(&e, cancel_event("evt_cx6", "customer.subscription.updated", T + 10, "org_cx_del",
				 "active", 1, P1));
	lc_send(&e, cancel_event("evt_cx7", "customer.subscription.deleted", T + 20, "org_cx_del",
				 "canceled", 1, P1));
	/* cancelled on a custom date in the dashboard */
	lc_send(&e, cancel_event("evt_cx8", "customer.subscription.updated", T + 10, "org_cx_at",
				 "active", 0, at));
	lc_run_stripe(&e, NULL);
	all = sk_read_json(e.sk.results, 8);

	lc_expect(all, "evt_cx1", "applied");
	expect_cancel(&e, "org_cx_set", 1, 0);
	lc_expect(all, "evt_cx3", "applied");
	expect_cancel(&e, "org_cx_clear", 0, 0);
	lc_expect(all, "evt_cx4", "applied");
	lc_expect(all, "evt_cx5", "stale");
	expect_cancel(&e, "org_cx_old", 1, 0);
	lc_expect(all, "evt_cx7", "applied");
	expect_cancel(&e, "org_cx_del", 0, 0);
	json_t *ans = shown(&e, "org_cx_del");
	ck_assert_str_eq(lc_str(ans, "status"), "canceled");
	json_decref(ans);
	lc_expect(all, "evt_cx8", "applied");
	expect_cancel(&e, "org_cx_at", 0, at);
	/* the field bw-api reads is the one the worker writes */
	json_t *d = sk_customer(&e.sk, "org_cx_set");
	ck_assert(json_is_true(json_object_get(d, BW_CUST_CANCEL_AT_END)));
	json_decref(d);
	json_decref(all);
	lc_done(&e);
}
END_TEST

/* bw-api's cancel orders the stripe worker's subscription events: after Stripe answers it,
 * the org's subscription state is stored with Stripe's clock (the answer's Date: the stub's
 * "now") as the ordering marker, so an event created before the cancel but delivered after
 * it is stale and cannot flip cancel_at_period_end back; the cancel's own event, created in
 * that same second, is deferred to the Stripe API (a customer tick), as any same-second
 * event. */
START_TEST(api_cancel_orders_subscription_events)
{
	const long long now = 1766000000;
	struct lc e;
	struct ak_api api;
	char base[128], doc[512];
	json_t *st = stub_fixture(), *j, *all, *ev;

	json_object_set_new(st, "now", json_integer(now));
	lc_init(&e, "lc_api_cancel", st);
	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
		 "\"subscription_type\":\"team\",\"subscription_spu_allowance\":5000,"
		 "\"stripe_subscription_id\":\"sub_alpha\",\"stripe_subscription_status\":"
		 "\"active\",\"subscription_cancel_at_period_end\":false,"
		 "\"stripe_subscription_event_created\":{\"$numberLong\":\"%lld\"},"
		 "\"balance_version\":1}", now - 100);
	tk_mongo_insert(e.sk.db, "payments_customers", doc);
	snprintf(base, sizeof(base), "STRIPE_API_BASE=%s", e.stub.url);
	const char *const extra[] = { base, "STRIPE_SECRET_KEY=sk_test_lc", NULL };
	ak_start(&api, tk_brokers(), e.sk.topic, e.sk.db, extra);
	j = ak_call(&api, "DELETE", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	ak_stop(&api);
	j = sk_customer(&e.sk, "org_alpha");
	ck_assert_int_eq(tk_int(j, "stripe_subscription_event_created"), now);
	json_decref(j);
	expect_cancel(&e, "org_alpha", 1, 0);

	ev = lc_sub_event("evt_before", "customer.subscription.updated", now - 10, "sub_alpha",
			  "cus_alpha", "org_alpha", "active", "team", 5000, P0);
	sk_set(ev, "data.object.cancel_at_period_end", json_false());
	lc_send(&e, ev);
	ev = lc_sub_event("evt_cancel", "customer.subscription.updated", now, "sub_alpha",
			  "cus_alpha", "org_alpha", "active", "team", 5000, P0);
	sk_set(ev, "data.object.cancel_at_period_end", json_true());
	lc_send(&e, ev);
	lc_run_stripe(&e, NULL);
	all = sk_read_json(e.sk.results, 2);
	lc_expect(all, "evt_before", "stale");
	lc_expect(all, "evt_cancel", "deferred");
	expect_cancel(&e, "org_alpha", 1, 0);
	json_decref(all);
	lc_done(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, stripe_worker_sequences);
	tcase_add_test(tc, another_products_customer_costs_one_tick);
	tcase_add_test(tc, cancel_at_period_end_follows_subscription_events);
	tcase_add_test(tc, api_cancel_orders_subscription_events);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
