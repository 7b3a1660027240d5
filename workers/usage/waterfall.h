/* waterfall: the pure charging rule of the usage worker (no I/O).
 *
 * An event of spus > 0 takes from the buckets in the configured order (default: subscription
 * allowance left in the period, then purchased credits left, then granted credits left);
 * what the buckets cannot cover is from_paid overage: the usage happened, so it is recorded,
 * never refused. Enterprise orgs take everything from the subscription. A bucket's remaining
 * balance never goes below zero. All counters are int64 with overflow checks. */
#ifndef BW_USAGE_WATERFALL_H
#define BW_USAGE_WATERFALL_H

#include <stdint.h>

#include "err.h"

enum bw_bucket { BW_BUCKET_SUBSCRIPTION = 0, BW_BUCKET_PURCHASED, BW_BUCKET_GRANTED };

struct bw_waterfall_order {
	enum bw_bucket bucket[3];
};

/* An org's balance state, as stored on its customer document. */
struct bw_balances {
	int enterprise;
	int64_t subscription_allowance, subscription_used;
	int64_t purchased, purchased_used;
	int64_t granted, granted_used;
	int64_t paid_used;
};

struct bw_breakdown {
	int64_t from_subscription, from_purchased, from_granted, from_paid;
};

/* Parses "subscription,purchased,granted" (each bucket exactly once). 0, or -1 with err. */
int bw_waterfall_order_parse(const char *text, struct bw_waterfall_order *out,
			     struct bw_err *err);

/* What is left in a bucket: max(0, cap - used). */
int64_t bw_waterfall_remaining(int64_t cap, int64_t used);

/* What the org can still spend from its buckets: the sum of the remaining balances
 * (subscription not counted for an enterprise org, which is unlimited), INT64_MAX on
 * overflow. The one definition of "available": the results' total_remaining, bw-api's balance
 * and its pre-check all read it. */
int64_t bw_waterfall_available(const struct bw_balances *b);

/* Charges spus (> 0) to b, updating its used counters, and fills out. On error (spus <= 0,
 * a counter would overflow) b is unchanged and err is INVALID. */
int bw_waterfall_charge(struct bw_balances *b, int64_t spus,
			const struct bw_waterfall_order *order, struct bw_breakdown *out,
			struct bw_err *err);

#endif
