/* lifecycle_kit: see lifecycle_kit.h. */
#include "lifecycle_kit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

void lc_init(struct lc *e, const char *name, json_t *state)
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

void lc_done(struct lc *e)
{
	if (e->has_stub)
		stub_stop(&e->stub);
	tk_mongo_drop(e->sk.db);
	unlink(e->sk.log);
	unlink(e->sync_log);
}

/* Runs the sync worker over the ticks topic until idle. */
void lc_run_sync(struct lc *e, const char *const *extra)
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

void lc_run_stripe(struct lc *e, const char *const *extra)
{
	ck_assert_int_eq(sk_run_worker(&e->sk, extra, 3000), 0);
}

/* Starts the stripe worker without waiting (tk_wait the pid). */
pid_t lc_spawn_stripe(struct lc *e, const char *const *extra)
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
json_t *lc_last_result(json_t *all, const char *id)
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

const char *lc_str(const json_t *doc, const char *key)
{
	const char *s = json_string_value(json_object_get(doc, key));
	return s ? s : "(none)";
}

void lc_expect(json_t *all, const char *id, const char *status)
{
	json_t *r = lc_last_result(all, id);
	ck_assert_msg(strcmp(sk_status(r), status) == 0, "%s: status %s, want %s (%s)", id,
		      sk_status(r), status, lc_str(r, "reason"));
}

void lc_tick(const struct lc *e, const char *id, const char *org, const char *cus)
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
void lc_seed_period(const struct lc *e, const char *org, const char *cus, const char *type,
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
		 "\"balance_version\":{\"$numberLong\":\"%lld\"},"
		 "\"opening_balance\":{\"source\":\"none\"}}",
		 org, cus, type, allowance, used, org, period_s * 1000, period_s * 1000, version);
	tk_mongo_insert(e->sk.db, "payments_customers", doc);
}

/* A Stripe API subscription (2025 shape: the period on the items), an add-on item first. */
json_t *lc_api_sub(const char *id, const char *cus, const char *status, long long created,
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
json_t *lc_api_invoice(const char *id, const char *sub, const char *status, long long start)
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

void lc_add_addon_price(json_t *st)
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
/* ---- Stripe events as Stripe sends them ---- */

/* A customer.subscription.* event in the 2025 shape: the period on the items, an add-on item
 * first (price_type addon), the base item second. org NULL: no metadata.org_id. */
json_t *lc_sub_event(const char *id, const char *type, long long created, const char *sub,
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
json_t *lc_invoice_2025(const char *id, long long created, const char *cus,
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
json_t *lc_invoice_old(const char *id, long long created, const char *cus, const char *sub,
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
json_t *lc_read_all(const char *topic)
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
const char *lc_last_tick_id(json_t *all)
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

void lc_send(const struct lc *e, json_t *ev)
{
	sk_produce(&e->sk, ev);
	json_decref(ev);
}

void lc_expect_doc(const struct lc *e, const char *org, const char *type,
		   long long allowance, long long used, const char *status,
		   long long version)
{
	json_t *d = sk_customer(&e->sk, org);
	ck_assert_msg(strcmp(lc_str(d, "subscription_type"), type) == 0, "%s: type %s, want %s", org,
		      lc_str(d, "subscription_type"), type);
	ck_assert_msg(tk_int(d, "subscription_spu_allowance") == allowance,
		      "%s: allowance %lld, want %lld", org, tk_int(d, "subscription_spu_allowance"),
		      allowance);
	ck_assert_msg(tk_int(d, "subscription_spus_used") == used, "%s: used %lld, want %lld", org,
		      tk_int(d, "subscription_spus_used"), used);
	if (status)
		ck_assert_msg(strcmp(lc_str(d, "stripe_subscription_status"), status) == 0,
			      "%s: status %s, want %s", org, lc_str(d, "stripe_subscription_status"),
			      status);
	ck_assert_msg(tk_int(d, "balance_version") == version, "%s: version %lld, want %lld", org,
		      tk_int(d, "balance_version"), version);
	json_decref(d);
}

