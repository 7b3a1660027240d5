/* Integration tests of the stripe worker binary against the real broker and MongoDB-wire
 * server, with events shaped like real Stripe payloads (tests/fixtures/stripe): credits once
 * per checkout session, subscription ordering, billing-period resets once, unknown
 * customers waiting then DLQ, ignored and malformed events, and a 2000-event throughput run. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static json_t *event(const char *fixture, const char *id, long long created)
{
	json_t *ev = sk_fixture(fixture);
	sk_set_str(ev, "id", id);
	if (created)
		sk_set_int(ev, "created", created);
	return ev;
}

/* Reads want DLQ records; the first one's dlq.reason header must contain needle. */
static void expect_dlq_reason(const struct sk_env *env, size_t want, const char *needle)
{
	struct tk_msg *msgs = NULL;
	char *reason;

	ck_assert_uint_eq(tk_consume(env->dlq, want, 20000, &msgs), want);
	reason = tk_header(&msgs[0], "dlq.reason");
	ck_assert_msg(reason && strstr(reason, needle), "dlq.reason %s, want %s",
		      reason ? reason : "(none)", needle);
	free(reason);
	tk_msgs_free(msgs, want);
}

static json_t *checkout(const char *id, const char *org, const char *cus, const char *sid,
			const char *credits)
{
	return sk_checkout(id, sid, cus, org, credits);
}

START_TEST(checkout_credits_once_per_session)
{
	struct sk_env env;
	const char *extra[] = { "FREE_GRANT_SPUS=100", NULL };
	json_t *ev, *all, *doc, *dlq;
	struct tk_msg *msgs = NULL;

	sk_env_init(&env, "stripe_checkout", BW_STRIPE_WORKER_PATH);
	ev = checkout("evt_c1", "org-c", "cus_c", "cs_A", "500");
	sk_produce(&env, ev);
	sk_produce(&env, ev);                                    /* same event again */
	json_decref(ev);
	ev = event("checkout_session_async_payment_succeeded.json", "evt_c2", 0);
	sk_set_str(ev, "data.object.id", "cs_A");                /* other event, same session */
	sk_set_str(ev, "data.object.customer", "cus_c");
	sk_set_str(ev, "data.object.metadata.org_id", "org-c");
	sk_set_str(ev, "data.object.metadata.credits", "500");
	sk_produce_free(&env, ev);
	ev = event("checkout_session_completed_unpaid.json", "evt_c3", 0);
	sk_set_str(ev, "data.object.customer", "cus_c");
	sk_set_str(ev, "data.object.metadata.org_id", "org-c");
	sk_produce_free(&env, ev);                              /* cs_test_async1, unpaid */
	ev = event("checkout_session_async_payment_succeeded.json", "evt_c4", 0);
	sk_set_str(ev, "data.object.customer", "cus_c");
	sk_set_str(ev, "data.object.metadata.org_id", "org-c");
	sk_produce_free(&env, ev);                              /* cs_test_async1 paid: 200 */
	sk_produce_free(&env, event("unknown_type.json", "evt_c5", 0));
	ev = event("checkout_session_bad_credits.json", "evt_c6", 0);
	sk_produce_free(&env, ev);
	tk_produce(env.topic, "k", "this is not json");
	ev = checkout("evt_c8", "org-c", "cus_c", "cs_C", "7");
	json_object_del(json_object_get(json_object_get(json_object_get(ev, "data"), "object"),
					"metadata"), "org_id");          /* org from the mapping */
	sk_set_int(ev, "data.object.metadata.credits", 7);
	sk_produce_free(&env, ev);

	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);

	doc = sk_customer(&env, "org-c");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 707);
	ck_assert_int_eq(tk_int(doc, "granted_credits"), 100);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 4); /* created + 3 credits */
	ck_assert_str_eq(json_string_value(json_object_get(doc, "stripe_customer_id")), "cus_c");
	json_decref(doc);
	doc = tk_mongo_find(env.db, "payments_credit_transactions", "{\"state\":\"applied\"}");
	ck_assert_int_eq(json_array_size(doc), 3);
	json_decref(doc);
	doc = tk_mongo_find(env.db, "payments_stripe_events", "{\"state\":\"done\"}");
	ck_assert_int_eq(json_array_size(doc), 6); /* every well-formed event, once */
	json_decref(doc);

	all = sk_read_json(env.results, 9);
	sk_expect_status(all, "evt_c1", 0, "applied");
	sk_expect_status(all, "evt_c1", 1, "duplicate");
	sk_expect_status(all, "evt_c2", 0, "duplicate");
	sk_expect_status(all, "evt_c3", 0, "deferred");
	sk_expect_status(all, "evt_c4", 0, "applied");
	sk_expect_status(all, "evt_c5", 0, "ignored");
	sk_expect_status(all, "evt_c6", 0, "rejected");
	sk_expect_status(all, "evt_c8", 0, "applied");
	ck_assert_str_eq(json_string_value(json_object_get(sk_result(all, "evt_c8", 0), "org_id")),
			 "org-c");
	ck_assert_int_eq(tk_int(json_object_get(sk_result(all, "evt_c1", 0), "details"), "credits"),
			 500);
	json_decref(all);

	ck_assert_int_eq(tk_consume(env.dlq, 2, 20000, &msgs), 2);
	for (int i = 0; i < 2; i++) {
		char *reason = tk_header(&msgs[i], "dlq.reason");
		ck_assert_ptr_nonnull(reason);
		if (strstr(msgs[i].value, "evt_c6"))
			ck_assert_msg(strstr(reason, "metadata.credits") != NULL, "%s", reason);
		free(reason);
	}
	tk_msgs_free(msgs, 2);
	(void)dlq;
	tk_mongo_drop(env.db);
}
END_TEST

static json_t *sub_event(const char *fixture, const char *id, long long created,
			 const char *sub, const char *status)
{
	json_t *ev = event(fixture, id, created);
	sk_set_str(ev, "data.object.id", sub);
	sk_set_str(ev, "data.object.customer", "cus_s");
	if (status)
		sk_set_str(ev, "data.object.status", status);
	return ev;
}

START_TEST(subscription_events_out_of_order)
{
	struct sk_env env;
	json_t *doc, *all, *ticks;

	sk_env_init(&env, "stripe_subs", BW_STRIPE_WORKER_PATH);
	sk_seed_customer(&env, "org-s", "cus_s", 0, 40);
	sk_produce_free(&env, sub_event("customer_subscription_created.json", "evt_s1", 1000,
					 "sub_A", NULL));
	sk_produce_free(&env, sub_event("customer_subscription_updated.json", "evt_s3", 1200,
					 "sub_A", NULL));  /* business, 20000 */
	sk_produce_free(&env, sub_event("customer_subscription_created.json", "evt_s2", 1100,
					 "sub_A", NULL));  /* older: stale */
	sk_produce_free(&env, sub_event("customer_subscription_updated.json", "evt_s3", 1200,
					 "sub_A", NULL));  /* same event again */
	sk_produce_free(&env, sub_event("customer_subscription_created.json", "evt_s4", 1200,
					 "sub_A", NULL));  /* same second: tick */
	sk_produce_free(&env, sub_event("customer_subscription_updated.json", "evt_s5", 1300,
					 "sub_A", "incomplete")); /* backwards: tick */
	sk_produce_free(&env, sub_event("customer_subscription_created.json", "evt_n1", 1400,
					 "sub_B", NULL));  /* a new subscription, team */
	sk_produce_free(&env, sub_event("customer_subscription_deleted.json", "evt_d1", 1500,
					 "sub_A", NULL));  /* old one deleted: new kept */
	sk_produce_free(&env, sub_event("customer_subscription_deleted.json", "evt_d2", 1350,
					 "sub_B", NULL));  /* older than stored: stale */
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);

	doc = sk_customer(&env, "org-s");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "stripe_subscription_id")), "sub_B");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "subscription_type")), "team");
	ck_assert_int_eq(tk_int(doc, "subscription_spu_allowance"), 5000);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "stripe_subscription_status")),
			 "active");
	ck_assert_int_eq(tk_int(doc, "stripe_subscription_event_created"), 1400);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 4); /* seed 1 + s1, s3, n1 */
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 40); /* untouched */
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_start"),
			 1718000000LL);
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_end"),
			 1720592000LL);
	json_decref(doc);
	all = sk_read_json(env.results, 9);
	sk_expect_status(all, "evt_s1", 0, "applied");
	sk_expect_status(all, "evt_s3", 0, "applied");
	sk_expect_status(all, "evt_s2", 0, "stale");
	sk_expect_status(all, "evt_s3", 1, "duplicate");
	sk_expect_status(all, "evt_s4", 0, "deferred");
	sk_expect_status(all, "evt_s5", 0, "deferred");
	sk_expect_status(all, "evt_n1", 0, "applied");
	sk_expect_status(all, "evt_d1", 0, "stale");
	sk_expect_status(all, "evt_d2", 0, "stale");
	json_decref(all);
	ticks = sk_read_json(env.ticks, 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *t = json_array_get(ticks, i);
		ck_assert_str_eq(json_string_value(json_object_get(t, "scope")), "customer");
		ck_assert_str_eq(json_string_value(json_object_get(t, "org_id")), "org-s");
		ck_assert_str_eq(json_string_value(json_object_get(t, "stripe_customer_id")), "cus_s");
	}
	json_decref(ticks);

	/* A newer delete of the current subscription clears it. */
	sk_produce_free(&env, sub_event("customer_subscription_deleted.json", "evt_d3", 1600,
					 "sub_B", NULL));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-s");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "subscription_type")), "none");
	ck_assert_int_eq(tk_int(doc, "subscription_spu_allowance"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "stripe_subscription_status")),
			 "canceled");
	ck_assert_int_eq(tk_int(doc, "balance_version"), 5);
	json_decref(doc);
	tk_mongo_drop(env.db);
}
END_TEST

static json_t *invoice(const char *fixture, const char *id, const char *sub, long long start,
		       long long end)
{
	json_t *ev = event(fixture, id, 0);
	sk_set_str(ev, "data.object.customer", "cus_i");
	/* the invoice's subscription, and its own line's (the line that gives the period) */
	if (json_object_get(json_object_get(json_object_get(ev, "data"), "object"), "parent")) {
		sk_set_str(ev, "data.object.parent.subscription_details.subscription", sub);
		sk_set_str(ev, "data.object.lines.data.0.parent.subscription_item_details."
			   "subscription", sub);
	} else {
		sk_set_str(ev, "data.object.subscription", sub);
		sk_set_str(ev, "data.object.lines.data.0.subscription", sub);
	}
	sk_set_int(ev, "data.object.lines.data.0.period.start", start);
	sk_set_int(ev, "data.object.lines.data.0.period.end", end);
	return ev;
}

START_TEST(invoice_resets_usage_once_per_period)
{
	struct sk_env env;
	const long long p2 = 1720592000, p3 = 1723270400, p4 = 1725948800;
	json_t *doc, *all, *ev, *ticks;

	sk_env_init(&env, "stripe_invoice", BW_STRIPE_WORKER_PATH);
	sk_seed_customer(&env, "org-i", "cus_i", 0, 40);
	ev = sub_event("customer_subscription_created.json", "evt_i0", 1000, "sub_I", NULL);
	sk_set_str(ev, "data.object.customer", "cus_i");
	sk_produce_free(&env, ev);
	/* The renewal's subscription.updated moves the stored period first ... */
	ev = sub_event("customer_subscription_updated.json", "evt_i1", 2000, "sub_I", NULL);
	sk_set_str(ev, "data.object.customer", "cus_i");
	sk_set_int(ev, "data.object.items.data.0.current_period_start", p2);
	sk_set_int(ev, "data.object.items.data.0.current_period_end", p3);
	sk_produce_free(&env, ev);
	/* ... and the invoice of that period still resets usage. */
	sk_produce_free(&env, invoice("invoice_paid_cycle.json", "evt_i2", "sub_I", p2, p3));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-i");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 0);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 4);
	json_decref(doc);

	sk_set_customer_int(&env, "org-i", "subscription_spus_used", 30); /* usage meanwhile */
	sk_produce_free(&env, invoice("invoice_paid_cycle.json", "evt_i2", "sub_I", p2, p3));
	sk_produce_free(&env, invoice("invoice_payment_succeeded_basil.json", "evt_i3", "sub_I",
				       p2, p3));   /* second event of the same invoice */
	ev = invoice("invoice_paid_cycle.json", "evt_i4", "sub_I", p3, p4);
	sk_set_str(ev, "data.object.billing_reason", "manual");
	sk_produce_free(&env, ev);                /* does not open a period: ignored */
	sk_produce_free(&env, invoice("invoice_created.json", "evt_i5", "sub_I", p3, p4));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-i");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 30); /* not reset again */
	json_decref(doc);

	sk_produce_free(&env, invoice("invoice_payment_succeeded_basil.json", "evt_i6", "sub_I",
				       p3, p4));   /* next period, newer API shape */
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-i");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 0);
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_start"),
			 p3);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 5);
	json_decref(doc);

	all = sk_read_json(env.results, 8);
	sk_expect_status(all, "evt_i2", 0, "applied");
	sk_expect_status(all, "evt_i2", 1, "duplicate");
	sk_expect_status(all, "evt_i3", 0, "duplicate");
	sk_expect_status(all, "evt_i4", 0, "ignored");
	sk_expect_status(all, "evt_i5", 0, "applied");
	sk_expect_status(all, "evt_i6", 0, "applied");
	json_decref(all);
	ticks = sk_read_json(env.ticks, 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ticks, 0), "org_id")),
			 "org-i");
	json_decref(ticks);
	tk_mongo_drop(env.db);
}
END_TEST

/* A late invoice of an older period, before any reset marker exists, must neither reset the
 * usage of the current period nor move the stored period back. */
START_TEST(late_invoice_of_older_period_is_stale)
{
	struct sk_env env;
	const long long p1 = 1718000000, p2 = 1720592000, p3 = 1723270400;
	json_t *doc, *all, *ev;

	sk_env_init(&env, "stripe_late_inv", BW_STRIPE_WORKER_PATH);
	sk_seed_customer(&env, "org-l", "cus_i", 0, 40);
	ev = sub_event("customer_subscription_created.json", "evt_l0", 1000, "sub_L", NULL);
	sk_set_str(ev, "data.object.customer", "cus_i");
	sk_produce_free(&env, ev);                /* period p1..p2 */
	ev = sub_event("customer_subscription_updated.json", "evt_l1", 2000, "sub_L", NULL);
	sk_set_str(ev, "data.object.customer", "cus_i");
	sk_set_int(ev, "data.object.items.data.0.current_period_start", p2);
	sk_set_int(ev, "data.object.items.data.0.current_period_end", p3);
	sk_produce_free(&env, ev);                /* renewal: period p2..p3 */
	ev = invoice("invoice_paid_cycle.json", "evt_l2", "sub_L", p1, p2);
	sk_set_str(ev, "data.object.billing_reason", "subscription_create");
	sk_produce_free(&env, ev);                /* the first period's invoice, late */
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-l");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 40); /* p2's usage kept */
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_start"),
			 p2);
	ck_assert_int_eq(tk_int(doc, "stripe_current_billing_period_end"),
			 p3);
	json_decref(doc);

	sk_produce_free(&env, invoice("invoice_paid_cycle.json", "evt_l3", "sub_L", p2, p3));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);
	doc = sk_customer(&env, "org-l");
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 0); /* p2's invoice resets */
	json_decref(doc);
	all = sk_read_json(env.results, 4);
	sk_expect_status(all, "evt_l2", 0, "stale");
	sk_expect_status(all, "evt_l3", 0, "applied");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(unknown_customer_waits_then_dlq)
{
	struct sk_env env;
	const char *extra[] = { "STRIPE_UNKNOWN_CUSTOMER_RETRIES=2", "STRIPE_BACKOFF_MAX_MS=200",
				NULL };
	json_t *ev, *all, *ticks, *doc;

	sk_env_init(&env, "stripe_unknown", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, checkout("evt_u0", "org-u", "cus_known", "cs_U", "50"));
	ev = sub_event("customer_subscription_created.json", "evt_u1", 1000, "sub_U", NULL);
	sk_set_str(ev, "data.object.customer", "cus_nobody");
	sk_produce_free(&env, ev);
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);

	all = sk_read_json(env.results, 2);
	ck_assert_uint_eq(json_array_size(all), 2); /* one result each, after the wait */
	sk_expect_status(all, "evt_u0", 0, "applied"); /* its recorded outcome, replayed */
	sk_expect_status(all, "evt_u1", 0, "rejected");
	json_decref(all);
	doc = sk_customer(&env, "org-u");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 50);
	json_decref(doc);
	ticks = sk_read_json(env.ticks, 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ticks, 0),
							    "stripe_customer_id")), "cus_nobody");
	json_decref(ticks);
	expect_dlq_reason(&env, 1, "unknown Stripe customer cus_nobody");
	tk_mongo_drop(env.db);
}
END_TEST

/* STRIPE_APPLIED_SESSIONS_KEEP bounds the customer's applied_sessions; the ledger row
 * (state applied) still stops a second credit of a session that left the window. */
START_TEST(applied_sessions_window_is_bounded)
{
	struct sk_env env;
	const char *extra[] = { "STRIPE_APPLIED_SESSIONS_KEEP=2", "FREE_GRANT_SPUS=0", NULL };
	json_t *doc, *all, *sessions, *ev;

	sk_env_init(&env, "stripe_window", BW_STRIPE_WORKER_PATH);
	sk_produce_free(&env, checkout("evt_w1", "org-w", "cus_w", "cs_W1", "10"));
	sk_produce_free(&env, checkout("evt_w2", "org-w", "cus_w", "cs_W2", "20"));
	sk_produce_free(&env, checkout("evt_w3", "org-w", "cus_w", "cs_W3", "30"));
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_customer(&env, "org-w");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 60);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 4); /* created + 3 credits */
	sessions = json_object_get(doc, "applied_sessions");
	ck_assert_int_eq(json_array_size(sessions), 2);
	ck_assert_str_eq(json_string_value(json_array_get(sessions, 0)), "cs_W2");
	ck_assert_str_eq(json_string_value(json_array_get(sessions, 1)), "cs_W3");
	json_decref(doc);

	/* Old events of cs_W1, which left the window: the same event redelivered after its
	 * record was lost (as in a crash before the record), and another event of the session. */
	sk_delete(&env, "payments_stripe_events", "{\"event_id\":\"evt_w1\"}");
	sk_produce_free(&env, checkout("evt_w1", "org-w", "cus_w", "cs_W1", "10"));
	ev = checkout("evt_w1b", "org-w", "cus_w", "cs_W1", "10");
	sk_set_str(ev, "type", "checkout.session.async_payment_succeeded");
	sk_produce_free(&env, ev);
	ck_assert_int_eq(sk_run_worker(&env, extra, 2500), 0);
	doc = sk_customer(&env, "org-w");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 60);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 4);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "applied_sessions")), 2);
	json_decref(doc);
	all = sk_read_json(env.results, 5);
	sk_expect_status(all, "evt_w1", 0, "applied");
	sk_expect_status(all, "evt_w2", 0, "applied");
	sk_expect_status(all, "evt_w3", 0, "applied");
	sk_expect_status(all, "evt_w1", 1, "applied"); /* its own ledger row, no new credit */
	sk_expect_status(all, "evt_w1b", 0, "duplicate");
	json_decref(all);
	tk_mongo_drop(env.db);
}
END_TEST

/* purchased_credits + credits beyond INT64_MAX: rejected to the DLQ, nothing changed, and
 * the partition is not held (the next purchase that fits is applied). */
START_TEST(credit_overflow_is_rejected)
{
	struct sk_env env;
	const long long max = 9223372036854775807LL;
	json_t *doc, *all, *r;

	sk_env_init(&env, "stripe_overflow", BW_STRIPE_WORKER_PATH);
	sk_seed_customer(&env, "org-o", "cus_o", max - 100, 0);
	sk_produce_free(&env, checkout("evt_o1", "org-o", "cus_o", "cs_O1", "500"));
	sk_produce_free(&env, checkout("evt_o2", "org-o", "cus_o", "cs_O2", "100"));
	sk_produce_free(&env, checkout("evt_o3", "org-o", "cus_o", "cs_O3", "1"));
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2500), 0);

	doc = sk_customer(&env, "org-o");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), max); /* only cs_O2 fitted */
	ck_assert_int_eq(tk_int(doc, "balance_version"), 2);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "applied_sessions")), 1);
	json_decref(doc);
	doc = tk_mongo_find_one(env.db, "payments_credit_transactions",
				"{\"session_id\":\"cs_O1\"}");
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "state")), "rejected");
	json_decref(doc);
	all = sk_read_json(env.results, 3);
	r = sk_result(all, "evt_o1", 0);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(sk_status(r), "rejected");
	ck_assert_msg(strstr(json_string_value(json_object_get(r, "reason")), "overflow") != NULL,
		      "reason %s", json_string_value(json_object_get(r, "reason")));
	sk_expect_status(all, "evt_o2", 0, "applied");
	sk_expect_status(all, "evt_o3", 0, "rejected");
	json_decref(all);
	expect_dlq_reason(&env, 2, "would overflow int64");
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(throughput_2000_checkouts)
{
	enum { N = 2000, ORGS = 50 };
	struct sk_env env;
	const char *extra[] = { "BATCH_MAX=500", NULL };
	static char *values[N];
	static const char *keys[N];
	static char keybuf[N][32];
	json_t *doc;
	long long t0, ms;

	sk_env_init(&env, "stripe_bench", BW_STRIPE_WORKER_PATH);
	for (int i = 0; i < N; i++) {
		char id[32], org[32], cus[32], sid[32];
		snprintf(id, sizeof(id), "evt_b%d", i);
		snprintf(org, sizeof(org), "org-b%d", i % ORGS);
		snprintf(cus, sizeof(cus), "cus_b%d", i % ORGS);
		snprintf(sid, sizeof(sid), "cs_b%d", i);
		json_t *ev = checkout(id, org, cus, sid, "3");
		values[i] = json_dumps(ev, JSON_COMPACT);
		snprintf(keybuf[i], sizeof(keybuf[i]), "%s", cus);
		keys[i] = keybuf[i];
		json_decref(ev);
	}
	tk_produce_many(env.topic, keys, (const char *const *)values, N);
	t0 = tk_now_ms();
	ck_assert_int_eq(sk_run_worker(&env, extra, 1500), 0);
	ms = tk_now_ms() - t0 - 1500; /* minus the idle wait before exit */
	fprintf(stderr, "stripe worker: %d checkout events in %.2f s = %.0f events/s (incl. "
		"start-up and group join)\n", N, ms / 1000.0, N * 1000.0 / (ms > 0 ? ms : 1));
	for (int i = 0; i < ORGS; i++) {
		char org[32];
		snprintf(org, sizeof(org), "org-b%d", i);
		doc = sk_customer(&env, org);
		ck_assert_int_eq(tk_int(doc, "purchased_credits"), 3 * (N / ORGS));
		json_decref(doc);
	}
	for (int i = 0; i < N; i++)
		free(values[i]);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_worker");
	TCase *tc = tcase_create("worker");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, checkout_credits_once_per_session);
	tcase_add_test(tc, subscription_events_out_of_order);
	tcase_add_test(tc, invoice_resets_usage_once_per_period);
	tcase_add_test(tc, late_invoice_of_older_period_is_stale);
	tcase_add_test(tc, unknown_customer_waits_then_dlq);
	tcase_add_test(tc, applied_sessions_window_is_bounded);
	tcase_add_test(tc, credit_overflow_is_rejected);
	tcase_add_test(tc, throughput_2000_checkouts);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
