/* sync_customer_store: see sync_customer_store.h. */
#include "sync_customer_store.h"

#include <stdlib.h>
#include <string.h>

#include "customer_doc.h"
#include "log.h"
#include "metrics.h"
#include "org_enterprise.h"

#define WRITE_ATTEMPTS 20


void bw_sync_doc_cleanup(struct bw_sync_doc *d)
{
	free(d->org_id);
	free(d->stripe_customer_id);
	free(d->subscription_type);
	memset(d, 0, sizeof(*d));
}

char *bw_sync_dup_str(const bson_t *doc, const char *key)
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
int bw_sync_doc_load(mongoc_collection_t *coll, const char *key, const char *value,
		    struct bw_sync_doc *d, struct bw_err *err)
{
	bson_t *filter = BCON_NEW(key, BCON_UTF8(value));
	bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t error;
	int rc = 0;

	bw_sync_doc_cleanup(d);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_cursor_next(cur, &doc)) {
		d->exists = 1;
		d->org_id = bw_sync_dup_str(doc, "org_id");
		d->stripe_customer_id = bw_sync_dup_str(doc, "stripe_customer_id");
		d->subscription_type = bw_sync_dup_str(doc, "subscription_type");
		d->has_version = bw_mongo_get_int64(doc, "balance_version", &d->version);
		bw_mongo_get_int64(doc, "subscription_spu_allowance", &d->allowance);
		d->periods.has_period = bw_customer_period_ms(doc, BW_CUST_PERIOD_START,
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


/* The subscription part of the update: st under the shared policy. */
static void append_sub(bson_t *set, const struct bw_sync_write *w, const struct bw_sync_doc *d,
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
	bw_customer_append_cancel(set, bw_sub_policy_ended(st->status), st->cancel_at_period_end,
				  st->cancel_at_s);
	if (st->has_period) {
		int64_t start_ms = st->period_start_s * 1000;
		/* unix seconds: the old contract the backend reads */
		bw_customer_append_period(set, st->period_start_s, st->period_end_s);
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
static int write_doc(mongoc_collection_t *coll, const char *org_id, const struct bw_sync_write *w,
		     const struct bw_sync_doc *d, struct bw_err *err)
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

/* Writes with reload-and-redo on a missed conditional update. */
int bw_sync_doc_write(struct bw_mongo *mongo, mongoc_client_t *client,
			    mongoc_collection_t *coll, const char *org_id,
			    const struct bw_sync_write *w, struct bw_err *err)
{
	struct bw_sync_doc d = { 0 };
	int rc = -1, org_ent = 0, created = 0;

	/* The organizations document is read once: the plan type it gives does not race. */
	if (w->st && bw_org_enterprise(mongo, client, org_id, &org_ent, err) != 0)
		goto done;
	for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
		if (bw_sync_doc_load(coll, "org_id", org_id, &d, err) != 0)
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
	bw_sync_doc_cleanup(&d);
	return rc;
}

