/* stripe_customer: which org an event belongs to (metadata.org_id, else the Stripe customer
 * id stored on the org's customer document), the wait for a customer the sync has not
 * mapped yet, another product's customers (ignored), and customer.deleted. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "customer_doc.h"
#include "org_enterprise.h"
#include "stripe_handlers.h"
#include "stripe_store.h"

int bw_stripe_resolve_org(struct bw_stripe_apply_ctx *ax)
{
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_cust *c = &ax->cust;
	int64_t linked = 0;

	memset(c, 0, sizeof(*c));
	if (ev->meta_org_id) {
		if (!bw_stripe_cache_cust_by_org(ax->cache, ev->meta_org_id, c) &&
		    bw_stripe_cust_load(ax->m, ax->client, "org_id", ev->meta_org_id, c,
					ax->err) != 0)
			return -1;
		if (!c->found) {
			if (bw_stripe_cust_ensure(ax->m, ax->client, ax->cfg->free_grant,
						  ev->meta_org_id, ev->customer_id, c, ax->err) != 0)
				return -1;
		} else if (ev->customer_id && !c->customer_id[0]) {
			if (bw_stripe_cust_link(ax->m, ax->client, c->org_id, ev->customer_id,
						&linked, ax->err) != 0)
				return -1;
			if (linked == 1)
				snprintf(c->customer_id, sizeof(c->customer_id), "%s", ev->customer_id);
		}
		if (bw_stripe_cache_put_cust(ax->cache, c) != 0)
			return bw_err_set(ax->err, BW_ERR_TRANSIENT, "out of memory");
		return 0;
	}
	if (ev->customer_id && !bw_stripe_cache_cust_by_customer(ax->cache, ev->customer_id, c))
		return bw_stripe_cust_load(ax->m, ax->client, "stripe_customer_id",
					   ev->customer_id, c, ax->err);
	return 0;
}

void bw_stripe_unknown_customer(struct bw_stripe_apply_ctx *ax, const struct bw_stripe_rec *r,
				int64_t *attempts)
{
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_outcome *out = ax->out;

	*attempts = (r->found && strcmp(r->state, "waiting") == 0 ? r->attempts : 0) + 1;
	if (!ev->customer_id) {
		bw_stripe_outcome_set(out, BW_SS_REJECTED, "event has neither metadata.org_id nor "
				      "a customer");
		return;
	}
	bw_stripe_detail_str(out, "stripe_customer_id", ev->customer_id);
	bw_stripe_detail_int(out, "attempts", *attempts);
	if (*attempts > ax->cfg->unknown_customer_retries) {
		bw_stripe_outcome_set(out, BW_SS_REJECTED, "unknown Stripe customer %s after %"
				      PRId64 " attempts, no metadata.org_id", ev->customer_id,
				      *attempts);
		return;
	}
	bw_stripe_outcome_set(out, BW_SS_DEFERRED, "unknown Stripe customer %s: waiting for the "
			      "customer sync", ev->customer_id);
	out->waiting = 1;
	bw_stripe_want_tick(out, ev, "unknown_customer", *attempts);
}

void bw_stripe_foreign_customer(struct bw_stripe_apply_ctx *ax)
{
	bw_stripe_detail_str(ax->out, "stripe_customer_id", ax->ev->customer_id);
	bw_stripe_outcome_set(ax->out, BW_SS_IGNORED, "Stripe customer %s belongs to another "
			      "product (recorded by the customer sync)", ax->ev->customer_id);
}

/* The update of customer.deleted: the customer id and the subscription are cleared (a
 * later sync creates a new customer); an enterprise org keeps its plan. */
static bson_t *deleted_update(const struct bw_stripe_event *ev, int enterprise)
{
	bson_t *u = bson_new(), set, unset, inc;

	BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
	if (!enterprise) {
		BSON_APPEND_UTF8(&set, BW_CUST_SUB_TYPE, BW_CUST_TYPE_NONE);
		BSON_APPEND_INT64(&set, BW_CUST_SUB_ALLOWANCE, 0);
		BSON_APPEND_UTF8(&set, "stripe_subscription_status", "canceled");
		bw_customer_append_cancel(&set, 1, 0, 0); /* ended: nothing pending */
		BSON_APPEND_INT64(&set, "stripe_subscription_event_created", ev->created);
		BSON_APPEND_UTF8(&set, "stripe_subscription_event_id", ev->id);
	}
	BSON_APPEND_UTF8(&set, "stripe_customer_deleted_event_id", ev->id);
	BSON_APPEND_DATE_TIME(&set, BW_CUST_UPDATED_AT, bw_mongo_now_ms());
	bson_append_document_end(u, &set);
	BSON_APPEND_DOCUMENT_BEGIN(u, "$unset", &unset);
	BSON_APPEND_UTF8(&unset, "stripe_customer_id", "");
	if (!enterprise)
		BSON_APPEND_UTF8(&unset, "stripe_subscription_id", "");
	bson_append_document_end(u, &unset);
	BSON_APPEND_DOCUMENT_BEGIN(u, "$inc", &inc);
	BSON_APPEND_INT64(&inc, "stripe_customers_deleted", 1);
	if (!enterprise)
		bw_customer_append_version_bump(&inc);
	bson_append_document_end(u, &inc);
	return u;
}

/* customer.deleted (data.object is the customer): the org linked to it forgets the
 * customer id and the subscription, so a later customer sync creates a new customer. */
int bw_stripe_customer_apply(struct bw_stripe_apply_ctx *ax)
{
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_cust *c = &ax->cust;
	struct bw_stripe_outcome *out = ax->out;
	const char *cus = ev->object_id;
	bson_t *filter = NULL, *update = NULL, *doc = NULL;
	int64_t matched = 0;
	int foreign = 0, org_ent = 0, rc = -1;

	if (!cus) {
		bw_stripe_outcome_set(out, BW_SS_REJECTED, "customer event without data.object.id");
		return 0;
	}
	bw_stripe_detail_str(out, "stripe_customer_id", cus);
	if (bw_stripe_cust_load(ax->m, ax->client, "stripe_customer_id", cus, c, ax->err) != 0)
		goto done;
	if (!c->found) {
		if (bw_stripe_customer_foreign(ax->m, ax->client, cus, &foreign, ax->err) != 0)
			goto done;
		bw_stripe_outcome_set(out, BW_SS_IGNORED, "%s", foreign
				      ? "Stripe customer of another product"
				      : "deleted Stripe customer is not linked to an org");
		rc = 0;
		goto done;
	}
	snprintf(out->org_id, sizeof(out->org_id), "%s", c->org_id);
	if (!c->enterprise && bw_org_enterprise(ax->m, ax->client, c->org_id, &org_ent,
						ax->err) != 0)
		goto done;
	c->enterprise = c->enterprise || org_ent;
	filter = BCON_NEW("org_id", BCON_UTF8(c->org_id), "stripe_customer_id", BCON_UTF8(cus));
	update = deleted_update(ev, c->enterprise);
	if (bw_stripe_update_one(ax->m, ax->client, BW_COLL_CUSTOMERS, filter, update, 0,
				 &matched, ax->err) != 0)
		goto done;
	if (matched == 0) {
		/* cleared meanwhile: by this event before a crash (applied), or by another */
		bson_t *f = BCON_NEW("org_id", BCON_UTF8(c->org_id));
		char by[BW_STRIPE_ID_LEN] = "";
		rc = bw_stripe_find_one(ax->m, ax->client, BW_COLL_CUSTOMERS, f,
					BW_STRIPE_NO_SESSIONS, &doc, ax->err);
		bson_destroy(f);
		if (rc != 0)
			goto done;
		rc = -1;
		if (doc)
			bw_stripe_copy_utf8(doc, "stripe_customer_deleted_event_id", by, sizeof(by));
		if (strcmp(by, ev->id) != 0) {
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "the org is no longer linked to "
					      "Stripe customer %s", cus);
			rc = 0;
			goto done;
		}
	}
	if (c->enterprise)
		bw_stripe_outcome_set(out, BW_SS_APPLIED, "enterprise org: customer id cleared, "
				      "plan kept");
	else
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
	rc = 0;
done:
	bson_destroy(doc);
	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}
