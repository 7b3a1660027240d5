/* stripe_handlers: the stripe worker's handlers, one module per event kind, and the one
 * table that maps a kind to its handler (stripe_apply.c). A handler runs with the apply
 * context (stripe_apply.h); when its entry requires the org, ax->cust is the org's
 * customer document (found) and ax->out->org_id is set. It returns 0 with ax->out filled,
 * or -1 with ax->err (TRANSIENT: retry the batch). Handlers write only through guarded
 * single-document updates (stripe_store.h) and decide with stripe_decide.h. */
#ifndef BW_STRIPE_HANDLERS_H
#define BW_STRIPE_HANDLERS_H

#include "stripe_apply.h"

typedef int (*bw_stripe_handler_fn)(struct bw_stripe_apply_ctx *ax);

struct bw_stripe_handler {
	const char *name;
	/* 1: bw_stripe_needs_org decides first, then the org's customer document is resolved
	 * (unknown: wait for the customer sync, then DLQ). 0: the handler runs as is. */
	int needs_org;
	/* 1: the handler decides on stored state, so a batch-start copy is read again. */
	int fresh;
	bw_stripe_handler_fn apply; /* NULL: bw_stripe_needs_org always settles the event */
};

/* The handler of kind (static; never NULL). */
const struct bw_stripe_handler *bw_stripe_handler_for(enum bw_stripe_kind kind);

/* stripe_checkout.c: a paid Checkout session credits purchased_credits once. */
int bw_stripe_checkout_apply(struct bw_stripe_apply_ctx *ax);
/* stripe_subscription.c: subscription created / updated / deleted. */
int bw_stripe_subscription_apply(struct bw_stripe_apply_ctx *ax);
/* stripe_invoice.c: a paid invoice resets the period's usage once; invoice.created asks for
 * a customer sync tick. */
int bw_stripe_invoice_paid_apply(struct bw_stripe_apply_ctx *ax);
int bw_stripe_invoice_created_apply(struct bw_stripe_apply_ctx *ax);
/* stripe_refund.c: refunds and disputes (charge.*). */
int bw_stripe_refund_apply(struct bw_stripe_apply_ctx *ax);
/* stripe_customer.c: customer.* events. */
int bw_stripe_customer_apply(struct bw_stripe_apply_ctx *ax);

/* stripe_customer.c: finds the org's customer document into ax->cust: metadata.org_id
 * first (creating the document when new, linking the Stripe customer id when it has none),
 * else the Stripe customer id mapping; from the batch cache when it knows (then
 * cust.fresh = 0: identity fields only). cust.found = 0 when neither works. 0, or -1. */
int bw_stripe_resolve_org(struct bw_stripe_apply_ctx *ax);

/* stripe_customer.c: the customer is unknown and the event names no org: wait (a customer
 * sync tick; the batch is retried with backoff) up to cfg->unknown_customer_retries times,
 * then DLQ. r is the event's record (its waiting attempts); *attempts is this one's. */
void bw_stripe_unknown_customer(struct bw_stripe_apply_ctx *ax, const struct bw_stripe_rec *r,
				int64_t *attempts);

/* stripe_customer.c: the event's customer is another product's (recorded by the sync):
 * ignored, no tick, no wait. */
void bw_stripe_foreign_customer(struct bw_stripe_apply_ctx *ax);

#endif
