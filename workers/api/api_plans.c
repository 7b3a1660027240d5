/* api_plans: see api_plans.h. */
#include "api_plans.h"

#include <stdio.h>
#include <string.h>

#include "customer_doc.h"
#include "json.h"
#include "metrics.h"

/* Documents of coll matching filter (at most limit) as a new JSON array in *out. */
static int find_json(struct bw_mongo *m, const char *coll_name, const bson_t *filter,
		     int64_t limit, json_t **out, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	bson_t *opts = BCON_NEW("limit", BCON_INT64(limit), "projection", "{", "_id",
				BCON_INT32(0), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t error;
	int rc = -1;

	*out = json_array();
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (mongoc_cursor_next(cur, &doc)) {
		char *text = bson_as_relaxed_extended_json(doc, NULL);
		json_t *j = text ? json_loads(text, 0, NULL) : NULL;
		bson_free(text);
		if (j)
			json_array_append_new(*out, j);
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, coll_name, err);
		json_decref(*out);
		*out = NULL;
		goto done;
	}
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	bw_mongo_push(m, client);
	return rc;
}

static json_t *first_or_null(json_t *arr)
{
	json_t *j = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return j;
}

int bw_api_credit_price(struct bw_mongo *m, json_t **out, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("active", BCON_BOOL(true), "price_type", BCON_UTF8("credit"));
	json_t *arr = NULL;
	int rc = find_json(m, BW_COLL_PRICES, filter, 1, &arr, err);

	bson_destroy(filter);
	*out = rc == 0 ? first_or_null(arr) : NULL;
	return rc;
}

int bw_api_tier_price(struct bw_mongo *m, const char *tier, json_t **out, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("active", BCON_BOOL(true), "price_type", BCON_UTF8("base"),
				  "tier", BCON_UTF8(tier));
	json_t *arr = NULL;
	int rc = find_json(m, BW_COLL_PRICES, filter, 1, &arr, err);

	bson_destroy(filter);
	*out = rc == 0 ? first_or_null(arr) : NULL;
	return rc;
}

int bw_api_customer_doc(struct bw_mongo *m, const char *org_id, json_t **out,
			struct bw_err *err)
{
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id));
	json_t *arr = NULL;
	int rc = find_json(m, BW_COLL_CUSTOMERS, filter, 1, &arr, err);

	bson_destroy(filter);
	*out = rc == 0 ? first_or_null(arr) : NULL;
	return rc;
}

void bw_api_decimal_ratio(int64_t num, int64_t den, char *buf, size_t len)
{
	int64_t q, r;
	size_t n;

	if (den <= 0 || num < 0) {
		snprintf(buf, len, "0");
		return;
	}
	q = num / den;
	r = num % den;
	n = (size_t)snprintf(buf, len, "%lld", (long long)q);
	if (r == 0 || n + 2 >= len)
		return;
	buf[n++] = '.';
	for (int i = 0; i < 12 && r != 0 && n + 1 < len; i++) {
		/* r < den <= INT64_MAX/4 as synced (transform_quantity.divide_by is small): r * 10
		 * cannot overflow for any divide_by Stripe accepts. */
		r *= 10;
		buf[n++] = (char)('0' + r / den);
		r %= den;
	}
	buf[n] = '\0';
}

/* A stored integer field (relaxed JSON: a plain number) or null. */
static json_t *int_or_null(const json_t *doc, const char *key)
{
	const json_t *v = json_object_get(doc, key);
	return json_is_integer(v) ? json_integer(json_integer_value(v)) : json_null();
}

/* A stored period bound as unix seconds: an integer (this project, int64), an integral double
 * (the old Python code) or a date (earlier versions: relaxed JSON {"$date": "<RFC 3339>"});
 * else null. */
static json_t *period_or_null(const json_t *doc, const char *key)
{
	const json_t *v = json_object_get(doc, key);
	const char *iso = json_string_value(json_object_get(v, "$date"));
	int64_t ms;

	if (json_is_integer(v))
		return json_integer(json_integer_value(v));
	if (json_is_real(v) && json_real_value(v) > -9e15 && json_real_value(v) < 9e15 &&
	    json_real_value(v) == (double)(int64_t)json_real_value(v))
		return json_integer((json_int_t)json_real_value(v));
	if (iso && bw_json_rfc3339_ms(iso, &ms) == 0)
		return json_integer((json_int_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000)));
	return json_null();
}

static json_t *str_or_null(const json_t *doc, const char *key)
{
	const json_t *v = json_object_get(doc, key);
	return json_is_string(v) ? json_string(json_string_value(v)) : json_null();
}

static json_t *credit_json(const json_t *p)
{
	const json_t *tq = json_object_get(p, "transform_quantity");
	int64_t ua = json_integer_value(json_object_get(p, "unit_amount"));
	int64_t div = json_is_integer(json_object_get(tq, "divide_by")) ?
			      json_integer_value(json_object_get(tq, "divide_by")) : 1;
	char ppc[64];

	bw_api_decimal_ratio(ua, div, ppc, sizeof(ppc));
	return json_pack("{s:o s:o s:I s:s s:o s:o s:o}", "price_id", str_or_null(p, "price_id"),
			 "unit_amount", int_or_null(p, "unit_amount"), "credits_per_unit",
			 (json_int_t)div, "price_per_credit", ppc, "currency",
			 str_or_null(p, "currency"), "min_credits",
			 int_or_null(p, "min_spu_purchase"), "max_credits",
			 int_or_null(p, "max_spu_purchase"));
}

int bw_api_plans_json(struct bw_mongo *m, char **out, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("active", BCON_BOOL(true), "price_type", "{", "$in", "[",
				  BCON_UTF8("base"), BCON_UTF8("credit"), "]", "}");
	json_t *arr = NULL, *tiers = json_array(), *credit = json_null(), *p, *ans;
	size_t i;
	int rc = find_json(m, BW_COLL_PRICES, filter, 1000, &arr, err);

	bson_destroy(filter);
	*out = NULL;
	if (rc != 0)
		goto done;
	json_array_foreach(arr, i, p) {
		const char *type = json_string_value(json_object_get(p, "price_type"));
		if (type && !strcmp(type, "credit") && json_is_null(credit)) {
			json_decref(credit);
			credit = credit_json(p);
		} else if (type && !strcmp(type, "base") && json_is_string(json_object_get(p, "tier"))) {
			json_array_append_new(
				tiers, json_pack("{s:o s:o s:o s:o s:o s:o}", "tier",
						 str_or_null(p, "tier"), "price_id",
						 str_or_null(p, "price_id"), "included_spus",
						 int_or_null(p, "included_spus"), "unit_amount",
						 int_or_null(p, "unit_amount"), "currency",
						 str_or_null(p, "currency"), "interval",
						 str_or_null(p, "recurring_interval")));
		}
	}
	ans = json_pack("{s:O s:O}", "tiers", tiers, "credit", credit);
	*out = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
done:
	json_decref(arr);
	json_decref(tiers);
	json_decref(credit);
	return rc;
}

int bw_api_sub_live(const char *status)
{
	static const char *const live[] = { "active", "trialing", "past_due", "unpaid",
					    "incomplete" };
	for (size_t i = 0; status && i < sizeof(live) / sizeof(live[0]); i++)
		if (!strcmp(status, live[i]))
			return 1;
	return 0;
}

json_t *bw_api_subscription_state(const char *org_id, const json_t *cust)
{
	const char *type = json_string_value(json_object_get(cust, BW_CUST_SUB_TYPE));
	const char *status = json_string_value(json_object_get(cust, "stripe_subscription_status"));

	if (type && (!strcmp(type, BW_CUST_TYPE_NONE) || !*type))
		type = NULL;
	return json_pack("{s:s s:o s:o s:b s:o s:o s:b s:o s:o}", "org_id", org_id, "plan",
			 type ? json_string(type) : json_null(), "status",
			 status ? json_string(status) : json_null(), "live",
			 bw_api_sub_live(status), "current_period_start",
			 period_or_null(cust, BW_CUST_PERIOD_START), "current_period_end",
			 period_or_null(cust, BW_CUST_PERIOD_END),
			 "cancel_at_period_end",
			 json_is_true(json_object_get(cust, BW_CUST_CANCEL_AT_END)),
			 "cancel_at", period_or_null(cust, BW_CUST_CANCEL_AT),
			 "subscription_id", str_or_null(cust, "stripe_subscription_id"));
}

int bw_api_subscription_json(struct bw_mongo *m, const char *org_id, char **out,
			     struct bw_err *err)
{
	json_t *cust = NULL, *ans;

	*out = NULL;
	if (bw_api_customer_doc(m, org_id, &cust, err) != 0)
		return -1;
	ans = bw_api_subscription_state(org_id, cust);
	*out = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
	json_decref(cust);
	return 0;
}
