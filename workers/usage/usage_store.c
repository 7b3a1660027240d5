/* usage_store: see usage_store.h. */
#include "usage_store.h"

#include <stdlib.h>
#include <string.h>

#include "bson_buf.h"
#include "metrics.h"

void bw_org_reset(struct bw_org *org)
{
	for (size_t i = 0; i < org->npending; i++)
		free(org->pending[i].event_id);
	free(org->pending);
	free(org->pending_by_id);
	/* new_pending entries borrow event ids from pending or from the batch's events */
	free(org->new_pending);
	bw_usage_alerts_free(org);
	const char *id = org->org_id;
	int org_enterprise = org->org_enterprise;
	memset(org, 0, sizeof(*org));
	org->org_id = id;
	org->org_enterprise = org_enterprise;
}

static int64_t iter_int64(const bson_iter_t *it)
{
	if (BSON_ITER_HOLDS_INT64(it))
		return bson_iter_int64(it);
	if (BSON_ITER_HOLDS_INT32(it))
		return bson_iter_int32(it);
	return 0;
}

static void append_pending(struct bw_bson_buf *set, const struct bw_org *org)
{
	bw_bson_buf_begin_array(set, BW_CUST_PENDING);
	for (size_t i = 0; i < org->nnew_pending; i++) {
		const struct bw_pending *p = &org->new_pending[i];
		bw_customer_append_pending(set, NULL, p->event_id, p->hash, p->bd.from_subscription,
					   p->bd.from_purchased, p->bd.from_granted,
					   p->bd.from_paid, p->version);
	}
	bw_bson_buf_end(set);
}

/* The rarer parts of the $set, written by libbson-based helpers, copied in as members. */
static void append_set_extras(struct bw_bson_buf *update, const struct bw_org *org,
			      int64_t now)
{
	bson_t extra = BSON_INITIALIZER;

	bw_usage_alerts_append_set(&extra, org);
	if (org->write_opening)
		bw_customer_append_opening(&extra, &org->cust, &org->opening, now);
	if (!bson_empty(&extra))
		bw_bson_buf_members(update, &extra);
	bson_destroy(&extra);
}

/* The conditional update of org (bson_buf: built once, handed to the driver as is). */
static void build_update(const struct bw_org *org, int64_t free_grant, int64_t now,
			 struct bw_bson_buf *filter, struct bw_bson_buf *update)
{
	bw_bson_buf_utf8(filter, BW_CUST_ORG_ID, org->org_id);
	if (org->exists && org->version_missing) {
		/* A document created without a version (by hand or an older tool). */
		bw_bson_buf_begin_document(filter, BW_CUST_VERSION);
		bw_bson_buf_bool(filter, "$exists", 0);
		bw_bson_buf_end(filter);
	} else {
		bw_bson_buf_int64(filter, BW_CUST_VERSION, org->version);
	}
	bw_bson_buf_begin_document(update, "$set");
	bw_bson_buf_int64(update, BW_CUST_SUB_USED, org->new_bal.subscription_used);
	bw_bson_buf_int64(update, BW_CUST_PURCHASED_USED, org->new_bal.purchased_used);
	bw_bson_buf_int64(update, BW_CUST_GRANTED_USED, org->new_bal.granted_used);
	bw_bson_buf_int64(update, BW_CUST_PAID_USED, org->new_bal.paid_used);
	bw_bson_buf_int64(update, BW_CUST_VERSION, org->new_version);
	bw_bson_buf_date_time(update, BW_CUST_UPDATED_AT, now);
	append_pending(update, org);
	append_set_extras(update, org, now);
	bw_bson_buf_end(update);
	if (!org->exists) {
		/* A new org: the fields of a fresh customer document. Version 0 in the filter
		 * never matches an existing document (every writer bumps it), so a concurrent
		 * creation makes this upsert fail on the unique org_id index: a miss. */
		bson_t soi = BSON_INITIALIZER;
		bw_customer_append_fresh(&soi, free_grant, now);
		bw_bson_buf_document(update, "$setOnInsert", &soi);
		bson_destroy(&soi);
	}
}

/* Marks orgs confirmed from a bulk reply that bw_mongo_bulk_check() accepted: all of them
 * when every op matched or upserted, else only the upserted ones (the rest missed: another
 * writer came first, or a concurrent creation won the unique org_id). */
static void settle_reply(const bson_t *reply, const struct bw_mongo_bulk_result *res,
			 struct bw_org *const *ops, size_t nops)
{
	bson_iter_t it, arr, sub;

	if (res->matched + res->upserted == (int64_t)nops) {
		for (size_t i = 0; i < nops; i++)
			ops[i]->confirmed = 1;
		return;
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
	struct bw_bson_buf fbuf, ubuf; /* reused for every org of the bulk */
	size_t nops = 0;
	int64_t now = bw_mongo_now_ms();
	int rc = -1;

	bw_bson_buf_init(&fbuf, BW_BSON_BUF_MAX);
	bw_bson_buf_init(&ubuf, BW_BSON_BUF_MAX);
	if (!ops) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
	for (size_t i = 0; i < n; i++) {
		bson_t filter, update;
		if (!orgs[i]->dirty) {
			orgs[i]->confirmed = 1;
			continue;
		}
		bw_bson_buf_reset(&fbuf);
		bw_bson_buf_reset(&ubuf);
		build_update(orgs[i], free_grant, now, &fbuf, &ubuf);
		if (bw_bson_buf_view(&fbuf, &filter) != 0 || bw_bson_buf_view(&ubuf, &update) != 0) {
			bw_err_set(err, BW_ERR_TRANSIENT, "build bulk update: out of memory or "
				   "larger than a document");
			goto done;
		}
		/* the bulk copies both into its command */
		if (!mongoc_bulk_operation_update_one_with_opts(
			    bulk, &filter, &update, orgs[i]->exists ? update_opts : upsert_opts,
			    &error)) {
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
	/* A duplicate key is a lost creation race: that org missed and is reloaded. */
	struct bw_mongo_bulk_result res;
	if (bw_mongo_bulk_check(ok, &reply, &error, BW_ERR_NONE, 0, "customer bulk update", &res,
				err) != 0)
		goto done;
	settle_reply(&reply, &res, ops, nops);
	rc = 0;
done:
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	bw_bson_buf_cleanup(&fbuf);
	bw_bson_buf_cleanup(&ubuf);
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
	/* Duplicate keys mean "already recorded"; every insert must be reported. */
	if (bw_mongo_bulk_check(ok, &reply, &error, BW_ERR_NONE, n, "usage record insert", NULL,
				err) != 0)
		goto done;
	rc = 0;
done:
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	bson_destroy(insert_opts);
	bson_destroy(bulk_opts);
	mongoc_collection_destroy(coll);
	return rc;
}
