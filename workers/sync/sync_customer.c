/* sync_customer: see sync_customer.h. */
#include "sync_customer.h"

#include <stdlib.h>
#include <string.h>

#include "customer_doc.h"
#include "log.h"
#include "metrics.h"
#include "sync_prices.h"

#define WRITE_ATTEMPTS 20
#define MAX_LISTED_ERRORS 20

/* What the customer document holds now. */
struct doc_state {
	int exists;
	int has_version;
	int64_t version;
	char *org_id, *stripe_customer_id, *subscription_type;
	int64_t allowance;
	struct bw_period_stored periods;  /* reset marker and stored period (milliseconds) */
	int enterprise;          /* subscription_type or organizations.type is "enterprise" */
	int64_t customers_deleted; /* stripe_customers_deleted: Stripe customers of the org deleted */
	int has_sub_created;
	int64_t sub_created;     /* stripe_subscription_event_created, unix seconds */
};

static void doc_state_cleanup(struct doc_state *d)
{
	free(d->org_id);
	free(d->stripe_customer_id);
	free(d->subscription_type);
	memset(d, 0, sizeof(*d));
}

static char *dup_str(const bson_t *doc, const char *key)
{
	bson_iter_t it;
	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)) {
		const char *s = bson_iter_utf8(&it, NULL);
		return *s ? strdup(s) : NULL;
	}
	return NULL;
}

/* A stored time in milliseconds: a date, or (as the original integration wrote
 * stripe_current_billing_period_*) unix seconds as a number. */
static int get_time_ms(const bson_t *doc, const char *key, int64_t *out)
{
	bson_iter_t it;

	if (!bw_mongo_get_int64(doc, key, out))
		return 0;
	if (bson_iter_init_find(&it, doc, key) && !BSON_ITER_HOLDS_DATE_TIME(&it) &&
	    *out < INT64_C(100000000000) && *out > -INT64_C(100000000000))
		*out *= 1000;
	return 1;
}

/* Loads the document matching key=value into d. 0, or -1 with err (TRANSIENT). */
static int load_doc(mongoc_collection_t *coll, const char *key, const char *value,
		    struct doc_state *d, struct bw_err *err)
{
	bson_t *filter = BCON_NEW(key, BCON_UTF8(value));
	bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t error;
	int rc = 0;

	doc_state_cleanup(d);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_cursor_next(cur, &doc)) {
		d->exists = 1;
		d->org_id = dup_str(doc, "org_id");
		d->stripe_customer_id = dup_str(doc, "stripe_customer_id");
		d->subscription_type = dup_str(doc, "subscription_type");
		d->has_version = bw_mongo_get_int64(doc, "balance_version", &d->version);
		bw_mongo_get_int64(doc, "subscription_spu_allowance", &d->allowance);
		d->periods.has_period = get_time_ms(doc, "stripe_current_billing_period_start",
						    &d->periods.period_ms);
		d->periods.has_reset = get_time_ms(doc, "subscription_spus_reset_period_start",
						   &d->periods.reset_ms);
		d->enterprise = bw_sub_policy_is_enterprise_type(d->subscription_type);
		bw_mongo_get_int64(doc, "stripe_customers_deleted", &d->customers_deleted);
		d->has_sub_created = bw_mongo_get_int64(doc, "stripe_subscription_event_created",
							&d->sub_created);
	}
	if (mongoc_cursor_error(cur, &error))
		rc = bw_mongo_error(&error, "load customer", err);
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(filter);
	return rc;
}

static int64_t matched_count(const bson_t *reply)
{
	int64_t matched, upserted;

	bw_mongo_get_int64(reply, "matchedCount", &matched);
	bw_mongo_get_int64(reply, "upsertedCount", &upserted);
	return matched + upserted;
}

/* What one write of the org's document carries. */
struct write_req {
	const char *cus;                 /* the Stripe customer */
	const struct bw_sub_state *st;   /* NULL: only stripe_customer_id */
	int64_t read_s;                  /* Stripe's clock when st was read */
	int cus_deleted;                 /* Stripe says the customer is deleted: clear its id */
	int64_t free_grant;
};

/* The subscription part of the update: st under the shared policy. */
static void append_sub(bson_t *set, const struct write_req *w, const struct doc_state *d,
		       int *balance_changed)
{
	const struct bw_sub_state *st = w->st;

	BSON_APPEND_UTF8(set, "subscription_type", st->subscription_type);
	BSON_APPEND_INT64(set, "subscription_spu_allowance", st->allowance);
	if (!d->subscription_type || strcmp(d->subscription_type, st->subscription_type) != 0 ||
	    d->allowance != st->allowance)
		*balance_changed = 1;
	if (st->subscription_id)
		BSON_APPEND_UTF8(set, "stripe_subscription_id", st->subscription_id);
	else
		BSON_APPEND_NULL(set, "stripe_subscription_id");
	if (st->status)
		BSON_APPEND_UTF8(set, "stripe_subscription_status", st->status);
	else
		BSON_APPEND_NULL(set, "stripe_subscription_status");
	if (st->price_id)
		BSON_APPEND_UTF8(set, "stripe_subscription_price_id", st->price_id);
	if (st->has_period) {
		int64_t start_ms = st->period_start_s * 1000, end_ms = st->period_end_s * 1000;
		BSON_APPEND_DATE_TIME(set, "stripe_current_billing_period_start", start_ms);
		BSON_APPEND_DATE_TIME(set, "stripe_current_billing_period_end", end_ms);
		if (d->exists && bw_sync_reset_due(st, &d->periods)) {
			/* The period's invoice is paid: its allowance starts unused. The marker
			 * is the one the stripe worker's invoice reset checks, so whichever of
			 * the two sees the paid period first resets, and the other does not. */
			BSON_APPEND_INT64(set, "subscription_spus_used", 0);
			BSON_APPEND_DATE_TIME(set, "subscription_spus_reset_period_start", start_ms);
			BSON_APPEND_UTF8(set, "subscription_spus_reset_event_id", "sync");
			*balance_changed = 1;
		}
	}
	BSON_APPEND_INT64(set, "stripe_subscription_event_created", w->read_s);
}

/* One write of the org's document: stripe_customer_id (or its removal when the customer is
 * deleted), and the subscription fields when w->st is not NULL. w->st was read from the
 * API at w->read_s (Stripe's clock): a subscription event the stripe worker stored with a
 * later `created` is newer, so w->st's fields are then left out; an enterprise org's plan
 * is never changed by Stripe. Conditional on the balance_version read into d (an insert
 * when d says there is no doc). Returns 1 written, 0 missed (reload and redo), -1 with err. */
static int write_doc(mongoc_collection_t *coll, const char *org_id, const struct write_req *w,
		     const struct doc_state *d, struct bw_err *err)
{
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, soi, inc, cond, unset;
	bson_t *opts = NULL, reply;
	bson_error_t error;
	int64_t now = bw_mongo_now_ms();
	int balance_changed = !d->exists, rc = -1, use_st = w->st != NULL;
	struct bw_log_ctx lc = { NULL, -1, -1, org_id, NULL };
	int clear_cus = w->cus_deleted && d->exists && d->stripe_customer_id &&
			strcmp(d->stripe_customer_id, w->cus) == 0;

	if (use_st && !d->exists) {
		use_st = 0; /* created first (fresh defaults), the subscription in the next write */
	} else if (use_st && d->enterprise) {
		bw_log(BW_LOG_INFO, &lc, "enterprise org: Stripe subscription state not applied");
		use_st = 0;
	} else if (use_st && d->has_sub_created && d->sub_created > w->read_s) {
		bw_log(BW_LOG_INFO, &lc,
		       "subscription event created %lld is newer than the API read at %lld: kept",
		       (long long)d->sub_created, (long long)w->read_s);
		use_st = 0;
	}
	BSON_APPEND_UTF8(&filter, "org_id", org_id);
	if (d->exists) {
		if (d->has_version)
			BSON_APPEND_INT64(&filter, "balance_version", d->version);
		else {
			BSON_APPEND_DOCUMENT_BEGIN(&filter, "balance_version", &cond);
			BSON_APPEND_BOOL(&cond, "$exists", false);
			bson_append_document_end(&filter, &cond);
		}
	} else {
		opts = BCON_NEW("upsert", BCON_BOOL(true));
	}
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	if (!w->cus_deleted)
		BSON_APPEND_UTF8(&set, "stripe_customer_id", w->cus);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	if (use_st)
		append_sub(&set, w, d, &balance_changed);
	if (w->st)
		BSON_APPEND_DATE_TIME(&set, "stripe_synced_at", now);
	bson_append_document_end(&update, &set);
	if (clear_cus) {
		/* A later customer tick creates a new customer (with a new idempotency key) */
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
		BSON_APPEND_UTF8(&unset, "stripe_customer_id", "");
		bson_append_document_end(&update, &unset);
	}
	if (!d->exists) {
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
		bw_customer_append_fresh(&soi, w->free_grant, now);
		bson_append_document_end(&update, &soi);
	}
	if (balance_changed || clear_cus) {
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
		if (balance_changed)
			bw_customer_append_version_bump(&inc);
		if (clear_cus)
			BSON_APPEND_INT64(&inc, "stripe_customers_deleted", 1);
		bson_append_document_end(&update, &inc);
	}
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_collection_update_one(coll, &filter, &update, opts, &reply, &error)) {
		rc = error.code == BW_MONGO_DUPLICATE_KEY ? 0 /* inserted meanwhile */
							  : bw_mongo_error(&error, "write customer", err);
	} else {
		rc = matched_count(&reply) > 0 ? 1 : 0;
	}
	bson_destroy(&reply);
	bson_destroy(opts);
	bson_destroy(&filter);
	bson_destroy(&update);
	return rc;
}

/* Whether the backend's organizations document of org_id says "enterprise". Its _id is an
 * ObjectId whose hex string is the org id (a string _id is read too). 0, or -1 with err. */
static int org_enterprise(struct bw_mongo *mongo, mongoc_client_t *client, const char *org_id,
			  int *out, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(mongo, client, BW_COLL_ORGANIZATIONS);
	bson_t filter = BSON_INITIALIZER, in, arr;
	bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", BW_ORG_TYPE,
				BCON_INT32(1), "}");
	bson_oid_t oid;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t error;
	int rc = 0;

	*out = 0;
	BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
	BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
	BSON_APPEND_UTF8(&arr, "0", org_id);
	if (bw_customer_org_oid(org_id, &oid))
		BSON_APPEND_OID(&arr, "1", &oid);
	bson_append_array_end(&in, &arr);
	bson_append_document_end(&filter, &in);
	cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		*out = bson_iter_init_find(&it, doc, BW_ORG_TYPE) && BSON_ITER_HOLDS_UTF8(&it) &&
		       bw_sub_policy_is_enterprise_type(bson_iter_utf8(&it, NULL));
	}
	if (mongoc_cursor_error(cur, &error))
		rc = bw_mongo_error(&error, "load organization", err);
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	return rc;
}

/* Writes with reload-and-redo on a missed conditional update. */
static int write_with_retry(struct bw_mongo *mongo, mongoc_client_t *client,
			    mongoc_collection_t *coll, const char *org_id,
			    const struct write_req *w, struct bw_err *err)
{
	struct doc_state d = { 0 };
	int rc = -1, org_ent = 0, created = 0;

	/* The organizations document is read once: the plan type it gives does not race. */
	if (w->st && org_enterprise(mongo, client, org_id, &org_ent, err) != 0)
		goto done;
	for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
		if (load_doc(coll, "org_id", org_id, &d, err) != 0)
			goto done;
		d.enterprise = d.enterprise || org_ent;
		int r = write_doc(coll, org_id, w, &d, err);
		if (r < 0)
			goto done;
		if (r == 1 && !d.exists && w->st && !created) {
			created = 1; /* created with fresh defaults: now the subscription */
			attempt--;
			continue;
		}
		if (r == 1) {
			rc = 0;
			goto done;
		}
		bw_metrics_add(BW_M_VERSION_MISSES, 1);
	}
	bw_err_set(err, BW_ERR_TRANSIENT, "customer %s: still contended after %d writes", org_id,
		   WRITE_ATTEMPTS);
done:
	doc_state_cleanup(&d);
	return rc;
}

static int collect_sub(void *opaque, json_t *item, struct bw_err *err)
{
	if (json_array_append(opaque, item) != 0)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	return 0;
}

/* POST /v1/customers for org_id, tagged with our product; *cus_out a new string.
 * generation: how many of the org's Stripe customers were deleted (part of the key, so a
 * customer deleted in Stripe is replaced by a new one, not answered from the old key). */
static int create_customer(struct bw_stripe_api *api, const char *org_id, const char *tag,
			   int64_t generation, char **cus_out, struct bw_stripe_error *serr,
			   struct bw_err *err)
{
	char *esc = bw_stripe_api_escape(api, org_id), *esc_tag = bw_stripe_api_escape(api, tag);
	char *form = NULL, key[192];
	json_t *cus = NULL;
	int rc = -1;

	if (!esc || !esc_tag) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	size_t cap = strlen(esc) + strlen(esc_tag) + 64;
	form = malloc(cap);
	if (!form) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	snprintf(form, cap, "metadata%%5Borg_id%%5D=%s&metadata%%5Bproduct%%5D=%s", esc, esc_tag);
	/* Derived from the org alone: every retry, tick and worker sends the same key. */
	if (generation > 0)
		snprintf(key, sizeof(key), "bw-sync-customer-%s-g%lld", org_id,
			 (long long)generation);
	else
		snprintf(key, sizeof(key), "bw-sync-customer-%s", org_id);
	cus = bw_stripe_api_post(api, "/v1/customers", form, key, serr, err);
	if (!cus) {
		bw_err_prefix(err, "create customer");
		goto done;
	}
	const char *id = json_string_value(json_object_get(cus, "id"));
	if (!id || !*id || !(*cus_out = strdup(id))) {
		bw_err_set(err, BW_ERR_TRANSIENT, "create customer: answer without an id");
		goto done;
	}
	rc = 0;
done:
	json_decref(cus);
	free(form);
	free(esc_tag);
	free(esc);
	return rc;
}

/* Whether a Stripe customer that no org is linked to belongs to another product: tagged
 * with another product, or with neither a product nor an org id. */
static int foreign_customer(const json_t *customer, const char *tag)
{
	const json_t *md = json_object_get(customer, "metadata");
	const char *product = json_string_value(json_object_get(md, "product"));
	const char *org = json_string_value(json_object_get(md, "org_id"));

	if (product)
		return strcmp(product, tag) != 0;
	return !org || !*org;
}

/* Records cus as another product's customer (the stripe worker ignores its events). */
static int record_foreign(struct bw_mongo *mongo, mongoc_client_t *client, const char *cus,
			  const json_t *customer, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(mongo, client, BW_COLL_FOREIGN_CUSTOMERS);
	const char *product = json_string_value(
		json_object_get(json_object_get(customer, "metadata"), "product"));
	bson_t *filter = BCON_NEW("_id", BCON_UTF8(cus));
	bson_t *update = BCON_NEW("$set", "{", "stripe_customer_id", BCON_UTF8(cus), "product",
				  BCON_UTF8(product ? product : ""), "seen_at",
				  BCON_DATE_TIME(bw_mongo_now_ms()), "}");
	bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
	bson_error_t error;
	int rc = 0;

	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_collection_update_one(coll, filter, update, opts, NULL, &error) &&
	    error.code != BW_MONGO_DUPLICATE_KEY)
		rc = bw_mongo_error(&error, "record foreign customer", err);
	bson_destroy(opts);
	bson_destroy(update);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	return rc;
}

/* Stripe's clock for the state read after the customer answer: its Date header, else the
 * newest `created` of the subscriptions read (a Stripe time no later than the read). */
static int64_t stripe_read_time(int64_t date_s, const json_t *subs)
{
	const json_t *sub;
	int64_t newest = 0;
	size_t i;

	if (date_s >= 0)
		return date_s;
	json_array_foreach(subs, i, sub) {
		json_int_t c = json_integer_value(json_object_get(sub, "created"));
		if (c > newest)
			newest = c;
	}
	return newest;
}

int bw_sync_customer(struct bw_stripe_api *api, struct bw_mongo *mongo,
		     const struct bw_sync_customer_req *req, struct bw_sync_counts *counts,
		     struct bw_stripe_error *serr, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(mongo);
	mongoc_collection_t *coll = bw_mongo_coll(mongo, client, BW_COLL_CUSTOMERS);
	const struct bw_sync_customer_cfg *cfg = req->cfg;
	struct doc_state d = { 0 };
	struct bw_sub_state st;
	struct bw_log_ctx lc = { NULL, -1, -1, NULL, NULL };
	char *org_id = NULL, *cus = NULL, *esc = NULL, *path = NULL;
	json_t *customer = NULL, *subs = json_array();
	int64_t date_s = -1;
	int rc = -1;

	counts->customers_seen++;
	if (!subs) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	if (req->org_id ? load_doc(coll, "org_id", req->org_id, &d, err)
			: load_doc(coll, "stripe_customer_id", req->stripe_customer_id, &d, err))
		goto done;
	org_id = req->org_id ? strdup(req->org_id) : d.org_id ? strdup(d.org_id) : NULL;
	cus = req->stripe_customer_id ? strdup(req->stripe_customer_id)
	      : d.stripe_customer_id  ? strdup(d.stripe_customer_id)
				      : NULL;
	lc.org_id = org_id;
	if (!cus) {
		if (!org_id || !req->may_create) {
			bw_err_set(err, BW_ERR_INVALID, "org %s has no Stripe customer",
				   org_id ? org_id : "?");
			goto done;
		}
		if (create_customer(api, org_id, cfg->product_tag, d.customers_deleted, &cus, serr,
				    err) != 0)
			goto done;
		counts->customers_created++;
		bw_log(BW_LOG_INFO, &lc, "created Stripe customer %s", cus);
		/* Stored at once: the idempotency key expires after a day, the document not. */
		struct write_req w = { cus, NULL, 0, 0, cfg->free_grant };
		if (write_with_retry(mongo, client, coll, org_id, &w, err) != 0)
			goto done;
	}
	esc = bw_stripe_api_escape(api, cus);
	size_t cap = (esc ? strlen(esc) : 0) + 96;
	path = malloc(cap);
	if (!esc || !path) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	snprintf(path, cap, "/v1/customers/%s", esc);
	customer = bw_stripe_api_get(api, path, serr, err);
	if (!customer) {
		bw_err_prefix(err, "get customer");
		goto done;
	}
	/* The API state read from here on is as of Stripe's clock at this answer. */
	date_s = bw_stripe_api_last_date(api);
	if (!org_id && foreign_customer(customer, cfg->product_tag)) {
		if (record_foreign(mongo, client, cus, customer, err) != 0)
			goto done;
		counts->customers_foreign++;
		bw_log(BW_LOG_INFO, &lc, "Stripe customer %s is not %s's: its events are ignored",
		       cus, cfg->product_tag);
		rc = 0;
		goto done;
	}
	if (!org_id) {
		const char *meta_org = json_string_value(
			json_object_get(json_object_get(customer, "metadata"), "org_id"));
		if (!meta_org || !*meta_org || strlen(meta_org) > 128) {
			bw_err_set(err, BW_ERR_INVALID,
				   "Stripe customer %s has no metadata org_id and no local org", cus);
			goto done;
		}
		if (!(org_id = strdup(meta_org))) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		lc.org_id = org_id;
	}
	int deleted = json_is_true(json_object_get(customer, "deleted"));
	if (!deleted) {
		snprintf(path, cap, "customer=%s&status=all&expand%%5B%%5D=data.latest_invoice", esc);
		if (bw_stripe_api_list(api, "/v1/subscriptions", path, 100, collect_sub, subs, NULL,
				       serr, err) != 0) {
			bw_err_prefix(err, "list subscriptions");
			goto done;
		}
	}
	if (bw_sync_pick_subscription(subs, cfg->policy, &st, err) != 0)
		goto done;
	struct write_req w = { cus, &st, stripe_read_time(date_s, subs), deleted,
			       cfg->free_grant };
	if (write_with_retry(mongo, client, coll, org_id, &w, err) != 0)
		goto done;
	counts->customers_updated++;
	bw_log(BW_LOG_INFO, &lc,
	       "customer %s%s synced: %s, allowance %lld, subscription %s (%s): %s", cus,
	       deleted ? " (deleted)" : "", st.subscription_type, (long long)st.allowance,
	       st.subscription_id ? st.subscription_id : "none", st.status ? st.status : "-",
	       st.reason ? st.reason : "no subscription");
	rc = 0;
done:
	json_decref(subs);
	json_decref(customer);
	free(path);
	free(esc);
	free(cus);
	free(org_id);
	doc_state_cleanup(&d);
	mongoc_collection_destroy(coll);
	bw_mongo_push(mongo, client);
	return rc;
}

int bw_sync_all_customers(struct bw_stripe_api *api, struct bw_mongo *mongo,
			  const struct bw_sync_customer_cfg *cfg, struct bw_sync_counts *counts, json_t *errors,
			  struct bw_stripe_error *serr, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(mongo);
	mongoc_collection_t *coll = bw_mongo_coll(mongo, client, BW_COLL_CUSTOMERS);
	bson_t *filter = BCON_NEW("stripe_customer_id", "{", "$exists", BCON_BOOL(true), "$ne",
				  BCON_NULL, "}");
	bson_t *opts = BCON_NEW("projection", "{", "org_id", BCON_INT32(1), "stripe_customer_id",
				BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	json_t *orgs = json_array();
	const bson_t *doc;
	bson_error_t error;
	int rc = -1;

	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	/* Read the list first: no cursor stays open across slow HTTP calls. */
	while (orgs && mongoc_cursor_next(cur, &doc)) {
		char *o = dup_str(doc, "org_id"), *c = dup_str(doc, "stripe_customer_id");
		if (o && c)
			json_array_append_new(orgs, json_pack("[ss]", o, c));
		free(o);
		free(c);
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "list customers", err);
		goto done;
	}
	mongoc_cursor_destroy(cur);
	cur = NULL;
	mongoc_collection_destroy(coll);
	coll = NULL;
	bw_mongo_push(mongo, client);
	client = NULL;
	if (!orgs) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	size_t i;
	json_t *pair;
	json_array_foreach(orgs, i, pair) {
		struct bw_sync_customer_req req = {
			json_string_value(json_array_get(pair, 0)),
			json_string_value(json_array_get(pair, 1)), 0, cfg
		};
		struct bw_err cerr;
		bw_err_clear(&cerr);
		if (bw_sync_customer(api, mongo, &req, counts, serr, &cerr) == 0)
			continue;
		if (cerr.kind != BW_ERR_INVALID) {
			*err = cerr;
			goto done;
		}
		counts->customers_failed++;
		bw_log(BW_LOG_WARN, &(struct bw_log_ctx){ NULL, -1, -1, req.org_id, NULL },
		       "customer sync failed: %s", cerr.msg);
		if (json_array_size(errors) < MAX_LISTED_ERRORS)
			json_array_append_new(errors, json_pack("{ssssss}", "org_id", req.org_id,
								"stripe_customer_id",
								req.stripe_customer_id, "error",
								cerr.msg));
	}
	memset(serr, 0, sizeof(*serr));
	rc = 0;
done:
	json_decref(orgs);
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	if (client)
		bw_mongo_push(mongo, client);
	return rc;
}
