/* stripe_cache: see stripe_cache.h. */
#include "stripe_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "metrics.h"
#include "stripe_store.h"

/* Maps hold key -> JSON integer: >= 0 an index into recs / custs, -1 known absent, -2 (event
 * records) written by this batch in the pending bulk; a key that is missing is unknown
 * (look it up). Customer entries are batch-start copies used
 * only for the identity fields (org_id, stripe_customer_id), which the worker itself keeps
 * current (creation, link); decisions on the stored subscription or period re-read. */
struct bw_stripe_cache {
	struct bw_mongo *m;               /* borrowed */
	mongoc_client_t *client;          /* borrowed */
	json_t *rec_ix, *org_ix, *cus_ix;
	json_t *sid_ix; /* checkout session -> the original integration's ledger row id, or -1 */
	struct bw_stripe_rec *recs;
	size_t nrecs, rec_cap;
	struct bw_stripe_cust *custs;
	size_t ncusts, cust_cap;
	mongoc_collection_t *rec_coll;    /* of bulk */
	mongoc_bulk_operation_t *bulk;    /* the batch's event records, written by flush */
	size_t pending;
};

struct bw_stripe_cache *bw_stripe_cache_new(struct bw_mongo *m, mongoc_client_t *client)
{
	struct bw_stripe_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return NULL;
	cache->m = m;
	cache->client = client;
	cache->rec_ix = json_object();
	cache->org_ix = json_object();
	cache->cus_ix = json_object();
	cache->sid_ix = json_object();
	if (!cache->rec_ix || !cache->org_ix || !cache->cus_ix || !cache->sid_ix) {
		bw_stripe_cache_destroy(cache);
		return NULL;
	}
	return cache;
}

void bw_stripe_cache_destroy(struct bw_stripe_cache *cache)
{
	if (!cache)
		return;
	mongoc_bulk_operation_destroy(cache->bulk);
	mongoc_collection_destroy(cache->rec_coll);
	for (size_t i = 0; i < cache->nrecs; i++)
		bw_stripe_rec_cleanup(&cache->recs[i]);
	free(cache->recs);
	free(cache->custs);
	json_decref(cache->rec_ix);
	json_decref(cache->org_ix);
	json_decref(cache->cus_ix);
	json_decref(cache->sid_ix);
	free(cache);
}

/* Marks key wanted (null) unless already known. */
static int want_key(json_t *ix, const char *key)
{
	if (!key || json_object_get(ix, key))
		return 0;
	return json_object_set_new(ix, key, json_null());
}

int bw_stripe_cache_want(struct bw_stripe_cache *cache, const struct bw_stripe_event *ev)
{
	int rc = want_key(cache->rec_ix, ev->id);

	if (ev->kind != BW_SK_UNKNOWN) {
		rc |= want_key(cache->org_ix, ev->meta_org_id);
		rc |= want_key(cache->cus_ix, ev->customer_id);
	}
	if (ev->kind == BW_SK_CHECKOUT)
		rc |= want_key(cache->sid_ix, ev->object_id);
	return rc ? -1 : 0;
}

/* Appends the wanted (null) keys of ix to filter as {field: {$in: [...]}}; 0 when none. */
static size_t append_in(bson_t *filter, const char *field, json_t *ix)
{
	const char *key, *idx;
	json_t *v;
	char buf[16];
	bson_t doc, arr;
	uint32_t n = 0;

	BSON_APPEND_DOCUMENT_BEGIN(filter, field, &doc);
	BSON_APPEND_ARRAY_BEGIN(&doc, "$in", &arr);
	json_object_foreach(ix, key, v) {
		if (!json_is_null(v))
			continue;
		bson_uint32_to_string(n++, &idx, buf, sizeof(buf));
		BSON_APPEND_UTF8(&arr, idx, key);
	}
	bson_append_array_end(&doc, &arr);
	bson_append_document_end(filter, &doc);
	return n;
}

/* Runs one find and calls take(cache, doc) for every document. */
static int find_all(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		    const bson_t *filter, const char *omit, size_t expect,
		    int (*take)(struct bw_stripe_cache *, const bson_t *),
		    struct bw_stripe_cache *cache, struct bw_err *err)
{
	bson_error_t error;
	bson_t *opts = BCON_NEW("batchSize", BCON_INT64((int64_t)expect + 1));
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	mongoc_cursor_t *cur = NULL;
	const bson_t *doc;
	int rc = 0;

	if (omit)
		BCON_APPEND(opts, "projection", "{", omit, BCON_INT32(0), "}");
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (rc == 0 && mongoc_cursor_next(cur, &doc))
		if (take(cache, doc) != 0)
			rc = bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	if (rc == 0 && mongoc_cursor_error(cur, &error))
		rc = bw_mongo_error(&error, coll_name, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	bson_destroy(opts);
	return rc;
}

/* Makes room for one more element of size in *arr (n used of *cap). 0, or -1 (no memory;
 * *arr unchanged). Entries are bounded by the batch's keys (BATCH_MAX). */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t want = *cap ? 2 * *cap : 64;
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*arr, want * size);
	if (!p)
		return -1;
	*arr = p;
	*cap = want;
	return 0;
}

/* Appends r as the record of event id. */
static int add_rec(struct bw_stripe_cache *cache, const char *id, const struct bw_stripe_rec *r)
{
	if (grow((void **)&cache->recs, &cache->rec_cap, cache->nrecs, sizeof(*r)) != 0)
		return -1;
	cache->recs[cache->nrecs++] = *r;
	return json_object_set_new(cache->rec_ix, id, json_integer((json_int_t)cache->nrecs - 1));
}

/* An entry of the original integration's stripe_events: done, unless it says processed:
 * false (it failed, and Stripe re-sends the event to be applied). */
static int take_legacy(struct bw_stripe_cache *cache, const bson_t *doc)
{
	struct bw_stripe_rec r;
	char id[BW_STRIPE_ID_LEN];
	bson_iter_t it;

	bw_stripe_copy_utf8(doc, "stripe_event_id", id, sizeof(id));
	if (!id[0] || (bson_iter_init_find(&it, doc, "processed") && BSON_ITER_HOLDS_BOOL(&it) &&
		       !bson_iter_bool(&it)))
		return 0;
	memset(&r, 0, sizeof(r));
	r.found = 1;
	r.legacy = 1;
	snprintf(r.state, sizeof(r.state), "done");
	snprintf(r.status, sizeof(r.status), "applied");
	return add_rec(cache, id, &r);
}

/* A ledger row of a wanted session: a row whose _id is not ours was written by the
 * original integration, which credited that session. */
static int take_sid(struct bw_stripe_cache *cache, const bson_t *doc)
{
	char sid[BW_STRIPE_ID_LEN], row[BW_STRIPE_ID_LEN];
	bson_iter_t it;

	bw_stripe_copy_utf8(doc, "session_id", sid, sizeof(sid));
	if (!sid[0] || !bson_iter_init_find(&it, doc, "_id"))
		return 0;
	if (BSON_ITER_HOLDS_UTF8(&it) &&
	    strncmp(bson_iter_utf8(&it, NULL), BW_STRIPE_LEDGER_ID_PREFIX,
		    strlen(BW_STRIPE_LEDGER_ID_PREFIX)) == 0)
		return 0;
	if (BSON_ITER_HOLDS_OID(&it))
		bson_oid_to_string(bson_iter_oid(&it), row);
	else
		snprintf(row, sizeof(row), "(not an ObjectId)");
	return json_object_set_new(cache->sid_ix, sid, json_string(row));
}

static int take_rec(struct bw_stripe_cache *cache, const bson_t *doc)
{
	struct bw_stripe_rec r;
	char id[BW_STRIPE_ID_LEN];

	bw_stripe_copy_utf8(doc, "event_id", id, sizeof(id));
	bw_stripe_rec_from_doc(doc, &r);
	if (add_rec(cache, id, &r) != 0) {
		bw_stripe_rec_cleanup(&r);
		return -1;
	}
	return 0;
}

/* Adds (or replaces) a customer entry under its org and Stripe customer ids. */
int bw_stripe_cache_put_cust(struct bw_stripe_cache *cache, const struct bw_stripe_cust *c)
{
	json_t *old = json_object_get(cache->org_ix, c->org_id);
	json_int_t i;

	if (!c->found)
		return 0;
	if (json_is_integer(old) && json_integer_value(old) >= 0) {
		i = json_integer_value(old);
	} else {
		if (grow((void **)&cache->custs, &cache->cust_cap, cache->ncusts, sizeof(*c)) != 0)
			return -1;
		i = (json_int_t)cache->ncusts++;
	}
	cache->custs[i] = *c;
	cache->custs[i].fresh = 0;
	if (json_object_set_new(cache->org_ix, c->org_id, json_integer(i)) != 0)
		return -1;
	if (c->customer_id[0] &&
	    json_object_set_new(cache->cus_ix, c->customer_id, json_integer(i)) != 0)
		return -1;
	return 0;
}

static int take_cust(struct bw_stripe_cache *cache, const bson_t *doc)
{
	struct bw_stripe_cust c;

	bw_stripe_cust_from_doc(doc, &c);
	return c.org_id[0] ? bw_stripe_cache_put_cust(cache, &c) : 0;
}

/* Every key still wanted (null) after the load is absent. */
static void mark_absent(json_t *ix)
{
	const char *key;
	json_t *v;

	json_object_foreach(ix, key, v)
		if (json_is_null(v))
			json_object_set_new(ix, key, json_integer(-1));
}

int bw_stripe_cache_load(struct bw_stripe_cache *cache, struct bw_err *err)
{
	struct bw_mongo *m = cache->m;
	mongoc_client_t *client = cache->client;
	bson_t recs = BSON_INITIALIZER, custs = BSON_INITIALIZER, old = BSON_INITIALIZER;
	bson_t sids = BSON_INITIALIZER, arr, a, b;
	size_t nrecs, norgs, ncus, nsids;
	int rc = -1;

	nrecs = append_in(&recs, "event_id", cache->rec_ix);
	if (nrecs && find_all(m, client, BW_COLL_STRIPE_EVENTS, &recs, NULL, nrecs, take_rec,
			      cache, err) != 0)
		goto done;
	/* Events without a record of ours: did the original integration handle them? */
	nrecs = append_in(&old, "stripe_event_id", cache->rec_ix);
	if (nrecs && find_all(m, client, BW_COLL_OLD_STRIPE_EVENTS, &old, "data", nrecs,
			      take_legacy, cache, err) != 0)
		goto done;
	nsids = append_in(&sids, "session_id", cache->sid_ix);
	if (nsids && find_all(m, client, BW_COLL_CREDIT_TX, &sids, NULL, nsids, take_sid, cache,
			      err) != 0)
		goto done;
	BSON_APPEND_ARRAY_BEGIN(&custs, "$or", &arr);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &a);
	norgs = append_in(&a, "org_id", cache->org_ix);
	bson_append_document_end(&arr, &a);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &b);
	ncus = append_in(&b, "stripe_customer_id", cache->cus_ix);
	bson_append_document_end(&arr, &b);
	bson_append_array_end(&custs, &arr);
	if (norgs + ncus && find_all(m, client, BW_COLL_CUSTOMERS, &custs, BW_STRIPE_NO_SESSIONS,
				     norgs + ncus, take_cust, cache, err) != 0)
		goto done;
	mark_absent(cache->rec_ix);
	mark_absent(cache->org_ix);
	mark_absent(cache->cus_ix);
	mark_absent(cache->sid_ix);
	rc = 0;
done:
	if (rc != 0 && err->kind != BW_ERR_FATAL)
		err->kind = BW_ERR_TRANSIENT;
	bson_destroy(&recs);
	bson_destroy(&custs);
	bson_destroy(&old);
	bson_destroy(&sids);
	return rc;
}

/* 1 with *r filled (a copy: rec_cleanup) when the cache knows event_id, else 0. */
int bw_stripe_cache_rec(const struct bw_stripe_cache *cache, const char *event_id,
			struct bw_stripe_rec *r)
{
	json_t *v = json_object_get(cache->rec_ix, event_id);

	if (!json_is_integer(v) || json_integer_value(v) < -1)
		return 0;
	memset(r, 0, sizeof(*r));
	if (json_integer_value(v) >= 0) {
		*r = cache->recs[json_integer_value(v)];
		json_incref(r->details);
	}
	return 1;
}

/* Queues the event record in the batch's bulk write (bw_stripe_cache_flush). A repeat of
 * the event later in the batch flushes first and reads it back. */
int bw_stripe_cache_queue_rec(struct bw_stripe_cache *cache, const struct bw_stripe_event *ev,
			      const rd_kafka_message_t *msg, const struct bw_stripe_outcome *out,
			      int64_t attempts, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("event_id", BCON_UTF8(ev->id));
	bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
	bson_t update = BSON_INITIALIZER;
	bson_error_t error;
	int rc = 0;

	if (!cache->rec_coll)
		cache->rec_coll = bw_mongo_coll(cache->m, cache->client, BW_COLL_STRIPE_EVENTS);
	if (!cache->bulk)
		cache->bulk = mongoc_collection_create_bulk_operation_with_opts(cache->rec_coll,
										 NULL);
	bw_stripe_rec_update(ev, msg, out, attempts, &update);
	if (!mongoc_bulk_operation_update_one_with_opts(cache->bulk, filter, &update, opts,
							&error))
		rc = bw_err_set(err, BW_ERR_TRANSIENT, "event record %s: %s", ev->id,
				error.message);
	else if (json_object_set_new(cache->rec_ix, ev->id, json_integer(-2)) != 0)
		rc = bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	else
		cache->pending++;
	bson_destroy(&update);
	bson_destroy(opts);
	bson_destroy(filter);
	return rc;
}

int bw_stripe_cache_rec_pending(const struct bw_stripe_cache *cache, const char *event_id)
{
	json_t *v = json_object_get(cache->rec_ix, event_id);

	return json_is_integer(v) && json_integer_value(v) == -2;
}

int bw_stripe_cache_flush(struct bw_stripe_cache *cache, struct bw_err *err)
{
	bson_t reply;
	bson_error_t error;
	const char *key;
	void *tmp;
	json_t *v;
	int rc = 0;

	if (!cache->pending)
		return 0;
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	uint32_t ok = mongoc_bulk_operation_execute(cache->bulk, &reply, &error);
	/* A duplicate key is a concurrent insert of the same event: transient, the retry reads
	 * it. A write concern error or a failed execute behind an empty writeErrors: transient. */
	rc = bw_mongo_bulk_check(ok, &reply, &error, BW_ERR_TRANSIENT, 0, "write event records",
				 NULL, err);
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(cache->bulk);
	cache->bulk = NULL;
	cache->pending = 0;
	json_object_foreach_safe(cache->rec_ix, tmp, key, v)
		if (json_is_integer(v) && json_integer_value(v) == -2)
			json_object_del(cache->rec_ix, key);
	if (rc == 0)
		bw_fault_point("after_event_record");
	return rc;
}

/* 1 with *c filled (found or not) when the cache knows key in ix, else 0. */
static int cached_cust(const struct bw_stripe_cache *cache, json_t *ix, const char *key,
		       struct bw_stripe_cust *c)
{
	json_t *v = json_object_get(ix, key);

	if (!json_is_integer(v))
		return 0;
	memset(c, 0, sizeof(*c));
	if (json_integer_value(v) >= 0)
		*c = cache->custs[json_integer_value(v)];
	return 1;
}

int bw_stripe_cache_cust_by_org(const struct bw_stripe_cache *cache, const char *org_id,
				struct bw_stripe_cust *c)
{
	return cached_cust(cache, cache->org_ix, org_id, c);
}

int bw_stripe_cache_cust_by_customer(const struct bw_stripe_cache *cache,
				     const char *customer_id, struct bw_stripe_cust *c)
{
	return cached_cust(cache, cache->cus_ix, customer_id, c);
}

struct bw_mongo *bw_stripe_cache_mongo(const struct bw_stripe_cache *cache)
{
	return cache->m;
}

mongoc_client_t *bw_stripe_cache_client(const struct bw_stripe_cache *cache)
{
	return cache->client;
}

int bw_stripe_cache_old_credit(const struct bw_stripe_cache *cache, const char *sid, char *row,
			       size_t len)
{
	json_t *v = json_object_get(cache->sid_ix, sid);

	if (json_is_string(v)) {
		snprintf(row, len, "%s", json_string_value(v));
		return 1;
	}
	return json_is_integer(v) ? 0 : -1;
}
