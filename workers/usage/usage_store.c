/* usage_store: see usage_store.h. */
#include "usage_store.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

void bw_org_reset(struct bw_org *org)
{
	for (size_t i = 0; i < org->npending; i++)
		free(org->pending[i].event_id);
	free(org->pending);
	/* new_pending entries borrow event ids from pending or from the batch's events */
	free(org->new_pending);
	const char *id = org->org_id;
	memset(org, 0, sizeof(*org));
	org->org_id = id;
}

static int64_t iter_int64(const bson_iter_t *it)
{
	if (BSON_ITER_HOLDS_INT64(it))
		return bson_iter_int64(it);
	if (BSON_ITER_HOLDS_INT32(it))
		return bson_iter_int32(it);
	return 0;
}

static void copy_hash(char dst[65], const bson_iter_t *it)
{
	uint32_t len = 0;
	const char *s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : "";
	if (len > 64)
		len = 64;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* Reads breakdown/hash/version/event_id fields of a pending entry or a usage record. */
static void read_entry(bson_iter_t *it, char **event_id, char **org_id, char hash[65],
		       struct bw_breakdown *bd, int64_t *version)
{
	while (bson_iter_next(it)) {
		const char *k = bson_iter_key(it);
		if (strcmp(k, "event_id") == 0 && BSON_ITER_HOLDS_UTF8(it))
			*event_id = strdup(bson_iter_utf8(it, NULL));
		else if (org_id && strcmp(k, "org_id") == 0 && BSON_ITER_HOLDS_UTF8(it))
			*org_id = strdup(bson_iter_utf8(it, NULL));
		else if (strcmp(k, "hash") == 0)
			copy_hash(hash, it);
		else if (strcmp(k, "from_subscription") == 0)
			bd->from_subscription = iter_int64(it);
		else if (strcmp(k, "from_purchased") == 0)
			bd->from_purchased = iter_int64(it);
		else if (strcmp(k, "from_granted") == 0)
			bd->from_granted = iter_int64(it);
		else if (strcmp(k, "from_paid") == 0)
			bd->from_paid = iter_int64(it);
		else if (strcmp(k, "balance_version") == 0)
			*version = iter_int64(it);
	}
}

static int load_pending(const bson_t *doc, struct bw_org *org, struct bw_err *err)
{
	bson_iter_t it, arr;
	size_t cap = 0;

	if (!bson_iter_init_find(&it, doc, BW_CUST_PENDING) || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr))
		return 0;
	while (bson_iter_next(&arr)) {
		bson_iter_t sub;
		struct bw_pending p;
		if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &sub))
			continue;
		memset(&p, 0, sizeof(p));
		read_entry(&sub, &p.event_id, NULL, p.hash, &p.bd, &p.version);
		if (!p.event_id)
			continue;
		if (org->npending == cap) {
			cap = cap ? cap * 2 : 8;
			struct bw_pending *grown = realloc(org->pending, cap * sizeof(*grown));
			if (!grown) {
				free(p.event_id);
				return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			}
			org->pending = grown;
		}
		org->pending[org->npending++] = p;
	}
	return 0;
}

static void balances_from_doc(const bson_t *doc, struct bw_org *org, int64_t free_grant)
{
	struct bw_customer *c = &org->cust;

	bw_customer_read(doc, free_grant, c);
	org->exists = 1;
	org->version = c->version;
	org->version_missing = !c->has_version;
	org->period_start_ms = c->period_start_ms;
	org->bal.enterprise = c->enterprise;
	org->bal.subscription_allowance = c->allowance;
	org->bal.subscription_used = c->sub_used;
	org->bal.purchased = c->purchased;
	org->bal.purchased_used = c->purchased_used;
	org->bal.granted = c->granted;
	org->bal.granted_used = c->granted_used;
	org->bal.paid_used = c->paid_used;
}

static int cmp_org_ptr(const void *key, const void *elem)
{
	return strcmp(key, (*(struct bw_org *const *)elem)->org_id);
}

int bw_usage_store_load_orgs(struct bw_mongo *m, mongoc_client_t *client,
			     struct bw_org *const *orgs, size_t n, int64_t free_grant,
			     struct bw_err *err)
{
	bson_error_t error;
	bson_t filter = BSON_INITIALIZER, cond, in;
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	mongoc_cursor_t *cur = NULL;
	const bson_t *doc;
	int rc = -1;
	char idx[16];

	/* orgs must be sorted by org_id (the batch logic groups them so): lookups below. */
	for (size_t i = 0; i < n; i++) {
		bw_org_reset(orgs[i]);
		bw_customer_init_fresh(&orgs[i]->cust, free_grant);
		orgs[i]->bal.granted = free_grant; /* what a new org starts with */
	}
	BSON_APPEND_DOCUMENT_BEGIN(&filter, "org_id", &cond);
	BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &in);
	for (size_t i = 0; i < n; i++) {
		const char *key;
		bson_uint32_to_string((uint32_t)i, &key, idx, sizeof(idx));
		bson_append_utf8(&in, key, -1, orgs[i]->org_id, -1);
	}
	bson_append_array_end(&cond, &in);
	bson_append_document_end(&filter, &cond);

	cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		if (!bson_iter_init_find(&it, doc, "org_id") || !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		struct bw_org *const *hit =
			bsearch(bson_iter_utf8(&it, NULL), orgs, n, sizeof(*orgs), cmp_org_ptr);
		if (!hit)
			continue;
		balances_from_doc(doc, *hit, free_grant);
		if (load_pending(doc, *hit, err) != 0)
			goto done;
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load customers", err);
		goto done;
	}
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	return rc;
}

static int cmp_found(const void *a, const void *b)
{
	return strcmp(((const struct bw_found_record *)a)->event_id,
		      ((const struct bw_found_record *)b)->event_id);
}

int bw_usage_store_find_records(struct bw_mongo *m, mongoc_client_t *client,
				const char *const *ids, size_t n, struct bw_found_record **out,
				size_t *nout, struct bw_err *err)
{
	bson_error_t error;
	bson_t filter = BSON_INITIALIZER, cond, in;
	bson_t *opts = BCON_NEW("projection", "{", "event_id", BCON_INT32(1), "org_id",
				BCON_INT32(1), "hash", BCON_INT32(1), "from_subscription",
				BCON_INT32(1), "from_purchased", BCON_INT32(1), "from_granted",
				BCON_INT32(1), "from_paid", BCON_INT32(1), "balance_version",
				BCON_INT32(1), "}");
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_USAGE_RECORDS);
	mongoc_cursor_t *cur = NULL;
	struct bw_found_record *recs = NULL;
	size_t count = 0, cap = 0;
	const bson_t *doc;
	char idx[16];
	int rc = -1;

	*out = NULL;
	*nout = 0;
	if (n == 0) {
		rc = 0;
		goto done;
	}
	BSON_APPEND_DOCUMENT_BEGIN(&filter, "event_id", &cond);
	BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &in);
	for (size_t i = 0; i < n; i++) {
		const char *key;
		bson_uint32_to_string((uint32_t)i, &key, idx, sizeof(idx));
		bson_append_utf8(&in, key, -1, ids[i], -1);
	}
	bson_append_array_end(&cond, &in);
	bson_append_document_end(&filter, &cond);
	cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		struct bw_found_record r;
		memset(&r, 0, sizeof(r));
		if (!bson_iter_init(&it, doc))
			continue;
		read_entry(&it, &r.event_id, &r.org_id, r.hash, &r.bd, &r.version);
		if (!r.event_id) {
			free(r.org_id);
			continue;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			struct bw_found_record *grown = realloc(recs, cap * sizeof(*grown));
			if (!grown) {
				free(r.event_id);
				free(r.org_id);
				bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
				goto done;
			}
			recs = grown;
		}
		recs[count++] = r;
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "find usage records", err);
		goto done;
	}
	if (count)
		qsort(recs, count, sizeof(*recs), cmp_found);
	*out = recs;
	*nout = count;
	recs = NULL;
	count = 0;
	rc = 0;
done:
	bw_found_records_free(recs, count);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	return rc;
}

const struct bw_found_record *bw_found_record_lookup(const struct bw_found_record *recs,
						     size_t n, const char *event_id)
{
	struct bw_found_record key;

	if (n == 0)
		return NULL;
	key.event_id = (char *)event_id;
	return bsearch(&key, recs, n, sizeof(*recs), cmp_found);
}

void bw_found_records_free(struct bw_found_record *recs, size_t n)
{
	for (size_t i = 0; recs && i < n; i++) {
		free(recs[i].event_id);
		free(recs[i].org_id);
	}
	free(recs);
}

static void append_pending(bson_t *update_set, const struct bw_org *org)
{
	bson_t arr, entry;
	char idx[16];

	BSON_APPEND_ARRAY_BEGIN(update_set, BW_CUST_PENDING, &arr);
	for (size_t i = 0; i < org->nnew_pending; i++) {
		const struct bw_pending *p = &org->new_pending[i];
		const char *key;
		bson_uint32_to_string((uint32_t)i, &key, idx, sizeof(idx));
		bson_append_document_begin(&arr, key, -1, &entry);
		BSON_APPEND_UTF8(&entry, "event_id", p->event_id);
		BSON_APPEND_UTF8(&entry, "hash", p->hash);
		BSON_APPEND_INT64(&entry, "from_subscription", p->bd.from_subscription);
		BSON_APPEND_INT64(&entry, "from_purchased", p->bd.from_purchased);
		BSON_APPEND_INT64(&entry, "from_granted", p->bd.from_granted);
		BSON_APPEND_INT64(&entry, "from_paid", p->bd.from_paid);
		BSON_APPEND_INT64(&entry, "balance_version", p->version);
		bson_append_document_end(&arr, &entry);
	}
	bson_append_array_end(update_set, &arr);
}

static void build_update(const struct bw_org *org, int64_t free_grant, int64_t now,
			 bson_t *filter, bson_t *update)
{
	bson_t set, soi;

	BSON_APPEND_UTF8(filter, BW_CUST_ORG_ID, org->org_id);
	if (org->exists && org->version_missing) {
		/* A document created without a version (by hand or an older tool). */
		bson_t cond;
		BSON_APPEND_DOCUMENT_BEGIN(filter, BW_CUST_VERSION, &cond);
		BSON_APPEND_BOOL(&cond, "$exists", false);
		bson_append_document_end(filter, &cond);
	} else {
		BSON_APPEND_INT64(filter, BW_CUST_VERSION, org->version);
	}
	BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
	BSON_APPEND_INT64(&set, BW_CUST_SUB_USED, org->new_bal.subscription_used);
	BSON_APPEND_INT64(&set, BW_CUST_PURCHASED_USED, org->new_bal.purchased_used);
	BSON_APPEND_INT64(&set, BW_CUST_GRANTED_USED, org->new_bal.granted_used);
	BSON_APPEND_INT64(&set, BW_CUST_PAID_USED, org->new_bal.paid_used);
	BSON_APPEND_INT64(&set, BW_CUST_VERSION, org->new_version);
	BSON_APPEND_DATE_TIME(&set, BW_CUST_UPDATED_AT, now);
	append_pending(&set, org);
	bson_append_document_end(update, &set);
	if (!org->exists) {
		/* A new org: the fields of a fresh customer document. Version 0 in the filter
		 * never matches an existing document (every writer bumps it), so a concurrent
		 * creation makes this upsert fail on the unique org_id index: a miss. */
		BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
		bw_customer_append_fresh(&soi, free_grant, now);
		bson_append_document_end(update, &soi);
	}
}

/* Marks orgs confirmed from the bulk reply: all of them when every op matched or upserted,
 * else only the upserted ones. Write errors other than duplicate keys fail the call. */
static int settle_reply(const bson_t *reply, struct bw_org *const *ops, size_t nops,
			struct bw_err *err)
{
	bson_iter_t it, arr, sub;
	int64_t matched = 0, upserted = 0;

	if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &arr)) {
		while (bson_iter_next(&arr)) {
			if (!bson_iter_recurse(&arr, &sub))
				continue;
			int32_t code = 0;
			while (bson_iter_next(&sub))
				if (strcmp(bson_iter_key(&sub), "code") == 0)
					code = (int32_t)iter_int64(&sub);
			if (code != BW_MONGO_DUPLICATE_KEY)
				return bw_err_set(err, BW_ERR_TRANSIENT,
						  "customer bulk update: write error code %d", code);
		}
	}
	if (bson_iter_init_find(&it, reply, "nMatched"))
		matched = iter_int64(&it);
	if (bson_iter_init_find(&it, reply, "nUpserted"))
		upserted = iter_int64(&it);
	if (matched + upserted == (int64_t)nops) {
		for (size_t i = 0; i < nops; i++)
			ops[i]->confirmed = 1;
		return 0;
	}
	if (bson_iter_init_find(&it, reply, "upserted") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &arr)) {
		while (bson_iter_next(&arr)) {
			if (!bson_iter_recurse(&arr, &sub))
				continue;
			while (bson_iter_next(&sub)) {
				int64_t i = strcmp(bson_iter_key(&sub), "index") == 0
						    ? iter_int64(&sub) : -1;
				if (i >= 0 && (size_t)i < nops)
					ops[i]->confirmed = 1;
			}
		}
	}
	return 0;
}

int bw_usage_store_write_orgs(struct bw_mongo *m, mongoc_client_t *client,
			      struct bw_org *const *orgs, size_t n, int64_t free_grant,
			      struct bw_err *err)
{
	bson_error_t error;
	bson_t reply = BSON_INITIALIZER;
	bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(false));
	/* validate:false: the update documents are built here from checked values; the driver's
	 * per-document validation was a tenth of the worker's CPU (docs/PERFORMANCE.md). */
	bson_t *upsert_opts = BCON_NEW("upsert", BCON_BOOL(true), "validate", BCON_BOOL(false));
	bson_t *update_opts = BCON_NEW("validate", BCON_BOOL(false));
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	mongoc_bulk_operation_t *bulk = NULL;
	struct bw_org **ops = calloc(n ? n : 1, sizeof(*ops));
	size_t nops = 0;
	int64_t now = bw_mongo_now_ms();
	int rc = -1;

	if (!ops) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
	for (size_t i = 0; i < n; i++) {
		bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
		if (!orgs[i]->dirty) {
			orgs[i]->confirmed = 1;
			continue;
		}
		build_update(orgs[i], free_grant, now, &filter, &update);
		int ok = mongoc_bulk_operation_update_one_with_opts(
			bulk, &filter, &update, orgs[i]->exists ? update_opts : upsert_opts, &error);
		bson_destroy(&filter);
		bson_destroy(&update);
		if (!ok) {
			bw_err_set(err, BW_ERR_TRANSIENT, "build bulk update: %s", error.message);
			goto done;
		}
		ops[nops++] = orgs[i];
	}
	if (nops == 0) {
		rc = 0;
		goto done;
	}
	bson_destroy(&reply);
	uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &error);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	bson_iter_t it;
	if (!ok && !(bson_iter_init_find(&it, &reply, "writeErrors"))) {
		bw_mongo_error(&error, "customer bulk update", err);
		if (err)
			err->kind = BW_ERR_TRANSIENT;
		goto done;
	}
	rc = settle_reply(&reply, ops, nops, err);
done:
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	free(ops);
	bson_destroy(bulk_opts);
	bson_destroy(upsert_opts);
	bson_destroy(update_opts);
	mongoc_collection_destroy(coll);
	return rc;
}

int bw_usage_store_insert_records(struct bw_mongo *m, mongoc_client_t *client,
				  bson_t *const *docs, size_t n, struct bw_err *err)
{
	bson_error_t error;
	bson_t reply;
	bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(false));
	/* Records are built from events that bw_json_check_storable() accepted. */
	bson_t *insert_opts = BCON_NEW("validate", BCON_BOOL(false));
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_USAGE_RECORDS);
	mongoc_bulk_operation_t *bulk = NULL;
	int rc = -1;

	bson_init(&reply);
	if (n == 0) {
		rc = 0;
		goto done;
	}
	bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
	for (size_t i = 0; i < n; i++) {
		if (!mongoc_bulk_operation_insert_with_opts(bulk, docs[i], insert_opts, &error)) {
			bw_err_set(err, BW_ERR_TRANSIENT, "build bulk insert: %s", error.message);
			goto done;
		}
	}
	bson_destroy(&reply);
	uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &error);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!ok) {
		bson_iter_t it, arr, sub;
		if (!bson_iter_init_find(&it, &reply, "writeErrors") ||
		    !bson_iter_recurse(&it, &arr)) {
			bw_mongo_error(&error, "usage record insert", err);
			if (err)
				err->kind = BW_ERR_TRANSIENT;
			goto done;
		}
		/* Duplicate keys mean "already recorded": fine. Anything else is not. */
		while (bson_iter_next(&arr)) {
			if (!bson_iter_recurse(&arr, &sub))
				continue;
			while (bson_iter_next(&sub))
				if (strcmp(bson_iter_key(&sub), "code") == 0 &&
				    iter_int64(&sub) != BW_MONGO_DUPLICATE_KEY) {
					bw_err_set(err, BW_ERR_TRANSIENT,
						   "usage record insert: write error code %lld",
						   (long long)iter_int64(&sub));
					goto done;
				}
		}
	}
	rc = 0;
done:
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	bson_destroy(insert_opts);
	bson_destroy(bulk_opts);
	mongoc_collection_destroy(coll);
	return rc;
}
