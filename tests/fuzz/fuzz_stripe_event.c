/* fuzz_stripe_event: the Stripe event parser (workers/stripe/stripe_event.c), the webhook
 * ingress's reading of the same body (workers/webhook_ingress/ingress_event.c), and the
 * subscription period and base-item rules both the stripe and the sync worker apply to Stripe
 * objects (shared/sub_period.c, shared/sub_policy.c).
 *
 * Input: one stripe.events message (a raw webhook body). Properties:
 *  - a parsed event's kind is its type's, every borrowed string is a readable non-empty
 *    string of at most BW_STRIPE_ID_MAX bytes, counts and times are inside their ranges;
 *  - a rejected event has an INVALID reason, and the id/type it still names (for the result
 *    and the DLQ record) are readable and encodable as JSON strings;
 *  - the sync tick made from an event is valid JSON carrying the same ids;
 *  - the ingress accepts every event the worker parses, with the same id and type, and keys
 *    it by the same customer (one customer's events stay in one partition, in order);
 *  - a metadata count given as a JSON string parses exactly when it is 1..19 decimal digits
 *    within the range, to the value strtoll gives;
 *  - a period read from any object (data.object, else the whole body) as a subscription or
 *    an invoice lies within 0..9999-12-31 and does not end before it starts; the base item is
 *    an item of the subscription. */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "ingress_event.h"
#include "stripe_event.h"
#include "sub_period.h"
#include "sub_policy.h"

static void check_str(const char *s)
{
	if (s)
		FUZZ_CHECK(strlen(s) >= 1 && strlen(s) <= BW_STRIPE_ID_MAX);
}

static void check_json_str(const char *s)
{
	json_t *v = s ? json_string(s) : NULL;

	FUZZ_CHECK(!s || v != NULL);
	json_decref(v);
}

static void check_parsed(const struct bw_stripe_event *ev)
{
	const char *strs[] = { ev->id, ev->type, ev->object_id, ev->customer_id, ev->meta_org_id,
			       ev->mode, ev->payment_status, ev->sub_status, ev->price_id,
			       ev->tier, ev->subscription_id, ev->billing_reason };
	char *tick;
	json_t *back;

	FUZZ_CHECK(ev->id && ev->type);
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		check_str(strs[i]);
	FUZZ_CHECK(ev->kind == bw_stripe_kind_of(ev->type));
	FUZZ_CHECK(ev->created >= 0 && ev->created <= INT64_C(253402300799));
	if (ev->has_credits)
		FUZZ_CHECK(ev->credits >= 1 && ev->credits <= BW_STRIPE_MAX_CREDITS);
	if (ev->has_included_spus)
		FUZZ_CHECK(ev->included_spus >= 0 && ev->included_spus <= INT64_MAX / 4);
	if (ev->has_period)
		FUZZ_CHECK(ev->period_start >= 0 && ev->period_end >= 0 &&
			   ev->period_start <= INT64_C(253402300799) &&
			   ev->period_end <= INT64_C(253402300799));
	if (ev->kind == BW_SK_CHECKOUT)
		FUZZ_CHECK(ev->object_id != NULL);
	if (ev->kind == BW_SK_SUB_UPSERT || ev->kind == BW_SK_SUB_DELETED)
		FUZZ_CHECK(ev->subscription_id && ev->sub_status);
	if (bw_stripe_checkout_is_paid(ev))
		FUZZ_CHECK(ev->kind == BW_SK_CHECKOUT && ev->has_credits);
	(void)bw_stripe_invoice_opens_period(ev);
	FUZZ_CHECK(!bw_stripe_status_backwards(ev->sub_status, ev->sub_status));

	tick = bw_stripe_tick_json(ev->id, ev->meta_org_id, ev->customer_id, ev->type);
	FUZZ_CHECK(tick != NULL);
	back = json_loads(tick, JSON_REJECT_DUPLICATES, NULL);
	FUZZ_CHECK(back != NULL);
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(back, "tick_id")), ev->id) == 0);
	FUZZ_CHECK(!ev->customer_id ||
		   strcmp(json_string_value(json_object_get(back, "stripe_customer_id")),
			  ev->customer_id) == 0);
	json_decref(back);
	free(tick);
}

/* The metadata count of a string: against an independent reading with strtoll. */
static void check_count(const uint8_t *data, size_t size)
{
	json_t *v = json_stringn((const char *)data, size);
	struct bw_err err;
	int64_t n = -1, min = 1, max = BW_STRIPE_MAX_CREDITS;
	int digits_only = size >= 1 && size <= 19;
	char *s, *end = NULL;
	long long want;

	if (!v)
		return; /* not UTF-8: never a JSON string */
	for (size_t i = 0; digits_only && i < size; i++)
		digits_only = data[i] >= '0' && data[i] <= '9';
	s = fuzz_strndup(data, size);
	errno = 0;
	want = digits_only ? strtoll(s, &end, 10) : -1;
	bw_err_clear(&err);
	if (bw_stripe_parse_count(v, "metadata.credits", min, max, &n, &err) == 0)
		FUZZ_CHECK(digits_only && errno == 0 && n == want && n >= min && n <= max);
	else
		FUZZ_CHECK(err.kind == BW_ERR_INVALID &&
			   (!digits_only || errno == ERANGE || want < min || want > max));
	free(s);
	json_decref(v);
}

/* What the ingress made of the body that the worker parsed as ev. */
static void check_ingress(const struct bw_stripe_event *ev, const uint8_t *data, size_t size)
{
	struct bw_ingress_event iev;
	struct bw_err err;

	bw_err_clear(&err);
	FUZZ_CHECK(bw_ingress_event_inspect(data, size, BW_FUZZ_MAX_MESSAGE, &iev, &err) == 0);
	FUZZ_CHECK(strcmp(iev.id, ev->id) == 0 && strcmp(iev.type, ev->type) == 0);
	if (ev->customer_id)
		FUZZ_CHECK(iev.key_is_customer && strcmp(iev.key, ev->customer_id) == 0);
}

static void check_period(const struct bw_period *p)
{
	FUZZ_CHECK(p->start >= 0 && p->start <= p->end && p->end <= BW_SUB_PERIOD_MAX_S);
}

/* The period rules on the event's object, or on the body itself as a bare Stripe object (the
 * sync worker reads subscriptions and invoices from the API in these shapes). */
static void check_periods(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	const json_t *obj = json_object_get(json_object_get(root, "data"), "object");
	const json_t *base, *item;
	struct bw_period p;
	int is_item = 0;
	size_t i;

	if (!json_is_object(obj))
		obj = root;
	if (bw_sub_period_of_subscription(obj, &p))
		check_period(&p);
	if (bw_sub_period_of_invoice(obj, NULL, &p))
		check_period(&p);
	(void)bw_sub_period_invoice_paid(obj);
	(void)bw_sub_period_invoice_subscription(obj);
	base = bw_sub_policy_base_item(obj);
	json_array_foreach(json_object_get(json_object_get(obj, "items"), "data"), i, item)
		is_item |= item == base;
	FUZZ_CHECK(!base || is_item);
	json_decref(root);
}

int BW_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	struct bw_stripe_event ev;
	struct bw_ingress_event iev;
	struct bw_err err;

	bw_err_clear(&err);
	if (bw_stripe_event_parse(data, size, BW_FUZZ_MAX_MESSAGE, &ev, &err) == 0) {
		check_parsed(&ev);
		check_ingress(&ev, data, size);
	} else {
		FUZZ_CHECK(err.kind == BW_ERR_INVALID && err.msg[0] != '\0');
		check_json_str(ev.id);
		check_json_str(ev.type);
	}
	bw_stripe_event_cleanup(&ev);
	FUZZ_CHECK(ev.root == NULL && ev.id == NULL);
	/* Any body: the ingress either reads bounded ids or says why not. */
	bw_err_clear(&err);
	if (bw_ingress_event_inspect(data, size, BW_FUZZ_MAX_MESSAGE, &iev, &err) == 0)
		FUZZ_CHECK(iev.error == NULL && iev.id[0] && iev.type[0] && iev.key[0]);
	else
		FUZZ_CHECK(iev.error != NULL && err.kind == BW_ERR_INVALID);
	check_periods(data, size);
	if (size <= 64)
		check_count(data, size);
	return 0;
}
