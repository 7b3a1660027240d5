/* customer_doc: see customer_doc.h. */
#include "customer_doc.h"

#include <string.h>

#include "mongo.h"

void bw_customer_init_fresh(struct bw_customer *c, int64_t free_grant)
{
	memset(c, 0, sizeof(*c));
	c->granted = free_grant;
	c->has_opening = 1;
}

/* A member that is present and not null. */
static int present(const bson_t *doc, const char *key)
{
	bson_iter_t it;
	return bson_iter_init_find(&it, doc, key) && !BSON_ITER_HOLDS_NULL(&it);
}

/* The period start in milliseconds; 0 when none. */
static int64_t period_start_ms(const bson_t *doc)
{
	int64_t v = 0;

	if (!bw_customer_period_ms(doc, BW_CUST_PERIOD_START, &v) || v <= 0)
		return 0;
	return v;
}

void bw_customer_read(const bson_t *doc, int64_t free_grant, struct bw_customer *c)
{
	bson_iter_t it;

	memset(c, 0, sizeof(*c));
	c->exists = 1;
	c->has_version = bson_iter_init_find(&it, doc, BW_CUST_VERSION);
	bw_mongo_get_int64(doc, BW_CUST_VERSION, &c->version);
	/* bw_mongo_get_int64 reads a missing or null member as 0: the old readings */
	bw_mongo_get_int64(doc, BW_CUST_SUB_ALLOWANCE, &c->allowance);
	bw_mongo_get_int64(doc, BW_CUST_SUB_USED, &c->sub_used);
	bw_mongo_get_int64(doc, BW_CUST_PURCHASED, &c->purchased);
	bw_mongo_get_int64(doc, BW_CUST_PURCHASED_USED, &c->purchased_used);
	bw_mongo_get_int64(doc, BW_CUST_GRANTED_USED, &c->granted_used);
	bw_mongo_get_int64(doc, BW_CUST_PAID_USED, &c->paid_used);
	c->grant_missing = !present(doc, BW_CUST_GRANTED);
	if (c->grant_missing)
		c->granted = free_grant;
	else
		bw_mongo_get_int64(doc, BW_CUST_GRANTED, &c->granted);
	c->enterprise = bson_iter_init_find(&it, doc, BW_CUST_SUB_TYPE) &&
			BSON_ITER_HOLDS_UTF8(&it) &&
			strcmp(bson_iter_utf8(&it, NULL), BW_CUST_TYPE_ENTERPRISE) == 0;
	c->has_opening = bson_iter_init_find(&it, doc, BW_CUST_OPENING);
	c->period_start_ms = period_start_ms(doc);
}

int64_t bw_customer_remaining(int64_t total, int64_t used)
{
	if (total <= 0 || used >= total)
		return 0;
	if (used < 0)
		return total;
	return total - used;
}

void bw_customer_append_fresh(bson_t *soi, int64_t free_grant, int64_t now_ms)
{
	bson_t opening;

	BSON_APPEND_INT64(soi, BW_CUST_GRANTED, free_grant);
	BSON_APPEND_INT64(soi, BW_CUST_PURCHASED, 0);
	BSON_APPEND_INT64(soi, BW_CUST_SUB_ALLOWANCE, 0);
	BSON_APPEND_UTF8(soi, BW_CUST_SUB_TYPE, BW_CUST_TYPE_NONE);
	BSON_APPEND_DATE_TIME(soi, BW_CUST_CREATED_AT, now_ms);
	/* Created here: nothing to carry over from the original integration. */
	BSON_APPEND_DOCUMENT_BEGIN(soi, BW_CUST_OPENING, &opening);
	BSON_APPEND_UTF8(&opening, "source", "none");
	BSON_APPEND_DATE_TIME(&opening, "recorded_at", now_ms);
	bson_append_document_end(soi, &opening);
}

void bw_customer_append_version_bump(bson_t *inc)
{
	BSON_APPEND_INT64(inc, BW_CUST_VERSION, 1);
}

/* Clamps *used to total; the excess is added to *paid. */
static int clamp(int64_t *used, int64_t total, int64_t *paid)
{
	int64_t cap = total > 0 ? total : 0;
	if (*used <= cap)
		return 0;
	if (__builtin_add_overflow(*paid, *used - cap, paid))
		return -1;
	*used = cap;
	return 0;
}

int bw_customer_opening(struct bw_customer *c, struct bw_opening *o)
{
	struct bw_customer n = *c;

	o->raw_sub_used = c->sub_used;
	o->raw_purchased_used = c->purchased_used;
	o->raw_granted_used = c->granted_used;
	o->raw_paid_used = c->paid_used;
	if ((!n.enterprise && clamp(&n.sub_used, n.allowance, &n.paid_used) != 0) ||
	    clamp(&n.purchased_used, n.purchased, &n.paid_used) != 0 ||
	    clamp(&n.granted_used, n.granted, &n.paid_used) != 0)
		return -1;
	/* a negative counter is corrupt, not credit: read it as 0 */
	if (n.sub_used < 0)
		n.sub_used = 0;
	if (n.purchased_used < 0)
		n.purchased_used = 0;
	if (n.granted_used < 0)
		n.granted_used = 0;
	if (n.paid_used < 0)
		n.paid_used = 0;
	o->sub_used = n.sub_used;
	o->purchased_used = n.purchased_used;
	o->granted_used = n.granted_used;
	o->paid_used = n.paid_used;
	*c = n;
	return 0;
}

void bw_customer_append_opening(bson_t *set, const struct bw_customer *c,
				const struct bw_opening *o, int64_t now_ms)
{
	bson_t doc;

	BSON_APPEND_DOCUMENT_BEGIN(set, BW_CUST_OPENING, &doc);
	BSON_APPEND_UTF8(&doc, "source", BW_OPENING_SOURCE);
	BSON_APPEND_INT64(&doc, BW_CUST_SUB_USED, o->sub_used);
	BSON_APPEND_INT64(&doc, BW_CUST_PURCHASED_USED, o->purchased_used);
	BSON_APPEND_INT64(&doc, BW_CUST_GRANTED_USED, o->granted_used);
	BSON_APPEND_INT64(&doc, BW_CUST_PAID_USED, o->paid_used);
	BSON_APPEND_INT64(&doc, "raw_" BW_CUST_SUB_USED, o->raw_sub_used);
	BSON_APPEND_INT64(&doc, "raw_" BW_CUST_PURCHASED_USED, o->raw_purchased_used);
	BSON_APPEND_INT64(&doc, "raw_" BW_CUST_GRANTED_USED, o->raw_granted_used);
	BSON_APPEND_INT64(&doc, "raw_" BW_CUST_PAID_USED, o->raw_paid_used);
	BSON_APPEND_DATE_TIME(&doc, "recorded_at", now_ms);
	bson_append_document_end(set, &doc);
	if (c->grant_missing)
		BSON_APPEND_INT64(set, BW_CUST_GRANTED, c->granted);
}

void bw_customer_append_pending(bson_t *parent, const char *key, const char *event_id,
				const char *hash, int64_t from_subscription,
				int64_t from_purchased, int64_t from_granted, int64_t from_paid,
				int64_t version)
{
	bson_t entry;

	bson_append_document_begin(parent, key, -1, &entry);
	BSON_APPEND_UTF8(&entry, "event_id", event_id);
	BSON_APPEND_UTF8(&entry, "hash", hash);
	BSON_APPEND_INT64(&entry, "from_subscription", from_subscription);
	BSON_APPEND_INT64(&entry, "from_purchased", from_purchased);
	BSON_APPEND_INT64(&entry, "from_granted", from_granted);
	BSON_APPEND_INT64(&entry, "from_paid", from_paid);
	BSON_APPEND_INT64(&entry, "balance_version", version);
	bson_append_document_end(parent, &entry);
}

void bw_customer_append_opening_pending(bson_t *parent, const char *key,
					const struct bw_opening *o, int64_t version)
{
	bw_customer_append_pending(parent, key, "", BW_CUST_OPENING, o->sub_used,
				   o->purchased_used, o->granted_used, o->paid_used, version);
}

int bw_customer_org_oid(const char *org_id, bson_oid_t *oid)
{
	/* str(ObjectId) is 24 lowercase hex digits; nothing else can equal one */
	if (!org_id || strlen(org_id) != 24)
		return 0;
	for (size_t i = 0; i < 24; i++)
		if (!((org_id[i] >= '0' && org_id[i] <= '9') || (org_id[i] >= 'a' && org_id[i] <= 'f')))
			return 0;
	bson_oid_init_from_string(oid, org_id);
	return 1;
}

int bw_customer_period_ms(const bson_t *doc, const char *key, int64_t *ms)
{
	bson_iter_t it;
	int64_t v = 0;

	*ms = 0;
	if (!bson_iter_init_find(&it, doc, key))
		return 0;
	if (BSON_ITER_HOLDS_DATE_TIME(&it)) {
		*ms = bson_iter_date_time(&it);
		return 1;
	}
	if (!bw_mongo_get_int64(doc, key, &v))
		return 0;
	/* seconds until the year 5138; a number beyond that is already milliseconds */
	*ms = v < 100000000000LL && v > -100000000000LL ? v * 1000 : v;
	return 1;
}

void bw_customer_append_period(bson_t *set, int64_t start_s, int64_t end_s)
{
	BSON_APPEND_INT64(set, BW_CUST_PERIOD_START, start_s);
	BSON_APPEND_INT64(set, BW_CUST_PERIOD_END, end_s);
}

void bw_customer_append_cancel(bson_t *set, int ended, int at_period_end, int64_t cancel_at_s)
{
	BSON_APPEND_BOOL(set, BW_CUST_CANCEL_AT_END, !ended && at_period_end);
	if (!ended && cancel_at_s > 0)
		BSON_APPEND_INT64(set, BW_CUST_CANCEL_AT, cancel_at_s);
	else
		BSON_APPEND_NULL(set, BW_CUST_CANCEL_AT);
}

/* Appends {key: {op: value}} as element *i of arr. */
static void append_clause(bson_t *arr, uint32_t *i, const char *key, const char *op,
			  const bson_value_t *value)
{
	const char *idx;
	char buf[16];
	bson_t clause, cmp;

	bson_uint32_to_string((*i)++, &idx, buf, sizeof(buf));
	BSON_APPEND_DOCUMENT_BEGIN(arr, idx, &clause);
	BSON_APPEND_DOCUMENT_BEGIN(&clause, key, &cmp);
	bson_append_value(&cmp, op, -1, value);
	bson_append_document_end(&clause, &cmp);
	bson_append_document_end(arr, &clause);
}

void bw_customer_append_period_lte(bson_t *or_array, uint32_t *i, const char *key,
				   int64_t at_s)
{
	bson_value_t v;

	/* MongoDB compares numbers across int32, int64 and double, never a number with a date */
	v.value_type = BSON_TYPE_INT64;
	v.value.v_int64 = at_s;
	append_clause(or_array, i, key, "$lte", &v);
	v.value_type = BSON_TYPE_DATE_TIME;
	v.value.v_datetime = at_s * 1000;
	append_clause(or_array, i, key, "$lte", &v);
	v.value_type = BSON_TYPE_NULL; /* null as the old code wrote it, or missing */
	append_clause(or_array, i, key, "$eq", &v);
	v.value_type = BSON_TYPE_BOOL;
	v.value.v_bool = false;
	append_clause(or_array, i, key, "$exists", &v);
}
