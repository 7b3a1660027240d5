/* api_pay_sub: the subscription calls of api_pay.h (plan checkout or change, cancel at period
 * end, reactivate) and the billing portal. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_pay.h"
#include "api_pay_common.h"
#include "api_plans.h"
#include "customer_doc.h"
#include "log.h"
#include "sub_policy.h"
#include "sync_customer.h"

/* The org's live subscription as stored (its id in *sub_id, new string) or NULL. */
static unsigned stored_sub(struct pay_call *c, struct bw_mongo *m, char **sub_id, char **out)
{
	json_t *cust = NULL;
	const char *id, *status;

	*sub_id = NULL;
	if (bw_api_customer_doc(m, c->req->org_id, &cust, &c->err) != 0)
		return pay_fail(out, 503, "unavailable", NULL, "customer of %s: %s",
				c->req->org_id, c->err.msg);
	id = json_string_value(json_object_get(cust, "stripe_subscription_id"));
	status = json_string_value(json_object_get(cust, "stripe_subscription_status"));
	if (id && *id && bw_api_sub_live(status))
		*sub_id = strdup(id);
	json_decref(cust);
	return 0;
}

static const char *price_id_of(const json_t *item)
{
	const json_t *p = json_object_get(item, "price");
	return json_is_string(p) ? json_string_value(p)
				 : json_string_value(json_object_get(p, "id"));
}

/* The subscription's base item: the one whose price metadata says price_type base, else the
 * first. */
static const json_t *base_item(const json_t *sub)
{
	const json_t *items = json_object_get(json_object_get(sub, "items"), "data"), *it;
	size_t i;

	json_array_foreach(items, i, it) {
		const json_t *md = json_object_get(json_object_get(it, "price"), "metadata");
		const char *t = json_string_value(json_object_get(md, "price_type"));
		if (t && !strcmp(t, "base"))
			return it;
	}
	return json_array_get(items, 0);
}

/* The answer's subscription state from Stripe's subscription object. */
static json_t *sub_state(const char *org_id, const json_t *sub, const char *tier)
{
	const json_t *item = base_item(sub);
	const char *price = item ? price_id_of(item) : NULL;
	const json_t *md = json_object_get(json_object_get(item, "price"), "metadata");
	const char *t = tier ? tier : json_string_value(json_object_get(md, "tier"));
	json_t *ps = json_object_get(sub, "current_period_start");
	json_t *pe = json_object_get(sub, "current_period_end");

	return json_pack("{s:s s:O s:O s:o s:o s:b s:o s:o}", "org_id", org_id,
			 "subscription_id", json_object_get(sub, "id"), "status",
			 json_object_get(sub, "status"), "plan", t ? json_string(t) : json_null(),
			 "price_id", price ? json_string(price) : json_null(),
			 "cancel_at_period_end",
			 json_is_true(json_object_get(sub, "cancel_at_period_end")),
			 "current_period_start", json_is_integer(ps) ? json_incref(ps) : json_null(),
			 "current_period_end", json_is_integer(pe) ? json_incref(pe) : json_null());
}

/* GET /v1/subscriptions/<id> (new reference) or NULL with c->err. */
static json_t *get_sub(struct pay_call *c, const char *sub_id)
{
	char path[300];

	snprintf(path, sizeof(path), "/v1/subscriptions/%.250s", sub_id);
	return bw_stripe_api_get(c->api, path, &c->serr, &c->err);
}

/* The Stripe subscription behind the stored live one: *sub NULL when none is live. */
static unsigned live_sub(struct pay_call *c, struct bw_mongo *m, json_t **sub, char **out)
{
	char *sub_id = NULL;
	unsigned status = stored_sub(c, m, &sub_id, out);

	*sub = NULL;
	if (status || !sub_id)
		goto done;
	*sub = get_sub(c, sub_id);
	if (!*sub) {
		status = pay_stripe_fail(c, out, "read subscription");
		goto done;
	}
	if (!bw_api_sub_live(json_string_value(json_object_get(*sub, "status")))) {
		json_decref(*sub);
		*sub = NULL;
	}
done:
	free(sub_id);
	return status;
}

/* When resync failed: stores Stripe's pending cancellation of the org's subscription from
 * the update's answer (cancel_at_period_end, cancel_at; not balance fields: no
 * balance_version bump), so GET .../subscription shows it at once. Logged when it fails:
 * Stripe has changed already, the answer says so. */
static void store_cancel_flag(struct bw_mongo *m, const char *org_id, const json_t *sub)
{
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	const char *sid = json_string_value(json_object_get(sub, "id"));
	json_int_t at = json_integer_value(json_object_get(sub, "cancel_at"));
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id), "stripe_subscription_id",
				  BCON_UTF8(sid ? sid : ""));
	bson_t *update = bson_new(), set;
	bson_error_t error;

	BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
	bw_customer_append_cancel(&set,
				  bw_sub_policy_ended(json_string_value(json_object_get(sub, "status"))),
				  json_is_true(json_object_get(sub, "cancel_at_period_end")), at);
	bson_append_document_end(update, &set);

	if (!mongoc_collection_update_one(coll, filter, update, NULL, NULL, &error))
		bw_log(BW_LOG_WARN, NULL, "org %s: cancel_at_period_end not stored: %s", org_id,
		       error.message);
	bson_destroy(update);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	bw_mongo_push(m, client);
}

/* Stores the org's subscription state as Stripe has it now with the customer sync's code,
 * ordered by Stripe's clock at the read (api_pay.h). 0, or -1 (logged) when it failed. */
static int resync(struct pay_call *c, struct bw_mongo *m)
{
	struct bw_sync_customer_cfg scfg = { c->cfg->free_grant, &c->cfg->policy,
					     c->cfg->product_tag };
	struct bw_sync_customer_req sreq = { c->req->org_id, NULL, 0, &scfg };
	struct bw_sync_counts counts;
	struct bw_stripe_error serr;
	struct bw_err err;

	memset(&counts, 0, sizeof(counts));
	memset(&serr, 0, sizeof(serr));
	bw_err_clear(&err);
	if (bw_sync_customer(c->api, m, &sreq, &counts, &serr, &err) == 0)
		return 0;
	bw_log(BW_LOG_WARN, NULL, "org %s: subscription state not re-read after the change: %s %s",
	       c->req->org_id, bw_err_kind_name(err.kind), err.msg);
	return -1;
}

/* POSTs the form to the subscription (an update's key for call); answers the new state. */
static unsigned update_sub(struct pay_call *c, struct bw_mongo *m, const json_t *sub,
			   const char *call, const char *tier, char **out)
{
	char path[300], key[BW_PAY_KEY_MAX];
	const char *sid = json_string_value(json_object_get(sub, "id"));
	json_t *res;

	pay_key(c, call, 1, key);
	snprintf(path, sizeof(path), "/v1/subscriptions/%.250s", sid ? sid : "");
	res = pay_post(c, path, key);
	if (!res)
		return pay_stripe_fail(c, out, call);
	if (resync(c, m) != 0)
		store_cancel_flag(m, c->req->org_id, res);
	json_t *ans = sub_state(c->req->org_id, res, tier);
	json_decref(res);
	return pay_answer(out, 200, ans);
}

unsigned bw_api_pay_plan(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			 const struct bw_api_pay_req *req, char **out)
{
	struct pay_call c;
	json_t *price = NULL, *sub = NULL, *session = NULL;
	const char *tier, *success, *cancel, *price_id;
	unsigned status = pay_begin(&c, cfg, req, "checkout-plan", out);

	if (status)
		return status;
	tier = json_string_value(json_object_get(c.body, "tier"));
	success = pay_url(c.body, "success_url");
	cancel = pay_url(c.body, "cancel_url");
	if (!tier || !success || !cancel) {
		status = pay_fail(out, 400, "invalid_request", NULL,
				  "body must be {\"tier\": <plan tier>, \"success_url\": <http(s) "
				  "URL>, \"cancel_url\": <http(s) URL>}");
		goto done;
	}
	if (!strcmp(tier, "enterprise")) {
		status = pay_fail(out, 400, "invalid_request", NULL,
				  "the enterprise plan is not self-served: contact sales");
		goto done;
	}
	if (bw_api_tier_price(m, tier, &price, &c.err) != 0) {
		status = pay_fail(out, 503, "unavailable", NULL, "tier price: %s", c.err.msg);
		goto done;
	}
	price_id = json_string_value(json_object_get(price, "price_id"));
	if (!price_id) {
		status = pay_fail(out, 400, "invalid_request", NULL,
				  "no active base price of tier '%.64s' (GET /v1/plans lists them)",
				  tier);
		goto done;
	}
	if ((status = live_sub(&c, m, &sub, out)) != 0)
		goto done;
	if (sub) { /* a plan change: the base item swapped, prorated, cancellation cleared */
		const json_t *item = base_item(sub);
		pay_form(&c, "items[0][id]",
			 json_string_value(json_object_get(item, "id")));
		pay_form(&c, "items[0][price]", price_id);
		pay_form(&c, "proration_behavior", "create_prorations");
		pay_form(&c, "cancel_at_period_end", "false");
		pay_form(&c, "metadata[org_id]", req->org_id);
		status = update_sub(&c, m, sub, "change-plan", tier, out);
		goto done;
	}
	if ((status = pay_customer(&c, m, out)) != 0)
		goto done;
	struct pay_checkout co = {
		"checkout-plan", "subscription", price_id, "1", success, cancel,
		"subscription_data[metadata][org_id]", req->org_id,
	};
	session = pay_checkout_session(&c, &co);
	if (!session) {
		status = pay_stripe_fail(&c, out, "create checkout session");
		goto done;
	}
	status = pay_answer(out, 200, json_pack("{s:O s:O s:s s:s}", "id",
						json_object_get(session, "id"), "url",
						json_object_get(session, "url"), "mode",
						"subscription", "tier", tier));
done:
	json_decref(session);
	json_decref(sub);
	json_decref(price);
	pay_end(&c);
	return status;
}

unsigned bw_api_pay_cancel(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			   const struct bw_api_pay_req *req, int cancel, char **out)
{
	struct pay_call c;
	json_t *sub = NULL;
	const char *call = cancel ? "cancel" : "reactivate";
	unsigned status = pay_begin(&c, cfg, req, call, out);

	if (status)
		return status;
	if ((status = live_sub(&c, m, &sub, out)) != 0)
		goto done;
	if (!sub) {
		status = pay_fail(out, 404, "no_subscription", NULL,
				  "org %.128s has no live subscription", req->org_id);
		goto done;
	}
	pay_form(&c, "cancel_at_period_end", cancel ? "true" : "false");
	status = update_sub(&c, m, sub, call, NULL, out);
done:
	json_decref(sub);
	pay_end(&c);
	return status;
}

unsigned bw_api_pay_portal(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			   const struct bw_api_pay_req *req, char **out)
{
	struct pay_call c;
	json_t *session = NULL;
	const char *ret;
	char key[BW_PAY_KEY_MAX];
	unsigned status = pay_begin(&c, cfg, req, "portal", out);

	if (status)
		return status;
	ret = pay_url(c.body, "return_url");
	if (!ret) {
		status = pay_fail(out, 400, "invalid_request", NULL,
				  "body must be {\"return_url\": <http(s) URL>}");
		goto done;
	}
	if ((status = pay_customer(&c, m, out)) != 0)
		goto done;
	pay_form(&c, "customer", c.customer);
	pay_form(&c, "return_url", ret);
	pay_key(&c, "portal", 0, key);
	session = pay_post(&c, "/v1/billing_portal/sessions", key);
	if (!session) {
		status = pay_stripe_fail(&c, out, "create portal session");
		goto done;
	}
	status = pay_answer(out, 200, json_pack("{s:O s:O}", "id", json_object_get(session, "id"),
						"url", json_object_get(session, "url")));
done:
	json_decref(session);
	pay_end(&c);
	return status;
}
