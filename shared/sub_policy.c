/* sub_policy: see sub_policy.h. */
#include "sub_policy.h"

#include <string.h>

static int is(const char *s, const char *want)
{
	return s && strcmp(s, want) == 0;
}

int bw_sub_policy_grants(const struct bw_sub_policy *p, const char *status)
{
	if (is(status, "active") || is(status, "trialing"))
		return 1;
	return is(status, "past_due") && p->past_due_keeps_allowance;
}

int bw_sub_policy_ended(const char *status)
{
	return is(status, "canceled") || is(status, "incomplete_expired");
}

int bw_sub_policy_is_enterprise_type(const char *subscription_type)
{
	return is(subscription_type, "enterprise");
}

/* Why a status grants nothing: the stored status says it too, this is for people. */
static const char *none_reason(const char *status)
{
	static const struct {
		const char *status, *reason;
	} reasons[] = {
		{ "incomplete", "first payment not made yet (incomplete): no allowance" },
		{ "incomplete_expired", "first payment never made (incomplete_expired): no allowance" },
		{ "unpaid", "Stripe stopped retrying the payment (unpaid): no allowance" },
		{ "paused", "subscription paused: no allowance" },
		{ "canceled", "subscription canceled: no allowance" },
		{ "past_due", "payment past due and STRIPE_PAST_DUE_KEEPS_ALLOWANCE=false: no allowance" },
	};
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (is(status, reasons[i].status))
			return reasons[i].reason;
	return "subscription status grants no allowance";
}

void bw_sub_policy_decide(const struct bw_sub_policy *p, const struct bw_sub_facts *facts,
			  struct bw_sub_verdict *v)
{
	v->stored_status = facts->deleted ? "canceled" : facts->status;
	if (facts->org_enterprise) {
		/* Moving an org to enterprise cancels its Stripe subscription: that deletion (or
		 * any later subscription event) must not end the unlimited plan. */
		v->effect = BW_SUB_UNCHANGED;
		v->reason = "enterprise org: Stripe subscription events do not change it";
		return;
	}
	if (facts->deleted) {
		v->effect = BW_SUB_NONE;
		v->reason = "subscription deleted: no allowance";
		return;
	}
	if (bw_sub_policy_grants(p, facts->status)) {
		v->effect = BW_SUB_PLAN;
		v->reason = is(facts->status, "past_due")
				    ? "payment past due: allowance kept while Stripe retries"
				    : "subscription in good standing: the base plan's allowance";
		return;
	}
	v->effect = BW_SUB_NONE;
	v->reason = none_reason(facts->status);
}

const json_t *bw_sub_policy_base_item(const json_t *subscription)
{
	const json_t *data = json_object_get(json_object_get(subscription, "items"), "data");
	const json_t *item;
	size_t i;
	const json_t *unmarked = NULL;

	json_array_foreach(data, i, item) {
		const json_t *md = json_object_get(json_object_get(item, "price"), "metadata");
		const char *type = json_string_value(json_object_get(md, "price_type"));
		if (is(type, "base"))
			return item;
		if (!type && !unmarked)
			unmarked = item;
	}
	/* No base item: the first item with no price_type at all (older prices carry the tier
	 * metadata only); an item marked as something else (an add-on) is never the plan. */
	return unmarked;
}
