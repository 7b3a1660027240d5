/* api_plans: the read side of the payment flows, from MongoDB only (no Stripe call):
 *   GET /v1/plans                       the plan tiers and the credit price, from the prices
 *                                       the sync worker stored in payments_prices
 *   GET /v1/orgs/{org_id}/subscription  the org's plan, status, period and pending
 *                                       cancellation (cancel_at_period_end, cancel_at),
 *                                       from payments_customers
 * Money stays integer: amounts in the currency's minor unit; the price of one credit is
 * unit_amount / transform_quantity.divide_by given as the pair and as an exact decimal string.
 * Answers are new strings (caller free()). */
#ifndef BW_API_PLANS_H
#define BW_API_PLANS_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "mongo.h"

/* GET /v1/plans: {"tiers":[{tier, price_id, included_spus, unit_amount, currency,
 * interval}], "credit": {price_id, unit_amount, credits_per_unit, price_per_credit,
 * currency, min_credits, max_credits} | null}. 0, or -1 with err (TRANSIENT). */
int bw_api_plans_json(struct bw_mongo *m, char **out, struct bw_err *err);

/* The active credit price as stored (new reference in *out, or NULL when none). 0, or -1. */
int bw_api_credit_price(struct bw_mongo *m, json_t **out, struct bw_err *err);

/* The active base price of tier (new reference in *out, or NULL when none). 0, or -1. */
int bw_api_tier_price(struct bw_mongo *m, const char *tier, json_t **out, struct bw_err *err);

/* The org's customer document (new reference, extended JSON relaxed, or NULL when none).
 * 0, or -1 with err. */
int bw_api_customer_doc(struct bw_mongo *m, const char *org_id, json_t **out,
			struct bw_err *err);

/* GET /v1/orgs/{org_id}/subscription: {org_id, plan, status, live, current_period_start,
 * current_period_end (unix s or null), cancel_at_period_end, cancel_at (unix s or null),
 * subscription_id}. */
int bw_api_subscription_json(struct bw_mongo *m, const char *org_id, char **out,
			     struct bw_err *err);

/* The subscription answer built from a customer document (NULL: none). New reference. */
json_t *bw_api_subscription_state(const char *org_id, const json_t *cust);

/* Whether status is a live subscription (active, trialing, past_due, unpaid, incomplete). */
int bw_api_sub_live(const char *status);

/* unit_amount / divide_by as an exact decimal string (up to 12 decimals, then cut) into buf. */
void bw_api_decimal_ratio(int64_t num, int64_t den, char *buf, size_t len);

#endif
