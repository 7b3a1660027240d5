/* sync_prices: the `prices` sync. Lists every active Stripe price with its product
 * (GET /v1/prices?active=true&expand[]=data.product, all pages), keeps the prices whose
 * product metadata has product=<STRIPE_PRODUCT_TAG>, upserts them into payments_prices
 * (unique price_id) and marks stored prices that were not listed in this run inactive.
 *
 * Stripe metadata conventions (price metadata, strings as Stripe stores them):
 *   price_type       "base" (a plan tier) | "credit" (a-la-carte SPU credits) | other
 *   tier             plan tier name, e.g. "individual", "team", "enterprise" (base prices)
 *   included_spus    whole number of SPUs a base price's period includes
 *   min_spu_purchase, max_spu_purchase  whole numbers (credit price)
 * A number that is not a strict whole int64 is not stored: the price is kept with
 * metadata_error and the previously stored value stays. */
#ifndef BW_SYNC_PRICES_H
#define BW_SYNC_PRICES_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "mongo.h"
#include "stripe_api.h"
#include "sync_tick.h"

/* One Stripe price as stored. Strings are borrowed from the price JSON. */
struct bw_price {
	const char *price_id, *product_id, *product_name, *currency, *nickname, *lookup_key;
	const char *price_type, *tier, *recurring_interval, *round;
	int active;
	int has_unit_amount, has_included_spus, has_divide_by, has_min_spu, has_max_spu;
	int64_t unit_amount, included_spus, divide_by, min_spu_purchase, max_spu_purchase;
	const json_t *metadata;    /* borrowed, may be NULL */
	char error[200];           /* metadata problem, "" when none */
};

/* Reads one price of a list page (expanded product). Returns 1 when the price belongs to
 * product_tag (out filled, out->error may name a metadata problem), 0 for another product's
 * price, -1 with err (INVALID) when the price has no id or an unexpanded product. */
int bw_sync_price_parse(const json_t *price, const char *product_tag, struct bw_price *out,
			struct bw_err *err);

/* Strict whole-number metadata value metadata[key] (a string, as Stripe stores metadata) in
 * [0, INT64_MAX/4]. Absent: 0 with *present 0. Present but not such a number: -1 with the
 * problem in why. */
int bw_sync_meta_int64(const json_t *metadata, const char *key, int64_t *out, int *present,
		       char *why, size_t whylen);

/* Runs the prices sync under run id sync_run. Adds to counts. 0, or -1 with err (TRANSIENT
 * from Stripe or MongoDB, INVALID for a 4xx) and serr. Nothing is marked inactive unless
 * every page was read. */
int bw_sync_prices(struct bw_stripe_api *api, struct bw_mongo *mongo, const char *product_tag,
		   const char *sync_run, struct bw_sync_counts *counts,
		   struct bw_stripe_error *serr, struct bw_err *err);

#endif
