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

/* Starts the stripe worker without waiting (tk_wait the pid). */
static pid_t spawn_stripe(struct lc *e, const char *const *extra)
{
	char v[9][320];
	const char *envp[32];
	int n = 0;

	snprintf(v[0], sizeof(v[0]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(v[1], sizeof(v[1]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(v[2], sizeof(v[2]), "MONGO_DB=%s", e->sk.db);
	snprintf(v[3], sizeof(v[3]), "STRIPE_EVENTS_TOPIC=%s", e->sk.topic);
	snprintf(v[4], sizeof(v[4]), "STRIPE_GROUP_ID=%s", e->sk.group);
	snprintf(v[5], sizeof(v[5]), "RESULTS_TOPIC=%s", e->sk.results);
	snprintf(v[6], sizeof(v[6]), "SYNC_TICKS_TOPIC=%s", e->sk.ticks);
	snprintf(v[7], sizeof(v[7]), "IDLE_EXIT_MS=3000");
	snprintf(v[8], sizeof(v[8]), "LOG_LEVEL=info");
	for (int i = 0; i < 9; i++)
		envp[n++] = v[i];
	for (const char *const *x = extra; x && *x && n < 31; x++)
		envp[n++] = *x;
	envp[n] = NULL;
	return tk_spawn(e->sk.worker, envp, e->sk.log);
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

/* ---- Stripe events as Stripe sends them ---- */

/* A customer.subscription.* event in the 2025 shape: the period on the items, an add-on item
 * first (price_type addon), the base item second. org NULL: no metadata.org_id. */
static json_t *sub_event(const char *id, const char *type, long long created, const char *sub,
			 const char *cus, const char *org, const char *status, const char *tier,
			 long long spus, long long start)
{
	json_t *ev = json_pack(
		"{sssssIsbs{s{sssssssss{}s{s[{sss{sss{ssss}}sIsI}{sss{sss{sssssI}}sIsI}]}}}}",
		"id", id, "type", type, "created", (json_int_t)created, "livemode", 0, "data",
		"object", "id", sub, "object", "subscription", "customer", cus, "status", status,
		"metadata", "items", "data", "id", "si_addon", "price", "id", "price_addon",
		"metadata", "price_type", "addon", "tier", "addon", "current_period_start",
		(json_int_t)start, "current_period_end", (json_int_t)(start + 2592000), "id",
		"si_base", "price", "id", "price_base", "metadata", "price_type", "base", "tier",
		tier, "included_spus", (json_int_t)spus, "current_period_start", (json_int_t)start,
		"current_period_end", (json_int_t)(start + 2592000));
	ck_assert_ptr_nonnull(ev);
	if (org)
		sk_set_str(ev, "data.object.metadata.org_id", org);
	return ev;
}

/* invoice.paid in the 2025 shape (parent.subscription_details; lines with
 * parent.subscription_item_details): a proration line of the upgrade first, inside the old
 * period, then the subscription item's own line of the period starting at start. */
static json_t *invoice_2025(const char *id, long long created, const char *cus,
			    const char *org, const char *sub, const char *reason, long long start)
{
	json_t *ev = json_pack(
		"{sssssIsbs{s{sssssssssss{sss{sss{ss}}}s{s[{s{sss{sbss}}s{sIsI}sb}"
		"{s{sss{sbss}}s{sIsI}sb}]}}}}",
		"id", id, "type", "invoice.paid", "created", (json_int_t)created, "livemode", 0,
		"data", "object", "id", id, "object", "invoice", "customer", cus, "status", "paid",
		"billing_reason", reason, "parent", "type", "subscription_details",
		"subscription_details", "subscription", sub, "metadata", "org_id", org, "lines",
		"data", "parent", "type", "subscription_item_details", "subscription_item_details",
		"proration", 1, "subscription", sub, "period", "start",
		(json_int_t)(start - 864000), "end", (json_int_t)start, "livemode", 0, "parent",
		"type", "subscription_item_details", "subscription_item_details", "proration", 0,
		"subscription", sub, "period", "start", (json_int_t)start, "end",
		(json_int_t)(start + 2592000), "livemode", 0);
	ck_assert_ptr_nonnull(ev);
	return ev;
}

/* invoice.paid in the older shape (invoice.subscription; invoiceitem proration lines first,
 * then the type "subscription" line), no org metadata: the org comes from the customer. */
static json_t *invoice_old(const char *id, long long created, const char *cus, const char *sub,
			   const char *reason, long long start)
{
	json_t *ev = json_pack(
		"{sssssIsbs{s{sssssssssssss{s[{sssbsss{sIsI}}{sssbsss{sIsI}}{sssbsss{sIsI}}]}}}}",
		"id", id, "type", "invoice.paid", "created", (json_int_t)created, "livemode", 0,
		"data", "object", "id", id, "object", "invoice", "customer", cus, "status", "paid",
		"billing_reason", reason, "subscription", sub, "lines", "data", "type",
		"invoiceitem", "proration", 1, "subscription", sub, "period", "start",
		(json_int_t)(start - 864000), "end", (json_int_t)start, "type", "invoiceitem",
		"proration", 1, "subscription", sub, "period", "start", (json_int_t)(start - 864000),
		"end", (json_int_t)start, "type", "subscription", "proration", 0, "subscription", sub,
		"period", "start", (json_int_t)start, "end", (json_int_t)(start + 2592000));
	ck_assert_ptr_nonnull(ev);
	return ev;
}

/* Every message of topic so far, parsed (new array). */
static json_t *read_all(const char *topic)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(topic, 100000, 3000, &msgs);
	json_t *all = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *r = json_loads(msgs[i].value, 0, NULL);
		ck_assert_msg(r != NULL, "%s: not JSON: %s", topic, msgs[i].value);
		json_array_append_new(all, r);
	}
	tk_msgs_free(msgs, n);
	return all;
}

/* The tick id of the last sync result in all (borrowed). */
static const char *last_tick_id(json_t *all)
{
	const char *id = NULL;
	json_t *r;
	size_t i;

	json_array_foreach(all, i, r)
		if (json_string_value(json_object_get(r, "tick_id")))
			id = json_string_value(json_object_get(r, "tick_id"));
	ck_assert_msg(id != NULL, "no sync result");
	return id;
}

static void send_ev(const struct lc *e, json_t *ev)
{
	sk_produce(&e->sk, ev);
	json_decref(ev);
}

static void expect_doc(const struct lc *e, const char *org, const char *type,
		       long long allowance, long long used, const char *status,
		       long long version)
{
	json_t *d = sk_customer(&e->sk, org);
	ck_assert_msg(strcmp(str(d, "subscription_type"), type) == 0, "%s: type %s, want %s", org,
		      str(d, "subscription_type"), type);
	ck_assert_msg(tk_int(d, "subscription_spu_allowance") == allowance,
		      "%s: allowance %lld, want %lld", org, tk_int(d, "subscription_spu_allowance"),
		      allowance);
	ck_assert_msg(tk_int(d, "subscription_spus_used") == used, "%s: used %lld, want %lld", org,
		      tk_int(d, "subscription_spus_used"), used);
	if (status)
		ck_assert_msg(strcmp(str(d, "stripe_subscription_status"), status) == 0,
			      "%s: status %s, want %s", org, str(d, "stripe_subscription_status"),
			      status);
	ck_assert_msg(tk_int(d, "balance_version") == version, "%s: version %lld, want %lld", org,
		      tk_int(d, "balance_version"), version);
	json_decref(d);
}

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
	send_ev(&e, sub_event("evt_ia1", "customer.subscription.created", T + 1, "sub_ia", "cus_ia",
			   "org_ia", "incomplete", "team", 5000, P1));
	send_ev(&e, sub_event("evt_ia2", "customer.subscription.updated", T + 2, "sub_ia", "cus_ia",
			   "org_ia", "active", "team", 5000, P1));
	send_ev(&e, invoice_2025("in_ia", T + 3, "cus_ia", "org_ia", "sub_ia", "subscription_create",
			      P1));
	/* incomplete then expired */
	sk_seed_customer(&e.sk, "org_ie", "cus_ie", 0, 0);
	send_ev(&e, sub_event("evt_ie1", "customer.subscription.created", T + 1, "sub_ie", "cus_ie",
			   "org_ie", "incomplete", "team", 5000, P1));
	send_ev(&e, sub_event("evt_ie2", "customer.subscription.updated", T + 2, "sub_ie", "cus_ie",
			   "org_ie", "incomplete_expired", "team", 5000, P1));
	/* renewal after an upgrade: 2025 shape, older shape, and a cycle restart */
	seed_period(&e, "org_up", "cus_up", "team", 5000, 4000, P0, 1);
	send_ev(&e, sub_event("evt_up1", "customer.subscription.updated", T + 1, "sub_org_up",
			   "cus_up", "org_up", "active", "business", 20000, P0));
	send_ev(&e, invoice_2025("in_up", T + 2, "cus_up", "org_up", "sub_org_up",
			      "subscription_cycle", P1));
	seed_period(&e, "org_old", "cus_old", "team", 5000, 4000, P0, 1);
	send_ev(&e, sub_event("evt_old1", "customer.subscription.updated", T + 1, "sub_org_old",
			   "cus_old", "org_old", "active", "business", 20000, P0));
	send_ev(&e, invoice_old("in_old", T + 2, "cus_old", "sub_org_old", "subscription_cycle", P1));
	send_ev(&e, invoice_old("in_old", T + 3, "cus_old", "sub_org_old", "subscription_cycle", P1));
	seed_period(&e, "org_cyc", "cus_cyc", "team", 5000, 700, P0, 1);
	send_ev(&e, invoice_2025("in_cyc", T + 2, "cus_cyc", "org_cyc", "sub_org_cyc",
			      "subscription_update", P0 + 864000));
	seed_period(&e, "org_pro", "cus_pro", "team", 5000, 700, P0, 1);
	json_t *pro = invoice_2025("in_pro", T + 2, "cus_pro", "org_pro", "sub_org_pro",
				   "subscription_update", P0);
	json_array_remove(json_object_get(json_object_get(json_object_get(json_object_get(pro,
		"data"), "object"), "lines"), "data"), 1); /* proration lines only */
	send_ev(&e, pro);
	/* enterprise orgs: by subscription_type, and by the backend's organizations */
	seed_period(&e, "org_ent", "cus_ent", "enterprise", 0, 123, P0, 1);
	send_ev(&e, sub_event("evt_ent1", "customer.subscription.deleted", T + 1, "sub_org_ent",
			   "cus_ent", "org_ent", "canceled", "team", 5000, P0));
	char org_doc[256];
	snprintf(org_doc, sizeof(org_doc),
		 "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Big Co\",\"type\":\"enterprise\"}", ent_org);
	tk_mongo_insert(e.sk.db, "organizations", org_doc);
	seed_period(&e, ent_org, "cus_ent2", "team", 5000, 10, P0, 1);
	send_ev(&e, sub_event("evt_ent2", "customer.subscription.deleted", T + 1, "sub_65a1b2c3d4e5f60718293a4c",
			   "cus_ent2", ent_org, "canceled", "team", 5000, P0));
	/* past_due keeps the allowance (default) */
	seed_period(&e, "org_pd", "cus_pd", "team", 5000, 10, P0, 1);
	send_ev(&e, sub_event("evt_pd", "customer.subscription.updated", T + 1, "sub_org_pd",
			   "cus_pd", "org_pd", "past_due", "team", 5000, P0));
	/* the other mode (the worker runs with STRIPE_LIVEMODE=false) */
	sk_seed_customer(&e.sk, "org_live", "cus_live", 0, 0);
	json_t *live = sub_event("evt_live", "customer.subscription.created", T + 1, "sub_live",
				 "cus_live", "org_live", "active", "team", 5000, P0);
	sk_set(live, "livemode", json_true());
	send_ev(&e, live);
	/* another product's customer, recorded by the sync: no org, no DLQ, no tick */
	tk_mongo_insert(e.sk.db, "payments_foreign_customers",
			"{\"_id\":\"cus_foreign\",\"stripe_customer_id\":\"cus_foreign\","
			"\"product\":\"other_app\"}");
	send_ev(&e, sub_event("evt_foreign", "customer.subscription.created", T + 1, "sub_f",
			   "cus_foreign", NULL, "active", "team", 5000, P0));
	/* customer.deleted clears the customer and its subscription */
	seed_period(&e, "org_cd", "cus_cd", "team", 5000, 10, P0, 1);
	json_t *cd = json_pack("{sssssIsbs{s{sssssbs{ss}}}}", "id", "evt_cd", "type",
			       "customer.deleted", "created", (json_int_t)(T + 1), "livemode", 0,
			       "data", "object", "id", "cus_cd", "object", "customer", "deleted", 1,
			       "metadata", "org_id", "org_cd");
	send_ev(&e, cd);
	/* the deletion of a subscription that is not the stored one: a customer sync tick */
	seed_period(&e, "org_nd", "cus_nd", "team", 5000, 10, P0, 1);
	send_ev(&e, sub_event("evt_nd", "customer.subscription.deleted", T + 1, "sub_not_stored",
			   "cus_nd", "org_nd", "canceled", "team", 5000, P0));

	const char *extra[] = { "STRIPE_LIVEMODE=false", NULL };
	run_stripe(&e, extra);
	all = sk_read_json(e.sk.results, 19);

	expect(all, "evt_ia1", "applied");
	expect(all, "evt_ia2", "applied");
	expect(all, "in_ia", "applied");
	expect_doc(&e, "org_ia", "team", 5000, 0, "active", 4);

	expect(all, "evt_ie1", "applied");
	expect(all, "evt_ie2", "applied");
	expect_doc(&e, "org_ie", "none", 0, 0, "incomplete_expired", 3);

	/* the plan change takes the new allowance at once, the usage carries over, and the
	 * renewal (proration lines first) resets it */
	expect(all, "evt_up1", "applied");
	expect(all, "in_up", "applied");
	expect_doc(&e, "org_up", "business", 20000, 0, "active", 3);
	d = sk_customer(&e.sk, "org_up");
	ck_assert_int_eq(sk_date_ms(json_object_get(d, "subscription_spus_reset_period_start")),
			 P1 * 1000);
	ck_assert_int_eq(sk_date_ms(json_object_get(d, "stripe_current_billing_period_start")),
			 P1 * 1000);
	json_decref(d);
	expect(all, "evt_old1", "applied");
	ck_assert_str_eq(sk_status(sk_result(all, "in_old", 0)), "applied");
	ck_assert_str_eq(sk_status(sk_result(all, "in_old", 1)), "duplicate");
	expect_doc(&e, "org_old", "business", 20000, 0, "active", 3);
	/* billing_reason subscription_update with a new period start: resets; a proration-only
	 * invoice of the same period does not */
	expect(all, "in_cyc", "applied");
	expect_doc(&e, "org_cyc", "team", 5000, 0, "active", 2);
	expect(all, "in_pro", "ignored");
	expect_doc(&e, "org_pro", "team", 5000, 700, "active", 1);

	/* enterprise orgs: recorded, ignored with the reason, unchanged */
	expect(all, "evt_ent1", "ignored");
	ck_assert_ptr_nonnull(strstr(str(last_result(all, "evt_ent1"), "reason"), "enterprise"));
	expect_doc(&e, "org_ent", "enterprise", 0, 123, "active", 1);
	expect(all, "evt_ent2", "ignored");
	expect_doc(&e, ent_org, "team", 5000, 10, "active", 1);
	d = tk_mongo_find_one(e.sk.db, "payments_stripe_events", "{\"event_id\":\"evt_ent1\"}");
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(str(d, "status"), "ignored");
	json_decref(d);

	expect(all, "evt_pd", "applied");
	expect_doc(&e, "org_pd", "team", 5000, 10, "past_due", 2);

	expect(all, "evt_live", "ignored");
	expect_doc(&e, "org_live", "none", 0, 0, NULL, 1);
	d = tk_mongo_find_one(e.sk.db, "payments_stripe_events", "{\"event_id\":\"evt_live\"}");
	ck_assert_ptr_nonnull(d);
	json_decref(d);

	expect(all, "evt_foreign", "ignored");

	expect(all, "evt_cd", "applied");
	d = sk_customer(&e.sk, "org_cd");
	ck_assert_ptr_null(json_object_get(d, "stripe_customer_id"));
	ck_assert_ptr_null(json_object_get(d, "stripe_subscription_id"));
	ck_assert_int_eq(tk_int(d, "stripe_customers_deleted"), 1);
	json_decref(d);
	expect_doc(&e, "org_cd", "none", 0, 10, "canceled", 2);

	expect(all, "evt_nd", "stale");
	expect_doc(&e, "org_nd", "team", 5000, 10, "active", 1);
	json_decref(all);

	/* ticks: the deletion that is not the stored one asked for one; the foreign customer
	 * and the other mode for none */
	json_t *ticks = sk_read_json(e.sk.ticks, 1), *t;
	size_t i;
	int nd = 0;
	json_array_foreach(ticks, i, t) {
		const char *cus = str(t, "stripe_customer_id");
		ck_assert_str_ne(cus, "cus_foreign");
		ck_assert_str_ne(cus, "cus_live");
		if (strcmp(str(t, "org_id"), "org_nd") == 0)
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
	send_ev(&e, sub_event("evt_o1", "customer.subscription.created", 1765000001, "sub_o",
			      "cus_other", NULL, "active", "team", 5000, P0));
	/* the stripe worker waits (backing off, a tick per wait) while the sync runs */
	const char *waits[] = { "STRIPE_UNKNOWN_CUSTOMER_RETRIES=40", "STRIPE_BACKOFF_MAX_MS=300",
				NULL };
	pid_t pid = spawn_stripe(&e, waits);
	run_sync(&e, NULL);
	ck_assert_int_eq(tk_wait(pid, 60000), 0);
	size_t ticks_before = tk_consume(e.sk.ticks, 1000, 1500, &msgs);
	tk_msgs_free(msgs, ticks_before);
	ck_assert_uint_ge(ticks_before, 1);

	/* recorded as another product's: this event and the next are ignored, no tick */
	send_ev(&e, sub_event("evt_o2", "customer.subscription.updated", 1765000002, "sub_o",
			      "cus_other", NULL, "active", "team", 5000, P0));
	run_stripe(&e, waits);
	all = read_all(e.sk.results);
	expect(all, "evt_o1", "ignored");
	expect(all, "evt_o2", "ignored");
	expect(all, last_tick_id(all), "skipped");
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

int main(void)
{
	Suite *s = suite_create("stripe_lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, sync_applies_the_policy_with_stripes_clock);
	tcase_add_test(tc, stripe_worker_sequences);
	tcase_add_test(tc, another_products_customer_costs_one_tick);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
