/* stripe_invoice: a paid invoice that opens a billing period resets the period's
 * subscription usage once; invoice.created asks the sync worker for a fresh read of the
 * customer. */
#include <stdio.h>
#include <string.h>

#include "customer_doc.h"
#include "stripe_handlers.h"
#include "stripe_store.h"

/* Resets subscription_spus_used once per billing period: the filter requires the stored
 * reset marker (subscription_spus_reset_period_start) to be older than the period the
 * invoice opens, so a replay or the second invoice event (paid + payment_succeeded) of the
 * same period matches nothing. The marker is separate from
 * stripe_current_billing_period_start because customer.subscription.updated moves that one
 * to the new period too, often before the invoice arrives. */
int bw_stripe_invoice_paid_apply(struct bw_stripe_apply_ctx *ax)
{
	struct bw_mongo *m = ax->m;
	mongoc_client_t *client = ax->client;
	const struct bw_stripe_event *ev = ax->ev;
	const struct bw_stripe_cust *c = &ax->cust;
	struct bw_stripe_outcome *out = ax->out;
	struct bw_err *err = ax->err;
	int64_t now = bw_mongo_now_ms(), matched = 0, start_ms = ev->period_start * 1000;
	bson_t *filter = NULL, *update = NULL, period_or = BSON_INITIALIZER;
	struct bw_stripe_cust again;
	uint32_t n_or = 0;
	int rc = -1;

	bw_stripe_detail_str(out, "invoice_id", ev->object_id);
	bw_stripe_detail_str(out, "subscription_id", ev->subscription_id);
	bw_stripe_detail_int(out, "period_start", ev->period_start);
	if (bw_stripe_invoice_decide(c, ev, out)) {
		rc = 0;
		goto done;
	}
	/* Besides the marker, the stored period must not be newer than the invoice's: a late
	 * invoice of an older period, before any marker exists, would otherwise wipe the
	 * current period's usage and move the period back. The original integration stored
	 * the period in unix seconds (a number, which a date comparison never matches), and so do
	 * we (the old contract); earlier versions of this worker stored a date. */
	bw_customer_append_period_lte(&period_or, &n_or, BW_CUST_PERIOD_START, ev->period_start);
	filter = BCON_NEW("org_id", BCON_UTF8(out->org_id), "stripe_subscription_id",
			  BCON_UTF8(ev->subscription_id), "$and", "[", "{", "$or", "[", "{",
			  "subscription_spus_reset_period_start", "{", "$lt",
			  BCON_DATE_TIME(start_ms), "}", "}", "{",
			  "subscription_spus_reset_period_start", "{", "$exists", BCON_BOOL(false),
			  "}", "}", "]", "}", "{", "$or", BCON_ARRAY(&period_or), "}", "]");
	update = BCON_NEW("$set", "{", "subscription_spus_used", BCON_INT64(0),
			  "subscription_spus_reset_period_start", BCON_DATE_TIME(start_ms),
			  "subscription_spus_reset_event_id", BCON_UTF8(ev->id),
			  "subscription_spus_reset_invoice_id", BCON_UTF8(ev->object_id),
			  BW_CUST_PERIOD_START, BCON_INT64(ev->period_start),
			  BW_CUST_PERIOD_END, BCON_INT64(ev->period_end), "updated_at",
			  BCON_DATE_TIME(now), "}", "$inc", "{", "balance_version", BCON_INT64(1),
			  "}");
	if (bw_stripe_update_one(m, client, BW_COLL_CUSTOMERS, filter, update, 0, &matched,
				 err) != 0)
		goto done;
	if (matched == 1) {
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
		bw_stripe_detail_int(out, "subscription_spus_used", 0);
		rc = 0;
		goto done;
	}
	if (bw_stripe_cust_load(m, client, "org_id", out->org_id, &again, err) != 0)
		goto done;
	bw_stripe_invoice_missed(&again, ev, out);
	rc = 0;
done:
	bson_destroy(&period_or);
	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}

/* A fresh API read of the customer (a sync tick); the org helps the sync worker if known. */
int bw_stripe_invoice_created_apply(struct bw_stripe_apply_ctx *ax)
{
	int foreign = 0;

	if (!ax->ev->meta_org_id && bw_stripe_resolve_org(ax) != 0)
		return -1;
	if (ax->cust.found)
		snprintf(ax->out->org_id, sizeof(ax->out->org_id), "%s", ax->cust.org_id);
	else if (!ax->ev->meta_org_id && ax->ev->customer_id &&
		 bw_stripe_customer_foreign(ax->m, ax->client, ax->ev->customer_id, &foreign,
					    ax->err) != 0)
		return -1;
	if (foreign) {
		bw_stripe_foreign_customer(ax);
		return 0;
	}
	bw_stripe_outcome_set(ax->out, BW_SS_APPLIED, NULL);
	bw_stripe_want_tick(ax->out, ax->ev, "invoice_created", 0);
	return 0;
}
