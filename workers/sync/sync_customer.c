/* sync_customer: see sync_customer.h. */
#include "sync_customer.h"

#include <stdlib.h>
#include <string.h>

#include "customer_doc.h"
#include "log.h"
#include "metrics.h"
#include "sync_customer_store.h"
#include "sync_prices.h"

#define MAX_LISTED_ERRORS 20

static int collect_sub(void *opaque, json_t *item, struct bw_err *err)
{
	if (json_array_append(opaque, item) != 0)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	return 0;
}

/* POST /v1/customers for org_id, tagged with our product; *cus_out a new string.
 * generation: how many of the org's Stripe customers were deleted (part of the key, so a
 * customer deleted in Stripe is replaced by a new one, not answered from the old key). */
int bw_sync_create_customer(struct bw_stripe_api *api, const char *org_id, const char *tag,
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
	struct bw_sync_doc d = { 0 };
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
	if (req->org_id ? bw_sync_doc_load(coll, "org_id", req->org_id, &d, err)
			: bw_sync_doc_load(coll, "stripe_customer_id", req->stripe_customer_id, &d, err))
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
		if (bw_sync_create_customer(api, org_id, cfg->product_tag, d.customers_deleted, &cus, serr,
				    err) != 0)
			goto done;
		counts->customers_created++;
		bw_log(BW_LOG_INFO, &lc, "created Stripe customer %s", cus);
		/* Stored at once: the idempotency key expires after a day, the document not. */
		struct bw_sync_write w = { cus, NULL, 0, 0, cfg->free_grant };
		if (bw_sync_doc_write(mongo, client, coll, org_id, &w, err) != 0)
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
	struct bw_sync_write w = { cus, &st, stripe_read_time(date_s, subs), deleted,
			       cfg->free_grant };
	if (bw_sync_doc_write(mongo, client, coll, org_id, &w, err) != 0)
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
	bw_sync_doc_cleanup(&d);
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
		char *o = bw_sync_dup_str(doc, "org_id"), *c = bw_sync_dup_str(doc, "stripe_customer_id");
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
