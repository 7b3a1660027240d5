/* usage_alert_store: the alert fields of the customer document (see usage_store.h and
 * usage_alert.h): read with the org, written inside the org's conditional charge update,
 * and the published pending alerts removed after the broker's ack. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "usage_store.h"

static int grow(struct bw_org *org, struct bw_err *err)
{
	if (org->npalerts < org->palerts_cap)
		return 0;
	size_t cap = org->palerts_cap ? org->palerts_cap * 2 : 4;
	struct bw_pending_alert *grown = realloc(org->palerts, cap * sizeof(*grown));
	if (!grown)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	org->palerts = grown;
	org->palerts_cap = cap;
	return 0;
}

int bw_usage_alerts_add(struct bw_org *org, const char *event_id, int64_t threshold,
			int64_t remaining, int64_t version, int64_t now_ms, struct bw_err *err)
{
	if (grow(org, err) != 0)
		return -1;
	char *id = strdup(event_id);
	if (!id)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	org->palerts[org->npalerts++] =
		(struct bw_pending_alert){ id, threshold, remaining, version, now_ms, 0 };
	return 0;
}

static int load_one_pending(bson_iter_t *sub, struct bw_org *org, struct bw_err *err)
{
	struct bw_pending_alert a = { 0 };
	const char *event_id = NULL;

	while (bson_iter_next(sub)) {
		const char *k = bson_iter_key(sub);
		if (strcmp(k, "event_id") == 0 && BSON_ITER_HOLDS_UTF8(sub))
			event_id = bson_iter_utf8(sub, NULL);
		else if (strcmp(k, "threshold_spus") == 0)
			a.threshold = bson_iter_as_int64(sub);
		else if (strcmp(k, "remaining_spus") == 0)
			a.remaining = bson_iter_as_int64(sub);
		else if (strcmp(k, "balance_version") == 0)
			a.version = bson_iter_as_int64(sub);
		else if (strcmp(k, "created_at_ms") == 0)
			a.created_at_ms = bson_iter_as_int64(sub);
	}
	if (!event_id)
		return 0;
	return bw_usage_alerts_add(org, event_id, a.threshold, a.remaining, a.version,
				   a.created_at_ms, err);
}

int bw_usage_alerts_load(uint32_t has, const struct bw_mongo_member *m, struct bw_org *org,
			 struct bw_err *err)
{
	bson_iter_t arr, sub;

	if ((has & 1) && BSON_ITER_HOLDS_ARRAY(&m[0].it) && bson_iter_recurse(&m[0].it, &arr))
		while (bson_iter_next(&arr) && org->alerts.nfired < BW_ALERT_MAX_THRESHOLDS)
			org->alerts.fired[org->alerts.nfired++] = bson_iter_as_int64(&arr);
	if (has & 2)
		org->alerts.exhausted_fired = bson_iter_as_bool(&m[1].it);
	if (!(has & 4) || !BSON_ITER_HOLDS_ARRAY(&m[2].it) || !bson_iter_recurse(&m[2].it, &arr))
		return 0;
	while (bson_iter_next(&arr))
		if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &sub) &&
		    load_one_pending(&sub, org, err) != 0)
			return -1;
	return 0;
}

void bw_usage_alerts_append_set(bson_t *set, const struct bw_org *org)
{
	bson_t arr, entry;
	char idx[16], alert_id[BW_ALERT_ID_MAX];
	const char *key;

	if (!org->alerts_changed)
		return;
	BSON_APPEND_ARRAY_BEGIN(set, BW_CUST_ALERTS_FIRED, &arr);
	for (size_t i = 0; i < org->alerts.nfired; i++) {
		bson_uint32_to_string((uint32_t)i, &key, idx, sizeof(idx));
		bson_append_int64(&arr, key, -1, org->alerts.fired[i]);
	}
	bson_append_array_end(set, &arr);
	BSON_APPEND_BOOL(set, BW_CUST_ALERT_EXHAUSTED, org->alerts.exhausted_fired != 0);
	BSON_APPEND_ARRAY_BEGIN(set, BW_CUST_PENDING_ALERTS, &arr);
	for (size_t i = 0; i < org->npalerts; i++) {
		const struct bw_pending_alert *a = &org->palerts[i];
		bson_uint32_to_string((uint32_t)i, &key, idx, sizeof(idx));
		bson_append_document_begin(&arr, key, -1, &entry);
		if (bw_alert_id(alert_id, sizeof(alert_id), org->org_id, a->threshold,
				a->version) == 0)
			BSON_APPEND_UTF8(&entry, "alert_id", alert_id);
		BSON_APPEND_UTF8(&entry, "event_id", a->event_id);
		BSON_APPEND_INT64(&entry, "threshold_spus", a->threshold);
		BSON_APPEND_INT64(&entry, "remaining_spus", a->remaining);
		BSON_APPEND_INT64(&entry, "balance_version", a->version);
		BSON_APPEND_INT64(&entry, "created_at_ms", a->created_at_ms);
		bson_append_document_end(&arr, &entry);
	}
	bson_append_array_end(set, &arr);
}

void bw_usage_alerts_free(struct bw_org *org)
{
	for (size_t i = 0; i < org->npalerts; i++)
		free(org->palerts[i].event_id);
	free(org->palerts);
	org->palerts = NULL;
	org->npalerts = org->palerts_cap = 0;
}

static int any_published(const struct bw_org *org)
{
	for (size_t i = 0; i < org->npalerts; i++)
		if (org->palerts[i].published)
			return 1;
	return 0;
}

/* The $pull of org's published alerts by alert_id, or 0 when it published none. */
static int build_clear(const struct bw_org *org, bson_t *filter, bson_t *update)
{
	bson_t pull, cond, in, ids, inc;
	char idx[16], alert_id[BW_ALERT_ID_MAX];
	const char *key;
	uint32_t n = 0;

	BSON_APPEND_UTF8(filter, BW_CUST_ORG_ID, org->org_id);
	BSON_APPEND_DOCUMENT_BEGIN(update, "$pull", &pull);
	BSON_APPEND_DOCUMENT_BEGIN(&pull, BW_CUST_PENDING_ALERTS, &cond);
	BSON_APPEND_DOCUMENT_BEGIN(&cond, "alert_id", &in);
	BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
	for (size_t i = 0; i < org->npalerts; i++) {
		const struct bw_pending_alert *a = &org->palerts[i];
		if (!a->published || bw_alert_id(alert_id, sizeof(alert_id), org->org_id,
						 a->threshold, a->version) != 0)
			continue;
		bson_uint32_to_string(n++, &key, idx, sizeof(idx));
		bson_append_utf8(&ids, key, -1, alert_id, -1);
	}
	bson_append_array_end(&in, &ids);
	bson_append_document_end(&cond, &in);
	bson_append_document_end(&pull, &cond);
	bson_append_document_end(update, &pull);
	BSON_APPEND_DOCUMENT_BEGIN(update, "$inc", &inc);
	bw_customer_append_version_bump(&inc);
	bson_append_document_end(update, &inc);
	return n > 0;
}

int bw_usage_alerts_clear(struct bw_mongo *m, mongoc_client_t *client, struct bw_org *orgs,
			  size_t n, struct bw_err *err)
{
	bson_error_t error;
	bson_t reply = BSON_INITIALIZER;
	bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(false));
	mongoc_collection_t *coll = NULL;
	mongoc_bulk_operation_t *bulk = NULL;
	size_t nops = 0;
	int rc = -1;

	for (size_t i = 0; i < n; i++) {
		if (!any_published(&orgs[i]))
			continue; /* alerts are rare: most orgs have nothing to build */
		bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
		if (build_clear(&orgs[i], &filter, &update)) {
			if (!bulk) {
				coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
				bulk = mongoc_collection_create_bulk_operation_with_opts(coll,
											 bulk_opts);
			}
			mongoc_bulk_operation_update_one_with_opts(bulk, &filter, &update, NULL,
								   NULL);
			nops++;
		}
		bson_destroy(&filter);
		bson_destroy(&update);
	}
	if (nops == 0) {
		rc = 0;
		goto done;
	}
	bson_destroy(&reply);
	uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &error);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!ok) {
		bw_mongo_error(&error, "clear published alerts", err);
		if (err)
			err->kind = BW_ERR_TRANSIENT;
		goto done;
	}
	rc = 0;
done:
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	mongoc_collection_destroy(coll);
	bson_destroy(bulk_opts);
	return rc;
}
