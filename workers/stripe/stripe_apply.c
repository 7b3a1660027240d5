/* stripe_apply: see stripe_apply.h. One function per event kind; each reads the customer
 * document once, decides in memory, and writes with one guarded single-document update
 * whose filter re-checks the decision, so a concurrent or repeated writer cannot slip in
 * between the read and the write. */
#include "stripe_apply.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "metrics.h"

#define ID_LEN (BW_STRIPE_ID_MAX + 1)

/* What the worker reads of a payments_customers document. */
struct cust {
	int found;
	char org_id[ID_LEN], customer_id[ID_LEN];
	char sub_id[ID_LEN], sub_status[64], sub_event_id[ID_LEN];
	int64_t sub_created;             /* stripe_subscription_event_created */
	int has_sub_created;
	char reset_event_id[ID_LEN];     /* subscription_spus_reset_event_id */
	int64_t reset_ms;                /* subscription_spus_reset_period_start */
	int has_reset;
	int64_t period_ms;               /* stripe_current_billing_period_start */
	int has_period;
	int64_t purchased_credits, balance_version;
	int fresh;  /* read by this event (not a batch cache copy: identity fields only) */
};

/* What the worker reads of a payments_stripe_events document. */
struct rec {
	int found;
	char state[16], status[16], org_id[ID_LEN], reason[BW_DLQ_REASON_MAX];
	char source_topic[256];
	int64_t source_partition, source_offset, attempts;
	json_t *details;
};

const char *bw_stripe_status_name(enum bw_stripe_status st)
{
	static const char *const names[] = { "applied", "duplicate", "ignored",
					     "stale",   "deferred",  "rejected" };
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "unknown";
}

static int status_parse(const char *s, enum bw_stripe_status *out)
{
	for (int i = BW_SS_APPLIED; i <= BW_SS_REJECTED; i++)
		if (strcmp(s, bw_stripe_status_name((enum bw_stripe_status)i)) == 0) {
			*out = (enum bw_stripe_status)i;
			return 0;
		}
	return -1;
}

void bw_stripe_outcome_cleanup(struct bw_stripe_outcome *out)
{
	if (!out)
		return;
	json_decref(out->details);
	out->details = NULL;
}

/* ---- outcome helpers ---- */

static void outcome(struct bw_stripe_outcome *out, enum bw_stripe_status st, const char *fmt,
		    ...) __attribute__((format(printf, 3, 4)));

static void outcome(struct bw_stripe_outcome *out, enum bw_stripe_status st, const char *fmt,
		    ...)
{
	out->status = st;
	out->reason[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
		va_end(ap);
	}
	out->to_dlq = st == BW_SS_REJECTED;
}

static void detail_str(struct bw_stripe_outcome *out, const char *key, const char *v)
{
	if (v)
		json_object_set_new(out->details, key, json_string(v));
}

static void detail_int(struct bw_stripe_outcome *out, const char *key, int64_t v)
{
	json_object_set_new(out->details, key, json_integer((json_int_t)v));
}

static void want_tick(struct bw_stripe_outcome *out, const struct bw_stripe_event *ev,
		      const char *reason, int64_t attempt)
{
	snprintf(out->tick_reason, sizeof(out->tick_reason), "%s", reason);
	if (attempt > 0)
		snprintf(out->tick_id, sizeof(out->tick_id), "%s:%s:%" PRId64, ev->id, reason,
			 attempt);
	else
		snprintf(out->tick_id, sizeof(out->tick_id), "%s:%s", ev->id, reason);
	detail_str(out, "sync_tick_id", out->tick_id);
}

/* ---- BSON reading ---- */

static void copy_utf8(const bson_t *doc, const char *key, char *dst, size_t len)
{
	bson_iter_t it;

	dst[0] = '\0';
	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
		snprintf(dst, len, "%s", bson_iter_utf8(&it, NULL));
}

static json_t *subdoc_json(const bson_t *doc, const char *key)
{
	bson_iter_t it;
	const uint8_t *data = NULL;
	uint32_t len = 0;
	bson_t sub;
	char *text = NULL;
	json_t *j = NULL;

	if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
		return json_object();
	bson_iter_document(&it, &len, &data);
	if (bson_init_static(&sub, data, len))
		text = bson_as_relaxed_extended_json(&sub, NULL);
	if (text)
		j = json_loads(text, 0, NULL);
	bson_free(text);
	return json_is_object(j) ? j : (json_decref(j), json_object());
}

/* applied_sessions can hold STRIPE_APPLIED_SESSIONS_KEEP ids: customer reads that do not
 * need it leave it out (NO_SESSIONS as the projection). */
#define NO_SESSIONS "applied_sessions"

/* Finds one document of coll matching filter, without the field `omit` (NULL: all). *doc
 * is a new copy (bson_destroy) or NULL. */
static int find_one(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		    const bson_t *filter, const char *omit, bson_t **doc, struct bw_err *err)
{
	bson_error_t error;
	bson_t *opts = BCON_NEW("limit", BCON_INT64(1));

	if (omit)
		BCON_APPEND(opts, "projection", "{", omit, BCON_INT32(0), "}");
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *hit;
	int rc = 0;

	*doc = NULL;
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_cursor_next(cur, &hit))
		*doc = bson_copy(hit);
	else if (mongoc_cursor_error(cur, &error))
		rc = bw_mongo_error(&error, coll_name, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	bson_destroy(opts);
	return rc;
}

/* One update_one. *matched = matched + upserted documents. A duplicate key (an upsert
 * racing a creation) is CONFLICT, everything else TRANSIENT. */
static int update_one(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		      const bson_t *filter, const bson_t *update, int upsert, int64_t *matched,
		      struct bw_err *err)
{
	bson_error_t error;
	bson_t reply;
	bson_t *opts = upsert ? BCON_NEW("upsert", BCON_BOOL(true)) : NULL;
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	int64_t n = 0, u = 0;
	int rc = 0;

	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_collection_update_one(coll, filter, update, opts, &reply, &error)) {
		rc = bw_mongo_error(&error, coll_name, err);
	} else {
		bw_mongo_get_int64(&reply, "matchedCount", &n);
		bw_mongo_get_int64(&reply, "upsertedCount", &u);
		*matched = n + u;
	}
	bson_destroy(&reply);
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	return rc;
}

/* ---- customer documents ---- */

static void cust_from_doc(const bson_t *doc, struct cust *c)
{
	memset(c, 0, sizeof(*c));
	c->found = 1;
	c->fresh = 1;
	copy_utf8(doc, "org_id", c->org_id, sizeof(c->org_id));
	copy_utf8(doc, "stripe_customer_id", c->customer_id, sizeof(c->customer_id));
	copy_utf8(doc, "stripe_subscription_id", c->sub_id, sizeof(c->sub_id));
	copy_utf8(doc, "stripe_subscription_status", c->sub_status, sizeof(c->sub_status));
	copy_utf8(doc, "stripe_subscription_event_id", c->sub_event_id, sizeof(c->sub_event_id));
	c->has_sub_created = bw_mongo_get_int64(doc, "stripe_subscription_event_created", &c->sub_created);
	copy_utf8(doc, "subscription_spus_reset_event_id", c->reset_event_id,
		  sizeof(c->reset_event_id));
	c->has_reset = bw_mongo_get_int64(doc, "subscription_spus_reset_period_start", &c->reset_ms);
	c->has_period = bw_mongo_get_int64(doc, "stripe_current_billing_period_start",
					   &c->period_ms);
	bw_mongo_get_int64(doc, "purchased_credits", &c->purchased_credits);
	bw_mongo_get_int64(doc, "balance_version", &c->balance_version);
}

static int load_cust(struct bw_mongo *m, mongoc_client_t *client, const char *key,
		     const char *value, struct cust *c, struct bw_err *err)
{
	bson_t *filter = BCON_NEW(key, BCON_UTF8(value));
	bson_t *doc = NULL;
	int rc = find_one(m, client, BW_COLL_CUSTOMERS, filter, NO_SESSIONS, &doc, err);

	memset(c, 0, sizeof(*c));
	if (rc == 0 && doc)
		cust_from_doc(doc, c);
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* Creates the org's customer document if it is missing (the shared contract: $setOnInsert
 * of the fresh balances plus $inc balance_version), recording the Stripe customer id. One
 * findAndModify that returns the document into c (may be NULL), so no read follows. */
static int ensure_cust(struct bw_mongo *m, mongoc_client_t *client,
		       const struct bw_stripe_apply_cfg *cfg, const char *org_id,
		       const char *customer_id, struct cust *c, struct bw_err *err)
{
	int64_t now = bw_mongo_now_ms();
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id));
	bson_t *fields = BCON_NEW(NO_SESSIONS, BCON_INT32(0));
	bson_t update = BSON_INITIALIZER, soi, inc, set, reply;
	bson_iter_t it;
	bson_error_t error;
	mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	int rc = 0;

	BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
	BSON_APPEND_INT64(&soi, "granted_credits", cfg->free_grant);
	BSON_APPEND_INT64(&soi, "purchased_credits", 0);
	BSON_APPEND_INT64(&soi, "subscription_spu_allowance", 0);
	BSON_APPEND_UTF8(&soi, "subscription_type", "none");
	BSON_APPEND_DATE_TIME(&soi, "created_at", now);
	if (customer_id)
		BSON_APPEND_UTF8(&soi, "stripe_customer_id", customer_id);
	bson_append_document_end(&update, &soi);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
	BSON_APPEND_INT64(&inc, "balance_version", 1);
	bson_append_document_end(&update, &inc);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	bson_append_document_end(&update, &set);
	mongoc_find_and_modify_opts_set_update(fam, &update);
	mongoc_find_and_modify_opts_set_fields(fam, fields);
	mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_UPSERT |
						   MONGOC_FIND_AND_MODIFY_RETURN_NEW);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_collection_find_and_modify_with_opts(coll, filter, fam, &reply, &error)) {
		rc = bw_mongo_error(&error, "create customer", err);
		if (err->kind == BW_ERR_CONFLICT) /* created concurrently: read that one */
			rc = c ? load_cust(m, client, "org_id", org_id, c, err) : 0;
		else
			err->kind = BW_ERR_TRANSIENT;
	} else if (c) {
		const uint8_t *data = NULL;
		uint32_t len = 0;
		bson_t doc;

		memset(c, 0, sizeof(*c));
		if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
			bson_iter_document(&it, &len, &data);
			if (bson_init_static(&doc, data, len))
				cust_from_doc(&doc, c);
		}
		if (!c->found)
			rc = bw_err_set(err, BW_ERR_TRANSIENT, "customer %s: upsert returned no "
					"document", org_id);
	}
	bson_destroy(&reply);
	mongoc_collection_destroy(coll);
	mongoc_find_and_modify_opts_destroy(fam);
	bson_destroy(fields);
	bson_destroy(filter);
	bson_destroy(&update);
	return rc;
}

/* Sets the customer's Stripe id when the document has none yet (not a balance field), so
 * later events of that customer map without metadata. *matched: 1 when this set it. */
static int link_customer(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			 const char *customer_id, int64_t *matched, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id), "stripe_customer_id", "{",
				  "$exists", BCON_BOOL(false), "}");
	bson_t *update = BCON_NEW("$set", "{", "stripe_customer_id", BCON_UTF8(customer_id), "}");
	int rc = update_one(m, client, BW_COLL_CUSTOMERS, filter, update, 0, matched, err);

	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}

/* ---- payments_stripe_events ---- */

static void rec_cleanup(struct rec *r)
{
	json_decref(r->details);
	r->details = NULL;
}

static void rec_from_doc(const bson_t *doc, struct rec *r)
{
	memset(r, 0, sizeof(*r));
	r->found = 1;
	copy_utf8(doc, "state", r->state, sizeof(r->state));
	copy_utf8(doc, "status", r->status, sizeof(r->status));
	copy_utf8(doc, "org_id", r->org_id, sizeof(r->org_id));
	copy_utf8(doc, "reason", r->reason, sizeof(r->reason));
	copy_utf8(doc, "source_topic", r->source_topic, sizeof(r->source_topic));
	bw_mongo_get_int64(doc, "source_partition", &r->source_partition);
	bw_mongo_get_int64(doc, "source_offset", &r->source_offset);
	bw_mongo_get_int64(doc, "attempts", &r->attempts);
	r->details = subdoc_json(doc, "details");
}

static int load_rec(struct bw_mongo *m, mongoc_client_t *client, const char *event_id,
		    struct rec *r, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("event_id", BCON_UTF8(event_id));
	bson_t *doc = NULL;
	int rc = find_one(m, client, BW_COLL_STRIPE_EVENTS, filter, NULL, &doc, err);

	memset(r, 0, sizeof(*r));
	if (rc == 0 && doc)
		rec_from_doc(doc, r);
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* The upsert of the event record (state "done" with the outcome, or "waiting" with the
 * attempt count) into update (initialised by the caller). */
static void rec_update(const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
		       const struct bw_stripe_outcome *out, int64_t attempts, bson_t *update)
{
	int64_t now = bw_mongo_now_ms();
	bson_t set, soi;

	BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
	BSON_APPEND_UTF8(&set, "event_type", ev->type);
	BSON_APPEND_INT64(&set, "event_created", ev->created);
	BSON_APPEND_UTF8(&set, "state", out->waiting ? "waiting" : "done");
	BSON_APPEND_UTF8(&set, "status", out->waiting ? "waiting" : bw_stripe_status_name(out->status));
	if (out->org_id[0])
		BSON_APPEND_UTF8(&set, "org_id", out->org_id);
	if (ev->customer_id)
		BSON_APPEND_UTF8(&set, "stripe_customer_id", ev->customer_id);
	BSON_APPEND_UTF8(&set, "reason", out->reason);
	if (bw_mongo_append_json(&set, "details", out->details) != 0)
		BSON_APPEND_DOCUMENT(&set, "details", &(bson_t)BSON_INITIALIZER);
	BSON_APPEND_INT64(&set, "attempts", attempts);
	BSON_APPEND_UTF8(&set, "source_topic", rd_kafka_topic_name(msg->rkt));
	BSON_APPEND_INT64(&set, "source_partition", msg->partition);
	BSON_APPEND_INT64(&set, "source_offset", msg->offset);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	bson_append_document_end(update, &set);
	BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
	BSON_APPEND_DATE_TIME(&soi, "first_seen_at", now);
	bson_append_document_end(update, &soi);
}

/* Writes the event record now (no batch cache). Written after the effect, so its presence
 * means the effect is durable. */
static int write_rec(struct bw_mongo *m, mongoc_client_t *client,
		     const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
		     const struct bw_stripe_outcome *out, int64_t attempts, struct bw_err *err)
{
	int64_t matched = 0;
	bson_t *filter = BCON_NEW("event_id", BCON_UTF8(ev->id));
	bson_t update = BSON_INITIALIZER;
	int rc;

	rec_update(ev, msg, out, attempts, &update);
	rc = update_one(m, client, BW_COLL_STRIPE_EVENTS, filter, &update, 1, &matched, err);
	if (rc != 0 && err->kind == BW_ERR_CONFLICT) /* inserted concurrently: update it */
		rc = update_one(m, client, BW_COLL_STRIPE_EVENTS, filter, &update, 0, &matched, err);
	if (rc != 0)
		err->kind = BW_ERR_TRANSIENT;
	bson_destroy(filter);
	bson_destroy(&update);
	return rc;
}

/* ---- the batch cache ---- */

/* Maps hold key -> JSON integer: >= 0 an index into recs / custs, -1 known absent, -2 (event
 * records) written by this batch in the pending bulk; a key that is missing is unknown
 * (look it up). Customer entries are batch-start copies used
 * only for the identity fields (org_id, stripe_customer_id), which the worker itself keeps
 * current (creation, link); decisions on the stored subscription or period re-read. */
struct bw_stripe_cache {
	json_t *rec_ix, *org_ix, *cus_ix;
	struct rec *recs;
	size_t nrecs, rec_cap;
	struct cust *custs;
	size_t ncusts, cust_cap;
	mongoc_collection_t *rec_coll;    /* of bulk */
	mongoc_bulk_operation_t *bulk;    /* the batch's event records, written by flush */
	size_t pending;
};

struct bw_stripe_cache *bw_stripe_cache_new(void)
{
	struct bw_stripe_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return NULL;
	cache->rec_ix = json_object();
	cache->org_ix = json_object();
	cache->cus_ix = json_object();
	if (!cache->rec_ix || !cache->org_ix || !cache->cus_ix) {
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
		rec_cleanup(&cache->recs[i]);
	free(cache->recs);
	free(cache->custs);
	json_decref(cache->rec_ix);
	json_decref(cache->org_ix);
	json_decref(cache->cus_ix);
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

static int take_rec(struct bw_stripe_cache *cache, const bson_t *doc)
{
	struct rec *r;
	char id[ID_LEN];

	if (grow((void **)&cache->recs, &cache->rec_cap, cache->nrecs, sizeof(*r)) != 0)
		return -1;
	copy_utf8(doc, "event_id", id, sizeof(id));
	r = &cache->recs[cache->nrecs];
	rec_from_doc(doc, r);
	cache->nrecs++;
	return json_object_set_new(cache->rec_ix, id, json_integer((json_int_t)cache->nrecs - 1));
}

/* Adds (or replaces) a customer entry under its org and Stripe customer ids. */
static int cache_put_cust(struct bw_stripe_cache *cache, const struct cust *c)
{
	json_t *old = cache ? json_object_get(cache->org_ix, c->org_id) : NULL;
	json_int_t i;

	if (!cache || !c->found)
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
	struct cust c;

	cust_from_doc(doc, &c);
	return c.org_id[0] ? cache_put_cust(cache, &c) : 0;
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

int bw_stripe_cache_load(struct bw_stripe_cache *cache, struct bw_mongo *m,
			 mongoc_client_t *client, struct bw_err *err)
{
	bson_t recs = BSON_INITIALIZER, custs = BSON_INITIALIZER, arr, a, b;
	size_t nrecs, norgs, ncus;
	int rc = -1;

	nrecs = append_in(&recs, "event_id", cache->rec_ix);
	if (nrecs && find_all(m, client, BW_COLL_STRIPE_EVENTS, &recs, NULL, nrecs, take_rec,
			      cache, err) != 0)
		goto done;
	BSON_APPEND_ARRAY_BEGIN(&custs, "$or", &arr);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &a);
	norgs = append_in(&a, "org_id", cache->org_ix);
	bson_append_document_end(&arr, &a);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &b);
	ncus = append_in(&b, "stripe_customer_id", cache->cus_ix);
	bson_append_document_end(&arr, &b);
	bson_append_array_end(&custs, &arr);
	if (norgs + ncus && find_all(m, client, BW_COLL_CUSTOMERS, &custs, NO_SESSIONS,
				     norgs + ncus, take_cust, cache, err) != 0)
		goto done;
	mark_absent(cache->rec_ix);
	mark_absent(cache->org_ix);
	mark_absent(cache->cus_ix);
	rc = 0;
done:
	if (rc != 0 && err->kind != BW_ERR_FATAL)
		err->kind = BW_ERR_TRANSIENT;
	bson_destroy(&recs);
	bson_destroy(&custs);
	return rc;
}

/* 1 with *r filled (a copy: rec_cleanup) when the cache knows event_id, else 0. */
static int cached_rec(const struct bw_stripe_cache *cache, const char *event_id, struct rec *r)
{
	json_t *v = cache ? json_object_get(cache->rec_ix, event_id) : NULL;

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
static int queue_rec(struct bw_stripe_cache *cache, struct bw_mongo *m, mongoc_client_t *client,
		     const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
		     const struct bw_stripe_outcome *out, int64_t attempts, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("event_id", BCON_UTF8(ev->id));
	bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
	bson_t update = BSON_INITIALIZER;
	bson_error_t error;
	int rc = 0;

	if (!cache->rec_coll)
		cache->rec_coll = bw_mongo_coll(m, client, BW_COLL_STRIPE_EVENTS);
	if (!cache->bulk)
		cache->bulk = mongoc_collection_create_bulk_operation_with_opts(cache->rec_coll,
										 NULL);
	rec_update(ev, msg, out, attempts, &update);
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

static int rec_pending(const struct bw_stripe_cache *cache, const char *event_id)
{
	json_t *v = cache ? json_object_get(cache->rec_ix, event_id) : NULL;

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

	if (!cache || !cache->pending)
		return 0;
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_bulk_operation_execute(cache->bulk, &reply, &error)) {
		rc = bw_mongo_error(&error, "write event records", err);
		err->kind = BW_ERR_TRANSIENT; /* a concurrent insert too: the retry reads it */
	}
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
		       struct cust *c)
{
	json_t *v = cache ? json_object_get(ix, key) : NULL;

	if (!json_is_integer(v))
		return 0;
	memset(c, 0, sizeof(*c));
	if (json_integer_value(v) >= 0)
		*c = cache->custs[json_integer_value(v)];
	return 1;
}

/* ---- handlers ---- */

/* Appends `$or: [{field: {op: v}}, {field: {$exists: false}}]` to filter. */
static void append_or_missing(bson_t *filter, const char *field, const char *op, int64_t v)
{
	bson_t arr, a, b, cmp, ex;

	BSON_APPEND_ARRAY_BEGIN(filter, "$or", &arr);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &a);
	BSON_APPEND_DOCUMENT_BEGIN(&a, field, &cmp);
	BSON_APPEND_INT64(&cmp, op, v);
	bson_append_document_end(&a, &cmp);
	bson_append_document_end(&arr, &a);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &b);
	BSON_APPEND_DOCUMENT_BEGIN(&b, field, &ex);
	BSON_APPEND_BOOL(&ex, "$exists", false);
	bson_append_document_end(&b, &ex);
	bson_append_document_end(&arr, &b);
	bson_append_array_end(filter, &arr);
}

/* The credit step's filter: the session is not in the org's window of credited sessions,
 * and adding credits cannot overflow int64 (MongoDB's $inc would fail on every retry and
 * hold the partition; mongo-java-server even wraps silently). */
static bson_t *credit_filter(const char *org_id, const char *sid, int64_t credits)
{
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id), "applied_sessions", "{", "$ne",
				  BCON_UTF8(sid), "}");

	append_or_missing(filter, "purchased_credits", "$lte", INT64_MAX - credits);
	return filter;
}

/* The credit update: $inc purchased_credits and balance_version, and $push the session id
 * onto applied_sessions keeping only the last `keep` ids.
 *
 * Why a bounded window is safe: the ledger row (payments_credit_transactions, unique
 * checkout_session_id) is the durable "credited once" record, and apply_checkout checks its
 * state `applied` before it ever reaches this update. applied_sessions only guards the gap
 * between this update and marking the ledger row applied, i.e. a crash in between; the
 * redelivery after such a crash comes within seconds (session timeout plus backoff), long
 * before `keep` (STRIPE_APPLIED_SESSIONS_KEEP, default 1000) newer sessions of the same org
 * have been credited and pushed the id out. Unbounded, the array grows with every purchase
 * in a document every worker reads and rewrites. */
static bson_t *credit_update(const char *sid, int64_t credits, int64_t keep, int64_t now)
{
	return BCON_NEW("$inc", "{", "purchased_credits", BCON_INT64(credits), "balance_version",
			BCON_INT64(1), "}", "$push", "{", "applied_sessions", "{", "$each", "[",
			BCON_UTF8(sid), "]", "$slice", BCON_INT64(-keep), "}", "}", "$set", "{",
			"updated_at", BCON_DATE_TIME(now), "}");
}

/* The credit update missed: tells "already credited" (the session is in applied_sessions:
 * a crash between the credit and the ledger mark) from "would overflow" or a balance that is
 * not an integer (INVALID: the purchase can never be applied). 0 with *credited set, or -1
 * with err (INVALID, or TRANSIENT when the document changed under us: retry). */
static int credit_missed(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			 const char *sid, int64_t credits, int *credited, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id));
	bson_t *doc = NULL;
	bson_iter_t it, arr;
	int64_t have = 0;
	int rc = -1;

	*credited = 0;
	if (find_one(m, client, BW_COLL_CUSTOMERS, filter, NULL, &doc, err) != 0)
		goto done;
	if (!doc) {
		bw_err_set(err, BW_ERR_TRANSIENT, "customer %s vanished during the credit", org_id);
		goto done;
	}
	if (bson_iter_init_find(&it, doc, "applied_sessions") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &arr))
		while (!*credited && bson_iter_next(&arr))
			*credited = BSON_ITER_HOLDS_UTF8(&arr) &&
				    strcmp(bson_iter_utf8(&arr, NULL), sid) == 0;
	if (*credited) {
		rc = 0;
		goto done;
	}
	if (!bw_mongo_get_int64(doc, "purchased_credits", &have)) {
		bw_err_set(err, BW_ERR_INVALID, "purchased_credits of org %s is not an integer",
			   org_id);
		goto done;
	}
	if (have > INT64_MAX - credits) {
		bw_err_set(err, BW_ERR_INVALID, "purchased_credits %" PRId64 " + %" PRId64
			   " credits of session %s would overflow int64", have, credits, sid);
		goto done;
	}
	bw_err_set(err, BW_ERR_TRANSIENT, "credit of session %s missed; retrying", sid);
done:
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* Credits a paid checkout session once per session id:
 *   1. ledger row {checkout_session_id (unique), org_id, credits, event_id, state pending}
 *      (a duplicate key means another event of the session got there: its row rules);
 *   2. customer $inc purchased_credits, guarded by applied_sessions $ne sid and the
 *      overflow bound, and $push sid (credit_update: a bounded window);
 *   3. ledger row state applied.
 * A crash after 1 redoes 2 (guarded); after 2 the guard misses and 3 is redone; after 3
 * nothing is redone. Two workers at once: one insert wins, both run 2, one matches. A
 * credit that would overflow is rejected (DLQ) and its ledger row marked `rejected`. */
static int apply_checkout(struct bw_mongo *m, mongoc_client_t *client,
			  const struct bw_stripe_apply_cfg *cfg, const struct bw_stripe_event *ev,
			  struct bw_stripe_outcome *out, struct bw_err *err)
{
	const char *sid = ev->object_id;
	int64_t now = bw_mongo_now_ms(), matched = 0, credits = ev->credits;
	bson_t *row = BCON_NEW("checkout_session_id", BCON_UTF8(sid), "org_id",
			       BCON_UTF8(out->org_id), "credits", BCON_INT64(ev->credits),
			       "event_id", BCON_UTF8(ev->id), "state", BCON_UTF8("pending"),
			       "created_at", BCON_DATE_TIME(now));
	bson_t *by_sid = BCON_NEW("checkout_session_id", BCON_UTF8(sid));
	bson_t *filter = NULL, *update = NULL, *doc = NULL;
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CREDIT_TX);
	bson_error_t error;
	char row_org[ID_LEN], row_event[ID_LEN], row_state[16];
	int rc = -1, credited = 0, other_org;

	if (ev->customer_id)
		BSON_APPEND_UTF8(row, "stripe_customer_id", ev->customer_id);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_collection_insert_one(coll, row, NULL, NULL, &error)) {
		/* Inserted: the row is ours, as written (no read back). */
		snprintf(row_org, sizeof(row_org), "%s", out->org_id);
		snprintf(row_event, sizeof(row_event), "%s", ev->id);
		snprintf(row_state, sizeof(row_state), "pending");
	} else if (error.code != BW_MONGO_DUPLICATE_KEY) {
		bw_mongo_error(&error, "insert credit transaction", err);
		goto done;
	} else {
		if (find_one(m, client, BW_COLL_CREDIT_TX, by_sid, NULL, &doc, err) != 0)
			goto done;
		if (!doc) {
			bw_err_set(err, BW_ERR_TRANSIENT, "credit transaction %s vanished", sid);
			goto done;
		}
		/* The stored row is authoritative: the first event of the session decided it. */
		copy_utf8(doc, "org_id", row_org, sizeof(row_org));
		copy_utf8(doc, "event_id", row_event, sizeof(row_event));
		copy_utf8(doc, "state", row_state, sizeof(row_state));
		bw_mongo_get_int64(doc, "credits", &credits);
	}
	bw_fault_point("checkout_after_ledger");
	other_org = strcmp(row_org, out->org_id) != 0;
	snprintf(out->org_id, sizeof(out->org_id), "%s", row_org);
	detail_str(out, "checkout_session_id", sid);
	detail_int(out, "credits", credits);
	if (strcmp(row_state, "applied") != 0) {
		if (other_org && ensure_cust(m, client, cfg, row_org, NULL, NULL, err) != 0)
			goto done;
		filter = credit_filter(row_org, sid, credits);
		update = credit_update(sid, credits, cfg->applied_sessions_keep, now);
		if (update_one(m, client, BW_COLL_CUSTOMERS, filter, update, 0, &matched, err) != 0)
			goto done;
		if (matched == 0 && credit_missed(m, client, row_org, sid, credits, &credited,
						  err) != 0) {
			if (err->kind != BW_ERR_INVALID)
				goto done;
			outcome(out, BW_SS_REJECTED, "%s", err->msg);
			bw_err_clear(err);
			bson_destroy(update);
			update = BCON_NEW("$set", "{", "state", BCON_UTF8("rejected"), "reason",
					  BCON_UTF8(out->reason), "}");
			if (update_one(m, client, BW_COLL_CREDIT_TX, by_sid, update, 0, &matched,
				       err) != 0)
				goto done;
			rc = 0;
			goto done;
		}
		bw_fault_point("checkout_after_credit");
		bson_destroy(update);
		update = BCON_NEW("$set", "{", "state", BCON_UTF8("applied"), "applied_at",
				  BCON_DATE_TIME(now), "}");
		if (update_one(m, client, BW_COLL_CREDIT_TX, by_sid, update, 0, &matched, err) != 0)
			goto done;
		bw_fault_point("checkout_after_ledger_applied");
	}
	if (strcmp(row_event, ev->id) == 0)
		outcome(out, BW_SS_APPLIED, NULL);
	else {
		outcome(out, BW_SS_DUPLICATE, "checkout session already credited by event %s",
			row_event);
		detail_str(out, "credited_by_event_id", row_event);
	}
	rc = 0;
done:
	mongoc_collection_destroy(coll);
	bson_destroy(row);
	bson_destroy(by_sid);
	bson_destroy(filter);
	bson_destroy(update);
	bson_destroy(doc);
	return rc;
}

/* Tier and allowance of the subscription's price: its metadata, else payments_prices. */
static int price_plan(struct bw_mongo *m, mongoc_client_t *client,
		      const struct bw_stripe_event *ev, char *tier, size_t tier_len,
		      int64_t *allowance, struct bw_err *err)
{
	bson_t *filter = NULL, *doc = NULL;
	int rc = 0;

	snprintf(tier, tier_len, "%s", ev->tier ? ev->tier : "unknown");
	*allowance = ev->has_included_spus ? ev->included_spus : 0;
	if ((ev->tier && ev->has_included_spus) || !ev->price_id)
		return 0;
	filter = BCON_NEW("price_id", BCON_UTF8(ev->price_id));
	rc = find_one(m, client, BW_COLL_PRICES, filter, NULL, &doc, err);
	if (rc == 0 && doc) {
		bson_iter_t it, sub;
		char t[64];
		int64_t n;
		copy_utf8(doc, "tier", t, sizeof(t));
		if (!t[0] && bson_iter_init_find(&it, doc, "metadata") &&
		    BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
		    bson_iter_find(&sub, "tier") && BSON_ITER_HOLDS_UTF8(&sub))
			snprintf(t, sizeof(t), "%s", bson_iter_utf8(&sub, NULL));
		if (!ev->tier && t[0])
			snprintf(tier, tier_len, "%s", t);
		if (!ev->has_included_spus && bw_mongo_get_int64(doc, "included_spus", &n) && n >= 0)
			*allowance = n;
	}
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* Decides a subscription event against the stored state without writing: 1 when the
 * outcome is settled (replay, stale, same second), 0 when the write should go ahead. */
static int sub_settled(const struct cust *c, const struct bw_stripe_event *ev,
		       struct bw_stripe_outcome *out)
{
	if (!c->has_sub_created)
		return 0;
	if (strcmp(c->sub_event_id, ev->id) == 0) {
		outcome(out, BW_SS_APPLIED, NULL); /* our own earlier, unrecorded write */
		return 1;
	}
	if (c->sub_created > ev->created) {
		outcome(out, BW_SS_STALE, "a newer subscription event (created %" PRId64
			") is stored", c->sub_created);
		return 1;
	}
	if (c->sub_created == ev->created) {
		outcome(out, BW_SS_DEFERRED, "stored subscription state has the same created "
			"second: the Stripe API settles it");
		want_tick(out, ev, "subscription_same_second", 0);
		return 1;
	}
	return 0;
}

/* The subscription ordering guard: stored event created older than this one, or none. */
static void append_order_guard(bson_t *filter, int64_t created)
{
	append_or_missing(filter, "stripe_subscription_event_created", "$lt", created);
}

static int apply_subscription(struct bw_mongo *m, mongoc_client_t *client,
			      const struct bw_stripe_event *ev, const struct cust *c,
			      struct bw_stripe_outcome *out, struct bw_err *err)
{
	int deleted = ev->kind == BW_SK_SUB_DELETED;
	int64_t now = bw_mongo_now_ms(), matched = 0, allowance = 0;
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, inc;
	struct cust again;
	char tier[64];
	int rc = -1;

	detail_str(out, "subscription_id", ev->subscription_id);
	if (sub_settled(c, ev, out)) {
		rc = 0;
		goto done;
	}
	if (deleted && strcmp(c->sub_id, ev->subscription_id) != 0) {
		outcome(out, BW_SS_STALE, "deleted subscription is not the org's current one (%s)",
			c->sub_id[0] ? c->sub_id : "none");
		rc = 0;
		goto done;
	}
	if (!deleted && strcmp(c->sub_id, ev->subscription_id) == 0 &&
	    bw_stripe_status_backwards(c->sub_status, ev->sub_status)) {
		/* Stripe's lifecycle does not go back: the order is in doubt, ask the API. */
		outcome(out, BW_SS_DEFERRED, "subscription status would go back from %s to %s",
			c->sub_status, ev->sub_status);
		want_tick(out, ev, "subscription_status_backwards", 0);
		rc = 0;
		goto done;
	}
	if (!deleted && price_plan(m, client, ev, tier, sizeof(tier), &allowance, err) != 0)
		goto done;
	BSON_APPEND_UTF8(&filter, "org_id", out->org_id);
	if (deleted)
		BSON_APPEND_UTF8(&filter, "stripe_subscription_id", ev->subscription_id);
	append_order_guard(&filter, ev->created);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_UTF8(&set, "subscription_type", deleted ? "none" : tier);
	BSON_APPEND_INT64(&set, "subscription_spu_allowance", deleted ? 0 : allowance);
	BSON_APPEND_UTF8(&set, "stripe_subscription_status", deleted ? "canceled" : ev->sub_status);
	if (!deleted) {
		BSON_APPEND_UTF8(&set, "stripe_subscription_id", ev->subscription_id);
		if (ev->has_period) {
			BSON_APPEND_DATE_TIME(&set, "stripe_current_billing_period_start",
					      ev->period_start * 1000);
			BSON_APPEND_DATE_TIME(&set, "stripe_current_billing_period_end",
					      ev->period_end * 1000);
		}
	}
	BSON_APPEND_INT64(&set, "stripe_subscription_event_created", ev->created);
	BSON_APPEND_UTF8(&set, "stripe_subscription_event_id", ev->id);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	bson_append_document_end(&update, &set);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
	BSON_APPEND_INT64(&inc, "balance_version", 1);
	bson_append_document_end(&update, &inc);
	if (update_one(m, client, BW_COLL_CUSTOMERS, &filter, &update, 0, &matched, err) != 0)
		goto done;
	if (matched == 1) {
		outcome(out, BW_SS_APPLIED, NULL);
		if (!deleted) {
			detail_str(out, "subscription_type", tier);
			detail_int(out, "subscription_spu_allowance", allowance);
		}
		detail_str(out, "stripe_subscription_status", deleted ? "canceled" : ev->sub_status);
		rc = 0;
		goto done;
	}
	/* The guard missed: someone stored a newer (or the same-second) state meanwhile. */
	if (load_cust(m, client, "org_id", out->org_id, &again, err) != 0)
		goto done;
	if (!sub_settled(&again, ev, out))
		outcome(out, BW_SS_STALE, "deleted subscription is no longer the org's current one");
	rc = 0;
done:
	bson_destroy(&filter);
	bson_destroy(&update);
	return rc;
}

/* Resets subscription_spus_used once per billing period: the filter requires the stored
 * reset marker (subscription_spus_reset_period_start) to be older than the period the
 * invoice opens, so a replay or the second invoice event (paid + payment_succeeded) of the
 * same period matches nothing. The marker is separate from
 * stripe_current_billing_period_start because customer.subscription.updated moves that one
 * to the new period too, often before the invoice arrives. */
static int apply_invoice(struct bw_mongo *m, mongoc_client_t *client,
			 const struct bw_stripe_event *ev, const struct cust *c,
			 struct bw_stripe_outcome *out, struct bw_err *err)
{
	int64_t now = bw_mongo_now_ms(), matched = 0, start_ms = ev->period_start * 1000;
	bson_t *filter = NULL, *update = NULL;
	struct cust again;
	int rc = -1;

	detail_str(out, "invoice_id", ev->object_id);
	detail_str(out, "subscription_id", ev->subscription_id);
	detail_int(out, "period_start", ev->period_start);
	if (strcmp(c->reset_event_id, ev->id) == 0) {
		outcome(out, BW_SS_APPLIED, NULL);
		rc = 0;
		goto done;
	}
	if (strcmp(c->sub_id, ev->subscription_id) != 0) {
		outcome(out, BW_SS_DEFERRED, "invoice subscription is not the org's current one (%s)",
			c->sub_id[0] ? c->sub_id : "none");
		want_tick(out, ev, "invoice_for_unknown_subscription", 0);
		rc = 0;
		goto done;
	}
	/* Besides the marker, the stored period must not be newer than the invoice's: a late
	 * invoice of an older period, before any marker exists, would otherwise wipe the
	 * current period's usage and move the period back. */
	filter = BCON_NEW("org_id", BCON_UTF8(out->org_id), "stripe_subscription_id",
			  BCON_UTF8(ev->subscription_id), "$and", "[", "{", "$or", "[", "{",
			  "subscription_spus_reset_period_start", "{", "$lt",
			  BCON_DATE_TIME(start_ms), "}", "}", "{",
			  "subscription_spus_reset_period_start", "{", "$exists", BCON_BOOL(false),
			  "}", "}", "]", "}", "{", "$or", "[", "{",
			  "stripe_current_billing_period_start", "{", "$lte",
			  BCON_DATE_TIME(start_ms), "}", "}", "{",
			  "stripe_current_billing_period_start", "{", "$exists", BCON_BOOL(false),
			  "}", "}", "]", "}", "]");
	update = BCON_NEW("$set", "{", "subscription_spus_used", BCON_INT64(0),
			  "subscription_spus_reset_period_start", BCON_DATE_TIME(start_ms),
			  "subscription_spus_reset_event_id", BCON_UTF8(ev->id),
			  "subscription_spus_reset_invoice_id", BCON_UTF8(ev->object_id),
			  "stripe_current_billing_period_start", BCON_DATE_TIME(start_ms),
			  "stripe_current_billing_period_end", BCON_DATE_TIME(ev->period_end * 1000),
			  "updated_at", BCON_DATE_TIME(now), "}", "$inc", "{", "balance_version",
			  BCON_INT64(1), "}");
	if (update_one(m, client, BW_COLL_CUSTOMERS, filter, update, 0, &matched, err) != 0)
		goto done;
	if (matched == 1) {
		outcome(out, BW_SS_APPLIED, NULL);
		detail_int(out, "subscription_spus_used", 0);
		rc = 0;
		goto done;
	}
	if (load_cust(m, client, "org_id", out->org_id, &again, err) != 0)
		goto done;
	if (strcmp(again.reset_event_id, ev->id) == 0)
		outcome(out, BW_SS_APPLIED, NULL);
	else if ((again.has_reset && again.reset_ms > start_ms) ||
		 (again.has_period && again.period_ms > start_ms))
		outcome(out, BW_SS_STALE, "a newer billing period is already stored");
	else
		outcome(out, BW_SS_DUPLICATE, "usage of this billing period was already reset "
			"(by event %s)", again.reset_event_id[0] ? again.reset_event_id : "?");
	rc = 0;
done:
	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}

/* ---- one event ---- */

/* Replays the stored outcome of an event already done. Same Kafka message (a crash or a
 * rewound batch after the record was written): the original outcome; another copy of the
 * event: duplicate. */
static void from_record(const struct rec *r, const rd_kafka_message_t *msg,
			struct bw_stripe_outcome *out)
{
	enum bw_stripe_status st = BW_SS_APPLIED;
	int same = strcmp(r->source_topic, rd_kafka_topic_name(msg->rkt)) == 0 &&
		   r->source_partition == msg->partition && r->source_offset == msg->offset;

	snprintf(out->org_id, sizeof(out->org_id), "%s", r->org_id);
	if (status_parse(r->status, &st) != 0)
		st = BW_SS_APPLIED;
	if (same) {
		json_decref(out->details);
		out->details = json_deep_copy(r->details);
		outcome(out, st, "%s", r->reason);
		return;
	}
	outcome(out, BW_SS_DUPLICATE, "event already processed (%s)", r->status);
	detail_str(out, "original_status", r->status);
}

/* Whether the event needs the org (and its customer document) to be applied. Events
 * that are settled without it get their outcome here. */
static int needs_org(const struct bw_stripe_event *ev, struct bw_stripe_outcome *out)
{
	switch (ev->kind) {
	case BW_SK_UNKNOWN:
		outcome(out, BW_SS_IGNORED, "event type not handled");
		return 0;
	case BW_SK_CHECKOUT:
		detail_str(out, "checkout_session_id", ev->object_id);
		if (!ev->mode || strcmp(ev->mode, "payment") != 0) {
			outcome(out, BW_SS_IGNORED, "checkout mode %s is not a credit purchase",
				ev->mode ? ev->mode : "(none)");
			return 0;
		}
		if (!bw_stripe_checkout_is_paid(ev)) {
			outcome(out, BW_SS_DEFERRED, "payment_status %s: waiting for "
				"checkout.session.async_payment_succeeded",
				ev->payment_status ? ev->payment_status : "(none)");
			return 0;
		}
		return 1;
	case BW_SK_SUB_UPSERT:
	case BW_SK_SUB_DELETED:
		return 1;
	case BW_SK_INVOICE_PAID:
		if (!bw_stripe_invoice_opens_period(ev)) {
			outcome(out, BW_SS_IGNORED, "billing_reason %s does not open a period",
				ev->billing_reason ? ev->billing_reason : "(none)");
			return 0;
		}
		if (!ev->subscription_id || !ev->has_period) {
			outcome(out, BW_SS_REJECTED, "invoice opens a period but has no %s",
				ev->subscription_id ? "period" : "subscription");
			return 0;
		}
		return 1;
	case BW_SK_INVOICE_CREATED:
		return 0; /* handled by the caller: a tick, with the org when known */
	}
	return 0;
}

/* Finds the org's customer document: metadata.org_id first (creating the document when
 * new), else the Stripe customer id mapping; from the batch cache when it knows (then
 * c->fresh = 0: identity fields only). c->found = 0 when neither works. */
static int resolve_org(struct bw_mongo *m, mongoc_client_t *client,
		       const struct bw_stripe_apply_cfg *cfg, struct bw_stripe_cache *cache,
		       const struct bw_stripe_event *ev, struct cust *c, struct bw_err *err)
{
	int64_t linked = 0;

	memset(c, 0, sizeof(*c));
	if (ev->meta_org_id) {
		if (!cached_cust(cache, cache ? cache->org_ix : NULL, ev->meta_org_id, c) &&
		    load_cust(m, client, "org_id", ev->meta_org_id, c, err) != 0)
			return -1;
		if (!c->found) {
			if (ensure_cust(m, client, cfg, ev->meta_org_id, ev->customer_id, c, err) != 0)
				return -1;
		} else if (ev->customer_id && !c->customer_id[0]) {
			if (link_customer(m, client, c->org_id, ev->customer_id, &linked, err) != 0)
				return -1;
			if (linked == 1)
				snprintf(c->customer_id, sizeof(c->customer_id), "%s", ev->customer_id);
		}
		if (cache_put_cust(cache, c) != 0)
			return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		return 0;
	}
	if (ev->customer_id && !cached_cust(cache, cache ? cache->cus_ix : NULL, ev->customer_id,
					     c))
		return load_cust(m, client, "stripe_customer_id", ev->customer_id, c, err);
	return 0;
}

/* The customer is unknown and the event names no org: wait (a customer sync tick, and the
 * batch is retried with backoff) up to cfg->unknown_customer_retries times, then DLQ. */
static void unknown_customer(const struct bw_stripe_apply_cfg *cfg,
			     const struct bw_stripe_event *ev, const struct rec *r,
			     struct bw_stripe_outcome *out, int64_t *attempts)
{
	*attempts = (r->found && strcmp(r->state, "waiting") == 0 ? r->attempts : 0) + 1;
	if (!ev->customer_id) {
		outcome(out, BW_SS_REJECTED, "event has neither metadata.org_id nor a customer");
		return;
	}
	detail_str(out, "stripe_customer_id", ev->customer_id);
	detail_int(out, "attempts", *attempts);
	if (*attempts > cfg->unknown_customer_retries) {
		outcome(out, BW_SS_REJECTED, "unknown Stripe customer %s after %" PRId64
			" attempts, no metadata.org_id", ev->customer_id, *attempts);
		return;
	}
	outcome(out, BW_SS_DEFERRED, "unknown Stripe customer %s: waiting for the customer sync",
		ev->customer_id);
	out->waiting = 1;
	want_tick(out, ev, "unknown_customer", *attempts);
}

int bw_stripe_apply(struct bw_mongo *m, mongoc_client_t *client,
		    const struct bw_stripe_apply_cfg *cfg, struct bw_stripe_cache *cache,
		    const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
		    struct bw_stripe_outcome *out, struct bw_err *err)
{
	struct rec r;
	struct cust c;
	int64_t attempts = 0;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	if (!out->details)
		out->details = json_object();
	if (!out->details)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	memset(&r, 0, sizeof(r));
	if (rec_pending(cache, ev->id) && bw_stripe_cache_flush(cache, err) != 0)
		goto done;
	if (!cached_rec(cache, ev->id, &r) && load_rec(m, client, ev->id, &r, err) != 0)
		goto done;
	if (r.found && strcmp(r.state, "done") == 0) {
		from_record(&r, msg, out);
		rc = 0;
		goto done; /* nothing to write: the record already says it all */
	}
	if (ev->meta_org_id)
		snprintf(out->org_id, sizeof(out->org_id), "%s", ev->meta_org_id);
	if (ev->kind == BW_SK_INVOICE_CREATED) {
		/* A fresh API read of the customer; the org helps the sync worker if known. */
		if (!ev->meta_org_id && resolve_org(m, client, cfg, cache, ev, &c, err) != 0)
			goto done;
		if (c.found)
			snprintf(out->org_id, sizeof(out->org_id), "%s", c.org_id);
		outcome(out, BW_SS_APPLIED, NULL);
		want_tick(out, ev, "invoice_created", 0);
	} else if (needs_org(ev, out)) {
		if (resolve_org(m, client, cfg, cache, ev, &c, err) != 0)
			goto done;
		/* Subscription and invoice decisions need the stored state as of now. */
		if (c.found && !c.fresh && ev->kind != BW_SK_CHECKOUT &&
		    load_cust(m, client, "org_id", c.org_id, &c, err) != 0)
			goto done;
		if (!c.found) {
			unknown_customer(cfg, ev, &r, out, &attempts);
		} else {
			snprintf(out->org_id, sizeof(out->org_id), "%s", c.org_id);
			if (ev->kind == BW_SK_CHECKOUT)
				rc = apply_checkout(m, client, cfg, ev, out, err);
			else if (ev->kind == BW_SK_INVOICE_PAID)
				rc = apply_invoice(m, client, ev, &c, out, err);
			else
				rc = apply_subscription(m, client, ev, &c, out, err);
			if (rc != 0)
				goto done;
			rc = -1;
		}
	}
	if (cache) {
		if (queue_rec(cache, m, client, ev, msg, out, attempts, err) != 0)
			goto done;
	} else {
		if (write_rec(m, client, ev, msg, out, attempts, err) != 0)
			goto done;
		bw_fault_point("after_event_record");
	}
	rc = 0;
done:
	rec_cleanup(&r);
	return rc;
}
