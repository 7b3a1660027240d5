/* admin_audit: `bw-admin audit [--org ORG]`: invariant 2 checked from the ledger. For every
 * org whose opening balance is recorded, each used counter is recomputed and compared with
 * the stored one:
 *   purchased_credits_used, granted_credits_used, paid_spus_used
 *       = the sum of from_purchased / from_granted / from_paid of all its usage records (the
 *         opening-balance row included; the original integration's records carry no
 *         breakdown and count 0);
 *   subscription_spus_used (within its period)
 *       = the sum of from_subscription of the records charged since the last reset of the
 *         counter, minus the subscription adjustments since then (bw-admin adjust gives usage
 *         back there). Records and adjustments carry the period start stored on the customer
 *         when they were made; the reset marker subscription_spus_reset_period_start names
 *         the period of the last reset: rows of a later period count, earlier ones do not,
 *         and rows of the marker's own period may predate the reset (the period moves on
 *         customer.subscription.updated, the invoice resets later), so for them the check
 *         is a range [rows after, rows after + rows of that period];
 * plus what is applied but not yet written down: pending_events whose usage record is missing
 * and pending_adjustments whose row is missing (a crash window the next write repairs).
 * Granted and purchased adjustments change totals, not used counters. Each difference is a
 * drift, printed with the org and the field; any drift exits 1.
 *
 * Two aggregations ($group by org and period) and one pass over the customers, whatever the
 * number of orgs; sums are int64 with overflow checks. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "customer_doc.h"
#include "usage_store.h"

#define COLL_ADJUSTMENTS "payments_adjustments"

struct sums {
	char *org;
	int64_t period_ms;              /* 0: none */
	int64_t v[4];                   /* subscription, purchased, granted, paid */
};

struct table {
	struct sums *rows;
	size_t n;
};

/* What a counter may be: [lo, hi]. Exact (lo == hi) except the subscription counter in the
 * period of its last reset, see add(). */
struct expect {
	int64_t lo[4], hi[4];
	int has_marker;          /* subscription_spus_reset_period_start is set */
	int64_t marker;          /* the period start of the last reset */
};

/* Adds v to counter k of e; which bound(s) it may count in: both, or only one. */
enum bound { BOTH, LO, HI };

static int add(struct expect *e, int k, int64_t v, enum bound b)
{
	if (b != HI && __builtin_add_overflow(e->lo[k], v, &e->lo[k]))
		return -1;
	if (b != LO && __builtin_add_overflow(e->hi[k], v, &e->hi[k]))
		return -1;
	return 0;
}

static int cmp_sums(const void *a, const void *b)
{
	const struct sums *x = a, *y = b;
	int c = strcmp(x->org, y->org);
	if (c)
		return c;
	return (x->period_ms > y->period_ms) - (x->period_ms < y->period_ms);
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->rows[i].org);
	free(t->rows);
	t->rows = NULL;
	t->n = 0;
}

/* Reads the {_id: {o, p}, s0..s3} documents of a $group into t (sorted). */
static int aggregate(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		     const bson_t *pipeline, struct table *t, struct bw_err *err)
{
	static const char *const names[4] = { "s0", "s1", "s2", "s3" };
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	mongoc_cursor_t *cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, pipeline, NULL,
							  NULL);
	const bson_t *doc;
	bson_error_t error;
	size_t cap = 0;
	int rc = -1;

	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it, id;
		struct sums s;
		memset(&s, 0, sizeof(s));
		if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
		    !bson_iter_recurse(&it, &id))
			continue;
		while (bson_iter_next(&id)) {
			if (strcmp(bson_iter_key(&id), "o") == 0 && BSON_ITER_HOLDS_UTF8(&id))
				s.org = strdup(bson_iter_utf8(&id, NULL));
			else if (strcmp(bson_iter_key(&id), "p") == 0 &&
				 BSON_ITER_HOLDS_DATE_TIME(&id))
				s.period_ms = bson_iter_date_time(&id);
		}
		if (!s.org)
			continue;
		for (int k = 0; k < 4; k++)
			bw_mongo_get_int64(doc, names[k], &s.v[k]);
		if (t->n == cap) {
			cap = cap ? cap * 2 : 64;
			struct sums *grown = realloc(t->rows, cap * sizeof(*grown));
			if (!grown) {
				free(s.org);
				bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
				goto done;
			}
			t->rows = grown;
		}
		t->rows[t->n++] = s;
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, coll_name, err);
		goto done;
	}
	if (t->n)
		qsort(t->rows, t->n, sizeof(*t->rows), cmp_sums);
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	return rc;
}

static bson_t *pipeline(const char *org, const char *match_key, const char *match_val,
			const char *const fields[4])
{
	bson_t *p = bson_new(), stage, m, g, id, acc;
	bson_t arr;
	char key[8];

	BSON_APPEND_ARRAY_BEGIN(p, "pipeline", &arr);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&stage, "$match", &m);
	if (org)
		BSON_APPEND_UTF8(&m, "org_id", org);
	if (match_key)
		BSON_APPEND_UTF8(&m, match_key, match_val);
	bson_append_document_end(&stage, &m);
	bson_append_document_end(&arr, &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&stage, "$group", &g);
	BSON_APPEND_DOCUMENT_BEGIN(&g, "_id", &id);
	BSON_APPEND_UTF8(&id, "o", "$org_id");
	BSON_APPEND_UTF8(&id, "p", "$period_start");
	bson_append_document_end(&g, &id);
	for (int k = 0; k < 4; k++) {
		if (!fields[k])
			continue;
		snprintf(key, sizeof(key), "s%d", k);
		BSON_APPEND_DOCUMENT_BEGIN(&g, key, &acc);
		BSON_APPEND_UTF8(&acc, "$sum", fields[k]);
		bson_append_document_end(&g, &acc);
	}
	bson_append_document_end(&stage, &g);
	bson_append_document_end(&arr, &stage);
	bson_append_array_end(p, &arr);
	return p;
}

/* Adds (sign +1/-1) the sums of org in t to e: every period for the purchased, granted and
 * paid counters. The subscription counter holds what was charged after its last reset (the
 * reset zeroes it and records the period start it was for, the marker M): a row of a period
 * after M counts, one before M does not, and one of period M itself may be from before the
 * reset (the stripe worker's path: customer.subscription.updated moves the period, the
 * invoice resets later) or after it, so it widens the range only. No marker: no reset ever,
 * every row counts. 0, or -1 on overflow. */
static int add_sums(const struct table *t, const char *org, int sign, struct expect *e)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) { /* the first row of org (rows are sorted by org, period) */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(t->rows[mid].org, org) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < t->n && strcmp(t->rows[i].org, org) == 0; i++) {
		const struct sums *s = &t->rows[i];
		for (int k = 0; k < 4; k++) {
			int64_t v = sign > 0 ? s->v[k] : -s->v[k];
			enum bound b = BOTH;
			if (k == 0 && e->has_marker) {
				if (s->period_ms < e->marker)
					continue;
				if (s->period_ms == e->marker)
					b = sign > 0 ? HI : LO;
			}
			if (add(e, k, v, b) != 0)
				return -1;
		}
	}
	return 0;
}

/* 1 when doc's member key is a non-empty array. */
static int has_entries(const bson_t *doc, const char *key)
{
	bson_iter_t it, arr;

	return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
	       bson_iter_recurse(&it, &arr) && bson_iter_next(&arr);
}

/* What is applied on doc but not written down yet: pending events without a usage record,
 * pending subscription adjustments without a row. */
static int add_pending(struct bw_mongo *m, mongoc_client_t *client, const char *org,
		       struct expect *e, struct bw_err *err)
{
	struct bw_org o;
	struct bw_org *op = &o;
	struct bw_record_key *keys = NULL;
	struct bw_found_record *found = NULL;
	size_t nfound = 0;
	int rc = -1;

	/* The usage worker's own reading of the pending entries (load_orgs with this org). */
	memset(&o, 0, sizeof(o));
	o.org_id = org;
	if (bw_usage_store_load_orgs(m, client, &op, 1, 0, err) != 0)
		goto done;
	if (o.npending) {
		keys = calloc(o.npending, sizeof(*keys));
		if (!keys) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < o.npending; i++) {
			keys[i].org_id = org;
			keys[i].event_id = o.pending[i].event_id;
		}
		if (bw_usage_store_find_records(m, client, keys, o.npending, &found, &nfound,
						err) != 0)
			goto done;
		for (size_t i = 0; i < o.npending; i++) {
			const struct bw_breakdown *bd = &o.pending[i].bd;
			int64_t v[4] = { bd->from_subscription, bd->from_purchased, bd->from_granted,
					 bd->from_paid };
			if (bw_found_record_lookup(found, nfound, org, o.pending[i].event_id))
				continue;
			/* Charged before its record; a reset since then would have zeroed it. */
			for (int k = 0; k < 4; k++)
				if (add(e, k, v[k], k == 0 && e->has_marker ? HI : BOTH) != 0) {
					bw_err_set(err, BW_ERR_INVALID, "sum overflows int64");
					goto done;
				}
		}
	}
	rc = 0;
done:
	bw_found_records_free(found, nfound);
	free(keys);
	bw_org_reset(&o);
	return rc;
}

/* Pending subscription adjustments of doc whose row is not in rows (a crash window). */
static int add_pending_adjustments(struct bw_mongo *m, mongoc_client_t *client,
				   const bson_t *doc, const char *org, struct expect *e,
				   struct bw_err *err)
{
	bson_iter_t it, arr;
	mongoc_collection_t *coll = NULL;
	int rc = 0;

	if (!bson_iter_init_find(&it, doc, "pending_adjustments") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr))
		return 0;
	coll = bw_mongo_coll(m, client, COLL_ADJUSTMENTS);
	while (rc == 0 && bson_iter_next(&arr)) {
		bson_iter_t entry;
		const char *key = NULL, *bucket = "";
		int64_t spus = 0, count;
		bson_error_t error;
		bson_t *filter;
		if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &entry))
			continue;
		while (bson_iter_next(&entry)) {
			if (strcmp(bson_iter_key(&entry), "key") == 0 && BSON_ITER_HOLDS_UTF8(&entry))
				key = bson_iter_utf8(&entry, NULL);
			else if (strcmp(bson_iter_key(&entry), "bucket") == 0 && BSON_ITER_HOLDS_UTF8(&entry))
				bucket = bson_iter_utf8(&entry, NULL);
			else if (strcmp(bson_iter_key(&entry), "spus") == 0)
				spus = bson_iter_as_int64(&entry);
		}
		if (!key || strcmp(bucket, "subscription") != 0)
			continue;
		filter = BCON_NEW("_id", "{", "org_id", BCON_UTF8(org), "key", BCON_UTF8(key), "}");
		count = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &error);
		bson_destroy(filter);
		if (count < 0)
			rc = bw_mongo_error(&error, "count adjustments", err);
		else if (count == 0 && add(e, 0, -spus, e->has_marker ? LO : BOTH) != 0)
			rc = bw_err_set(err, BW_ERR_INVALID, "sum overflows int64");
	}
	mongoc_collection_destroy(coll);
	return rc;
}

/* A drift when stored is outside [lo, hi]: expected is the nearer bound (and expected_max the
 * upper one when the range is not exact). */
static void check(json_t *drifts, const char *org, const char *field, int64_t stored,
		  int64_t lo, int64_t hi)
{
	int64_t expected = stored < lo ? lo : hi, diff;
	json_t *d;

	if (stored >= lo && stored <= hi)
		return;
	d = json_object();
	json_object_set_new(d, "org_id", json_string(org));
	json_object_set_new(d, "field", json_string(field));
	json_object_set_new(d, "stored", json_integer(stored));
	json_object_set_new(d, "expected", json_integer(expected));
	if (lo != hi) {
		json_object_set_new(d, "expected_min", json_integer(lo));
		json_object_set_new(d, "expected_max", json_integer(hi));
	}
	if (__builtin_sub_overflow(stored, expected, &diff))
		json_object_set_new(d, "difference", json_null());
	else
		json_object_set_new(d, "difference", json_integer(diff));
	json_array_append_new(drifts, d);
}

int bw_admin_audit(struct bw_admin *a)
{
	static const char *const rec_fields[4] = { "$from_subscription", "$from_purchased",
						   "$from_granted", "$from_paid" };
	static const char *const adj_fields[4] = { "$spus", NULL, NULL, NULL };
	static const char *const names[4] = { BW_CUST_SUB_USED, BW_CUST_PURCHASED_USED,
					      BW_CUST_GRANTED_USED, BW_CUST_PAID_USED };
	const char *org = a->args.org;
	struct table recs = { NULL, 0 }, adjs = { NULL, 0 };
	struct bw_mongo *m;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t *rp = NULL, *ap = NULL, *filter = NULL;
	const bson_t *doc;
	bson_error_t error;
	json_t *drifts = json_array(), *unopened = json_array();
	int64_t checked = 0;
	int code;

	if (a->args.npos > 1)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "audit takes [--org ORG]");
	if (!(m = bw_admin_mongo(a))) {
		json_decref(drifts);
		json_decref(unopened);
		return bw_admin_fail(a);
	}
	client = bw_mongo_pop(m);
	rp = pipeline(org, NULL, NULL, rec_fields);
	ap = pipeline(org, "bucket", "subscription", adj_fields);
	if (aggregate(m, client, BW_COLL_USAGE_RECORDS, rp, &recs, &a->err) != 0 ||
	    aggregate(m, client, COLL_ADJUSTMENTS, ap, &adjs, &a->err) != 0)
		goto failed;
	coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	filter = org ? BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org)) : bson_new();
	cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		struct bw_customer c;
		bson_iter_t it;
		struct expect e;
		int64_t stored[4];
		const char *id;

		if (!bson_iter_init_find(&it, doc, BW_CUST_ORG_ID) || !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		id = bson_iter_utf8(&it, NULL);
		bw_customer_read(doc, a->common.free_grant, &c);
		if (!c.has_opening) {
			/* The original integration's counters, not yet opened: no ledger to check. */
			json_array_append_new(unopened, json_string(id));
			continue;
		}
		checked++;
		memset(&e, 0, sizeof(e));
		e.has_marker = bw_mongo_get_int64(doc, "subscription_spus_reset_period_start",
						  &e.marker);
		if (add_sums(&recs, id, 1, &e) != 0 || add_sums(&adjs, id, -1, &e) != 0) {
			bw_err_set(&a->err, BW_ERR_INVALID, "org %s: a sum overflows int64", id);
			goto failed;
		}
		if ((has_entries(doc, BW_CUST_PENDING) &&
		     add_pending(m, client, id, &e, &a->err) != 0) ||
		    add_pending_adjustments(m, client, doc, id, &e, &a->err) != 0)
			goto failed;
		stored[0] = c.sub_used;
		stored[1] = c.purchased_used;
		stored[2] = c.granted_used;
		stored[3] = c.paid_used;
		for (int k = 0; k < 4; k++)
			check(drifts, id, names[k], stored[k], e.lo[k], e.hi[k]);
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load customers", &a->err);
		goto failed;
	}
	if (org && checked == 0 && json_array_size(unopened) == 0) {
		code = bw_admin_fail_with(a, BW_ADMIN_NOT_FOUND, BW_ERR_INVALID,
					  "org %s has no customer document", org);
		goto done;
	}
	code = json_array_size(drifts) ? BW_ADMIN_FOUND : BW_ADMIN_OK;
	if (code == BW_ADMIN_FOUND)
		bw_err_set(&a->err, BW_ERR_INVALID, "%zu drift(s) found", json_array_size(drifts));
	goto done;
failed:
	code = bw_admin_fail(a);
done:
	json_object_set_new(a->out, "orgs_checked", json_integer(checked));
	json_object_set_new(a->out, "drifts", drifts);
	json_object_set_new(a->out, "not_opened", unopened);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	bson_destroy(filter);
	bson_destroy(rp);
	bson_destroy(ap);
	table_free(&recs);
	table_free(&adjs);
	bw_mongo_push(m, client);
	return code;
}
