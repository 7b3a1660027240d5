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

/* A period field at it in milliseconds (bw_customer_period_ms). */
static int period_ms_at(const bson_iter_t *it, int64_t *ms)
{
	int64_t v = 0;

	*ms = 0;
	if (BSON_ITER_HOLDS_DATE_TIME(it)) {
		*ms = bson_iter_date_time(it);
		return 1;
	}
	if (!bw_mongo_iter_int64(it, &v))
		return 0;
	/* seconds until the year 5138; a number beyond that is already milliseconds */
	*ms = v < 100000000000LL && v > -100000000000LL ? v * 1000 : v;
	return 1;
}

/* The members bw_customer_read() reads, found in one pass over the document. */
enum { K_VERSION, K_ALLOWANCE, K_SUB_USED, K_PURCHASED, K_PURCHASED_USED, K_GRANTED_USED,
       K_PAID_USED, K_GRANTED, K_SUB_TYPE, K_OPENING, K_PERIOD_START, K_COUNT };
static const char *const read_keys[K_COUNT] = {
	BW_CUST_VERSION, BW_CUST_SUB_ALLOWANCE, BW_CUST_SUB_USED, BW_CUST_PURCHASED,
	BW_CUST_PURCHASED_USED, BW_CUST_GRANTED_USED, BW_CUST_PAID_USED, BW_CUST_GRANTED,
	BW_CUST_SUB_TYPE, BW_CUST_OPENING, BW_CUST_PERIOD_START,
};

/* Member k read as bw_mongo_get_int64 does: a missing or null member reads as 0. */
static int64_t int_at(uint32_t has, const struct bw_mongo_member *m, int k)
{
	int64_t v = 0;

	if (has >> k & 1)
		bw_mongo_iter_int64(&m[k].it, &v);
	return v;
}

void bw_customer_read(const bson_t *doc, int64_t free_grant, struct bw_customer *c)
{
	bw_customer_read_more(doc, free_grant, c, NULL, 0, NULL);
}

uint32_t bw_customer_read_more(const bson_t *doc, int64_t free_grant, struct bw_customer *c,
			       const char *const *extra, size_t nextra,
			       struct bw_mongo_member *extra_out)
{
	const char *keys[K_COUNT + BW_CUST_READ_EXTRA_MAX];
	struct bw_mongo_member m[K_COUNT + BW_CUST_READ_EXTRA_MAX];
	uint32_t has;
	int64_t start = 0;

	if (nextra > BW_CUST_READ_EXTRA_MAX)
		nextra = BW_CUST_READ_EXTRA_MAX;
	memcpy(keys, read_keys, sizeof(read_keys));
	for (size_t i = 0; i < nextra; i++)
		keys[K_COUNT + i] = extra[i];
	has = bw_mongo_find_keys(doc, keys, K_COUNT + nextra, m);
	for (size_t i = 0; i < nextra; i++)
		if (has >> (K_COUNT + i) & 1)
			extra_out[i] = m[K_COUNT + i];

	memset(c, 0, sizeof(*c));
	c->exists = 1;
	c->has_version = has >> K_VERSION & 1;
	/* a missing or null member reads as 0: the old readings */
	c->version = int_at(has, m, K_VERSION);
	c->allowance = int_at(has, m, K_ALLOWANCE);
	c->sub_used = int_at(has, m, K_SUB_USED);
	c->purchased = int_at(has, m, K_PURCHASED);
	c->purchased_used = int_at(has, m, K_PURCHASED_USED);
	c->granted_used = int_at(has, m, K_GRANTED_USED);
	c->paid_used = int_at(has, m, K_PAID_USED);
	c->grant_missing = !(has >> K_GRANTED & 1) || BSON_ITER_HOLDS_NULL(&m[K_GRANTED].it);
	c->granted = c->grant_missing ? free_grant : int_at(has, m, K_GRANTED);
	c->enterprise = (has >> K_SUB_TYPE & 1) && BSON_ITER_HOLDS_UTF8(&m[K_SUB_TYPE].it) &&
			strcmp(bson_iter_utf8(&m[K_SUB_TYPE].it, NULL), BW_CUST_TYPE_ENTERPRISE) == 0;
	c->has_opening = has >> K_OPENING & 1;
	/* the period start in milliseconds; 0 when none */
	if ((has >> K_PERIOD_START & 1) && period_ms_at(&m[K_PERIOD_START].it, &start) &&
	    start > 0)
		c->period_start_ms = start;
	return has >> K_COUNT;
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

static void pending_members(struct bw_bson_buf *b, const char *event_id, const char *hash,
			    int64_t from_subscription, int64_t from_purchased,
			    int64_t from_granted, int64_t from_paid, int64_t version)
{
	bw_bson_buf_utf8(b, "event_id", event_id);
	bw_bson_buf_utf8(b, "hash", hash);
	bw_bson_buf_int64(b, "from_subscription", from_subscription);
	bw_bson_buf_int64(b, "from_purchased", from_purchased);
	bw_bson_buf_int64(b, "from_granted", from_granted);
	bw_bson_buf_int64(b, "from_paid", from_paid);
	bw_bson_buf_int64(b, "balance_version", version);
}

void bw_customer_append_pending(struct bw_bson_buf *b, const char *key, const char *event_id,
				const char *hash, int64_t from_subscription,
				int64_t from_purchased, int64_t from_granted, int64_t from_paid,
				int64_t version)
{
	bw_bson_buf_begin_document(b, key);
	pending_members(b, event_id, hash, from_subscription, from_purchased, from_granted,
			from_paid, version);
	bw_bson_buf_end(b);
}

int bw_customer_append_opening_pending(bson_t *parent, const char *key,
				       const struct bw_opening *o, int64_t version)
{
	struct bw_bson_buf b;
	bson_t entry;
	int rc = -1;

	bw_bson_buf_init(&b, 1024);
	pending_members(&b, "", BW_CUST_OPENING, o->sub_used, o->purchased_used,
			o->granted_used, o->paid_used, version);
	if (bw_bson_buf_view(&b, &entry) != 0)
		goto done;
	if (!bson_append_document(parent, key, -1, &entry))
		goto done;
	rc = 0;
done:
	bw_bson_buf_cleanup(&b);
	return rc;
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

	*ms = 0;
	if (!bson_iter_init_find(&it, doc, key))
		return 0;
	return period_ms_at(&it, ms);
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
