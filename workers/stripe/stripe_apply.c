/* stripe_apply: see stripe_apply.h. The dispatcher: the event record first (a done event
 * replays it), then the handler table by kind, then the event record is queued. */
#include "stripe_apply.h"

#include <stdio.h>
#include <string.h>

#include "stripe_handlers.h"
#include "stripe_record.h"
#include "stripe_store.h"

/* One row per event kind. needs_org rows let bw_stripe_needs_org settle the event first
 * (ignored, deferred, rejected) and run only with the org's customer document. */
static const struct bw_stripe_handler handlers[BW_SK_KIND_COUNT] = {
	[BW_SK_UNKNOWN] = { "unknown", 1, 0, NULL },
	[BW_SK_CHECKOUT] = { "checkout", 1, 0, bw_stripe_checkout_apply },
	[BW_SK_SUB_UPSERT] = { "subscription", 1, 1, bw_stripe_subscription_apply },
	[BW_SK_SUB_DELETED] = { "subscription", 1, 1, bw_stripe_subscription_apply },
	[BW_SK_INVOICE_PAID] = { "invoice", 1, 1, bw_stripe_invoice_paid_apply },
	[BW_SK_INVOICE_CREATED] = { "invoice", 0, 0, bw_stripe_invoice_created_apply },
	/* The purchase's ledger row names the org (charges and disputes carry no org id). */
	[BW_SK_REFUND] = { "refund", 0, 0, bw_stripe_refund_apply },
	[BW_SK_CUSTOMER] = { "customer", 0, 0, bw_stripe_customer_apply },
};

const struct bw_stripe_handler *bw_stripe_handler_for(enum bw_stripe_kind kind)
{
	if ((unsigned)kind >= BW_SK_KIND_COUNT || !handlers[kind].name)
		kind = BW_SK_UNKNOWN;
	return &handlers[kind];
}

/* Runs an org-requiring handler: resolves the org (a cached copy is read again when the
 * handler decides on stored state), waits for an unknown customer, else applies. */
static int with_org(struct bw_stripe_apply_ctx *ax, const struct bw_stripe_handler *h,
		    const struct bw_stripe_rec *r, int64_t *attempts)
{
	struct bw_stripe_cust *c = &ax->cust;

	if (bw_stripe_resolve_org(ax) != 0)
		return -1;
	if (c->found && !c->fresh && h->fresh &&
	    bw_stripe_cust_load(ax->m, ax->client, "org_id", c->org_id, c, ax->err) != 0)
		return -1;
	if (!c->found) {
		int foreign = 0;
		if (ax->ev->customer_id &&
		    bw_stripe_customer_foreign(ax->m, ax->client, ax->ev->customer_id, &foreign,
					       ax->err) != 0)
			return -1;
		if (foreign)
			bw_stripe_foreign_customer(ax);
		else
			bw_stripe_unknown_customer(ax, r, attempts);
		return 0;
	}
	snprintf(ax->out->org_id, sizeof(ax->out->org_id), "%s", c->org_id);
	return h->apply(ax);
}

int bw_stripe_apply(struct bw_stripe_apply_ctx *ax)
{
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_outcome *out = ax->out;
	const struct bw_stripe_handler *h = bw_stripe_handler_for(ev->kind);
	struct bw_stripe_rec r;
	int64_t attempts = 0;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	memset(&ax->cust, 0, sizeof(ax->cust));
	ax->m = bw_stripe_cache_mongo(ax->cache);
	ax->client = bw_stripe_cache_client(ax->cache);
	if (!out->details)
		out->details = json_object();
	if (!out->details)
		return bw_err_set(ax->err, BW_ERR_TRANSIENT, "out of memory");
	if (bw_stripe_cache_rec_pending(ax->cache, ev->id) &&
	    bw_stripe_cache_flush(ax->cache, ax->err) != 0)
		goto done;
	if (!bw_stripe_cache_rec(ax->cache, ev->id, &r) &&
	    bw_stripe_rec_load(ax->m, ax->client, ev->id, &r, ax->err) != 0)
		goto done;
	if (r.found && strcmp(r.state, "done") == 0) {
		bw_stripe_rec_replay(&r, ax->msg, out);
		if (!r.legacy) {
			rc = 0;
			goto done; /* nothing to write: the record already says it all */
		}
		/* Handled by the previous integration: recorded as ours from now on. */
	} else {
		if (ev->meta_org_id)
			snprintf(out->org_id, sizeof(out->org_id), "%s", ev->meta_org_id);
		if (bw_stripe_mode_decide(ev, ax->cfg->livemode, out)) {
			/* the other mode's event: recorded only */
		} else if (!h->needs_org) {
			if (h->apply(ax) != 0)
				goto done;
		} else if (bw_stripe_needs_org(ev, out)) {
			if (with_org(ax, h, &r, &attempts) != 0)
				goto done;
		}
	}
	if (bw_stripe_cache_queue_rec(ax->cache, ev, ax->msg, out, attempts, ax->err) != 0)
		goto done;
	rc = 0;
done:
	bw_stripe_rec_cleanup(&r);
	return rc;
}
