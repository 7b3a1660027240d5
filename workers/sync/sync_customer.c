/* sync_customer: see sync_customer.h. */
#include "sync_customer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "sync_prices.h"

#define WRITE_ATTEMPTS 20
#define MAX_LISTED_ERRORS 20

static int is_live(const char *status)
{
	return status && (strcmp(status, "active") == 0 || strcmp(status, "trialing") == 0 ||
			  strcmp(status, "past_due") == 0);
}

/* The first item of sub whose price is a base price (borrowed), or NULL. */
static const json_t *base_item(const json_t *sub)
{
	const json_t *data = json_object_get(json_object_get(sub, "items"), "data");
	size_t i;
	const json_t *item;

	json_array_foreach(data, i, item) {
		const json_t *md = json_object_get(json_object_get(item, "price"), "metadata");
		const char *pt = json_string_value(json_object_get(md, "price_type"));
		if (pt && strcmp(pt, "base") == 0)
			return item;
	}
	return NULL;
}

/* Unix seconds up to 9999-12-31: the write turns them into milliseconds without overflow. */
#define MAX_UNIX_S INT64_C(253402300799)

static int get_period(const json_t *obj, int64_t *start, int64_t *end)
{
	const json_t *s = json_object_get(obj, "current_period_start");
	const json_t *e = json_object_get(obj, "current_period_end");
	if (!json_is_integer(s) || !json_is_integer(e))
		return 0;
	if (json_integer_value(s) < 0 || json_integer_value(s) > MAX_UNIX_S ||
	    json_integer_value(e) < 0 || json_integer_value(e) > MAX_UNIX_S)
		return 0;
	*start = json_integer_value(s);
	*end = json_integer_value(e);
	return 1;
}

int bw_sync_pick_subscription(const json_t *subs, struct bw_sub_state *out, struct bw_err *err)
{
	const json_t *live = NULL, *latest = NULL, *item = NULL, *sub;
	json_int_t live_created = 0, latest_created = 0;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->subscription_type = "none";
	json_array_foreach(subs, i, sub) {
		json_int_t created = json_integer_value(json_object_get(sub, "created"));
		const char *status = json_string_value(json_object_get(sub, "status"));
		if (!latest || created > latest_created) {
			latest = sub;
			latest_created = created;
		}
		const json_t *bi = is_live(status) ? base_item(sub) : NULL;
		if (bi && (!live || created > live_created)) {
			live = sub;
			live_created = created;
			item = bi;
		}
	}
	sub = live ? live : latest;
	if (!sub)
		return 0;
	out->subscription_id = json_string_value(json_object_get(sub, "id"));
	out->status = json_string_value(json_object_get(sub, "status"));
	if (!live)
		return 0;
	const json_t *price = json_object_get(item, "price");
	const json_t *md = json_object_get(price, "metadata");
	char why[160];
	int present = 0;
	out->live = 1;
	out->price_id = json_string_value(json_object_get(price, "id"));
	out->subscription_type = json_string_value(json_object_get(md, "tier"));
	if (!out->subscription_type || !*out->subscription_type)
		return bw_err_set(err, BW_ERR_INVALID, "subscription %s: base price %s has no tier",
				  out->subscription_id, out->price_id ? out->price_id : "?");
	if (bw_sync_meta_int64(md, "included_spus", &out->allowance, &present, why,
			       sizeof(why)) != 0 ||
	    (!present && strcmp(out->subscription_type, "enterprise") != 0))
		return bw_err_set(err, BW_ERR_INVALID, "subscription %s: base price %s: %s",
				  out->subscription_id, out->price_id ? out->price_id : "?",
				  present ? why : "no metadata included_spus");
	out->has_period = get_period(sub, &out->period_start_s, &out->period_end_s) ||
			  get_period(item, &out->period_start_s, &out->period_end_s);
	return 0;
}

/* What the customer document holds now. */
struct doc_state {
	int exists;
	int has_version;
	int64_t version;
	char *org_id, *stripe_customer_id, *subscription_type;
	int64_t allowance, period_start_ms;
	int has_reset;
	int64_t reset_ms;        /* subscription_spus_reset_period_start (shared with the stripe worker) */
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
		bw_mongo_get_int64(doc, "stripe_current_billing_period_start",
				   &d->period_start_ms);
		d->has_reset = bw_mongo_get_int64(doc, "subscription_spus_reset_period_start",
						  &d->reset_ms);
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

/* One write of the org's document: stripe_customer_id, and st's fields when st is not NULL.
 * st was read from the API at read_s (unix seconds): a subscription event the stripe worker
 * stored with a later `created` is newer than st, so st's fields are then left out.
 * Conditional on the balance_version read into d (an insert when d says there is no doc).
 * Returns 1 written, 0 missed (reload and redo), -1 with err. */
static int write_doc(mongoc_collection_t *coll, const char *org_id, const char *cus,
		     const struct bw_sub_state *st, int64_t read_s, const struct doc_state *d,
		     int64_t free_grant, struct bw_err *err)
{
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, soi, inc, cond;
	bson_t *opts = NULL, reply;
	bson_error_t error;
	int64_t now = bw_mongo_now_ms();
	int balance_changed = !d->exists, rc = -1;

	if (st && d->has_sub_created && d->sub_created > read_s) {
		bw_log(BW_LOG_INFO, &(struct bw_log_ctx){ NULL, -1, -1, org_id, NULL },
		       "subscription event created %lld is newer than the API read at %lld: kept",
		       (long long)d->sub_created, (long long)read_s);
		st = NULL;
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
	BSON_APPEND_UTF8(&set, "stripe_customer_id", cus);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	int keep_enterprise = d->subscription_type && strcmp(d->subscription_type, "enterprise") == 0 &&
			      st && !st->live;
	if (st) {
		if (!keep_enterprise) {
			BSON_APPEND_UTF8(&set, "subscription_type", st->subscription_type);
			BSON_APPEND_INT64(&set, "subscription_spu_allowance", st->allowance);
			if (!d->subscription_type ||
			    strcmp(d->subscription_type, st->subscription_type) != 0 ||
			    d->allowance != st->allowance)
				balance_changed = 1;
		}
		if (st->subscription_id)
			BSON_APPEND_UTF8(&set, "stripe_subscription_id", st->subscription_id);
		else
			BSON_APPEND_NULL(&set, "stripe_subscription_id");
		if (st->status)
			BSON_APPEND_UTF8(&set, "stripe_subscription_status", st->status);
		else
			BSON_APPEND_NULL(&set, "stripe_subscription_status");
		if (st->price_id)
			BSON_APPEND_UTF8(&set, "stripe_subscription_price_id", st->price_id);
		if (st->has_period) {
			int64_t start_ms = st->period_start_s * 1000, end_ms = st->period_end_s * 1000;
			BSON_APPEND_DATE_TIME(&set, "stripe_current_billing_period_start", start_ms);
			BSON_APPEND_DATE_TIME(&set, "stripe_current_billing_period_end", end_ms);
			if (d->exists && d->period_start_ms > 0 && start_ms > d->period_start_ms &&
			    (!d->has_reset || d->reset_ms < start_ms)) {
				/* A new period: its allowance starts unused. The reset marker is the
				 * one the stripe worker's invoice reset checks, so whichever of the
				 * two sees the new period first resets, and the other does not. */
				BSON_APPEND_INT64(&set, "subscription_spus_used", 0);
				BSON_APPEND_DATE_TIME(&set, "subscription_spus_reset_period_start",
						      start_ms);
				BSON_APPEND_UTF8(&set, "subscription_spus_reset_event_id", "sync");
				balance_changed = 1;
			}
		}
		BSON_APPEND_INT64(&set, "stripe_subscription_event_created", read_s);
		BSON_APPEND_DATE_TIME(&set, "stripe_synced_at", now);
	}
	bson_append_document_end(&update, &set);
	if (!d->exists) {
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
		BSON_APPEND_INT64(&soi, "granted_credits", free_grant);
		BSON_APPEND_INT64(&soi, "purchased_credits", 0);
		if (!st) {
			BSON_APPEND_INT64(&soi, "subscription_spu_allowance", 0);
			BSON_APPEND_UTF8(&soi, "subscription_type", "none");
		}
		BSON_APPEND_DATE_TIME(&soi, "created_at", now);
		bson_append_document_end(&update, &soi);
	}
	if (balance_changed) {
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
		BSON_APPEND_INT64(&inc, "balance_version", 1);
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

/* Writes with reload-and-redo on a missed conditional update. */
static int write_with_retry(mongoc_collection_t *coll, const char *org_id, const char *cus,
			    const struct bw_sub_state *st, int64_t read_s, int64_t free_grant,
			    struct bw_err *err)
{
	struct doc_state d = { 0 };
	int rc = -1;

	for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
		if (load_doc(coll, "org_id", org_id, &d, err) != 0)
			goto done;
		int w = write_doc(coll, org_id, cus, st, read_s, &d, free_grant, err);
		if (w < 0)
			goto done;
		if (w == 1) {
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

/* POST /v1/customers for org_id; *cus_out a new string. */
static int create_customer(struct bw_stripe_api *api, const char *org_id, char **cus_out,
			   struct bw_stripe_error *serr, struct bw_err *err)
{
	char *esc = bw_stripe_api_escape(api, org_id);
	char *form = NULL, key[160];
	json_t *cus = NULL;
	int rc = -1;

	if (!esc)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	size_t cap = strlen(esc) + 32;
	form = malloc(cap);
	if (!form) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	snprintf(form, cap, "metadata%%5Borg_id%%5D=%s", esc);
	/* Derived from the org alone: every retry, tick and worker sends the same key. */
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
	free(esc);
	return rc;
}

int bw_sync_customer(struct bw_stripe_api *api, struct bw_mongo *mongo,
		     const struct bw_sync_customer_req *req, struct bw_sync_counts *counts,
		     struct bw_stripe_error *serr, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(mongo);
	mongoc_collection_t *coll = bw_mongo_coll(mongo, client, BW_COLL_CUSTOMERS);
	struct doc_state d = { 0 };
	struct bw_sub_state st;
	char *org_id = NULL, *cus = NULL, *esc = NULL, *path = NULL;
	json_t *customer = NULL, *subs = json_array();
	int64_t read_s = 0;
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
	if (!cus) {
		if (!org_id || !req->may_create) {
			bw_err_set(err, BW_ERR_INVALID, "org %s has no Stripe customer",
				   org_id ? org_id : "?");
			goto done;
		}
		if (create_customer(api, org_id, &cus, serr, err) != 0)
			goto done;
		counts->customers_created++;
		bw_log(BW_LOG_INFO, &(struct bw_log_ctx){ NULL, -1, -1, org_id, NULL },
		       "created Stripe customer %s", cus);
		/* Stored at once: the idempotency key expires after a day, the document not. */
		if (write_with_retry(coll, org_id, cus, NULL, 0, req->free_grant, err) != 0)
			goto done;
	}
	esc = bw_stripe_api_escape(api, cus);
	size_t cap = (esc ? strlen(esc) : 0) + 64;
	path = malloc(cap);
	if (!esc || !path) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	snprintf(path, cap, "/v1/customers/%s", esc);
	read_s = (int64_t)time(NULL); /* the API state below is as of this second */
	customer = bw_stripe_api_get(api, path, serr, err);
	if (!customer) {
		bw_err_prefix(err, "get customer");
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
	}
	if (!json_is_true(json_object_get(customer, "deleted"))) {
		snprintf(path, cap, "customer=%s&status=all", esc);
		if (bw_stripe_api_list(api, "/v1/subscriptions", path, 100, collect_sub, subs, NULL,
				       serr, err) != 0) {
			bw_err_prefix(err, "list subscriptions");
			goto done;
		}
	}
	if (bw_sync_pick_subscription(subs, &st, err) != 0)
		goto done;
	if (write_with_retry(coll, org_id, cus, &st, read_s, req->free_grant, err) != 0)
		goto done;
	counts->customers_updated++;
	bw_log(BW_LOG_INFO, &(struct bw_log_ctx){ NULL, -1, -1, org_id, NULL },
	       "customer %s synced: %s, allowance %lld, subscription %s (%s)", cus,
	       st.subscription_type, (long long)st.allowance,
	       st.subscription_id ? st.subscription_id : "none", st.status ? st.status : "-");
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

int bw_sync_all_customers(struct bw_stripe_api *api, struct bw_mongo *mongo, int64_t free_grant,
			  struct bw_sync_counts *counts, json_t *errors,
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
			json_string_value(json_array_get(pair, 1)), 0, free_grant
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
