/* sub_period: see sub_period.h. */
#include "sub_period.h"

#include <string.h>

#include "sub_policy.h"

static int is(const char *s, const char *want)
{
	return s && strcmp(s, want) == 0;
}

/* A Stripe reference: the id string, or an expanded object's id. */
static const char *ref_id(const json_t *v)
{
	if (json_is_object(v))
		v = json_object_get(v, "id");
	return json_string_value(v);
}

static int unix_s(const json_t *v, int64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > BW_SUB_PERIOD_MAX_S)
		return 0;
	*out = (int64_t)json_integer_value(v);
	return 1;
}

static int read_period(const json_t *obj, const char *start_key, const char *end_key,
		       struct bw_period *out)
{
	struct bw_period p;

	if (!unix_s(json_object_get(obj, start_key), &p.start) ||
	    !unix_s(json_object_get(obj, end_key), &p.end) || p.end < p.start)
		return 0;
	*out = p;
	return 1;
}

const char *bw_sub_period_invoice_subscription(const json_t *invoice)
{
	const char *id = ref_id(json_object_get(invoice, "subscription"));
	if (id)
		return id;
	return ref_id(json_object_get(
		json_object_get(json_object_get(invoice, "parent"), "subscription_details"),
		"subscription"));
}

int bw_sub_period_invoice_paid(const json_t *invoice)
{
	return is(json_string_value(json_object_get(invoice, "status")), "paid") ||
	       json_is_true(json_object_get(invoice, "paid"));
}

/* Whether line is a subscription's own (non-proration) line; *sub its subscription or NULL
 * when the line does not name one. */
static int own_line(const json_t *line, const char **sub)
{
	const json_t *details = json_object_get(json_object_get(line, "parent"),
						"subscription_item_details");

	*sub = NULL;
	if (json_is_object(details)) { /* 2025 shape */
		*sub = ref_id(json_object_get(details, "subscription"));
		return !json_is_true(json_object_get(details, "proration"));
	}
	/* older shape: type "subscription" lines are the subscription's; "invoiceitem" lines
	 * (prorations, one-off items) are not */
	if (!is(json_string_value(json_object_get(line, "type")), "subscription"))
		return 0;
	*sub = ref_id(json_object_get(line, "subscription"));
	return !json_is_true(json_object_get(line, "proration"));
}

int bw_sub_period_of_invoice(const json_t *invoice, const char *sub_id, struct bw_period *out)
{
	const json_t *data = json_object_get(json_object_get(invoice, "lines"), "data");
	const json_t *line;
	struct bw_period best = { 0, 0 }, p;
	int found = 0;
	size_t i;

	if (!sub_id)
		sub_id = bw_sub_period_invoice_subscription(invoice);
	json_array_foreach(data, i, line) {
		const char *sub;
		if (!own_line(line, &sub))
			continue;
		if (sub && sub_id && strcmp(sub, sub_id) != 0)
			continue; /* another subscription's line on the same invoice */
		if (!read_period(json_object_get(line, "period"), "start", "end", &p))
			continue;
		/* A cycle restart (billing_cycle_anchor now) has old and new lines: the newest */
		if (!found || p.start > best.start) {
			best = p;
			found = 1;
		}
	}
	if (found)
		*out = best;
	return found;
}

int bw_sub_period_of_subscription(const json_t *subscription, struct bw_period *out)
{
	const json_t *data = json_object_get(json_object_get(subscription, "items"), "data");
	const json_t *item;
	size_t i;

	if (read_period(subscription, "current_period_start", "current_period_end", out))
		return 1;
	if (read_period(bw_sub_policy_base_item(subscription), "current_period_start",
			"current_period_end", out))
		return 1;
	json_array_foreach(data, i, item)
		if (read_period(item, "current_period_start", "current_period_end", out))
			return 1;
	return 0;
}

int bw_sub_period_reset_due(const struct bw_period_stored *stored, int64_t start_ms)
{
	if (stored->has_reset && stored->reset_ms >= start_ms)
		return 0; /* this period (or a later one) was reset already */
	if (stored->has_period && stored->period_ms > start_ms)
		return 0; /* a late invoice of an older period */
	return 1;
}
