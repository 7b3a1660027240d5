/* stripe_subscription: customer.subscription.created / .updated store the subscription's
 * status and period on the org's customer document, and the tier and allowance the shared
 * policy (sub_policy) gives it: the base item's plan for active / trialing (/ past_due),
 * none otherwise; .deleted of the current subscription clears them. The pending
 * cancellation (cancel_at_period_end, cancel_at) is stored from every event applied, cleared
 * once the subscription has ended (shared/customer_doc.h). An enterprise org is
 * never changed (recorded, ignored). Ordered by the event's `created` (a guard in the
 * update's filter), so an older event never overwrites a newer state. */
#include <stdio.h>
#include <string.h>

#include "customer_doc.h"
#include "org_enterprise.h"
#include "stripe_handlers.h"
#include "stripe_opening.h"
#include "stripe_store.h"
#include "sub_policy.h"

/* Tier and allowance of the subscription's price: its metadata, else payments_prices. */
static int price_plan(struct bw_mongo *m, mongoc_client_t *client,
		      const struct bw_stripe_event *ev, char *tier, size_t tier_len,
		      int64_t *allowance, struct bw_err *err)
{
	bson_t *filter = NULL, *doc = NULL;
	int rc = 0;

	snprintf(tier, tier_len, "%s", ev->tier ? ev->tier : "unknown");
	*allowance = ev->has_included_spus ? ev->included_spus : 0;
	if ((ev->tier && ev->has_included_spus) || !ev->price_id)
		return 0;
	filter = BCON_NEW("price_id", BCON_UTF8(ev->price_id));
	rc = bw_stripe_find_one(m, client, BW_COLL_PRICES, filter, NULL, &doc, err);
	if (rc == 0 && doc) {
		bson_iter_t it, sub;
		char t[64];
		int64_t n;
		bw_stripe_copy_utf8(doc, "tier", t, sizeof(t));
		if (!t[0] && bson_iter_init_find(&it, doc, "metadata") &&
		    BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
		    bson_iter_find(&sub, "tier") && BSON_ITER_HOLDS_UTF8(&sub))
			snprintf(t, sizeof(t), "%s", bson_iter_utf8(&sub, NULL));
		if (!ev->tier && t[0])
			snprintf(tier, tier_len, "%s", t);
		if (!ev->has_included_spus && bw_mongo_get_int64(doc, "included_spus", &n) && n >= 0)
			*allowance = n;
	}
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* The subscription ordering guard: stored event created older than this one, or none. */
static void append_order_guard(bson_t *filter, int64_t created)
{
	bw_stripe_append_or_missing(filter, "stripe_subscription_event_created", "$lt", created);
}

int bw_stripe_subscription_apply(struct bw_stripe_apply_ctx *ax)
{
	struct bw_mongo *m = ax->m;
	mongoc_client_t *client = ax->client;
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_cust *c = &ax->cust;
	struct bw_stripe_outcome *out = ax->out;
	struct bw_err *err = ax->err;
	int deleted = ev->kind == BW_SK_SUB_DELETED, org_ent = 0;
	int64_t now = bw_mongo_now_ms(), matched = 0, allowance = 0;
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, inc;
	struct bw_stripe_cust again;
	struct bw_sub_verdict v;
	char tier[64] = "none";
	int rc = -1;

	bw_stripe_detail_str(out, "subscription_id", ev->subscription_id);
	if (!c->enterprise && bw_org_enterprise(m, client, c->org_id, &org_ent, err) != 0)
		goto done;
	c->enterprise = c->enterprise || org_ent;
	bw_stripe_sub_verdict(&ax->cfg->policy, c, ev, &v);
	if (v.effect == BW_SUB_UNCHANGED) {
		bw_stripe_outcome_set(out, BW_SS_IGNORED, "%s", v.reason);
		rc = 0;
		goto done;
	}
	if (bw_stripe_sub_decide(c, ev, out)) {
		rc = 0;
		goto done;
	}
	if (v.effect == BW_SUB_PLAN &&
	    price_plan(m, client, ev, tier, sizeof(tier), &allowance, err) != 0)
		goto done;
	/* an old org's overdraft is its opening balance, not repaid by a new allowance */
	if (bw_stripe_open_old_org(m, client, out->org_id, ax->cfg->free_grant, err) != 0)
		goto done;
	BSON_APPEND_UTF8(&filter, "org_id", out->org_id);
	if (deleted)
		BSON_APPEND_UTF8(&filter, "stripe_subscription_id", ev->subscription_id);
	append_order_guard(&filter, ev->created);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	/* A plan change takes the new allowance at once; subscription_spus_used carries over
	 * (only a paid new period resets it, stripe_invoice.c). */
	BSON_APPEND_UTF8(&set, "subscription_type", tier);
	BSON_APPEND_INT64(&set, "subscription_spu_allowance", allowance);
	BSON_APPEND_UTF8(&set, "stripe_subscription_status", v.stored_status);
	/* the pending cancellation, under the same ordering guard: an ended one has none */
	bw_customer_append_cancel(&set, deleted || bw_sub_policy_ended(v.stored_status),
				  ev->cancel_at_period_end, ev->cancel_at);
	if (!deleted) {
		BSON_APPEND_UTF8(&set, "stripe_subscription_id", ev->subscription_id);
		if (ev->has_period) {
			/* unix seconds: the old contract the backend reads */
			bw_customer_append_period(&set, ev->period_start, ev->period_end);
		}
	}
	BSON_APPEND_INT64(&set, "stripe_subscription_event_created", ev->created);
	BSON_APPEND_UTF8(&set, "stripe_subscription_event_id", ev->id);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	bson_append_document_end(&update, &set);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
	bw_customer_append_version_bump(&inc);
	bson_append_document_end(&update, &inc);
	if (bw_stripe_update_one(m, client, BW_COLL_CUSTOMERS, &filter, &update, 0, &matched,
				 err) != 0)
		goto done;
	if (matched == 1) {
		if (v.effect == BW_SUB_NONE)
			bw_stripe_outcome_set(out, BW_SS_APPLIED, "%s", v.reason);
		else
			bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
		bw_stripe_detail_str(out, "subscription_type", tier);
		bw_stripe_detail_int(out, "subscription_spu_allowance", allowance);
		bw_stripe_detail_str(out, "stripe_subscription_status", v.stored_status);
		rc = 0;
		goto done;
	}
	/* The guard missed: someone stored a newer (or the same-second) state meanwhile. */
	if (bw_stripe_cust_load(m, client, "org_id", out->org_id, &again, err) != 0)
		goto done;
	bw_stripe_sub_missed(&again, ev, out);
	rc = 0;
done:
	bson_destroy(&filter);
	bson_destroy(&update);
	return rc;
}

