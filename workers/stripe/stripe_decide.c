/* stripe_decide: see stripe_decide.h. */
#include "stripe_decide.h"

#include <inttypes.h>
#include <string.h>

int bw_stripe_mode_decide(const struct bw_stripe_event *ev, enum bw_stripe_mode mode,
			  struct bw_stripe_outcome *out)
{
	if (mode == BW_STRIPE_MODE_ANY || !ev->has_livemode ||
	    ev->livemode == (mode == BW_STRIPE_MODE_LIVE))
		return 0;
	bw_stripe_outcome_set(out, BW_SS_IGNORED, "%s-mode event, this worker applies %s-mode "
			      "events only (STRIPE_LIVEMODE)", ev->livemode ? "live" : "test",
			      mode == BW_STRIPE_MODE_LIVE ? "live" : "test");
	return 1;
}

void bw_stripe_sub_verdict(const struct bw_sub_policy *p, const struct bw_stripe_cust *c,
			   const struct bw_stripe_event *ev, struct bw_sub_verdict *v)
{
	struct bw_sub_facts f = { ev->sub_status, ev->kind == BW_SK_SUB_DELETED, c->enterprise };
	bw_sub_policy_decide(p, &f, v);
}

int bw_stripe_needs_org(const struct bw_stripe_event *ev, struct bw_stripe_outcome *out)
{
	switch (ev->kind) {
	case BW_SK_UNKNOWN:
		bw_stripe_outcome_set(out, BW_SS_IGNORED, "event type not handled");
		return 0;
	case BW_SK_CHECKOUT:
		bw_stripe_detail_str(out, "checkout_session_id", ev->object_id);
		if (strcmp(ev->type, "checkout.session.async_payment_failed") == 0) {
			bw_stripe_outcome_set(out, BW_SS_PAYMENT_FAILED, "the asynchronous payment "
					      "failed: nothing credited");
			return 0;
		}
		if (ev->mode && strcmp(ev->mode, "subscription") == 0) {
			if (ev->meta_org_id && ev->customer_id)
				return 1; /* links the customer to the org */
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "subscription checkout without "
					      "metadata.org_id and customer: nothing to link");
			return 0;
		}
		if (!ev->mode || strcmp(ev->mode, "payment") != 0) {
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "checkout mode %s is not a credit "
					      "purchase", ev->mode ? ev->mode : "(none)");
			return 0;
		}
		if (!bw_stripe_checkout_is_paid(ev)) {
			bw_stripe_outcome_set(out, BW_SS_DEFERRED, "payment_status %s: waiting for "
					      "checkout.session.async_payment_succeeded",
					      ev->payment_status ? ev->payment_status : "(none)");
			return 0;
		}
		return 1;
	case BW_SK_SUB_UPSERT:
	case BW_SK_SUB_DELETED:
		return 1;
	case BW_SK_INVOICE_PAID:
		if (!bw_stripe_invoice_opens_period(ev)) {
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "billing_reason %s does not open "
					      "a period",
					      ev->billing_reason ? ev->billing_reason : "(none)");
			return 0;
		}
		if (!ev->subscription_id) {
			bw_stripe_outcome_set(out, BW_SS_REJECTED, "invoice opens a period but has "
					      "no subscription");
			return 0;
		}
		if (!ev->has_period && strcmp(ev->billing_reason, "subscription_update") == 0) {
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "plan change invoice without a line "
					      "of a new period (prorations only): no reset");
			return 0;
		}
		if (!ev->has_period) {
			/* Lines cut off (Stripe sends at most 10) or none of the subscription's
			 * own: the customer sync resets the period once it sees it paid. */
			bw_stripe_outcome_set(out, BW_SS_DEFERRED, "invoice has no line of its "
					      "subscription's own period: the customer sync settles "
					      "it");
			bw_stripe_want_tick(out, ev, "invoice_without_period_line", 0);
			return 0;
		}
		return 1;
	case BW_SK_INVOICE_CREATED:
	case BW_SK_REFUND:
	case BW_SK_CUSTOMER:
	case BW_SK_KIND_COUNT:
		break; /* their handlers run without a required org */
	}
	bw_stripe_outcome_set(out, BW_SS_IGNORED, "event type not handled here");
	return 0;
}

/* Settled by the stored ordering marker alone (replay, stale, same second). */
static int sub_settled(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
		       struct bw_stripe_outcome *out)
{
	if (!c->has_sub_created)
		return 0;
	if (strcmp(c->sub_event_id, ev->id) == 0) {
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL); /* our own earlier, unrecorded write */
		return 1;
	}
	if (c->sub_created > ev->created) {
		bw_stripe_outcome_set(out, BW_SS_STALE, "a newer subscription event (created %"
				      PRId64 ") is stored", c->sub_created);
		return 1;
	}
	if (c->sub_created == ev->created) {
		bw_stripe_outcome_set(out, BW_SS_DEFERRED, "stored subscription state has the same "
				      "created second: the Stripe API settles it");
		bw_stripe_want_tick(out, ev, "subscription_same_second", 0);
		return 1;
	}
	return 0;
}

int bw_stripe_sub_decide(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			 struct bw_stripe_outcome *out)
{
	int deleted = ev->kind == BW_SK_SUB_DELETED;

	if (sub_settled(c, ev, out))
		return 1;
	if (deleted && strcmp(c->sub_id, ev->subscription_id) != 0) {
		/* Maybe an old one, maybe a live one whose creation we have not seen: the
		 * Stripe API says which is the org's now. */
		bw_stripe_outcome_set(out, BW_SS_STALE, "deleted subscription is not the org's "
				      "current one (%s)", c->sub_id[0] ? c->sub_id : "none");
		bw_stripe_want_tick(out, ev, "deleted_subscription_not_stored", 0);
		return 1;
	}
	if (!deleted && strcmp(c->sub_id, ev->subscription_id) == 0 &&
	    bw_stripe_status_backwards(c->sub_status, ev->sub_status)) {
		/* Stripe's lifecycle does not go back: the order is in doubt, ask the API. */
		bw_stripe_outcome_set(out, BW_SS_DEFERRED, "subscription status would go back "
				      "from %s to %s", c->sub_status, ev->sub_status);
		bw_stripe_want_tick(out, ev, "subscription_status_backwards", 0);
		return 1;
	}
	return 0;
}

void bw_stripe_sub_missed(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			  struct bw_stripe_outcome *out)
{
	if (!sub_settled(c, ev, out))
		bw_stripe_outcome_set(out, BW_SS_STALE, "deleted subscription is no longer the "
				      "org's current one");
}

int bw_stripe_invoice_decide(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			     struct bw_stripe_outcome *out)
{
	if (strcmp(c->reset_event_id, ev->id) == 0) {
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
		return 1;
	}
	if (strcmp(c->sub_id, ev->subscription_id) != 0) {
		bw_stripe_outcome_set(out, BW_SS_DEFERRED, "invoice subscription is not the org's "
				      "current one (%s)", c->sub_id[0] ? c->sub_id : "none");
		bw_stripe_want_tick(out, ev, "invoice_for_unknown_subscription", 0);
		return 1;
	}
	return 0;
}

void bw_stripe_invoice_missed(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			      struct bw_stripe_outcome *out)
{
	int64_t start_ms = ev->period_start * 1000;

	if (strcmp(c->reset_event_id, ev->id) == 0)
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
	else if ((c->has_reset && c->reset_ms > start_ms) ||
		 (c->has_period && c->period_ms > start_ms))
		bw_stripe_outcome_set(out, BW_SS_STALE, "a newer billing period is already stored");
	else
		bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "usage of this billing period was "
				      "already reset (by event %s)",
				      c->reset_event_id[0] ? c->reset_event_id : "?");
}

int64_t bw_stripe_share(int64_t credits, int64_t part, int64_t whole)
{
	unsigned __int128 p;

	if (whole <= 0 || credits <= 0 || part <= 0)
		return 0;
	if (part > whole)
		part = whole;
	/* credits, part <= 2^63: the product fits in 128 bits; the quotient <= credits. */
	p = (unsigned __int128)credits * (unsigned __int128)part;
	return (int64_t)(p / (unsigned __int128)whole);
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

int bw_stripe_clawback_plan(const struct bw_stripe_event *ev, const struct bw_stripe_claw *row,
			    struct bw_stripe_claw *next, int64_t *delta,
			    struct bw_stripe_outcome *out)
{
	int closed = ev->is_dispute && strcmp(ev->type, "charge.dispute.closed") == 0;
	int given_back = closed && ev->dispute_status &&
			 (strcmp(ev->dispute_status, "won") == 0 ||
			  strcmp(ev->dispute_status, "warning_closed") == 0);

	*next = *row;
	*delta = 0;
	if (!ev->is_dispute) {
		if (ev->amount <= 0) {
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "charge amount is 0");
			return -1;
		}
		next->refunded = max64(row->refunded,
				       bw_stripe_share(row->credits, ev->amount_refunded, ev->amount));
	} else if (row->dispute_closed && !closed) {
		bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "the dispute is already closed");
		return 1;
	} else if (given_back) {
		next->disputed = 0;
		next->dispute_closed = 1;
	} else {
		if (row->amount_total <= 0) {
			bw_stripe_outcome_set(out, BW_SS_IGNORED, "the purchase's amount_total is "
					      "unknown or 0: no share to dispute");
			return -1;
		}
		next->disputed = max64(row->disputed, bw_stripe_share(row->credits, ev->amount,
								      row->amount_total));
		next->dispute_closed = closed;
	}
	/* Each share <= credits, so the sum cannot overflow. */
	next->taken = next->refunded + next->disputed;
	if (next->taken > row->credits)
		next->taken = row->credits;
	*delta = next->taken - row->taken;
	if (*delta == 0 && next->refunded == row->refunded && next->disputed == row->disputed &&
	    next->dispute_closed == row->dispute_closed) {
		bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "this share of the purchase was "
				      "already taken back (%" PRId64 " credits)", row->taken);
		return 1;
	}
	return 0;
}
