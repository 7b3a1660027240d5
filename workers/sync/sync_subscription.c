/* sync_subscription: see sync_subscription.h. */
#include "sync_subscription.h"

#include <string.h>

#include "sync_prices.h"

/* Whether sub's expanded latest_invoice is paid and opens the period p of sub. */
static int period_paid(const json_t *sub, const struct bw_period *p)
{
	const json_t *inv = json_object_get(sub, "latest_invoice");
	const char *sub_id = json_string_value(json_object_get(sub, "id"));
	struct bw_period ip;

	if (!json_is_object(inv) || !bw_sub_period_invoice_paid(inv))
		return 0;
	return bw_sub_period_of_invoice(inv, sub_id, &ip) && ip.start == p->start;
}

int bw_sync_pick_subscription(const json_t *subs, const struct bw_sub_policy *policy,
			      struct bw_sub_state *out, struct bw_err *err)
{
	const json_t *live = NULL, *latest = NULL, *item = NULL, *sub;
	json_int_t live_created = 0, latest_created = 0;
	struct bw_sub_verdict v;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->subscription_type = "none";
	json_array_foreach(subs, i, sub) {
		json_int_t created = json_integer_value(json_object_get(sub, "created"));
		const char *status = json_string_value(json_object_get(sub, "status"));
		if (!latest || created > latest_created) {
			latest = sub;
			latest_created = created;
		}
		const json_t *bi = bw_sub_policy_grants(policy, status)
					   ? bw_sub_policy_base_item(sub) : NULL;
		if (bi && (!live || created > live_created)) {
			live = sub;
			live_created = created;
			item = bi;
		}
	}
	sub = live ? live : latest;
	if (!sub)
		return 0;
	out->subscription_id = json_string_value(json_object_get(sub, "id"));
	out->status = json_string_value(json_object_get(sub, "status"));
	out->cancel_at_period_end = json_is_true(json_object_get(sub, "cancel_at_period_end"));
	json_int_t at = json_integer_value(json_object_get(sub, "cancel_at"));
	out->cancel_at_s = at > 0 ? (int64_t)at : 0;
	bw_sub_policy_decide(policy, &(struct bw_sub_facts){ out->status, 0, 0 }, &v);
	out->reason = v.reason;
	if (!live)
		return 0;
	const json_t *price = json_object_get(item, "price");
	const json_t *md = json_object_get(price, "metadata");
	char why[160];
	int present = 0;
	out->live = 1;
	out->price_id = json_string_value(json_object_get(price, "id"));
	out->subscription_type = json_string_value(json_object_get(md, "tier"));
	if (!out->subscription_type || !*out->subscription_type)
		return bw_err_set(err, BW_ERR_INVALID, "subscription %s: base price %s has no tier",
				  out->subscription_id, out->price_id ? out->price_id : "?");
	if (bw_sync_meta_int64(md, "included_spus", &out->allowance, &present, why,
			       sizeof(why)) != 0 ||
	    (!present && strcmp(out->subscription_type, "enterprise") != 0))
		return bw_err_set(err, BW_ERR_INVALID, "subscription %s: base price %s: %s",
				  out->subscription_id, out->price_id ? out->price_id : "?",
				  present ? why : "no metadata included_spus");
	struct bw_period p;
	if (bw_sub_period_of_subscription(sub, &p)) {
		out->has_period = 1;
		out->period_start_s = p.start;
		out->period_end_s = p.end;
		out->period_paid = period_paid(sub, &p);
	}
	return 0;
}

int bw_sync_reset_due(const struct bw_sub_state *st, const struct bw_period_stored *stored)
{
	int64_t start_ms = st->period_start_s * 1000;

	if (!st->live || !st->has_period || !st->period_paid)
		return 0;
	if (!stored->has_reset && stored->has_period && stored->period_ms == start_ms)
		return 0;
	return bw_sub_period_reset_due(stored, start_ms);
}
