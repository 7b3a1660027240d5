/* stripe_event: see stripe_event.h. */
#include "stripe_event.h"

#include <string.h>

#include "json.h"
#include "sub_period.h"
#include "sub_policy.h"

static const struct {
	const char *type;
	enum bw_stripe_kind kind;
} kinds[] = {
	{ "checkout.session.completed", BW_SK_CHECKOUT },
	{ "checkout.session.async_payment_succeeded", BW_SK_CHECKOUT },
	{ "checkout.session.async_payment_failed", BW_SK_CHECKOUT },
	{ "customer.subscription.created", BW_SK_SUB_UPSERT },
	{ "customer.subscription.updated", BW_SK_SUB_UPSERT },
	{ "customer.subscription.deleted", BW_SK_SUB_DELETED },
	{ "invoice.payment_succeeded", BW_SK_INVOICE_PAID },
	{ "invoice.paid", BW_SK_INVOICE_PAID },
	{ "invoice.created", BW_SK_INVOICE_CREATED },
	{ "customer.deleted", BW_SK_CUSTOMER },
	{ "charge.refunded", BW_SK_REFUND },
	{ "charge.dispute.created", BW_SK_REFUND },
	{ "charge.dispute.closed", BW_SK_REFUND },
};

enum bw_stripe_kind bw_stripe_kind_of(const char *type)
{
	for (size_t i = 0; type && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].type, type) == 0)
			return kinds[i].kind;
	return BW_SK_UNKNOWN;
}

int bw_stripe_parse_count(const json_t *v, const char *field, int64_t min, int64_t max,
			  int64_t *out, struct bw_err *err)
{
	int64_t n = 0;

	if (json_is_integer(v)) {
		n = (int64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		if (len == 0 || len > 19)
			return bw_err_set(err, BW_ERR_INVALID, "%s: '%.40s' is not a whole number",
					  field, s);
		for (size_t i = 0; i < len; i++) {
			int d = s[i] - '0';
			if (d < 0 || d > 9)
				return bw_err_set(err, BW_ERR_INVALID,
						  "%s: '%.40s' is not a whole number", field, s);
			if (n > (INT64_MAX - d) / 10)
				return bw_err_set(err, BW_ERR_INVALID, "%s: '%.40s' overflows",
						  field, s);
			n = n * 10 + d;
		}
	} else {
		return bw_err_set(err, BW_ERR_INVALID, "%s: expected a whole number (string or integer)",
				  field);
	}
	if (n < min || n > max)
		return bw_err_set(err, BW_ERR_INVALID, "%s: %lld is outside [%lld, %lld]", field,
				  (long long)n, (long long)min, (long long)max);
	*out = n;
	return 0;
}

/* An optional string member, strict: absent or null -> NULL; anything but a non-empty
 * string of at most BW_STRIPE_ID_MAX bytes -> -1 naming where. */
static int opt_str(const json_t *obj, const char *key, const char *where, const char **out,
		   struct bw_err *err)
{
	const json_t *v = obj ? json_object_get(obj, key) : NULL;

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > BW_STRIPE_ID_MAX)
		return bw_err_set(err, BW_ERR_INVALID, "%s.%s: expected a non-empty string", where,
				  key);
	*out = json_string_value(v);
	return 0;
}

/* A Stripe reference: either the id string or the expanded object (its "id"). */
static int opt_ref(const json_t *obj, const char *key, const char *where, const char **out,
		   struct bw_err *err)
{
	const json_t *v = obj ? json_object_get(obj, key) : NULL;

	if (json_is_object(v))
		return opt_str(v, "id", key, out, err);
	return opt_str(obj, key, where, out, err);
}

/* An optional unix-seconds integer; present flags whether it was there. */
static int opt_time(const json_t *obj, const char *key, const char *where, int64_t *out,
		    int *present, struct bw_err *err)
{
	const json_t *v = obj ? json_object_get(obj, key) : NULL;

	*present = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT64_C(253402300799))
		return bw_err_set(err, BW_ERR_INVALID, "%s.%s: expected unix seconds", where, key);
	*out = (int64_t)json_integer_value(v);
	*present = 1;
	return 0;
}

/* An optional amount in the smallest currency unit: an integer in [0, BW_STRIPE_MAX_AMOUNT]. */
static int opt_amount(const json_t *obj, const char *key, const char *where, int64_t *out,
		      int *present, struct bw_err *err)
{
	const json_t *v = obj ? json_object_get(obj, key) : NULL;

	*present = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > BW_STRIPE_MAX_AMOUNT)
		return bw_err_set(err, BW_ERR_INVALID, "%s.%s: expected an amount in [0, 10^15]",
				  where, key);
	*out = (int64_t)json_integer_value(v);
	*present = 1;
	return 0;
}

/* Period of a subscription: on the subscription (older API versions) or on its base item
 * (newer ones, where the subscription-level fields were removed). */
static int sub_period(struct bw_stripe_event *ev, const json_t *obj, struct bw_err *err)
{
	int has_s = 0, has_e = 0;
	const json_t *item = bw_sub_policy_base_item(obj);

	if (opt_time(obj, "current_period_start", "subscription", &ev->period_start, &has_s, err) ||
	    opt_time(obj, "current_period_end", "subscription", &ev->period_end, &has_e, err))
		return -1;
	if (!has_s || !has_e) {
		if (opt_time(item, "current_period_start", "base item", &ev->period_start,
			     &has_s, err) ||
		    opt_time(item, "current_period_end", "base item", &ev->period_end, &has_e,
			     err))
			return -1;
	}
	ev->has_period = has_s && has_e;
	return 0;
}

/* The pending cancellation: cancel_at_period_end (a boolean; absent or null: false, Stripe's
 * default) and cancel_at (unix seconds or null). */
static int sub_cancel(struct bw_stripe_event *ev, const json_t *obj, struct bw_err *err)
{
	const json_t *v = json_object_get(obj, "cancel_at_period_end");
	int has_at = 0;

	if (v && !json_is_null(v) && !json_is_boolean(v))
		return bw_err_set(err, BW_ERR_INVALID,
				  "subscription.cancel_at_period_end: expected a boolean");
	ev->cancel_at_period_end = json_is_true(v);
	if (opt_time(obj, "cancel_at", "subscription", &ev->cancel_at, &has_at, err))
		return -1;
	if (!has_at)
		ev->cancel_at = 0;
	return 0;
}

static int parse_subscription(struct bw_stripe_event *ev, const json_t *obj, struct bw_err *err)
{
	/* The plan is the base item's (sub_policy): an add-on item may come first. */
	const json_t *price = json_object_get(bw_sub_policy_base_item(obj), "price");
	const json_t *pmeta = json_object_get(price, "metadata");
	const json_t *spus = json_object_get(pmeta, "included_spus");

	ev->subscription_id = ev->object_id;
	if (!ev->subscription_id)
		return bw_err_set(err, BW_ERR_INVALID, "subscription: data.object.id missing");
	if (opt_str(obj, "status", "subscription", &ev->sub_status, err) ||
	    opt_str(price, "id", "base item price", &ev->price_id, err) ||
	    opt_str(pmeta, "tier", "price.metadata", &ev->tier, err))
		return -1;
	if (!ev->sub_status)
		return bw_err_set(err, BW_ERR_INVALID, "subscription: status missing");
	if (spus && !json_is_null(spus)) {
		if (bw_stripe_parse_count(spus, "price.metadata.included_spus", 0, INT64_MAX / 4,
					  &ev->included_spus, err) != 0)
			return -1;
		ev->has_included_spus = 1;
	}
	if (sub_cancel(ev, obj, err) != 0)
		return -1;
	return sub_period(ev, obj, err);
}

static int parse_invoice(struct bw_stripe_event *ev, const json_t *obj, struct bw_err *err)
{
	const json_t *details = json_object_get(json_object_get(obj, "parent"),
						"subscription_details");
	struct bw_period p;

	if (opt_str(obj, "billing_reason", "invoice", &ev->billing_reason, err) ||
	    opt_ref(obj, "subscription", "invoice", &ev->subscription_id, err))
		return -1;
	/* Newer API versions moved the subscription under parent.subscription_details. */
	if (!ev->subscription_id &&
	    opt_ref(details, "subscription", "parent.subscription_details", &ev->subscription_id,
		    err))
		return -1;
	if (!ev->meta_org_id &&
	    opt_str(json_object_get(details, "metadata"), "org_id",
		    "subscription_details.metadata", &ev->meta_org_id, err))
		return -1;
	/* The period the invoice opens is its subscription's own (non-proration) line's
	 * (sub_period), never blindly the first line: after a mid-period plan change the
	 * proration lines come first and lie inside the old period. The invoice-level
	 * period_start/end of a cycle invoice is the previous (usage) period: not used. */
	if (bw_sub_period_of_invoice(obj, ev->subscription_id, &p)) {
		ev->period_start = p.start;
		ev->period_end = p.end;
		ev->has_period = 1;
	}
	return 0;
}

static int parse_checkout(struct bw_stripe_event *ev, const json_t *obj, struct bw_err *err)
{
	const json_t *credits = json_object_get(json_object_get(obj, "metadata"), "credits");

	if (!ev->object_id)
		return bw_err_set(err, BW_ERR_INVALID, "checkout session: data.object.id missing");
	if (opt_str(obj, "mode", "checkout session", &ev->mode, err) ||
	    opt_str(obj, "payment_status", "checkout session", &ev->payment_status, err) ||
	    opt_ref(obj, "payment_intent", "checkout session", &ev->payment_intent, err) ||
	    opt_amount(obj, "amount_total", "checkout session", &ev->amount, &ev->has_amount,
		       err))
		return -1;
	if (credits && !json_is_null(credits)) {
		if (bw_stripe_parse_count(credits, "metadata.credits", 1, BW_STRIPE_MAX_CREDITS,
					  &ev->credits, err) != 0)
			return -1;
		ev->has_credits = 1;
	}
	if (ev->mode && strcmp(ev->mode, "payment") == 0 && !ev->has_credits)
		return bw_err_set(err, BW_ERR_INVALID,
				  "checkout session in payment mode without metadata.credits");
	return 0;
}

/* A charge (charge.refunded) or a dispute (charge.dispute.*): which payment, how much of
 * it. Without a payment_intent it cannot be a Checkout purchase (ignored later). */
static int parse_refund(struct bw_stripe_event *ev, const json_t *obj, struct bw_err *err)
{
	const char *where = ev->is_dispute ? "dispute" : "charge";
	int has_refunded = 0;

	if (!ev->object_id)
		return bw_err_set(err, BW_ERR_INVALID, "%s: data.object.id missing", where);
	if (opt_ref(obj, "payment_intent", where, &ev->payment_intent, err) ||
	    opt_amount(obj, "amount", where, &ev->amount, &ev->has_amount, err))
		return -1;
	if (!ev->has_amount)
		return bw_err_set(err, BW_ERR_INVALID, "%s: amount missing", where);
	if (ev->is_dispute)
		return opt_ref(obj, "charge", where, &ev->charge_id, err) ||
		       opt_str(obj, "status", where, &ev->dispute_status, err) ? -1 : 0;
	ev->charge_id = ev->object_id;
	if (opt_amount(obj, "amount_refunded", where, &ev->amount_refunded, &has_refunded, err))
		return -1;
	if (!has_refunded || ev->amount_refunded > ev->amount)
		return bw_err_set(err, BW_ERR_INVALID, "charge: amount_refunded missing or above "
				  "amount");
	return 0;
}

int bw_stripe_event_parse(const unsigned char *buf, size_t len, size_t max_len,
			  struct bw_stripe_event *ev, struct bw_err *err)
{
	const json_t *data, *obj;
	const char *id = NULL, *type = NULL;

	memset(ev, 0, sizeof(*ev));
	ev->root = bw_json_parse_object(buf, len, max_len, err);
	if (!ev->root)
		return -1;
	/* Read id and type leniently first so a rejected event still names itself. */
	if (json_is_string(json_object_get(ev->root, "id")))
		ev->id = json_string_value(json_object_get(ev->root, "id"));
	if (json_is_string(json_object_get(ev->root, "type")))
		ev->type = json_string_value(json_object_get(ev->root, "type"));
	if (bw_json_get_str(ev->root, "id", 1, BW_STRIPE_ID_MAX, &id, err) != 0 ||
	    bw_json_get_str(ev->root, "type", 1, BW_STRIPE_ID_MAX, &type, err) != 0 ||
	    bw_json_get_int64(ev->root, "created", 1, 0, INT64_C(253402300799), &ev->created, NULL,
			      err) != 0)
		return -1;
	ev->kind = bw_stripe_kind_of(ev->type);
	if (json_is_boolean(json_object_get(ev->root, "livemode"))) {
		ev->has_livemode = 1;
		ev->livemode = json_is_true(json_object_get(ev->root, "livemode"));
	}
	if (ev->kind == BW_SK_UNKNOWN)
		return 0; /* recorded and ignored: its body does not matter */
	data = json_object_get(ev->root, "data");
	obj = json_object_get(data, "object");
	if (!json_is_object(obj))
		return bw_err_set(err, BW_ERR_INVALID, "data.object: expected an object");
	if (opt_str(obj, "id", "data.object", &ev->object_id, err) ||
	    opt_ref(obj, "customer", "data.object", &ev->customer_id, err) ||
	    opt_str(json_object_get(obj, "metadata"), "org_id", "data.object.metadata",
		    &ev->meta_org_id, err))
		return -1;
	switch (ev->kind) {
	case BW_SK_CHECKOUT:
		return parse_checkout(ev, obj, err);
	case BW_SK_SUB_UPSERT:
	case BW_SK_SUB_DELETED:
		return parse_subscription(ev, obj, err);
	case BW_SK_INVOICE_PAID:
	case BW_SK_INVOICE_CREATED:
		return parse_invoice(ev, obj, err);
	case BW_SK_REFUND:
		ev->is_dispute = strncmp(ev->type, "charge.dispute.", 15) == 0;
		return parse_refund(ev, obj, err);
	case BW_SK_CUSTOMER:
	case BW_SK_UNKNOWN:
	case BW_SK_KIND_COUNT:
		break;
	}
	return 0;
}

void bw_stripe_event_cleanup(struct bw_stripe_event *ev)
{
	if (!ev)
		return;
	json_decref(ev->root);
	memset(ev, 0, sizeof(*ev));
}

int bw_stripe_checkout_is_paid(const struct bw_stripe_event *ev)
{
	return ev->mode && strcmp(ev->mode, "payment") == 0 && ev->payment_status &&
	       (strcmp(ev->payment_status, "paid") == 0 ||
		strcmp(ev->payment_status, "no_payment_required") == 0);
}

int bw_stripe_invoice_opens_period(const struct bw_stripe_event *ev)
{
	return ev->billing_reason && (strcmp(ev->billing_reason, "subscription_cycle") == 0 ||
				      strcmp(ev->billing_reason, "subscription_create") == 0 ||
				      strcmp(ev->billing_reason, "subscription_update") == 0);
}

static int status_rank(const char *s)
{
	static const struct {
		const char *name;
		int rank;
	} ranks[] = {
		{ "incomplete", 0 }, { "trialing", 1 }, { "active", 2 }, { "past_due", 2 },
		{ "unpaid", 2 }, { "paused", 2 }, { "canceled", 3 }, { "incomplete_expired", 3 },
	};
	for (size_t i = 0; s && i < sizeof(ranks) / sizeof(ranks[0]); i++)
		if (strcmp(ranks[i].name, s) == 0)
			return ranks[i].rank;
	return -1;
}

int bw_stripe_status_backwards(const char *stored, const char *next)
{
	int a = status_rank(stored), b = status_rank(next);
	return a >= 0 && b >= 0 && b < a;
}

char *bw_stripe_tick_json(const char *tick_id, const char *org_id, const char *customer_id,
			  const char *reason)
{
	json_t *o = json_pack("{ssss}", "tick_id", tick_id, "scope", "customer");
	char *text = NULL;

	if (!o)
		return NULL;
	if ((org_id && json_object_set_new(o, "org_id", json_string(org_id)) != 0) ||
	    (customer_id &&
	     json_object_set_new(o, "stripe_customer_id", json_string(customer_id)) != 0) ||
	    (reason && json_object_set_new(o, "reason", json_string(reason)) != 0))
		goto done;
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
done:
	json_decref(o);
	return text;
}
