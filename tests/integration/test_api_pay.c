/* bw-api's payment flows (issue 14) against the real local MongoDB and the Stripe API stub:
 * prices are stored by the sync worker's own code (bw_sync_prices over the stub's fixture),
 * bw-api is started as a process with STRIPE_API_BASE at the stub, and the exact requests the
 * stub received are asserted. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The requests of method to path (exact), as a new array. */
static json_t *posts_to(const struct pay_env *pe, const char *method, const char *path)
{
	json_t *all = stub_requests(&pe->stub), *out = json_array(), *r;
	size_t i;

	json_array_foreach(all, i, r) {
		if (!strcmp(ak_str(r, "method"), method) && !strcmp(ak_str(r, "path"), path))
			json_array_append(out, r);
	}
	json_decref(all);
	return out;
}

/* A user action retried and two other requests, asserted on what Stripe received at
 * stripe_path: POSTs body to path twice with the caller's Idempotency-Key header hdr (the
 * retry: the same key, the same answer), then other with hdr and body with hdr2 (other
 * requests: each its own key). Starts from a cleared request log. */
static void expect_retry_keys(struct pay_env *pe, const char *path, const char *hdr,
			      const char *hdr2, const char *body, const char *other,
			      const char *stripe_path)
{
	json_t *a, *b, *reqs;
	const char *k[4];

	stub_clear_requests(&pe->stub);
	a = ak_call(&pe->api, "POST", path, hdr, body, 200);
	b = ak_call(&pe->api, "POST", path, hdr, body, 200);
	ck_assert_msg(json_equal(a, b), "a retry answered otherwise than the first request");
	json_decref(b);
	json_decref(a);
	json_decref(ak_call(&pe->api, "POST", path, hdr, other, 200));
	json_decref(ak_call(&pe->api, "POST", path, hdr2, body, 200));
	reqs = posts_to(pe, "POST", stripe_path);
	ck_assert_int_eq(json_array_size(reqs), 4);
	for (size_t i = 0; i < 4; i++)
		k[i] = ak_str(json_array_get(reqs, i), "idempotency_key");
	ck_assert_str_eq(ak_str(json_array_get(reqs, 1), "body"),
			 ak_str(json_array_get(reqs, 0), "body"));
	ck_assert_str_eq(k[1], k[0]);
	ck_assert_str_ne(k[2], k[0]);
	ck_assert_str_ne(k[3], k[0]);
	ck_assert_str_ne(k[3], k[2]);
	json_decref(reqs);
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
	const long long cases[][2] = { { 499, 400 }, { 500, 200 }, { 100000, 200 },
				       { 100001, 400 } };

	pay_start(&pe, "it_api_pay_credits", 1);
	for (size_t i = 0; i < 4; i++) {
		snprintf(body, sizeof(body), CREDITS_BODY, cases[i][0]);
		j = ak_call(&pe.api, "POST", path, NULL, body, cases[i][1]);
		if (cases[i][1] == 400) {
			ck_assert_str_eq(ak_str(j, "error"), "invalid_request");
			ck_assert_msg(strstr(ak_str(j, "detail"), "from 500 to 100000") != NULL, "%s",
				      ak_str(j, "detail"));
		} else {
			ck_assert(!strncmp(ak_str(j, "url"), "https://checkout.stripe.test/", 29));
			ck_assert(!strncmp(ak_str(j, "id"), "cs_test_", 8));
		}
		json_decref(j);
	}
	/* The customer was created once, with the sync worker's key and metadata, and stored. */
	reqs = posts_to(&pe, "POST", "/v1/customers");
	ck_assert_int_eq(json_array_size(reqs), 1);
	r = json_array_get(reqs, 0);
	ck_assert_str_eq(ak_str(r, "idempotency_key"), "bw-sync-customer-org-buy");
	ck_assert_str_eq(ak_str(r, "body"), "metadata%5Borg_id%5D=org-buy&metadata%5Bproduct%5D=doc_router");
	json_decref(reqs);
	j = tk_mongo_find_one(pe.env.db, "payments_customers", "{\"org_id\":\"org-buy\"}");
	ck_assert_str_eq(ak_str(j, "stripe_customer_id"), "cus_for_org-buy");
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
		ck_assert_str_eq(ak_str(r, "body"), form);
		ck_assert(!strncmp(ak_str(r, "idempotency_key"), "bw-api-checkout-credits-org-buy-", 32));
		ck_assert_str_eq(ak_str(r, "authorization"), "Bearer sk_test_pay");
	}
	json_decref(reqs);
	/* A retried request (same body): the same key, Stripe's first session again (cs_test_3);
	 * another amount (cs_test_4) and another user action (cs_test_5) are new sessions. */
	snprintf(body, sizeof(body), CREDITS_BODY, 700LL);
	snprintf(form, sizeof(form), CREDITS_BODY, 701LL);
	expect_retry_keys(&pe, path, "Idempotency-Key: click-1", "Idempotency-Key: click-2", body,
			  form, "/v1/checkout/sessions");
	j = ak_call(&pe.api, "POST", path, "Idempotency-Key: click-2", body, 200);
	ck_assert_str_eq(ak_str(j, "id"), "cs_test_5");
	json_decref(j);
	j = ak_call(&pe.api, "POST", path, NULL, "{\"credits\":\"12\"}", 400);
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
	j = ak_call(&pe.api, "POST", "/v1/orgs/org-l/checkout/credits", NULL, body, 409);
	ck_assert_str_eq(ak_str(j, "error"), "local_only");
	ck_assert(strstr(ak_str(j, "detail"), "STRIPE_SECRET_KEY") != NULL);
	json_decref(j);
	json_decref(ak_call(&pe.api, "POST", "/v1/orgs/org-l/checkout/plan", NULL, "{}", 409));
	json_decref(ak_call(&pe.api, "DELETE", "/v1/orgs/org-l/subscription", NULL, NULL, 409));
	json_decref(ak_call(&pe.api, "POST", "/v1/orgs/org-l/subscription/reactivate", NULL, NULL, 409));
	json_decref(ak_call(&pe.api, "POST", "/v1/orgs/org-l/portal", NULL, "{}", 409));
	json_decref(ak_call(&pe.api, "GET", "/v1/orgs/org-l/usage?from=2026-01-01&to=2026-01-02",
			    NULL, NULL, 200)); /* the usage report itself: test_api_usage_report.c */
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
	j = ak_call(&pe.api, "POST", "/v1/orgs/org-l/checkout/credits", NULL, body, 200);
	json_decref(j);
	j = posts_to(&pe, "POST", "/v1/checkout/sessions");
	ck_assert_int_eq(json_array_size(j), 2); /* the 429, then the retry with the same key */
	ck_assert_str_eq(ak_str(json_array_get(j, 0), "idempotency_key"),
			 ak_str(json_array_get(j, 1), "idempotency_key"));
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
	j = ak_call(&pe.api, "POST", "/v1/orgs/org-l/checkout/credits", NULL, body, 400);
	ck_assert_str_eq(ak_str(j, "error"), "stripe_refused");
	ck_assert_str_eq(ak_str(json_object_get(j, "stripe"), "type"), "invalid_request_error");
	ck_assert_str_eq(ak_str(json_object_get(j, "stripe"), "message"), "Not a valid URL");
	json_decref(j);
	snprintf(body, sizeof(body), CREDITS_BODY, 602LL);
	j = ak_call(&pe.api, "POST", "/v1/orgs/org-l/checkout/credits", NULL, body, 502);
	ck_assert_str_eq(ak_str(j, "error"), "stripe_unavailable");
	ck_assert_str_eq(ak_str(json_object_get(j, "stripe"), "type"), "api_error");
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
	j = ak_call(&pe.api, "GET", "/v1/plans", NULL, NULL, 200);
	c = json_object_get(j, "credit");
	ck_assert_str_eq(ak_str(c, "price_id"), "price_credit");
	ck_assert_int_eq(tk_int(c, "unit_amount"), 100);
	ck_assert_int_eq(tk_int(c, "credits_per_unit"), 10);
	ck_assert_str_eq(ak_str(c, "price_per_credit"), "10");
	ck_assert_str_eq(ak_str(c, "currency"), "usd");
	ck_assert_int_eq(tk_int(c, "min_credits"), 500);
	ck_assert_int_eq(tk_int(c, "max_credits"), 100000);
	json_array_foreach(json_object_get(j, "tiers"), i, t) {
		const char *tier = ak_str(t, "tier");
		ck_assert_msg(strcmp(tier, "individual") == 0 || strcmp(tier, "team") == 0 ||
				      strcmp(tier, "enterprise") == 0 || strcmp(tier, "pro") == 0,
			      "tier %s", tier);
		if (!strcmp(tier, "team")) {
			/* The active team price only (price_old_team is inactive). */
			ck_assert_str_eq(ak_str(t, "price_id"), "price_team");
			ck_assert_int_eq(tk_int(t, "unit_amount"), 4900);
			ck_assert_int_eq(tk_int(t, "included_spus"), 5000);
			ck_assert_str_eq(ak_str(t, "interval"), "month");
			seen++;
		}
	}
	ck_assert_int_eq(seen, 1);
	json_decref(j);

	j = ak_call(&pe.api, "GET", "/v1/orgs/org-sub/subscription", NULL, NULL, 200);
	ck_assert_str_eq(ak_str(j, "plan"), "team");
	ck_assert_str_eq(ak_str(j, "status"), "active");
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
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-old/subscription", NULL, NULL, 200);
	ck_assert_int_eq(tk_int(j, "current_period_start"), 1700000000);
	ck_assert_int_eq(tk_int(j, "current_period_end"), 1702592000);
	json_decref(j);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-none/subscription", NULL, NULL, 200);
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
	ck_assert_str_eq(ak_str(json_array_get(reqs, 0), "body"), form);
	ck_assert(!strncmp(ak_str(json_array_get(reqs, 0), "idempotency_key"), "bw-api-", 7));
	json_decref(reqs);
}

/* org_alpha as stored: the fixture's customer cus_alpha and its live team subscription
 * sub_alpha (item si_a1). */
static void seed_alpha(const struct pay_env *pe)
{
	tk_mongo_insert(pe->env.db, "payments_customers",
			"{\"org_id\":\"org_alpha\",\"stripe_customer_id\":\"cus_alpha\","
			"\"subscription_type\":\"team\",\"stripe_subscription_id\":\"sub_alpha\","
			"\"stripe_subscription_status\":\"active\"}");
}

START_TEST(test_plan_change_cancel_portal)
{
	struct pay_env pe;
	json_t *j, *st;
	char body[256];

	pay_start(&pe, "it_api_pay_plan", 1);
	/* Without a subscription: a subscription-mode Checkout Session for the tier's price. */
	snprintf(body, sizeof(body), PLAN_BODY, "team");
	j = ak_call(&pe.api, "POST", "/v1/orgs/org-new/checkout/plan", NULL, body, 200);
	ck_assert_str_eq(ak_str(j, "mode"), "subscription");
	ck_assert(!strncmp(ak_str(j, "url"), "https://checkout.stripe.test/", 29));
	json_decref(j);
	expect_one(&pe, "POST", "/v1/checkout/sessions",
		   "mode=subscription&customer=cus_for_org-new&line_items%5B0%5D%5Bprice%5D="
		   "price_team&line_items%5B0%5D%5Bquantity%5D=1&success_url=https%3A%2F%2F"
		   "app.test%2Fok&cancel_url=https%3A%2F%2Fapp.test%2Fno&metadata%5Borg_id%5D="
		   "org-new&subscription_data%5Bmetadata%5D%5Borg_id%5D=org-new");
	/* Enterprise and unknown tiers: 400 before Stripe. */
	stub_clear_requests(&pe.stub);
	snprintf(body, sizeof(body), PLAN_BODY, "enterprise");
	json_decref(ak_call(&pe.api, "POST", "/v1/orgs/org-new/checkout/plan", NULL, body, 400));
	snprintf(body, sizeof(body), PLAN_BODY, "gold");
	json_decref(ak_call(&pe.api, "POST", "/v1/orgs/org-new/checkout/plan", NULL, body, 400));
	j = stub_requests(&pe.stub);
	ck_assert_int_eq(json_array_size(j), 0);
	json_decref(j);

	/* With a live subscription (the fixture's sub_alpha, team, item si_a1): a plan change. */
	seed_alpha(&pe);
	snprintf(body, sizeof(body), PLAN_BODY, "individual");
	j = ak_call(&pe.api, "POST", "/v1/orgs/org_alpha/checkout/plan", NULL, body, 200);
	ck_assert_str_eq(ak_str(j, "plan"), "individual");
	ck_assert_str_eq(ak_str(j, "price_id"), "price_individual");
	ck_assert_str_eq(ak_str(j, "subscription_id"), "sub_alpha");
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	ck_assert_int_eq(tk_int(j, "current_period_end"), 1702592000);
	json_decref(j);
	expect_one(&pe, "POST", "/v1/subscriptions/sub_alpha",
		   "items%5B0%5D%5Bid%5D=si_a1&items%5B0%5D%5Bprice%5D=price_individual&"
		   "proration_behavior=create_prorations&cancel_at_period_end=false&"
		   "metadata%5Borg_id%5D=org_alpha");
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/checkout/sessions"), 0);
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/customers"), 0);
	/* The state re-read after the change (the customer sync's code) stored the new plan. */
	ck_assert_int_eq(stub_count(&pe.stub, "GET", "/v1/customers/cus_alpha"), 1);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert_str_eq(ak_str(j, "plan"), "individual");
	ck_assert_str_eq(ak_str(j, "status"), "active");
	json_decref(j);

	/* Cancel at period end, reactivate, cancel again: each reaches Stripe. */
	stub_clear_requests(&pe.stub);
	j = ak_call(&pe.api, "DELETE", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	ck_assert_str_eq(ak_str(j, "plan"), "individual");
	json_decref(j);
	expect_one(&pe, "POST", "/v1/subscriptions/sub_alpha", "cancel_at_period_end=true");
	j = ak_call(&pe.api, "GET", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = ak_call(&pe.api, "POST", "/v1/orgs/org_alpha/subscription/reactivate", NULL, NULL, 200);
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = ak_call(&pe.api, "DELETE", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert(json_is_true(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	j = posts_to(&pe, "POST", "/v1/subscriptions/sub_alpha");
	ck_assert_int_eq(json_array_size(j), 3);
	ck_assert_str_ne(ak_str(json_array_get(j, 0), "idempotency_key"),
			 ak_str(json_array_get(j, 2), "idempotency_key"));
	json_decref(j);
	/* The re-read fails (Stripe refuses the customer read): the answer's flag is stored. */
	st = stub_fixture();
	stub_add_fault(st, "GET", "/v1/customers/cus_alpha", 404, -1, 0, NULL, NULL);
	stub_set_state(&pe.stub, st);
	json_decref(st);
	j = ak_call(&pe.api, "POST", "/v1/orgs/org_alpha/subscription/reactivate", NULL, NULL, 200);
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	ck_assert_int_eq(stub_count(&pe.stub, "GET", "/v1/customers/cus_alpha"), 4);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org_alpha/subscription", NULL, NULL, 200);
	ck_assert(json_is_false(json_object_get(j, "cancel_at_period_end")));
	json_decref(j);
	/* Stored as live but canceled at Stripe (a missed webhook): a new Checkout, no update. */
	tk_mongo_insert(pe.env.db, "payments_customers",
			"{\"org_id\":\"org_stale\",\"stripe_customer_id\":\"cus_alpha\","
			"\"subscription_type\":\"individual\",\"stripe_subscription_id\":"
			"\"sub_alpha_old\",\"stripe_subscription_status\":\"active\"}");
	stub_clear_requests(&pe.stub);
	snprintf(body, sizeof(body), PLAN_BODY, "team");
	j = ak_call(&pe.api, "POST", "/v1/orgs/org_stale/checkout/plan", NULL, body, 200);
	ck_assert_str_eq(ak_str(j, "mode"), "subscription");
	json_decref(j);
	ck_assert_int_eq(stub_count(&pe.stub, "GET", "/v1/subscriptions/sub_alpha_old"), 1);
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/subscriptions/"), 0);
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/checkout/sessions"), 1);
	/* No live subscription: nothing to cancel. */
	j = ak_call(&pe.api, "DELETE", "/v1/orgs/org-new/subscription", NULL, NULL, 404);
	ck_assert_str_eq(ak_str(j, "error"), "no_subscription");
	json_decref(j);

	/* The billing portal for the org's customer. */
	stub_clear_requests(&pe.stub);
	j = ak_call(&pe.api, "POST", "/v1/orgs/org_alpha/portal", NULL,
		    "{\"return_url\":\"https://app.test/billing\"}", 200);
	ck_assert(!strncmp(ak_str(j, "url"), "https://billing.stripe.test/", 28));
	json_decref(j);
	expect_one(&pe, "POST", "/v1/billing_portal/sessions",
		   "customer=cus_alpha&return_url=https%3A%2F%2Fapp.test%2Fbilling");
	json_decref(ak_call(&pe.api, "POST", "/v1/orgs/org_alpha/portal", NULL, "{}", 400));
	pay_stop(&pe);
}
END_TEST

/* The same Idempotency-Key on a retry for the plan checkout (a new subscription's Checkout
 * and a plan change of a live one) and the billing portal: expect_retry_keys. */
START_TEST(test_retried_plan_and_portal)
{
	struct pay_env pe;
	char team[256], indiv[256];

	pay_start(&pe, "it_api_pay_retry", 1);
	snprintf(team, sizeof(team), PLAN_BODY, "team");
	snprintf(indiv, sizeof(indiv), PLAN_BODY, "individual");
	expect_retry_keys(&pe, "/v1/orgs/org-new/checkout/plan", "Idempotency-Key: p-1",
			  "Idempotency-Key: p-2", team, indiv, "/v1/checkout/sessions");
	seed_alpha(&pe);
	expect_retry_keys(&pe, "/v1/orgs/org_alpha/checkout/plan", "Idempotency-Key: c-1",
			  "Idempotency-Key: c-2", indiv, team, "/v1/subscriptions/sub_alpha");
	ck_assert_int_eq(stub_count(&pe.stub, "POST", "/v1/checkout/sessions"), 0);
	expect_retry_keys(&pe, "/v1/orgs/org_alpha/portal", "Idempotency-Key: b-1",
			  "Idempotency-Key: b-2", "{\"return_url\":\"https://app.test/billing\"}",
			  "{\"return_url\":\"https://app.test/other\"}",
			  "/v1/billing_portal/sessions");
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
	tcase_add_test(tc, test_plan_change_cancel_portal);
	tcase_add_test(tc, test_retried_plan_and_portal);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
