/* Integration tests of the sync worker binary against the real broker, the MongoDB-wire
 * server and the Stripe API stub (tests/stub/stripe_stub.py): prices through every page into
 * payments_prices, a changed included_spus changing the stored tier on the next tick,
 * customers created with a stable Idempotency-Key, subscriptions reconciled, Stripe errors
 * in the result, bad ticks to the DLQ, bounded transient failures, local-only mode, and a
 * start refused with exit 2 on two customer documents for one org. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../stub/stripe_stub.h"
#include "testkit.h"

struct env {
	char ticks[64], results[128], db[64], group[128], log[160];
	struct stub stub;
};

static void env_init(struct env *e, const char *name, json_t *state)
{
	tk_unique(e->ticks, sizeof(e->ticks), name);
	snprintf(e->results, sizeof(e->results), "%s.results", e->ticks);
	snprintf(e->db, sizeof(e->db), "%s", e->ticks);
	snprintf(e->group, sizeof(e->group), "%s-g", e->ticks);
	snprintf(e->log, sizeof(e->log), "/tmp/%s.log", e->ticks);
	tk_create_topic(e->ticks, 1, 1);
	tk_create_topic(e->results, 1, 0);
	stub_start(&e->stub, state);
	json_decref(state);
}

static void env_done(struct env *e)
{
	stub_stop(&e->stub);
	tk_mongo_drop(e->db);
	unlink(e->log);
}

/* Runs the worker until it is idle or exits; extra is a NULL-terminated "K=V" list (may be
 * NULL). with_key 0: local-only mode (no STRIPE_SECRET_KEY). Returns its exit status. */
static int run_worker_status(struct env *e, int with_key, const char *const *extra)
{
	char v[8][200];
	const char *envp[24];
	size_t n = 0;

	snprintf(v[0], sizeof(v[0]), "SYNC_TOPIC=%s", e->ticks);
	snprintf(v[1], sizeof(v[1]), "RESULTS_TOPIC=%s", e->results);
	snprintf(v[2], sizeof(v[2]), "MONGO_DB=%s", e->db);
	snprintf(v[3], sizeof(v[3]), "SYNC_GROUP_ID=%s", e->group);
	snprintf(v[4], sizeof(v[4]), "STRIPE_API_BASE=%s", e->stub.url);
	snprintf(v[5], sizeof(v[5]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(v[6], sizeof(v[6]), "MONGO_URI=%s", tk_mongo_uri());
	for (int i = 0; i < 7; i++)
		envp[n++] = v[i];
	envp[n++] = with_key ? "STRIPE_SECRET_KEY=sk_test_integration" : "STRIPE_SECRET_KEY=";
	envp[n++] = "IDLE_EXIT_MS=4000";
	envp[n++] = "STRIPE_RETRY_BASE_MS=10";
	envp[n++] = "STRIPE_TIMEOUT_MS=2000";
	envp[n++] = "SYNC_BACKOFF_MAX_MS=200";
	envp[n++] = "SYNC_RATE_LIMIT_RPS=200";
	for (const char *const *x = extra; x && *x && n < 23; x++)
		envp[n++] = *x;
	envp[n] = NULL;
	pid_t pid = tk_spawn(BW_SYNC_WORKER_PATH, envp, e->log);
	return tk_wait(pid, 50000);
}

/* Runs the worker until it is idle; it must exit 0. */
static void run_worker(struct env *e, int with_key, const char *const *extra)
{
	ck_assert_int_eq(run_worker_status(e, with_key, extra), 0);
}

static json_t *results(struct env *e, size_t want)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(e->results, want, 20000, &msgs);
	json_t *all = json_array();

	ck_assert_msg(n >= want, "got %zu results, want %zu", n, want);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_loads(msgs[i].value, 0, NULL);
		ck_assert_msg(r != NULL, "result is not JSON: %s", msgs[i].value);
		json_array_append_new(all, r);
	}
	tk_msgs_free(msgs, n);
	return all;
}

/* The last result of tick_id (borrowed from all). */
static json_t *result_of(json_t *all, const char *tick_id)
{
	json_t *r, *found = NULL;
	size_t i;
	json_array_foreach(all, i, r) {
		const char *t = json_string_value(json_object_get(r, "tick_id"));
		if (t && strcmp(t, tick_id) == 0)
			found = r;
	}
	ck_assert_msg(found != NULL, "no result for tick %s", tick_id);
	return found;
}

static const char *status_of(json_t *r)
{
	return json_string_value(json_object_get(r, "status"));
}

static long long count_of(json_t *r, const char *key)
{
	return tk_int(json_object_get(r, "counts"), key);
}

static json_t *price_doc(struct env *e, const char *price_id)
{
	char filter[128];
	snprintf(filter, sizeof(filter), "{\"price_id\":\"%s\"}", price_id);
	return tk_mongo_find_one(e->db, "payments_prices", filter);
}

static json_t *customer_doc(struct env *e, const char *org_id)
{
	char filter[160];
	snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", org_id);
	json_t *d = tk_mongo_find_one(e->db, "payments_customers", filter);
	ck_assert_msg(d != NULL, "no customer document for %s", org_id);
	return d;
}

static void set_included_spus(json_t *state, const char *price_id, const char *spus)
{
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(state, "prices"), i, p)
		if (strcmp(json_string_value(json_object_get(p, "id")), price_id) == 0)
			json_object_set_new(json_object_get(p, "metadata"), "included_spus",
					    json_string(spus));
}

START_TEST(prices_every_page_and_a_changed_tier_on_the_next_tick)
{
	struct env e;
	json_t *all, *r, *d;

	env_init(&e, "sync_prices", stub_fixture());
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"p1\",\"scope\":\"prices\"}");
	run_worker(&e, 1, NULL);
	/* start-up sync + tick: 3 pages each */
	ck_assert_int_eq(stub_count(&e.stub, "GET", "/v1/prices"), 6);
	all = results(&e, 1);
	r = result_of(all, "p1");
	ck_assert_str_eq(status_of(r), "applied");
	ck_assert_str_eq(json_string_value(json_object_get(r, "scope")), "prices");
	ck_assert_int_eq(count_of(r, "pages"), 3);
	ck_assert_int_eq(count_of(r, "requests"), 3);
	ck_assert_int_eq(count_of(r, "prices_seen"), 8);
	ck_assert_int_eq(count_of(r, "prices_stored"), 5);
	ck_assert_int_eq(count_of(r, "prices_invalid"), 1);
	json_decref(all);

	json_t *stored = tk_mongo_find(e.db, "payments_prices", "{}");
	ck_assert_int_eq(json_array_size(stored), 5);   /* other products' prices are not kept */
	json_decref(stored);
	ck_assert_ptr_null(price_doc(&e, "price_other_1"));
	ck_assert_ptr_null(price_doc(&e, "price_untagged"));
	d = price_doc(&e, "price_team");
	ck_assert_int_eq(tk_int(d, "included_spus"), 5000);
	ck_assert_str_eq(json_string_value(json_object_get(d, "tier")), "team");
	ck_assert_str_eq(json_string_value(json_object_get(d, "price_type")), "base");
	ck_assert_int_eq(tk_int(d, "unit_amount"), 4900);
	ck_assert(json_is_true(json_object_get(d, "active")));
	ck_assert_str_eq(json_string_value(json_object_get(d, "product_id")), "prod_docrouter");
	ck_assert_ptr_nonnull(json_object_get(d, "synced_at"));
	json_decref(d);
	d = price_doc(&e, "price_credit");
	ck_assert_str_eq(json_string_value(json_object_get(d, "price_type")), "credit");
	ck_assert_int_eq(tk_int(json_object_get(d, "transform_quantity"), "divide_by"), 10);
	ck_assert_int_eq(tk_int(d, "min_spu_purchase"), 500);
	ck_assert_int_eq(tk_int(d, "max_spu_purchase"), 100000);
	json_decref(d);
	d = price_doc(&e, "price_bad");   /* "12abc": stored with the problem, no number */
	ck_assert_ptr_null(json_object_get(d, "included_spus"));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(d, "metadata_error")),
				     "included_spus"));
	json_decref(d);

	/* Stripe changes: team includes 6000, the individual price is archived. */
	json_t *st = stub_fixture();
	set_included_spus(st, "price_team", "6000");
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(st, "prices"), i, p)
		if (strcmp(json_string_value(json_object_get(p, "id")), "price_individual") == 0)
			json_object_set_new(p, "active", json_false());
	stub_set_state(&e.stub, st);
	json_decref(st);
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"p2\",\"scope\":\"prices\"}");
	const char *no_start[] = { "SYNC_PRICES_AT_START=false", NULL };
	run_worker(&e, 1, no_start);
	all = results(&e, 2);
	r = result_of(all, "p2");
	ck_assert_str_eq(status_of(r), "applied");
	ck_assert_int_eq(count_of(r, "prices_deactivated"), 1);
	json_decref(all);
	d = price_doc(&e, "price_team");
	ck_assert_int_eq(tk_int(d, "included_spus"), 6000);
	json_decref(d);
	d = price_doc(&e, "price_individual");
	ck_assert(json_is_false(json_object_get(d, "active")));
	ck_assert_int_eq(tk_int(d, "included_spus"), 1000);  /* kept, not deleted */
	json_decref(d);
	env_done(&e);
}
END_TEST

START_TEST(customers_created_once_and_subscriptions_reconciled)
{
	struct env e;
	char org_new[96], cus_new[128], key[160], tick[512], doc[512];
	json_t *st = stub_fixture(), *all, *r, *d;

	tk_unique(org_new, sizeof(org_new), "org_new");
	snprintf(cus_new, sizeof(cus_new), "cus_for_%s", org_new);
	/* the customer the stub will create gets an individual subscription */
	json_array_append_new(
		json_object_get(st, "subscriptions"),
		json_pack("{sssssssIsIsIs{s[{ssss}]}}", "id", "sub_new", "customer", cus_new,
			  "status", "active", "created", (json_int_t)1700000500,
			  "current_period_start", (json_int_t)1700000500, "current_period_end",
			  (json_int_t)1702592500, "items", "data", "id", "si_n", "price",
			  "price_individual"));
	stub_add_fault(st, "POST", "/v1/customers", 500, 1, 0, NULL, NULL);
	stub_add_fault(st, "GET", "/v1/subscriptions", 429, 1, 0, "1", NULL);
	env_init(&e, "sync_customers", st);
	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
		 "\"subscription_type\":\"none\",\"subscription_spu_allowance\":{\"$numberLong\":\"0\"},"
		 "\"subscription_spus_used\":{\"$numberLong\":\"40\"},"
		 "\"granted_credits\":{\"$numberLong\":\"100\"},"
		 "\"balance_version\":{\"$numberLong\":\"3\"}}");
	tk_mongo_insert(e.db, "payments_customers", doc);
	snprintf(tick, sizeof(tick), "{\"tick_id\":\"c_new\",\"scope\":\"customer\",\"org_id\":\"%s\"}",
		 org_new);
	tk_produce(e.ticks, NULL, tick);
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"c_alpha\",\"scope\":\"customer\",\"org_id\":\"org_alpha\"}");
	tk_produce(e.ticks, NULL,
		   "{\"tick_id\":\"c_beta\",\"scope\":\"customer\",\"stripe_customer_id\":\"cus_beta\"}");
	tk_produce(e.ticks, NULL,
		   "{\"tick_id\":\"c_404\",\"scope\":\"customer\",\"stripe_customer_id\":\"cus_nobody\"}");
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"c_bad\",\"scope\":\"customer\"}");
	tk_produce(e.ticks, NULL, "{not json");
	/* a second tick for the new org: its customer is stored, no second POST */
	snprintf(tick, sizeof(tick), "{\"tick_id\":\"c_new2\",\"scope\":\"customer\",\"org_id\":\"%s\"}",
		 org_new);
	tk_produce(e.ticks, NULL, tick);
	const char *no_start[] = { "SYNC_PRICES_AT_START=false", "FREE_GRANT_SPUS=77", NULL };
	run_worker(&e, 1, no_start);
	all = results(&e, 7);

	/* created once, with the same Idempotency-Key on the retry after the 500 */
	r = result_of(all, "c_new");
	ck_assert_str_eq(status_of(r), "applied");
	ck_assert_int_eq(count_of(r, "customers_created"), 1);
	ck_assert_int_ge(count_of(r, "retries"), 2);  /* the POST's 500 and the list's 429 */
	snprintf(key, sizeof(key), "bw-sync-customer-%s", org_new);
	json_t *reqs = stub_requests(&e.stub), *q;
	size_t i;
	int posts = 0;
	json_array_foreach(reqs, i, q) {
		if (strcmp(json_string_value(json_object_get(q, "method")), "POST") != 0)
			continue;
		posts++;
		ck_assert_str_eq(json_string_value(json_object_get(q, "idempotency_key")), key);
	}
	json_decref(reqs);
	ck_assert_int_eq(posts, 2);
	ck_assert_int_eq(count_of(result_of(all, "c_new2"), "customers_created"), 0);
	d = customer_doc(&e, org_new);
	ck_assert_str_eq(json_string_value(json_object_get(d, "stripe_customer_id")), cus_new);
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "individual");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 1000);
	ck_assert_int_eq(tk_int(d, "granted_credits"), 77);
	ck_assert_int_eq(tk_int(d, "purchased_credits"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "stripe_subscription_id")), "sub_new");
	ck_assert_int_gt(tk_int(d, "stripe_current_billing_period_start"), 1000000000); /* unix seconds */
	json_decref(d);

	/* the active team subscription wins over the canceled individual one */
	ck_assert_str_eq(status_of(result_of(all, "c_alpha")), "applied");
	d = customer_doc(&e, "org_alpha");
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "team");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 5000);
	ck_assert_str_eq(json_string_value(json_object_get(d, "stripe_subscription_id")), "sub_alpha");
	ck_assert_str_eq(json_string_value(json_object_get(d, "stripe_subscription_status")), "active");
	ck_assert_int_eq(tk_int(d, "balance_version"), 4);       /* one balance change: +1 */
	ck_assert_int_eq(tk_int(d, "subscription_spus_used"), 40);  /* not touched */
	ck_assert_int_ge(tk_int(d, "stripe_subscription_event_created"), 1700000000);
	json_decref(d);

	/* only a Stripe customer id: the org comes from its metadata, period from the item */
	ck_assert_str_eq(status_of(result_of(all, "c_beta")), "applied");
	d = customer_doc(&e, "org_beta");
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "individual");
	ck_assert_str_eq(json_string_value(json_object_get(d, "stripe_subscription_status")),
			 "trialing");
	ck_assert_int_gt(tk_int(d, "stripe_current_billing_period_end"), 1000000000); /* unix seconds */
	json_decref(d);

	/* Stripe's 404: failed with Stripe's error, no retry, no DLQ */
	r = result_of(all, "c_404");
	ck_assert_str_eq(status_of(r), "failed");
	json_t *se = json_object_get(r, "stripe_error");
	ck_assert_int_eq(tk_int(se, "http_status"), 404);
	ck_assert_str_eq(json_string_value(json_object_get(se, "type")), "invalid_request_error");
	ck_assert_str_eq(json_string_value(json_object_get(se, "code")), "resource_missing");
	ck_assert_int_eq(count_of(r, "retries"), 0);

	/* bad ticks: rejected and in the DLQ with the reason */
	ck_assert_str_eq(status_of(result_of(all, "c_bad")), "rejected");
	json_decref(all);
	char dlq[128];
	struct tk_msg *msgs = NULL;
	snprintf(dlq, sizeof(dlq), "%s.dlq", e.ticks);
	size_t n = tk_consume(dlq, 2, 15000, &msgs);
	ck_assert_int_eq(n, 2);
	char *reason = tk_header(&msgs[0], "dlq.reason");
	ck_assert_ptr_nonnull(strstr(reason, "org_id or stripe_customer_id"));
	free(reason);
	tk_msgs_free(msgs, n);
	env_done(&e);
}
END_TEST

START_TEST(all_scope_and_a_stripe_outage_never_blocks_the_partition)
{
	struct env e;
	json_t *st = stub_fixture(), *all, *r, *d;

	/* cus_beta's reads fail for good: its tick must end as failed, not loop */
	stub_add_fault(st, "GET", "/v1/customers/cus_beta", 500, -1, 0, NULL, NULL);
	env_init(&e, "sync_all", st);
	tk_mongo_insert(e.db, "payments_customers",
			"{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
			"\"balance_version\":{\"$numberLong\":\"1\"}}");
	tk_mongo_insert(e.db, "payments_customers",
			"{\"org_id\":\"org_gone\",\"stripe_customer_id\":\"cus_gone\","
			"\"subscription_type\":\"team\",\"subscription_spu_allowance\":{\"$numberLong\":\"5000\"},"
			"\"balance_version\":{\"$numberLong\":\"1\"}}");
	tk_mongo_insert(e.db, "payments_customers",
			"{\"org_id\":\"org_missing\",\"stripe_customer_id\":\"cus_missing\"}");
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"org_local\"}");
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"a1\",\"scope\":\"all\"}");
	tk_produce(e.ticks, NULL,
		   "{\"tick_id\":\"b_out\",\"scope\":\"customer\",\"stripe_customer_id\":\"cus_beta\"}");
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"after\",\"scope\":\"prices\"}");
	const char *extra[] = { "SYNC_PRICES_AT_START=false", "SYNC_MAX_TICK_ATTEMPTS=2",
				"STRIPE_MAX_RETRIES=1", NULL };
	run_worker(&e, 1, extra);
	all = results(&e, 3);
	r = result_of(all, "a1");
	ck_assert_str_eq(status_of(r), "applied");
	ck_assert_int_eq(count_of(r, "prices_stored"), 5);
	ck_assert_int_eq(count_of(r, "customers_seen"), 3);   /* org_local has no customer */
	ck_assert_int_eq(count_of(r, "customers_updated"), 2);
	ck_assert_int_eq(count_of(r, "customers_failed"), 1);
	json_t *ce = json_array_get(json_object_get(r, "customer_errors"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ce, "org_id")), "org_missing");
	d = customer_doc(&e, "org_alpha");
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "team");
	json_decref(d);
	d = customer_doc(&e, "org_gone");   /* deleted Stripe customer: no plan any more */
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "none");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 0);
	ck_assert_int_eq(tk_int(d, "balance_version"), 2);
	json_decref(d);

	r = result_of(all, "b_out");
	ck_assert_str_eq(status_of(r), "failed");
	ck_assert_int_eq(tk_int(r, "attempts"), 2);
	ck_assert_int_eq(tk_int(json_object_get(r, "stripe_error"), "http_status"), 500);
	/* 2 attempts x (1 request + 1 retry) */
	ck_assert_int_eq(stub_count(&e.stub, "GET", "/v1/customers/cus_beta"), 4);
	ck_assert_str_eq(status_of(result_of(all, "after")), "applied");
	json_decref(all);
	env_done(&e);
}
END_TEST

START_TEST(a_webhook_newer_than_the_api_read_is_not_overwritten)
{
	struct env e;
	char doc[640];
	long long newer = (long long)time(NULL) + 3600;
	json_t *all, *d;

	/* The stripe worker stored a subscription event created after this sync reads the API
	 * (here: an hour ahead, so the read is surely older): the API snapshot must not
	 * overwrite it, nor take its place in the ordering. */
	env_init(&e, "sync_newer", stub_fixture());
	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
		 "\"subscription_type\":\"business\","
		 "\"subscription_spu_allowance\":{\"$numberLong\":\"20000\"},"
		 "\"stripe_subscription_id\":\"sub_alpha_next\","
		 "\"stripe_subscription_status\":\"active\","
		 "\"stripe_subscription_event_created\":{\"$numberLong\":\"%lld\"},"
		 "\"balance_version\":{\"$numberLong\":\"5\"}}", newer);
	tk_mongo_insert(e.db, "payments_customers", doc);
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"n1\",\"scope\":\"customer\",\"org_id\":\"org_alpha\"}");
	const char *no_start[] = { "SYNC_PRICES_AT_START=false", NULL };
	run_worker(&e, 1, no_start);
	all = results(&e, 1);
	ck_assert_str_eq(status_of(result_of(all, "n1")), "applied");
	json_decref(all);
	d = customer_doc(&e, "org_alpha");
	ck_assert_str_eq(json_string_value(json_object_get(d, "subscription_type")), "business");
	ck_assert_int_eq(tk_int(d, "subscription_spu_allowance"), 20000);
	ck_assert_str_eq(json_string_value(json_object_get(d, "stripe_subscription_id")),
			 "sub_alpha_next");
	ck_assert_int_eq(tk_int(d, "stripe_subscription_event_created"), newer);
	ck_assert_int_eq(tk_int(d, "balance_version"), 5);
	json_decref(d);
	env_done(&e);
}
END_TEST

START_TEST(local_only_mode_skips_and_calls_nothing)
{
	struct env e;
	json_t *all, *r;

	env_init(&e, "sync_local", stub_fixture());
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"l1\",\"scope\":\"prices\"}");
	tk_produce(e.ticks, NULL, "{\"tick_id\":\"l2\",\"scope\":\"customer\",\"org_id\":\"org_x\"}");
	run_worker(&e, 0, NULL);
	all = results(&e, 2);
	r = result_of(all, "l1");
	ck_assert_str_eq(status_of(r), "skipped");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "reason")), "local-only"));
	ck_assert_str_eq(status_of(result_of(all, "l2")), "skipped");
	json_decref(all);
	json_t *reqs = stub_requests(&e.stub);
	ck_assert_int_eq(json_array_size(reqs), 0);
	json_decref(reqs);
	json_t *prices = tk_mongo_find(e.db, "payments_prices", "{}");
	ck_assert_int_eq(json_array_size(prices), 0);
	json_decref(prices);
	env_done(&e);
}
END_TEST

/* Two customer documents for one org: a start refusal that needs an operator, exit 2 (the
 * code of a configuration error), naming the org; no tick is read. */
START_TEST(duplicate_customer_documents_stop_the_worker_with_exit_2)
{
	struct env e;
	char buf[1 << 15];
	FILE *f;
	size_t n;

	env_init(&e, "sync_dup_customers", stub_fixture());
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"dup-org\"}");
	tk_mongo_insert(e.db, "payments_customers", "{\"org_id\":\"dup-org\"}");
	ck_assert_int_eq(run_worker_status(&e, 0, NULL), 2);
	f = fopen(e.log, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_msg(strstr(buf, "dup-org") != NULL, "the org is not named: %s", buf);
	env_done(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sync_worker");
	TCase *tc = tcase_create("worker");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, prices_every_page_and_a_changed_tier_on_the_next_tick);
	tcase_add_test(tc, customers_created_once_and_subscriptions_reconciled);
	tcase_add_test(tc, all_scope_and_a_stripe_outage_never_blocks_the_partition);
	tcase_add_test(tc, a_webhook_newer_than_the_api_read_is_not_overwritten);
	tcase_add_test(tc, local_only_mode_skips_and_calls_nothing);
	tcase_add_test(tc, duplicate_customer_documents_stop_the_worker_with_exit_2);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
