/* Integration tests across workers on one database: the usage, stripe and sync workers all
 * write the same customer documents, and every writer bumps balance_version, so none of them
 * overwrites another's change (credits bought while usage flows are never lost; a billing
 * period is reset once, whether the sync worker or the invoice sees it first). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../stub/stripe_stub.h"
#include "stripe_kit.h"
#include "usage_kit.h"

/* Sums the breakdowns of the org's usage records (optionally only those of one period). */
static void record_sums(const char *db, const char *org, long long period_ms, long long sum[5])
{
	char filter[256];
	json_t *recs, *r;
	size_t i;

	memset(sum, 0, 5 * sizeof(*sum));
	snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", org);
	recs = tk_mongo_find(db, "payments_usage_records", filter);
	json_array_foreach(recs, i, r) {
		if (period_ms && sk_date_ms(json_object_get(r, "period_start")) != period_ms)
			continue;
		sum[0] += tk_int(r, "from_subscription");
		sum[1] += tk_int(r, "from_purchased");
		sum[2] += tk_int(r, "from_granted");
		sum[3] += tk_int(r, "from_paid");
		if (json_object_get(r, "spus")) /* the opening row has none */
			sum[4] += tk_int(r, "spus");
	}
	json_decref(recs);
}

START_TEST(credits_bought_while_usage_flows_are_never_lost)
{
	struct uk_env uk;
	struct sk_env sk;
	enum { ORGS = 3, EVENTS = 900, PURCHASES = 12 };
	const char *values[EVENTS], *keys[EVENTS];
	long long charged[ORGS] = { 0 }, bought[ORGS] = { 0 };
	const char *usage_extra[] = { "IDLE_EXIT_MS=6000", "BATCH_MAX=20", NULL };

	uk_env_init(&uk, "cross_credit", 4);
	sk_env_init(&sk, "cross_credit_stripe", BW_STRIPE_WORKER_PATH);
	snprintf(sk.db, sizeof(sk.db), "%s", uk.db); /* one database for both workers */
	for (int o = 0; o < ORGS; o++) {
		struct uk_org org = { .cap = { 0, 0, 100 } };
		snprintf(org.id, sizeof(org.id), "cross-org-%d", o);
		uk_seed_org(&uk, &org);
	}
	for (int i = 0; i < EVENTS; i++) {
		char buf[512], id[32];
		int o = i % ORGS;
		long long spus = 1 + i % 5;
		snprintf(id, sizeof(id), "cu-%d", i);
		char org[32];
		snprintf(org, sizeof(org), "cross-org-%d", o);
		uk_event_json(buf, sizeof(buf), id, org, spus);
		values[i] = strdup(buf);
		keys[i] = strdup(org);
		charged[o] += spus;
	}
	/* usage flows while the stripe worker credits purchases to the same orgs */
	pid_t usage = uk_start_worker(&uk, usage_extra);
	tk_produce_many(uk.topic, keys, values, EVENTS);
	for (int p = 0; p < PURCHASES; p++) {
		json_t *ev = sk_fixture("checkout_session_completed.json");
		char id[64], sid[64], org[32], credits[16];
		int o = p % ORGS;
		snprintf(id, sizeof(id), "evt_cross_%d", p);
		snprintf(sid, sizeof(sid), "cs_cross_%d", p);
		snprintf(org, sizeof(org), "cross-org-%d", o);
		snprintf(credits, sizeof(credits), "%d", 40 + p);
		sk_set_str(ev, "id", id);
		sk_set_str(ev, "data.object.id", sid);
		sk_set_str(ev, "data.object.metadata.org_id", org);
		sk_set_str(ev, "data.object.metadata.credits", credits);
		sk_produce(&sk, ev);
		json_decref(ev);
		bought[o] += 40 + p;
	}
	ck_assert_int_eq(sk_run_worker(&sk, NULL, 4000), 0);
	ck_assert_int_eq(tk_wait(usage, 240000), 0);

	for (int o = 0; o < ORGS; o++) {
		char org[32];
		long long sum[5];
		snprintf(org, sizeof(org), "cross-org-%d", o);
		json_t *doc = sk_customer(&sk, org);
		/* every purchase is there exactly once, whatever the usage writes did meanwhile */
		ck_assert_int_eq(tk_int(doc, "purchased_credits"), bought[o]);
		record_sums(uk.db, org, 0, sum);
		/* every event charged once, and the counters are the sums of the records */
		ck_assert_int_eq(sum[4], charged[o]);
		ck_assert_int_eq(sum[0] + sum[1] + sum[2] + sum[3], charged[o]);
		ck_assert_int_eq(sum[1], tk_int(doc, "purchased_credits_used"));
		ck_assert_int_eq(sum[2], tk_int(doc, "granted_credits_used"));
		ck_assert_int_eq(sum[3], tk_int(doc, "paid_spus_used"));
		/* never negative */
		ck_assert_int_le(tk_int(doc, "purchased_credits_used"), bought[o]);
		ck_assert_int_le(tk_int(doc, "granted_credits_used"), 100);
		json_decref(doc);
	}
	for (int i = 0; i < EVENTS; i++) {
		free((char *)values[i]);
		free((char *)keys[i]);
	}
	tk_mongo_drop(uk.db);
}
END_TEST

static void run_sync_tick(struct stub *st, const char *db, const char *org)
{
	char ticks[96], results[128], group[128], log[256], tick[256];
	char v[6][256];
	const char *envp[16];
	int n = 0;

	tk_unique(ticks, sizeof(ticks), "cross_ticks");
	snprintf(results, sizeof(results), "%s.results", ticks);
	snprintf(group, sizeof(group), "%s.g", ticks);
	snprintf(log, sizeof(log), "%s/%s.log", BW_BINARY_DIR, ticks);
	tk_create_topic(ticks, 1, 1);
	tk_create_topic(results, 1, 0);
	snprintf(tick, sizeof(tick), "{\"tick_id\":\"t-%s\",\"scope\":\"customer\",\"org_id\":\"%s\"}",
		 ticks, org);
	tk_produce(ticks, org, tick);
	snprintf(v[0], sizeof(v[0]), "SYNC_TOPIC=%s", ticks);
	snprintf(v[1], sizeof(v[1]), "RESULTS_TOPIC=%s", results);
	snprintf(v[2], sizeof(v[2]), "MONGO_DB=%s", db);
	snprintf(v[3], sizeof(v[3]), "SYNC_GROUP_ID=%s", group);
	snprintf(v[4], sizeof(v[4]), "STRIPE_API_BASE=%s", st->url);
	snprintf(v[5], sizeof(v[5]), "KAFKA_BROKERS=%s", tk_brokers());
	for (int i = 0; i < 6; i++)
		envp[n++] = v[i];
	envp[n++] = "STRIPE_SECRET_KEY=sk_test_cross";
	envp[n++] = "SYNC_PRICES_AT_START=false";
	envp[n++] = "IDLE_EXIT_MS=3000";
	envp[n] = NULL;
	ck_assert_int_eq(tk_wait(tk_spawn(BW_SYNC_WORKER_PATH, envp, log), 60000), 0);
	json_t *res = sk_read_json(results, 1);
	ck_assert_str_eq(sk_status(json_array_get(res, 0)), "applied");
	json_decref(res);
}

static void invoice_for_period(struct sk_env *sk, const char *id, long long start, long long end)
{
	json_t *ev = sk_fixture("invoice_paid_cycle.json");
	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.id", id);
	sk_set_str(ev, "data.object.customer", "cus_alpha");
	sk_set_str(ev, "data.object.subscription", "sub_alpha");
	sk_set_str(ev, "data.object.lines.data.0.subscription", "sub_alpha");
	sk_set_int(ev, "data.object.lines.data.0.period.start", start);
	sk_set_int(ev, "data.object.lines.data.0.period.end", end);
	sk_set_int(ev, "created", start + 100);
	sk_produce(sk, ev);
	json_decref(ev);
}

START_TEST(a_period_is_reset_once_by_sync_or_invoice)
{
	struct uk_env uk;
	struct sk_env sk;
	struct stub st;
	char doc[1024], buf[512];
	const long long p0 = 1697400000, p1 = 1700000000, p2 = 1702592000;
	json_t *state = stub_fixture(), *d;
	long long sum[5];

	uk_env_init(&uk, "cross_period", 1);
	sk_env_init(&sk, "cross_period_stripe", BW_STRIPE_WORKER_PATH);
	snprintf(sk.db, sizeof(sk.db), "%s", uk.db);
	/* org_alpha on the team plan, still in the period before the one Stripe now reports */
	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
		 "\"subscription_type\":\"team\",\"subscription_spu_allowance\":{\"$numberLong\":\"5000\"},"
		 "\"subscription_spus_used\":{\"$numberLong\":\"0\"},"
		 "\"stripe_subscription_id\":\"sub_alpha\",\"stripe_subscription_status\":\"active\","
		 "\"stripe_current_billing_period_start\":{\"$date\":{\"$numberLong\":\"%lld\"}},"
		 "\"purchased_credits\":{\"$numberLong\":\"0\"},\"granted_credits\":{\"$numberLong\":\"0\"},"
		 "\"balance_version\":{\"$numberLong\":\"1\"}}",
		 p0 * 1000);
	tk_mongo_insert(uk.db, "payments_customers", doc);
	/* 300 SPUs used in the old period */
	uk_event_json(buf, sizeof(buf), "old-1", "org_alpha", 300);
	tk_produce(uk.topic, "org_alpha", buf);
	ck_assert_int_eq(uk_run_worker(&uk, NULL, 3000), 0);

	/* the sync worker sees the new period first, its invoice paid (latest_invoice):
	 * usage starts over */
	json_t *sub, *inv;
	size_t si;
	json_array_foreach(json_object_get(state, "subscriptions"), si, sub)
		if (strcmp(json_string_value(json_object_get(sub, "id")), "sub_alpha") == 0)
			json_object_set_new(sub, "latest_invoice", json_string("in_alpha_p1"));
	inv = json_pack("{sssssss{s[{sssbsss{sIsI}}]}}", "id", "in_alpha_p1", "status", "paid",
			"subscription", "sub_alpha", "lines", "data", "type", "subscription",
			"proration", 0, "subscription", "sub_alpha", "period", "start",
			(json_int_t)p1, "end", (json_int_t)p2);
	json_object_set_new(state, "invoices", json_pack("{so}", "in_alpha_p1", inv));
	stub_start(&st, state);
	json_decref(state);
	run_sync_tick(&st, uk.db, "org_alpha");
	stub_stop(&st);
	d = sk_customer(&sk, "org_alpha");
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 0);
	ck_assert_int_eq(tk_int(d, "stripe_current_billing_period_start"),
			 p1);
	json_decref(d);

	/* usage in the new period, then the period's invoice: no second reset */
	uk_event_json(buf, sizeof(buf), "new-1", "org_alpha", 40);
	tk_produce(uk.topic, "org_alpha", buf);
	ck_assert_int_eq(uk_run_worker(&uk, NULL, 3000), 0);
	invoice_for_period(&sk, "in_cross_p1", p1, p2);
	ck_assert_int_eq(sk_run_worker(&sk, NULL, 3000), 0);
	d = sk_customer(&sk, "org_alpha");
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 40);
	json_decref(d);
	record_sums(uk.db, "org_alpha", p1 * 1000, sum);
	ck_assert_int_eq(sum[0], 40); /* invariant 2 within the current period */

	/* the next period's invoice resets, once */
	invoice_for_period(&sk, "in_cross_p2", p2, p2 + 2592000);
	invoice_for_period(&sk, "in_cross_p2_again", p2, p2 + 2592000);
	ck_assert_int_eq(sk_run_worker(&sk, NULL, 3000), 0);
	uk_event_json(buf, sizeof(buf), "new-2", "org_alpha", 7);
	tk_produce(uk.topic, "org_alpha", buf);
	ck_assert_int_eq(uk_run_worker(&uk, NULL, 3000), 0);
	d = sk_customer(&sk, "org_alpha");
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 7);
	long long current = tk_int(d, "stripe_current_billing_period_start") * 1000;
	json_decref(d);
	record_sums(uk.db, "org_alpha", current, sum);
	ck_assert_int_eq(sum[0], 7);
	tk_mongo_drop(uk.db);
}
END_TEST

/* An old org (no opening_balance marker, no balance_version) whose granted and purchased
 * credits the original integration overdrew (150 used of 100 each) buys 500 credits before
 * any usage event touches it: the overdrafts are its opening balance (overage), not repaid by
 * the purchase. A usage event of 10 then charges purchased credits and 490 of the 600 remain
 * (not 440); the opening row and the event's record sum to the used counters (invariant 2). */
START_TEST(a_purchase_does_not_repay_an_old_overdraft)
{
	struct uk_env uk;
	struct sk_env sk;
	const char *org = "cross-old-overdrawn";
	char buf[512];
	const char *values[1] = { buf }, *keys[1] = { org };
	long long sum[5];
	json_t *doc, *ev;

	uk_env_init(&uk, "cross_open", 1);
	sk_env_init(&sk, "cross_open_stripe", BW_STRIPE_WORKER_PATH);
	snprintf(sk.db, sizeof(sk.db), "%s", uk.db); /* one database for both workers */
	snprintf(buf, sizeof(buf),
		 "{\"org_id\":\"%s\",\"user_id\":\"u1\",\"granted_credits\":100,"
		 "\"granted_credits_used\":150,\"purchased_credits\":100,"
		 "\"purchased_credits_used\":150,\"subscription_spus_used\":0}", org);
	tk_mongo_insert(uk.db, "payments_customers", buf);
	ev = sk_fixture("checkout_session_completed.json");
	sk_set_str(ev, "id", "evt_open_buy");
	sk_set_str(ev, "data.object.id", "cs_open_buy");
	sk_set_str(ev, "data.object.metadata.org_id", org);
	sk_set_str(ev, "data.object.metadata.credits", "500");
	sk_produce(&sk, ev);
	json_decref(ev);
	ck_assert_int_eq(sk_run_worker(&sk, NULL, 2500), 0);

	uk_event_json(buf, sizeof(buf), "open-use-1", org, 10);
	tk_produce_many(uk.topic, keys, values, 1);
	ck_assert_int_eq(uk_run_worker(&uk, NULL, 2500), 0);

	doc = sk_customer(&sk, org);
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 600);
	ck_assert_int_eq(tk_int(doc, "purchased_credits_used"), 110); /* 490 remain */
	ck_assert_int_eq(tk_int(doc, "granted_credits_used"), 100);   /* opened at its total */
	ck_assert_int_eq(tk_int(doc, "paid_spus_used"), 100);         /* the excess: overage */
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "opening_balance"),
							   "source")),
			 "original_integration");
	record_sums(uk.db, org, 0, sum);
	ck_assert_int_eq(sum[0], tk_int(doc, "subscription_spus_used"));
	ck_assert_int_eq(sum[1], tk_int(doc, "purchased_credits_used"));
	ck_assert_int_eq(sum[2], tk_int(doc, "granted_credits_used"));
	ck_assert_int_eq(sum[3], tk_int(doc, "paid_spus_used"));
	ck_assert_int_eq(sum[4], 10); /* the opening row has no spus */
	json_decref(doc);
	tk_mongo_drop(uk.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cross_workers");
	TCase *tc = tcase_create("shared_documents");

	tcase_set_timeout(tc, 280);
	tcase_add_test(tc, credits_bought_while_usage_flows_are_never_lost);
	tcase_add_test(tc, a_period_is_reset_once_by_sync_or_invoice);
	tcase_add_test(tc, a_purchase_does_not_repay_an_old_overdraft);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
