/* bw-api's payment flows (issue 14) against the real local MongoDB and the Stripe API stub:
 * prices are stored by the sync worker's own code (bw_sync_prices over the stub's fixture),
 * bw-api is started as a process with STRIPE_API_BASE at the stub, and the exact requests the
 * stub received are asserted. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../stub/stripe_stub.h"
#include "api_kit.h"
#include "mongo.h"
#include "stripe_api.h"
#include "sync_prices.h"
#include "testkit.h"
#include "usage_kit.h"

struct pay_env {
	struct uk_env env;
	struct stub stub;
	struct ak_api api;
};

/* Stores the fixture's prices in db with the sync worker's code. */
static void sync_prices(const char *db, const struct stub *stub)
{
	struct bw_stripe_api_conf conf = { stub->url, "sk_test_pay", BW_STRIPE_API_VERSION_DEFAULT,
					   2000, 5000, 1 << 20, 1, 10, 50, 0 };
	struct bw_err err;
	struct bw_stripe_error serr;
	struct bw_sync_counts counts;
	struct bw_stripe_api *api;
	struct bw_mongo *m;

	memset(&counts, 0, sizeof(counts));
	bw_err_clear(&err);
	api = bw_stripe_api_new(&conf, &err);
	ck_assert(api != NULL);
	m = bw_mongo_new(tk_mongo_uri(), db, "test-api-pay", &err);
	ck_assert(m != NULL);
	ck_assert_msg(bw_sync_prices(api, m, "doc_router", "run-1", &counts, &serr, &err) == 0,
		      "sync prices: %s", err.msg);
	bw_mongo_destroy(m);
	bw_stripe_api_destroy(api);
}

/* Env, stub on the fixture state, prices synced, bw-api started (with_key: Stripe mode). */
static void pay_start(struct pay_env *pe, const char *name, int with_key)
{
	char base[128];
	json_t *st = stub_fixture();

	uk_env_init(&pe->env, name, 1);
	stub_start(&pe->stub, st);
	json_decref(st);
	sync_prices(pe->env.db, &pe->stub);
	stub_clear_requests(&pe->stub);
	snprintf(base, sizeof(base), "STRIPE_API_BASE=%s", pe->stub.url);
	const char *const extra[] = { base, "STRIPE_RETRY_BASE_MS=10", "STRIPE_RETRY_MAX_MS=50",
				      with_key ? "STRIPE_SECRET_KEY=sk_test_pay" : NULL, NULL };
	ak_start(&pe->api, tk_brokers(), pe->env.topic, pe->env.db, extra);
}

static void pay_stop(struct pay_env *pe)
{
	ak_stop(&pe->api);
	stub_stop(&pe->stub);
	tk_mongo_drop(pe->env.db);
}

/* A request expected to answer status; returns the parsed body (new reference). */
static json_t *call(const struct pay_env *pe, const char *method, const char *path,
		    const char *body, long status)
{
	struct ak_resp r;
	json_t *j;

	ak_http(&pe->api, method, path, AK_KEY, body, &r);
	ck_assert_msg(r.status == status && r.json, "%s %s: %ld %s (expected %ld)", method, path,
		      r.status, r.body ? r.body : "", status);
	j = json_incref(r.json);
	ak_resp_free(&r);
	return j;
}

static json_t *call_hdr(const struct pay_env *pe, const char *method, const char *path,
			const char *header, const char *body, long status)
{
	struct ak_resp r;
	json_t *j;

	ak_http_hdr(&pe->api, method, path, AK_KEY, header, body, &r);
	ck_assert_msg(r.status == status && r.json, "%s %s: %ld %s (expected %ld)", method, path,
		      r.status, r.body ? r.body : "", status);
	j = json_incref(r.json);
	ak_resp_free(&r);
	return j;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	ck_assert_msg(s != NULL, "no string %s", key);
	return s;
}

/* The requests of method to path (exact), as a new array. */
static json_t *posts_to(const struct pay_env *pe, const char *method, const char *path)
{
	json_t *all = stub_requests(&pe->stub), *out = json_array(), *r;
	size_t i;

	json_array_foreach(all, i, r) {
		if (!strcmp(str(r, "method"), method) && !strcmp(str(r, "path"), path))
			json_array_append(out, r);
	}
	json_decref(all);
	return out;
}

#define CREDITS_BODY                                                                        \
	"{\"credits\":%lld,\"success_url\":\"https://app.test/ok\","                          \
	"\"cancel_url\":\"https://app.test/no\"}"
#define ENC_URLS "success_url=https%%3A%%2F%%2Fapp.test%%2Fok&cancel_url=https%%3A%%2F%%2Fapp.test%%2Fno"

START_TEST(test_checkout_credits)
{
	struct pay_env pe;
	json_t *j, *reqs, *r;
	char body[256], form[512], path[] = "/v1/orgs/org-buy/checkout/credits";
	const char *id1;
	const long long cases[][2] = { { 499, 400 }, { 500, 200 }, { 100000, 200 },
				       { 100001, 400 } };

	pay_start(&pe, "it_api_pay_credits", 1);
	for (size_t i = 0; i < 4; i++) {
		snprintf(body, sizeof(body), CREDITS_BODY, cases[i][0]);
		j = call(&pe, "POST", path, body, cases[i][1]);
		if (cases[i][1] == 400) {
			ck_assert_str_eq(str(j, "error"), "invalid_request");
			ck_assert_msg(strstr(str(j, "detail"), "from 500 to 100000") != NULL, "%s",
				      str(j, "detail"));
		} else {
			ck_assert(!strncmp(str(j, "url"), "https://checkout.stripe.test/", 29));
			ck_assert(!strncmp(str(j, "id"), "cs_test_", 8));
		}
		json_decref(j);
	}
	/* The customer was created once, with the sync worker's key and metadata, and stored. */
	reqs = posts_to(&pe, "POST", "/v1/customers");
	ck_assert_int_eq(json_array_size(reqs), 1);
	r = json_array_get(reqs, 0);
	ck_assert_str_eq(str(r, "idempotency_key"), "bw-sync-customer-org-buy");
	ck_assert_str_eq(str(r, "body"), "metadata%5Borg_id%5D=org-buy&metadata%5Bproduct%5D=doc_router");
	json_decref(reqs);
	j = tk_mongo_find_one(pe.env.db, "payments_customers", "{\"org_id\":\"org-buy\"}");
	ck_assert_str_eq(str(j, "stripe_customer_id"), "cus_for_org-buy");
	json_decref(j);
	/* The exact sessions Stripe received: min and max, nothing for the refused amounts. */
	reqs = posts_to(&pe, "POST", "/v1/checkout/sessions");
	ck_assert_int_eq(json_array_size(reqs), 2);
	for (size_t i = 0; i < 2; i++) {
		long long n = i ? 100000 : 500;
		r = json_array_get(reqs, i);
		snprintf(form, sizeof(form),
			 "mode=payment&customer=cus_for_org-buy&line_items%%5B0%%5D%%5Bprice%%5D="
			 "price_credit&line_items%%5B0%%5D%%5Bquantity%%5D=%lld&" ENC_URLS
			 "&metadata%%5Borg_id%%5D=org-buy&metadata%%5Bcredits%%5D=%lld", n, n);
		ck_assert_str_eq(str(r, "body"), form);
		ck_assert(!strncmp(str(r, "idempotency_key"), "bw-api-checkout-credits-org-buy-", 32));
		ck_assert_str_eq(str(r, "authorization"), "Bearer sk_test_pay");
	}
	json_decref(reqs);
	/* A retried request (same body): the same key, Stripe's first session again. */
	stub_clear_requests(&pe.stub);
	snprintf(body, sizeof(body), CREDITS_BODY, 700LL);
	j = call_hdr(&pe, "POST", path, "Idempotency-Key: click-1", body, 200);
	json_t *j2 = call_hdr(&pe, "POST", path, "Idempotency-Key: click-1", body, 200);
	id1 = str(j, "id");
	ck_assert_str_eq(str(j2, "id"), id1);
	ck_assert_str_eq(str(j2, "url"), str(j, "url"));
	reqs = posts_to(&pe, "POST", "/v1/checkout/sessions");
	ck_assert_int_eq(json_array_size(reqs), 2);
	ck_assert_str_eq(str(json_array_get(reqs, 0), "idempotency_key"),
			 str(json_array_get(reqs, 1), "idempotency_key"));
	json_decref(reqs);
	json_decref(j2);
	json_decref(j);
	/* Another user action (another key) is another session, as is another amount. */
	j = call_hdr(&pe, "POST", path, "Idempotency-Key: click-2", body, 200);
	ck_assert_str_eq(str(j, "id"), "cs_test_4");
	json_decref(j);
	snprintf(body, sizeof(body), CREDITS_BODY, 701LL);
	j = call_hdr(&pe, "POST", path, "Idempotency-Key: click-1", body, 200);
	ck_assert_str_eq(str(j, "id"), "cs_test_5");
	json_decref(j);
	j = call(&pe, "POST", path, "{\"credits\":\"12\"}", 400);
	json_decref(j);
	pay_stop(&pe);
}
END_TEST

START_TEST(test_local_only_and_stripe_errors)
{
	struct pay_env pe;
	json_t *j, *st;
	char body[256];

	pay_start(&pe, "it_api_pay_local", 0);
	snprintf(body, sizeof(body), CREDITS_BODY, 600LL);
	j = call(&pe, "POST", "/v1/orgs/org-l/checkout/credits", body, 409);
	ck_assert_str_eq(str(j, "error"), "local_only");
	ck_assert(strstr(str(j, "detail"), "STRIPE_SECRET_KEY") != NULL);
	json_decref(j);
	json_decref(call(&pe, "POST", "/v1/orgs/org-l/checkout/plan", "{}", 409));
	json_decref(call(&pe, "DELETE", "/v1/orgs/org-l/subscription", NULL, 409));
	json_decref(call(&pe, "POST", "/v1/orgs/org-l/subscription/reactivate", NULL, 409));
	json_decref(call(&pe, "POST", "/v1/orgs/org-l/portal", "{}", 409));
	json_decref(call(&pe, "GET", "/v1/orgs/org-l/usage?from=2026-01-01&to=2026-01-02", NULL,
			 200));
	j = stub_requests(&pe.stub);
	ck_assert_int_eq(json_array_size(j), 0);
	json_decref(j);
	ak_stop(&pe.api);
	/* Stripe mode: a 429 is retried with the same key (one session); then Stripe refuses
	 * (400 invalid request: passed on with its type and message), then 503 (502 after the
	 * retries). */
	st = stub_fixture();
	stub_add_fault(st, "POST", "/v1/checkout/sessions", 429, 1, 0, "0", NULL);
	stub_set_state(&pe.stub, st);
	json_decref(st);
	char base[128];
	snprintf(base, sizeof(base), "STRIPE_API_BASE=%s", pe.stub.url);
	const char *const extra[] = { base, "STRIPE_SECRET_KEY=sk_test_pay", "STRIPE_MAX_RETRIES=1",
				      "STRIPE_RETRY_BASE_MS=10", "STRIPE_RETRY_MAX_MS=20", NULL };
	ak_start(&pe.api, tk_brokers(), pe.env.topic, pe.env.db, extra);
	j = call(&pe, "POST", "/v1/orgs/org-l/checkout/credits", body, 200);
	json_decref(j);
	j = posts_to(&pe, "POST", "/v1/checkout/sessions");
	ck_assert_int_eq(json_array_size(j), 2); /* the 429, then the retry with the same key */
	ck_assert_str_eq(str(json_array_get(j, 0), "idempotency_key"),
			 str(json_array_get(j, 1), "idempotency_key"));
	json_decref(j);
	st = stub_fixture();
	json_array_append_new(json_object_get(st, "faults"),
			      json_pack("{s:s s:s s:i s:i s:{s:{s:s s:s s:s}}}", "method", "POST",
					"path", "/v1/checkout/sessions", "status", 400, "times", 1,
					"body", "error", "type", "invalid_request_error", "code",
					"url_invalid", "message", "Not a valid URL"));
	json_array_append_new(json_object_get(st, "faults"),
			      json_pack("{s:s s:s s:i s:i}", "method", "POST", "path",
					"/v1/checkout/sessions", "status", 503, "times", -1));
	stub_set_state(&pe.stub, st);
	json_decref(st);
	snprintf(body, sizeof(body), CREDITS_BODY, 601LL); /* another request: another key */
	j = call(&pe, "POST", "/v1/orgs/org-l/checkout/credits", body, 400);
	ck_assert_str_eq(str(j, "error"), "stripe_refused");
	ck_assert_str_eq(str(json_object_get(j, "stripe"), "type"), "invalid_request_error");
	ck_assert_str_eq(str(json_object_get(j, "stripe"), "message"), "Not a valid URL");
	json_decref(j);
	snprintf(body, sizeof(body), CREDITS_BODY, 602LL);
	j = call(&pe, "POST", "/v1/orgs/org-l/checkout/credits", body, 502);
	ck_assert_str_eq(str(j, "error"), "stripe_unavailable");
	ck_assert_str_eq(str(json_object_get(j, "stripe"), "type"), "api_error");
	json_decref(j);
	pay_stop(&pe);
}
END_TEST

START_TEST(test_plans_and_subscription_reads)
{
	struct pay_env pe;
	json_t *j, *t, *c;
	size_t i;
	int seen = 0;

	pay_start(&pe, "it_api_pay_reads", 0);
	tk_mongo_insert(pe.env.db, "payments_customers",
			"{\"org_id\":\"org-sub\",\"subscription_type\":\"team\","
			"\"stripe_subscription_status\":\"active\",\"stripe_subscription_id\":\"sub_x\","
			"\"stripe_current_billing_period_start\":1700000000,"
			"\"stripe_current_billing_period_end\":1702592000,"
			"\"subscription_cancel_at_period_end\":true}");
	/* Local-only mode (no STRIPE_SECRET_KEY): the reads work. */
	j = call(&pe, "GET", "/v1/plans", NULL, 200);
	c = json_object_get(j, "credit");
	ck_assert_str_eq(str(c, "price_id"), "price_credit");
	ck_assert_int_eq(tk_int(c, "unit_amount"), 100);
	ck_assert_int_eq(tk_int(c, "credits_per_unit"), 10);
	ck_assert_str_eq(str(c, "price_per_credit"), "10");
	ck_assert_str_eq(str(c, "currency"), "usd");
	ck_assert_int_eq(tk_int(c, "min_credits"), 500);
	ck_assert_int_eq(tk_int(c, "max_credits"), 100000);
	json_array_foreach(json_object_get(j, "tiers"), i, t) {
		const char *tier = str(t, "tier");
		ck_assert_msg(strcmp(tier, "individual") == 0 || strcmp(tier, "team") == 0 ||
				      strcmp(tier, "enterprise") == 0 || strcmp(tier, "pro") == 0,
			      "tier %s", tier);
		if (!strcmp(tier, "team")) {
			/* The active team price only (price_old_team is inactive). */
			ck_assert_str_eq(str(t, "price_id"), "price_team");
			ck_assert_int_eq(tk_int(t, "unit_amount"), 4900);
			ck_assert_int_eq(tk_int(t, "included_spus"), 5000);
			ck_assert_str_eq(str(t, "interval"), "month");
			seen++;
		}
	}
	ck_assert_int_eq(seen, 1);
	json_decref(j);

	j = call(&pe, "GET", "/v1/orgs/org-sub/subscription", NULL, 200);
	ck_assert_str_eq(str(j, "plan"), "team");
	ck_assert_str_eq(str(j, "status"), "active");
	ck_assert(json_is_true(json_object_get(j, "live")));
	ck_assert_int_eq(tk_int(j, "current_period_start"), 1700000000);
	ck_assert_int_eq(tk_int(j, "current_period_end"), 1702592000);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	/* Periods stored by earlier versions (a date) and the old Python code (a double). */
	tk_mongo_insert(pe.env.db, "payments_customers",
			"{\"org_id\":\"org-old\",\"subscription_type\":\"individual\","
			"\"stripe_current_billing_period_start\":{\"$date\":\"2023-11-14T22:13:20Z\"},"
			"\"stripe_current_billing_period_end\":1702592000.0}");
	j = call(&pe, "GET", "/v1/orgs/org-old/subscription", NULL, 200);
	ck_assert_int_eq(tk_int(j, "current_period_start"), 1700000000);
	ck_assert_int_eq(tk_int(j, "current_period_end"), 1702592000);
	json_decref(j);
	j = call(&pe, "GET", "/v1/orgs/org-none/subscription", NULL, 200);
	ck_assert(json_is_null(json_object_get(j, "plan")));
	ck_assert(json_is_false(json_object_get(j, "live")));
	json_decref(j);
	/* No Stripe call on the read path. */
	j = stub_requests(&pe.stub);
	ck_assert_int_eq(json_array_size(j), 0);
	json_decref(j);
	pay_stop(&pe);
}
END_TEST

#define PLAN_BODY                                                                           \
	"{\"tier\":\"%s\",\"success_url\":\"https://app.test/ok\","                         \
	"\"cancel_url\":\"https://app.test/no\"}"

/* The body of the only request of method to path. */
static void expect_one(const struct pay_env *pe, const char *method, const char *path,
		       const char *form)
{
	json_t *reqs = posts_to(pe, method, path);

	ck_assert_msg(json_array_size(reqs) == 1, "%zu requests to %s", json_array_size(reqs),
		      path);
	ck_assert_str_eq(str(json_array_get(reqs, 0), "body"), form);
	ck_assert(!strncmp(str(json_array_get(reqs, 0), "idempotency_key"), "bw-api-", 7));
	json_decref(reqs);
}

START_TEST(test_plan_change_cancel_portal)
{
	struct pay_env pe;
	json_t *j;
	char body[256];

	pay_start(&pe, "it_api_pay_plan", 1);
	/* Without a subscription: a subscription-mode Checkout Session for the tier's price. */
	snprintf(body, sizeof(body), PLAN_BODY, "team");
	j = call(&pe, "POST", "/v1/orgs/org-new/checkout/plan", body, 200);
	ck_assert_str_eq(str(j, "mode"), "subscription");
	ck_assert(!strncmp(str(j, "url"), "https://checkout.stripe.test/", 29));
	json_decref(j);
	expect_one(&pe, "POST", "/v1/checkout/sessions",
		   "mode=subscription&customer=cus_for_org-new&line_items%5B0%5D%5Bprice%5D="
		   "price_team&line_items%5B0%5D%5Bquantity%5D=1&success_url=https%3A%2F%2F"
		   "app.test%2Fok&cancel_url=https%3A%2F%2Fapp.test%2Fno&metadata%5Borg_id%5D="
		   "org-new&subscription_data%5Bmetadata%5D%5Borg_id%5D=org-new");
	/* Enterprise and unknown tiers: 400 before Stripe. */
	stub_clear_requests(&pe.stub);
	snprintf(body, sizeof(body), PLAN_BODY, "enterprise");
	json_decref(call(&pe, "POST", "/v1/orgs/org-new/checkout/plan", body, 400));
	snprintf(body, sizeof(body), PLAN_BODY, "gold");
	json_decref(call(&pe, "POST", "/v1/orgs/org-new/checkout/plan", body, 400));
	j = stub_requests(&pe.stub);
	ck_assert_int_eq(json_array_size(j), 0);
	json_decref(j);

	/* With a live subscription (the fixture's sub_alpha, team, item si_a1): a plan change. */
	tk_mongo_insert(pe.env.db, "payments_customers",
			"{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
			"\"subscription_type\":\"team\",\"stripe_subscription_id\":\"sub_alpha\","
			"\"stripe_subscription_status\":\"active\"}");
	snprintf(body, sizeof(body), PLAN_BODY, "individual");
	j = call(&pe, "POST", "/v1/orgs/org_alpha/checkout/plan", body, 200);
	ck_assert_str_eq(str(j, "plan"), "individual");
	ck_assert_str_eq(str(j, "price_id"), "price_individual");
	ck_assert_str_eq(str(j, "subscription_id"), "sub_alpha");
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	ck_assert_int_eq(tk_int(j, "current_period_end"), 1702592000);
	json_decref(j);
	expect_one(&pe, "POST", "/v1/subscriptions/sub_alpha",
		   "items%5B0%5D%5Bid%5D=si_a1&items%5B0%5D%5Bprice%5D=price_individual&"
		   "proration_behavior=create_prorations&cancel_at_period_end=false&"
		   "metadata%5Borg_id%5D=org_alpha");
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/checkout/sessions"), 0);
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/customers"), 0);

	/* Cancel at period end, reactivate, cancel again: each reaches Stripe. */
	stub_clear_requests(&pe.stub);
	j = call(&pe, "DELETE", "/v1/orgs/org_alpha/subscription", NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	ck_assert_str_eq(str(j, "plan"), "individual");
	json_decref(j);
	expect_one(&pe, "POST", "/v1/subscriptions/sub_alpha", "cancel_at_period_end=true");
	j = call(&pe, "GET", "/v1/orgs/org_alpha/subscription", NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = call(&pe, "POST", "/v1/orgs/org_alpha/subscription/reactivate", NULL, 200);
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = call(&pe, "GET", "/v1/orgs/org_alpha/subscription", NULL, 200);
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = call(&pe, "DELETE", "/v1/orgs/org_alpha/subscription", NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = posts_to(&pe, "POST", "/v1/subscriptions/sub_alpha");
	ck_assert_int_eq(json_array_size(j), 3);
	ck_assert_str_ne(str(json_array_get(j, 0), "idempotency_key"),
			 str(json_array_get(j, 2), "idempotency_key"));
	json_decref(j);
	/* Stored as live but canceled at Stripe (a missed webhook): a new Checkout, no update. */
	tk_mongo_insert(pe.env.db, "payments_customers",
			"{\"org_id\":\"org_stale\",\"stripe_customer_id\":\"cus_alpha\","
			"\"subscription_type\":\"individual\",\"stripe_subscription_id\":"
			"\"sub_alpha_old\",\"stripe_subscription_status\":\"active\"}");
	stub_clear_requests(&pe.stub);
	snprintf(body, sizeof(body), PLAN_BODY, "team");
	j = call(&pe, "POST", "/v1/orgs/org_stale/checkout/plan", body, 200);
	ck_assert_str_eq(str(j, "mode"), "subscription");
	json_decref(j);
	ck_assert_int_eq(stub_count(&pe.stub, "GET", "/v1/subscriptions/sub_alpha_old"), 1);
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/subscriptions/"), 0);
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/checkout/sessions"), 1);
	/* No live subscription: nothing to cancel. */
	j = call(&pe, "DELETE", "/v1/orgs/org-new/subscription", NULL, 404);
	ck_assert_str_eq(str(j, "error"), "no_subscription");
	json_decref(j);

	/* The billing portal for the org's customer. */
	stub_clear_requests(&pe.stub);
	j = call(&pe, "POST", "/v1/orgs/org_alpha/portal",
		 "{\"return_url\":\"https://app.test/billing\"}", 200);
	ck_assert(!strncmp(str(j, "url"), "https://billing.stripe.test/", 28));
	json_decref(j);
	expect_one(&pe, "POST", "/v1/billing_portal/sessions",
		   "customer=cus_alpha&return_url=https%3A%2F%2Fapp.test%2Fbilling");
	json_decref(call(&pe, "POST", "/v1/orgs/org_alpha/portal", "{}", 400));
	pay_stop(&pe);
}
END_TEST

/* One record of the usage test: its instant, how it is stored, and whether it counts. */
struct urec {
	long long ts_ms;
	const char *ts_text;  /* ours: the event's string (NULL: old record, a UTC datetime) */
	const char *op;
	long long spus;
	int counts;           /* 1: in the range and counted */
};

static void iso_utc(long long ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

START_TEST(test_usage_report)
{
	struct pay_env pe;
	static const char *ops[] = { "parse", "extract", "classify" };
	const long long base = 1772359200000LL; /* 2026-03-01T10:00:00Z */
	struct urec recs[48];
	size_t n = 0;
	char doc[1024], ts[40], path[256];
	long long exp_spus[2][3] = { { 0 } }, exp_n[2][3] = { { 0 } }, exp_sub = 0, exp_un = 0;
	long long exp_prompt = 0, total = 0, paid = 0;
	json_t *j, *row;
	size_t i;

	pay_start(&pe, "it_api_pay_usage", 0);
	/* 40 charges every 50 minutes from 2026-03-01T10:00Z (they cross into 03-02), the even
	 * ones ours (string timestamps, some with an offset), the odd ones the old code's. */
	for (int k = 0; k < 40; k++) {
		struct urec *r = &recs[n++];
		r->ts_ms = base + (long long)k * 50 * 60000;
		r->op = ops[k % 3];
		r->spus = k + 1;
		r->counts = 1;
		r->ts_text = NULL;
		if (k % 2 == 0) {
			static char texts[40][40];
			if (k % 4 == 2) { /* the same instant written at -05:00 */
				time_t t = (time_t)(r->ts_ms / 1000 - 5 * 3600);
				struct tm tm;
				gmtime_r(&t, &tm);
				strftime(texts[k], sizeof(texts[k]), "%Y-%m-%dT%H:%M:%S-05:00", &tm);
			} else {
				iso_utc(r->ts_ms, texts[k], sizeof(texts[k]));
			}
			r->ts_text = texts[k];
		}
	}
	/* Edges: 2026-03-03T00:30+01:00 is 03-02T23:30Z (in); 2026-03-02T23:30-01:00 is
	 * 03-03T00:30Z (out); an old record one second before the range (out). */
	recs[n++] = (struct urec){ 1772494200000LL, "2026-03-03T00:30:00+01:00", "parse", 7, 1 };
	recs[n++] = (struct urec){ 1772497800000LL, "2026-03-02T23:30:00-01:00", "parse", 1000, 0 };
	recs[n++] = (struct urec){ 1772323199000LL, NULL, "parse", 1000, 0 };
	for (i = 0; i < n; i++) {
		struct urec *r = &recs[i];
		if (r->ts_text)
			snprintf(doc, sizeof(doc),
				 "{\"_id\":{\"org_id\":\"org-u\",\"event_id\":\"e%zu\"},\"org_id\":"
				 "\"org-u\",\"event_id\":\"e%zu\",\"spus\":%lld,\"operation\":\"%s\","
				 "\"source\":\"t\",\"timestamp\":\"%s\",\"status\":\"%s\","
				 "\"from_subscription\":{\"$numberLong\":\"%lld\"},\"from_granted\":"
				 "{\"$numberLong\":\"%lld\"},\"from_purchased\":0,\"from_paid\":0,"
				 "\"prompt_tokens\":%lld}",
				 i, i, r->spus, r->op, r->ts_text,
				 /* a charge applied with overage counts too */
				 i % 8 == 4 ? "insufficient_credits" : "applied", r->spus / 2,
				 r->spus - r->spus / 2,
				 r->spus * 10);
		else {
			iso_utc(r->ts_ms, ts, sizeof(ts));
			snprintf(doc, sizeof(doc),
				 "{\"org_id\":\"org-u\",\"spus\":%lld,\"operation\":\"%s\",\"source\":"
				 "\"t\",\"timestamp\":{\"$date\":\"%s\"},\"prompt_tokens\":%lld}",
				 r->spus, r->op, ts, r->spus * 10);
		}
		tk_mongo_insert(pe.env.db, "payments_usage_records", doc);
		if (!r->counts)
			continue;
		int day = r->ts_ms >= 1772409600000LL; /* 2026-03-02T00:00Z */
		int op = !strcmp(r->op, "parse") ? 0 : !strcmp(r->op, "extract") ? 1 : 2;
		exp_spus[day][op] += r->spus;
		exp_n[day][op]++;
		total += r->spus;
		exp_prompt += r->spus * 10;
		if (r->ts_text)
			exp_sub += r->spus / 2;
		else
			exp_un += r->spus;
		/* The old code's overage row beside every third old charge: not extra usage. */
		if (!r->ts_text && i % 3 == 0) {
			iso_utc(r->ts_ms, ts, sizeof(ts));
			snprintf(doc, sizeof(doc),
				 "{\"org_id\":\"org-u\",\"spus\":3,\"operation\":\"paid_usage\","
				 "\"source\":\"t\",\"timestamp\":{\"$date\":\"%s\"}}", ts);
			tk_mongo_insert(pe.env.db, "payments_usage_records", doc);
			paid += 3;
		}
	}
	/* Not usage: another org, a rejected event, the opening balance record. */
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-other\",\"spus\":50,\"operation\":\"parse\","
			"\"timestamp\":{\"$date\":\"2026-03-01T12:00:00Z\"}}");
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-u\",\"spus\":50,\"operation\":\"parse\",\"status\":"
			"\"rejected\",\"timestamp\":\"2026-03-01T12:00:00Z\"}");
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-u\",\"operation\":\"opening_balance\",\"status\":"
			"\"opening_balance\",\"from_granted\":5}");

	j = call(&pe, "GET", "/v1/orgs/org-u/usage?from=2026-03-01&to=2026-03-03&group=day,operation",
		 NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 6);
	json_array_foreach(json_object_get(j, "rows"), i, row) {
		int day = !strcmp(str(row, "day"), "2026-03-02");
		const char *o = str(row, "operation");
		int op = !strcmp(o, "parse") ? 0 : !strcmp(o, "extract") ? 1 : 2;
		ck_assert_msg(day || !strcmp(str(row, "day"), "2026-03-01"), "%s", str(row, "day"));
		ck_assert_int_eq(tk_int(row, "spus"), exp_spus[day][op]);
		ck_assert_int_eq(tk_int(row, "records"), exp_n[day][op]);
	}
	json_t *t = json_object_get(j, "totals");
	ck_assert_int_eq(tk_int(t, "spus"), total);
	ck_assert_int_eq(tk_int(json_object_get(t, "breakdown"), "from_subscription"), exp_sub);
	ck_assert_int_eq(tk_int(json_object_get(t, "breakdown"), "unattributed"), exp_un);
	ck_assert_int_eq(tk_int(json_object_get(t, "tokens"), "prompt"), exp_prompt);
	ck_assert_int_eq(tk_int(j, "old_paid_usage_spus"), paid);
	ck_assert(paid > 0);
	json_decref(j);
	/* By day only: two rows whose sum is the total. */
	j = call(&pe, "GET", "/v1/orgs/org-u/usage?from=2026-03-01T00:00:00Z&to=2026-03-03&group=day",
		 NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 2);
	ck_assert_int_eq(tk_int(json_array_get(json_object_get(j, "rows"), 0), "spus") +
				 tk_int(json_array_get(json_object_get(j, "rows"), 1), "spus"),
			 total);
	json_decref(j);
	/* Bounded ranges. */
	snprintf(path, sizeof(path), "/v1/orgs/org-u/usage?from=2026-03-01&to=2027-03-03");
	j = call(&pe, "GET", path, NULL, 400);
	ck_assert_str_eq(str(j, "error"), "invalid_range");
	json_decref(j);
	j = call(&pe, "GET", "/v1/orgs/org-u/usage?from=2026-03-03&to=2026-03-01", NULL, 400);
	json_decref(j);
	j = call(&pe, "GET", "/v1/orgs/org-u/usage?to=2026-03-01", NULL, 400);
	json_decref(j);
	pay_stop(&pe);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api_pay");
	TCase *tc = tcase_create("pay");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_plans_and_subscription_reads);
	tcase_add_test(tc, test_checkout_credits);
	tcase_add_test(tc, test_local_only_and_stripe_errors);
	tcase_add_test(tc, test_usage_report);
	tcase_add_test(tc, test_plan_change_cancel_portal);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
