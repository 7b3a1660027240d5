/* sub_period: which billing period a Stripe subscription or a paid invoice stands for, and
 * whether that period resets subscription_spus_used. Used by the stripe worker (invoice
 * events) and the sync worker (the subscription with its expanded latest_invoice), so both
 * reset the same period once. Pure functions on Stripe JSON (borrowed), no I/O.
 *
 * Stripe shapes read (older API versions and 2025-03-31 "basil" and later):
 *   subscription   current_period_start/_end on the subscription (older), else on its items
 *                  (newer; the base item's, see sub_policy)
 *   invoice        subscription: `subscription` (id or object, older) or
 *                  `parent.subscription_details.subscription` (newer)
 *   invoice line   the subscription's own line: `type: "subscription"` with `subscription`
 *                  and `proration` (older), or `parent.subscription_item_details` with
 *                  `subscription` and `proration` (newer); a proration line or an invoice
 *                  item line never gives the period (after a mid-period plan change the
 *                  proration line comes first and lies inside the old period). */
#ifndef BW_SUB_PERIOD_H
#define BW_SUB_PERIOD_H

#include <jansson.h>
#include <stdint.h>

/* Largest unix second accepted (9999-12-31): milliseconds of it still fit in int64. */
#define BW_SUB_PERIOD_MAX_S INT64_C(253402300799)

struct bw_period {
	int64_t start, end;  /* unix seconds */
};

/* The period the invoice opens for subscription sub_id (NULL: the invoice's own
 * subscription): the latest-starting non-proration line of that subscription.
 * 1 with *out, 0 when the invoice has no such line (a proration-only invoice, or lines cut
 * off by Stripe's 10-line webhook limit). */
int bw_sub_period_of_invoice(const json_t *invoice, const char *sub_id, struct bw_period *out);

/* The subscription's current period: on the subscription, else on its base item, else on
 * the first item that has one. 1 with *out, 0 when none is readable. */
int bw_sub_period_of_subscription(const json_t *subscription, struct bw_period *out);

/* The invoice's subscription id (borrowed), or NULL. */
const char *bw_sub_period_invoice_subscription(const json_t *invoice);

/* 1 when the invoice is paid (status "paid", or `paid: true` of older versions). */
int bw_sub_period_invoice_paid(const json_t *invoice);

/* What the customer document holds about periods (milliseconds since the epoch). */
struct bw_period_stored {
	int has_reset;
	int64_t reset_ms;    /* subscription_spus_reset_period_start: the last period reset */
	int has_period;
	int64_t period_ms;   /* stripe_current_billing_period_start */
};

/* Whether a paid period starting at start_ms resets subscription_spus_used now: once per
 * period (the reset marker is older or missing) and never back in time (the stored period
 * is not newer). The stripe worker's guarded write uses the same condition as its filter. */
int bw_sub_period_reset_due(const struct bw_period_stored *stored, int64_t start_ms);

#endif
