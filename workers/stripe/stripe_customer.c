/* stripe_customer: which org an event belongs to (metadata.org_id, else the Stripe customer
 * id stored on the org's customer document), the wait for a customer the sync has not
 * mapped yet, and the customer.* event handler slot. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

/* No customer.* event is mapped to this kind yet (bw_stripe_kind_of): the slot where
 * customer.deleted lands. Recorded and ignored. */
int bw_stripe_customer_apply(struct bw_stripe_apply_ctx *ax)
{
	bw_stripe_outcome_set(ax->out, BW_SS_IGNORED, "customer event not handled");
	return 0;
}
