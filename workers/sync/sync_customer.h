/* sync_customer: the `customer` sync. Makes payments_customers' subscription fields of one
 * org what the Stripe API says (the API's state is the newest truth), creating the Stripe
 * customer first when the org has none.
 *
 * Stripe calls: POST /v1/customers (metadata[org_id], Idempotency-Key
 * "bw-sync-customer-<org_id>": a retry or a second worker never creates two),
 * GET /v1/customers/<id>, GET /v1/subscriptions?customer=<id>&status=all (every page).
 *
 * Writes (one conditional update on balance_version, retried on a miss):
 *   $set subscription_type, subscription_spu_allowance, stripe_subscription_id,
 *        stripe_subscription_status, stripe_subscription_price_id,
 *        stripe_current_billing_period_start/_end (dates), stripe_subscription_event_created
 *        (now, unix seconds: webhook events created before the sync are stale), stripe_synced_at,
 *        updated_at
 *   subscription_spus_used = 0 when the billing period moved forward (a new period starts
 *        with the full allowance; whoever moves the period resets, atomically with it)
 *   $inc balance_version 1 when a balance field changed.
 * An org marked "enterprise" locally keeps it while Stripe has no live subscription. */
#ifndef BW_SYNC_CUSTOMER_H
#define BW_SYNC_CUSTOMER_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "mongo.h"
#include "stripe_api.h"
#include "sync_tick.h"

/* The subscription state of one Stripe customer. Strings borrowed from the JSON. */
struct bw_sub_state {
	const char *subscription_type;   /* tier of the live base price, or "none" */
	int64_t allowance;               /* its included_spus (0 for none) */
	const char *subscription_id;     /* live subscription, else the latest one, or NULL */
	const char *status;              /* its status, or NULL */
	const char *price_id;            /* the base price, or NULL */
	int has_period;
	int64_t period_start_s, period_end_s;
	int live;                        /* an active/trialing/past_due base subscription */
};

/* Picks the state from an array of Stripe subscription objects (borrowed; items.data[].price
 * objects as Stripe returns them): the most recently created subscription in status active,
 * trialing or past_due with an item whose price metadata has price_type=base; its tier and
 * included_spus. Period from the subscription, or from its item (API 2025-03-31+).
 * Returns 0, or -1 with err (INVALID) when that price's metadata is unusable. */
int bw_sync_pick_subscription(const json_t *subs, struct bw_sub_state *out, struct bw_err *err);

struct bw_sync_customer_req {
	const char *org_id;               /* may be NULL when stripe_customer_id is set */
	const char *stripe_customer_id;   /* may be NULL: read from the document */
	int may_create;                   /* create a Stripe customer when the org has none */
	int64_t free_grant;
};

/* Reconciles one org. Adds to counts. 0, or -1 with err (TRANSIENT: Stripe after retries or
 * MongoDB; INVALID: Stripe 4xx, or nothing to reconcile) and serr. */
int bw_sync_customer(struct bw_stripe_api *api, struct bw_mongo *mongo,
		     const struct bw_sync_customer_req *req, struct bw_sync_counts *counts,
		     struct bw_stripe_error *serr, struct bw_err *err);

/* scope all: every org with a stripe_customer_id, one after the other (the client paces the
 * requests). A customer Stripe refuses (4xx) is counted and listed in errors (a JSON array,
 * at most 20 entries), not fatal; a transient failure stops the run. */
int bw_sync_all_customers(struct bw_stripe_api *api, struct bw_mongo *mongo, int64_t free_grant,
			  struct bw_sync_counts *counts, json_t *errors,
			  struct bw_stripe_error *serr, struct bw_err *err);

#endif
