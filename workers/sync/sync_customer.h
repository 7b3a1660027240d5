/* sync_customer: the `customer` sync. Makes payments_customers' subscription fields of one
 * org what the Stripe API says (the API's state is the newest truth), read through the
 * shared subscription policy (sync_subscription.h), creating the Stripe customer first when
 * the org has none.
 *
 * Stripe calls: POST /v1/customers (metadata[org_id], metadata[product], Idempotency-Key
 * "bw-sync-customer-<org_id>", with "-g<n>" after the org's n-th deleted customer: a retry or
 * a second worker never creates two), GET /v1/customers/<id>,
 * GET /v1/subscriptions?customer=<id>&status=all&expand[]=data.latest_invoice (every page).
 *
 * Writes (one conditional update on balance_version, retried on a miss):
 *   $set subscription_type, subscription_spu_allowance, stripe_subscription_id,
 *        stripe_subscription_status, stripe_subscription_price_id,
 *        subscription_cancel_at_period_end / subscription_cancel_at (the picked
 *        subscription's pending cancellation; cleared when it has ended),
 *        stripe_current_billing_period_start/_end (unix seconds), stripe_subscription_event_created
 *        (Stripe's clock at the read: the Date of the customer answer; webhook events created
 *        before it are stale), stripe_synced_at, updated_at
 *   subscription_spus_used = 0 only when the subscription's latest_invoice is paid and
 *        opens its current period, once per period (the reset marker shared with the stripe
 *        worker's invoice reset)
 *   $inc balance_version 1 when a balance field changed.
 * Enterprise orgs (stored subscription_type "enterprise", or the backend's organizations
 * document with type "enterprise") keep their plan: only stripe_customer_id is written.
 * A deleted Stripe customer: the id is cleared (stripe_customers_deleted + 1) and the plan
 * is none, so the next customer tick creates a new customer.
 * A customer of another product (not linked to an org, metadata.product not ours, or
 * neither product nor org_id): recorded in payments_foreign_customers (the stripe worker
 * then ignores its events), counted in customers_foreign, nothing else written. */
#ifndef BW_SYNC_CUSTOMER_H
#define BW_SYNC_CUSTOMER_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "mongo.h"
#include "stripe_api.h"
#include "sub_policy.h"
#include "sync_subscription.h"
#include "sync_tick.h"

struct bw_sync_customer_cfg {
	int64_t free_grant;
	const struct bw_sub_policy *policy;   /* borrowed */
	const char *product_tag;              /* borrowed: STRIPE_PRODUCT_TAG */
};

struct bw_sync_customer_req {
	const char *org_id;               /* may be NULL when stripe_customer_id is set */
	const char *stripe_customer_id;   /* may be NULL: read from the document */
	int may_create;                   /* create a Stripe customer when the org has none */
	const struct bw_sync_customer_cfg *cfg;  /* borrowed */
};

/* POST /v1/customers for org_id tagged with product tag, Idempotency-Key
 * "bw-sync-customer-<org_id>[-g<generation>]" (generation: the org's deleted Stripe customers,
 * stripe_customers_deleted), so every caller (the sync, bw-api) creates one customer per org.
 * *cus_out: the new customer id (caller free()). 0, or -1 with err and serr. Shared with bw-api. */
int bw_sync_create_customer(struct bw_stripe_api *api, const char *org_id, const char *tag,
			    int64_t generation, char **cus_out, struct bw_stripe_error *serr,
			    struct bw_err *err);

/* Reconciles one org. Adds to counts. 0, or -1 with err (TRANSIENT: Stripe after retries or
 * MongoDB; INVALID: Stripe 4xx, or nothing to reconcile) and serr. */
int bw_sync_customer(struct bw_stripe_api *api, struct bw_mongo *mongo,
		     const struct bw_sync_customer_req *req, struct bw_sync_counts *counts,
		     struct bw_stripe_error *serr, struct bw_err *err);

/* scope all: every org with a stripe_customer_id, one after the other (the client paces the
 * requests). A customer Stripe refuses (4xx) is counted and listed in errors (a JSON array,
 * at most 20 entries), not fatal; a transient failure stops the run. */
int bw_sync_all_customers(struct bw_stripe_api *api, struct bw_mongo *mongo,
			  const struct bw_sync_customer_cfg *cfg,
			  struct bw_sync_counts *counts, json_t *errors,
			  struct bw_stripe_error *serr, struct bw_err *err);

#endif
