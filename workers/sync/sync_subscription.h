/* sync_subscription: which of a Stripe customer's subscriptions the org has, read through
 * the shared subscription policy (shared/sub_policy.h: the status table, the base item) and
 * the shared period rules (shared/sub_period.h), so the sync worker answers as the stripe
 * worker does. Pure functions on the API's JSON, no I/O: unit tests call them directly. */
#ifndef BW_SYNC_SUBSCRIPTION_H
#define BW_SYNC_SUBSCRIPTION_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "sub_period.h"
#include "sub_policy.h"

/* The subscription state of one Stripe customer. Strings borrowed from the JSON (or static). */
struct bw_sub_state {
	const char *subscription_type;   /* tier of the live base price, or "none" */
	int64_t allowance;               /* its included_spus (0 for none) */
	const char *subscription_id;     /* live subscription, else the latest one, or NULL */
	const char *status;              /* its status, or NULL */
	const char *price_id;            /* the base price, or NULL */
	const char *reason;              /* the policy's reason (static) */
	int has_period;
	int64_t period_start_s, period_end_s;
	int live;                        /* a subscription the policy grants the allowance */
	int period_paid;                 /* its expanded latest_invoice is paid and opens this
					  * very period: the period may reset */
	int cancel_at_period_end;        /* its cancel_at_period_end (absent: false) */
	int64_t cancel_at_s;             /* its cancel_at, unix seconds; 0 when none */
};

/* Picks the state from an array of Stripe subscription objects (borrowed; items.data[].price
 * objects and latest_invoice expanded as the API returns them with expand[]): the most
 * recently created subscription whose status the policy grants (sub_policy) and that has a
 * base item; its tier and included_spus. With none: "none", allowance 0, and the latest
 * subscription's id and status. Period from the subscription, or from its items (API
 * 2025-03-31+); the pending cancellation (cancel_at_period_end, cancel_at) of the one picked. Returns 0, or -1 with err (INVALID) when the base price's metadata is
 * unusable. */
int bw_sync_pick_subscription(const json_t *subs, const struct bw_sub_policy *policy,
			      struct bw_sub_state *out, struct bw_err *err);

/* Whether the sync resets subscription_spus_used for st now, given what the document holds:
 * only when st's period is paid (never on the period alone), once per period
 * (bw_sub_period_reset_due, as the stripe worker's invoice reset), and never mid-period on a
 * document that has no reset marker yet and already holds this period (its counters are the
 * opening balance of a cut-over, not a renewal the sync could tell from it). */
int bw_sync_reset_due(const struct bw_sub_state *st, const struct bw_period_stored *stored);

#endif
