/* Stripe lifecycle end to end, as real Stripe accounts send it: the stripe worker and the
 * sync worker binaries against the real broker, the MongoDB-wire server and the Stripe API
 * stub, with payloads in the 2025 API shapes (items with current_period_*, invoices with
 * parent.subscription_details, lines with parent.subscription_item_details and proration)
 * and the older ones, every balance asserted. Both workers apply the one subscription policy
 * (shared/sub_policy): the sequences here are the (#10) items 1, 2, 5 and 6. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../stub/stripe_stub.h"
#include "stripe_kit.h"

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

/* Billing periods of the sequences (unix seconds, 30 days apart). */
#define P0 1760000000LL
#define P1 (P0 + 2592000LL)
#define P2 (P1 + 2592000LL)

struct lc {
	struct sk_env sk;     /* topics (the stripe worker's ticks are the sync's input), db */
	struct stub stub;
	int has_stub;
	char sync_group[160], sync_log[512];
};

static void lc_init(struct lc *e, const char *name, json_t *state)
{
	memset(e, 0, sizeof(*e));
	sk_env_init(&e->sk, name, BW_STRIPE_WORKER_PATH);
	snprintf(e->sync_group, sizeof(e->sync_group), "%s.sync", e->sk.topic);
	snprintf(e->sync_log, sizeof(e->sync_log), "%s/%s.sync.log", BW_BINARY_DIR, e->sk.topic);
	if (state) {
		stub_start(&e->stub, state);
		e->has_stub = 1;
		json_decref(state);
	}
}

static void lc_done(struct lc *e)
{
	if (e->has_stub)
		stub_stop(&e->stub);
	tk_mongo_drop(e->sk.db);
	unlink(e->sk.log);
	unlink(e->sync_log);
}

/* Runs the sync worker over the ticks topic until idle. */
static void run_sync(struct lc *e, const char *const *extra)
{
	char v[8][320];
	const char *envp[32];
	size_t n = 0;

	snprintf(v[0], sizeof(v[0]), "SYNC_TOPIC=%s", e->sk.ticks);
	snprintf(v[1], sizeof(v[1]), "RESULTS_TOPIC=%s", e->sk.results);
	snprintf(v[2], sizeof(v[2]), "MONGO_DB=%s", e->sk.db);
	snprintf(v[3], sizeof(v[3]), "SYNC_GROUP_ID=%s", e->sync_group);
	snprintf(v[4], sizeof(v[4]), "STRIPE_API_BASE=%s", e->stub.url);
	snprintf(v[5], sizeof(v[5]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(v[6], sizeof(v[6]), "MONGO_URI=%s", tk_mongo_uri());
	for (int i = 0; i < 7; i++)
		envp[n++] = v[i];
	envp[n++] = "STRIPE_SECRET_KEY=sk_test_lifecycle";
	envp[n++] = "IDLE_EXIT_MS=3000";
	envp[n++] = "STRIPE_RETRY_BASE_MS=10";
	envp[n++] = "SYNC_BACKOFF_MAX_MS=200";
	envp[n++] = "SYNC_RATE_LIMIT_RPS=0";
	envp[n++] = "SYNC_PRICES_AT_START=false";
	for (const char *const *x = extra; x && *x && n < 31; x++)
		envp[n++] = *x;
	envp[n] = NULL;
	pid_t pid = tk_spawn(BW_SYNC_WORKER_PATH, envp, e->sync_log);
	ck_assert_int_eq(tk_wait(pid, 60000), 0);
}

static void run_stripe(struct lc *e, const char *const *extra)
{
	ck_assert_int_eq(sk_run_worker(&e->sk, extra, 3000), 0);
}

/* The last result of id (an event id or a tick id) among all, failing when missing. */
static json_t *last_result(json_t *all, const char *id)
{
	json_t *r, *found = NULL;
	size_t i;

	json_array_foreach(all, i, r) {
		const char *e = json_string_value(json_object_get(r, "event_id"));
		if (e && strcmp(e, id) == 0)
			found = r;
	}
	ck_assert_msg(found != NULL, "no result for %s", id);
	return found;
}

static const char *str(const json_t *doc, const char *key)
{
	const char *s = json_string_value(json_object_get(doc, key));
	return s ? s : "(none)";
}

static void expect(json_t *all, const char *id, const char *status)
{
	json_t *r = last_result(all, id);
	ck_assert_msg(strcmp(sk_status(r), status) == 0, "%s: status %s, want %s (%s)", id,
		      sk_status(r), status, str(r, "reason"));
}

static void tick(const struct lc *e, const char *id, const char *org, const char *cus)
{
	char t[512];
	if (org)
		snprintf(t, sizeof(t), "{\"tick_id\":\"%s\",\"scope\":\"customer\",\"org_id\":\"%s\"}",
			 id, org);
	else
		snprintf(t, sizeof(t), "{\"tick_id\":\"%s\",\"scope\":\"customer\","
			 "\"stripe_customer_id\":\"%s\"}", id, cus);
	tk_produce(e->sk.ticks, NULL, t);
}

/* A customer document with a period, a reset marker and usage. */
static void seed_period(const struct lc *e, const char *org, const char *cus, const char *type,
			long long allowance, long long used, long long period_s, long long version)
{
	char doc[1024];
	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"%s\",\"stripe_customer_id\":\"%s\",\"subscription_type\":\"%s\","
		 "\"subscription_spu_allowance\":{\"$numberLong\":\"%lld\"},"
		 "\"subscription_spus_used\":{\"$numberLong\":\"%lld\"},"
		 "\"stripe_subscription_id\":\"sub_%s\",\"stripe_subscription_status\":\"active\","
		 "\"stripe_current_billing_period_start\":{\"$date\":{\"$numberLong\":\"%lld\"}},"
		 "\"subscription_spus_reset_period_start\":{\"$date\":{\"$numberLong\":\"%lld\"}},"
		 "\"purchased_credits\":0,\"granted_credits\":100,"
		 "\"balance_version\":{\"$numberLong\":\"%lld\"}}",
		 org, cus, type, allowance, used, org, period_s * 1000, period_s * 1000, version);
	tk_mongo_insert(e->sk.db, "payments_customers", doc);
}

/* A Stripe API subscription (2025 shape: the period on the items), an add-on item first. */
static json_t *api_sub(const char *id, const char *cus, const char *status, long long created,
		       const char *base_price, long long start, const char *latest_invoice)
{
	json_t *s = json_pack("{sssssssssIs{s[{sssssIsI}{sssssIsI}]}}", "id", id, "object",
			      "subscription", "customer", cus, "status", status, "created",
			      (json_int_t)created, "items", "data", "id", "si_addon", "price",
			      "price_addon", "current_period_start", (json_int_t)start,
			      "current_period_end", (json_int_t)(start + 2592000), "id", "si_base",
			      "price", base_price, "current_period_start", (json_int_t)start,
			      "current_period_end", (json_int_t)(start + 2592000));
	ck_assert_ptr_nonnull(s);
	if (latest_invoice)
		json_object_set_new(s, "latest_invoice", json_string(latest_invoice));
	return s;
}

/* An API invoice of sub in the 2025 shape: a proration line first (the upgrade), then the
 * subscription item's own line for the period starting at start. */
static json_t *api_invoice(const char *id, const char *sub, const char *status, long long start)
{
	json_t *inv = json_pack(
		"{sssssss{sss{ss}}s{s[{s{sss{sbss}}s{sIsI}}{s{sss{sbss}}s{sIsI}}]}}", "id", id,
		"object", "invoice", "status", status, "parent", "type", "subscription_details",
		"subscription_details", "subscription", sub, "lines", "data", "parent", "type",
		"subscription_item_details", "subscription_item_details", "proration", 1,
		"subscription", sub, "period", "start", (json_int_t)(start - 864000), "end",
		(json_int_t)start, "parent", "type", "subscription_item_details",
		"subscription_item_details", "proration", 0, "subscription", sub, "period", "start",
		(json_int_t)start, "end", (json_int_t)(start + 2592000));
	ck_assert_ptr_nonnull(inv);
	return inv;
}

static void add_addon_price(json_t *st)
{
	json_array_append_new(json_object_get(st, "prices"),
			      json_pack("{sssssbs{ssss}}", "id", "price_addon", "product",
					"prod_docrouter", "active", 1, "metadata", "price_type",
					"addon", "tier", "addon"));
}

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

	add_addon_price(st);
	json_object_set_new(st, "now", json_integer(stripe_now));
	subs = json_object_get(st, "subscriptions");
	cust = json_object_get(st, "customers");
	invs = json_object();
	json_object_set_new(st, "invoices", invs);
	json_object_set_new(cust, "cus_inc", json_pack("{sss{ss}}", "id", "cus_inc", "metadata",
							"org_id", "org_inc"));
	json_array_append_new(subs, api_sub("sub_inc", "cus_inc", "incomplete", P0, "price_team",
					    P0, NULL));
	json_object_set_new(cust, "cus_ent", json_pack("{sss{ss}}", "id", "cus_ent", "metadata",
							"org_id", ent_org));
	json_array_append_new(subs, api_sub("sub_ent", "cus_ent", "canceled", P0, "price_team", P0,
					    NULL));
	json_object_set_new(cust, "cus_other", json_pack("{sss{ss}}", "id", "cus_other",
							  "metadata", "product", "other_app"));
	json_object_set_new(cust, "cus_open", json_pack("{sss{ss}}", "id", "cus_open", "metadata",
							 "org_id", "org_open"));
	json_array_append_new(subs, api_sub("sub_org_open", "cus_open", "active", P0, "price_team",
					    P1, "in_open"));
	json_object_set_new(invs, "in_open", api_invoice("in_open", "sub_org_open", "open", P1));
	json_object_set_new(cust, "cus_paid", json_pack("{sss{ss}}", "id", "cus_paid", "metadata",
							 "org_id", "org_paid"));
	json_array_append_new(subs, api_sub("sub_org_paid", "cus_paid", "active", P0, "price_team",
					    P1, "in_paid"));
	json_object_set_new(invs, "in_paid", api_invoice("in_paid", "sub_org_paid", "paid", P1));
	lc_init(&e, "lc_sync", st);

	sk_seed_customer(&e.sk, "org_inc", "cus_inc", 0, 0);
	seed_period(&e, ent_org, "cus_ent", "team", 5000, 10, P0, 2);
	char org_doc[256];
	snprintf(org_doc, sizeof(org_doc),
		 "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Big Co\",\"type\":\"enterprise\"}", ent_org);
	tk_mongo_insert(e.sk.db, "organizations", org_doc);
	sk_seed_customer(&e.sk, "org_gone", "cus_gone", 0, 0);
	seed_period(&e, "org_open", "cus_open", "team", 5000, 300, P0, 4);
	seed_period(&e, "org_paid", "cus_paid", "team", 5000, 300, P0, 4);

	tick(&e, "t_inc", "org_inc", NULL);
	tick(&e, "t_ent", ent_org, NULL);
	tick(&e, "t_gone", "org_gone", NULL);
	tick(&e, "t_gone2", "org_gone", NULL);
	tick(&e, "t_other", NULL, "cus_other");
	tick(&e, "t_open", "org_open", NULL);
	tick(&e, "t_paid", "org_paid", NULL);
	run_sync(&e, NULL);
	all = sk_read_json(e.sk.results, 7);

	expect(all, "t_inc", "applied");
	d = sk_customer(&e.sk, "org_inc");
	ck_assert_str_eq(str(d, "subscription_type"), "none");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 0);
	ck_assert_str_eq(str(d, "stripe_subscription_status"), "incomplete");
	json_decref(d);

	expect(all, "t_ent", "applied");
	d = sk_customer(&e.sk, ent_org);
	ck_assert_str_eq(str(d, "subscription_type"), "team");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 5000);
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 10);
	ck_assert_str_eq(str(d, "stripe_subscription_status"), "active");
	ck_assert_int_eq(tk_int(d, "balance_version"), 2);
	json_decref(d);

	/* the deleted customer is cleared, the next tick creates a new one with a new key */
	expect(all, "t_gone", "applied");
	expect(all, "t_gone2", "applied");
	ck_assert_int_eq(tk_int(json_object_get(last_result(all, "t_gone2"), "counts"),
				"customers_created"), 1);
	d = sk_customer(&e.sk, "org_gone");
	ck_assert_str_eq(str(d, "stripe_customer_id"), "cus_for_org_gone");
	ck_assert_int_eq(tk_int(d, "stripe_customers_deleted"), 1);
	ck_assert_str_eq(str(d, "subscription_type"), "none");
	json_decref(d);
	json_t *reqs = stub_requests(&e.stub), *q;
	size_t i;
	int posts = 0;
	json_array_foreach(reqs, i, q) {
		if (strcmp(str(q, "method"), "POST") != 0)
			continue;
		posts++;
		ck_assert_str_eq(str(q, "idempotency_key"), "bw-sync-customer-org_gone-g1");
		ck_assert_ptr_nonnull(strstr(str(q, "body"), "metadata%5Bproduct%5D=doc_router"));
	}
	ck_assert_int_eq(posts, 1);
	json_decref(reqs);

	/* another product's customer: recorded, skipped, no org document */
	expect(all, "t_other", "skipped");
	d = tk_mongo_find_one(e.sk.db, "payments_foreign_customers", "{\"_id\":\"cus_other\"}");
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(str(d, "product"), "other_app");
	json_decref(d);

	/* a new period resets only when its invoice is paid */
	d = sk_customer(&e.sk, "org_open");
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 300);
	ck_assert_int_eq(sk_date_ms(json_object_get(d, "stripe_current_billing_period_start")),
			 P1 * 1000);
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
	run_stripe(&e, NULL);
	all = sk_read_json(e.sk.results, 8);
	expect(all, "evt_after_read", "applied");
	d = sk_customer(&e.sk, "org_paid");
	ck_assert_str_eq(str(d, "subscription_type"), "business");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 20000);
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 0);
	json_decref(d);
	json_decref(all);
	lc_done(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, sync_applies_the_policy_with_stripes_clock);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
