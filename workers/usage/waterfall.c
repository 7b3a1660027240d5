/* waterfall: see waterfall.h. */
#include "waterfall.h"

#include <stdio.h>
#include <string.h>

#include "customer_doc.h"

static const char *bucket_names[] = { "subscription", "purchased", "granted" };

int bw_waterfall_order_parse(const char *text, struct bw_waterfall_order *out,
			     struct bw_err *err)
{
	int seen[3] = { 0, 0, 0 };
	const char *p = text;
	int n = 0;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int found = -1;
		for (int b = 0; b < 3; b++)
			if (strlen(bucket_names[b]) == len && strncmp(p, bucket_names[b], len) == 0)
				found = b;
		if (found < 0)
			return bw_err_set(err, BW_ERR_INVALID,
					  "unknown bucket '%.*s' (use subscription, purchased, granted)",
					  (int)len, p);
		if (seen[found]++)
			return bw_err_set(err, BW_ERR_INVALID, "bucket '%s' listed twice",
					  bucket_names[found]);
		if (n == 3)
			return bw_err_set(err, BW_ERR_INVALID, "more than three buckets");
		out->bucket[n++] = (enum bw_bucket)found;
		p = comma ? comma + 1 : NULL;
	}
	if (n != 3)
		return bw_err_set(err, BW_ERR_INVALID,
				  "all three buckets must be listed once, e.g. "
				  "subscription,purchased,granted");
	return 0;
}

int64_t bw_waterfall_remaining(int64_t cap, int64_t used)
{
	return bw_customer_remaining(cap, used);
}

int64_t bw_waterfall_available(const struct bw_balances *b)
{
	int64_t sub_left = b->enterprise ? 0
					 : bw_waterfall_remaining(b->subscription_allowance,
								  b->subscription_used);
	int64_t total;

	if (__builtin_add_overflow(sub_left, bw_waterfall_remaining(b->purchased, b->purchased_used),
				   &total) ||
	    __builtin_add_overflow(total, bw_waterfall_remaining(b->granted, b->granted_used),
				   &total))
		return INT64_MAX;
	return total;
}

static int add_checked(int64_t a, int64_t b, int64_t *out)
{
	return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

int bw_waterfall_charge(struct bw_balances *b, int64_t spus,
			const struct bw_waterfall_order *order, struct bw_breakdown *out,
			struct bw_err *err)
{
	struct bw_balances next = *b;
	struct bw_breakdown bd = { 0, 0, 0, 0 };
	int64_t left = spus;

	if (spus <= 0)
		return bw_err_set(err, BW_ERR_INVALID, "spus must be > 0, got %lld",
				  (long long)spus);
	if (b->enterprise) {
		if (add_checked(next.subscription_used, spus, &next.subscription_used))
			return bw_err_set(err, BW_ERR_INVALID,
					  "subscription_spus_used would overflow");
		bd.from_subscription = spus;
		*b = next;
		*out = bd;
		return 0;
	}
	for (int i = 0; i < 3 && left > 0; i++) {
		int64_t *used, cap, take;
		int64_t *field;
		switch (order->bucket[i]) {
		case BW_BUCKET_SUBSCRIPTION:
			used = &next.subscription_used;
			cap = next.subscription_allowance;
			field = &bd.from_subscription;
			break;
		case BW_BUCKET_PURCHASED:
			used = &next.purchased_used;
			cap = next.purchased;
			field = &bd.from_purchased;
			break;
		default:
			used = &next.granted_used;
			cap = next.granted;
			field = &bd.from_granted;
			break;
		}
		take = bw_waterfall_remaining(cap, *used);
		if (take > left)
			take = left;
		/* used + take <= cap, so this cannot overflow; it stays checked regardless. */
		if (take > 0 && add_checked(*used, take, used))
			return bw_err_set(err, BW_ERR_INVALID, "bucket counter would overflow");
		*field = take;
		left -= take;
	}
	if (left > 0) {
		if (add_checked(next.paid_used, left, &next.paid_used))
			return bw_err_set(err, BW_ERR_INVALID, "paid_spus_used would overflow");
		bd.from_paid = left;
	}
	*b = next;
	*out = bd;
	return 0;
}
