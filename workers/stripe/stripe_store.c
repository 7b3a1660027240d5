/* stripe_store: see stripe_store.h. */
#include "stripe_store.h"

#include "customer_doc.h"
#include "sub_policy.h"

#include <stdio.h>
#include <string.h>

#include "customer_doc.h"
#include "metrics.h"

void bw_stripe_copy_utf8(const bson_t *doc, const char *key, char *dst, size_t len)
{
	bson_iter_t it;

	dst[0] = '\0';
	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
		snprintf(dst, len, "%s", bson_iter_utf8(&it, NULL));
}

json_t *bw_stripe_subdoc_json(const bson_t *doc, const char *key)
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

/* Finds one document of coll matching filter, without the field `omit` (NULL: all). *doc
 * is a new copy (bson_destroy) or NULL. */
int bw_stripe_find_one(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
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
int bw_stripe_update_one(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
			 const bson_t *filter, const bson_t *update, int upsert,
			 int64_t *matched, struct bw_err *err)
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

int bw_stripe_find_and_modify(struct bw_mongo *m, mongoc_client_t *client,
			      const char *coll_name, const bson_t *filter, const bson_t *update,
			      const char *omit, bson_t **doc, struct bw_err *err)
{
	bson_t *fields = omit ? BCON_NEW(omit, BCON_INT32(0)) : NULL;
	bson_t reply, value;
	bson_iter_t it;
	bson_error_t error;
	mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	const uint8_t *data = NULL;
	uint32_t len = 0;
	int rc = 0;

	*doc = NULL;
	mongoc_find_and_modify_opts_set_update(fam, update);
	if (fields)
		mongoc_find_and_modify_opts_set_fields(fam, fields);
	mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_collection_find_and_modify_with_opts(coll, filter, fam, &reply, &error)) {
		rc = bw_mongo_error(&error, coll_name, err);
	} else if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
		bson_iter_document(&it, &len, &data);
		if (bson_init_static(&value, data, len))
			*doc = bson_copy(&value);
	}
	bson_destroy(&reply);
	mongoc_collection_destroy(coll);
	mongoc_find_and_modify_opts_destroy(fam);
	bson_destroy(fields);
	return rc;
}

/* ---- customer documents ---- */

void bw_stripe_cust_from_doc(const bson_t *doc, struct bw_stripe_cust *c)
{
	memset(c, 0, sizeof(*c));
	c->found = 1;
	c->fresh = 1;
	bw_stripe_copy_utf8(doc, "org_id", c->org_id, sizeof(c->org_id));
	bw_stripe_copy_utf8(doc, "stripe_customer_id", c->customer_id, sizeof(c->customer_id));
	bw_stripe_copy_utf8(doc, "stripe_subscription_id", c->sub_id, sizeof(c->sub_id));
	bw_stripe_copy_utf8(doc, "stripe_subscription_status", c->sub_status, sizeof(c->sub_status));
	bw_stripe_copy_utf8(doc, BW_CUST_SUB_TYPE, c->sub_type, sizeof(c->sub_type));
	c->enterprise = bw_sub_policy_is_enterprise_type(c->sub_type);
	bw_stripe_copy_utf8(doc, "stripe_subscription_event_id", c->sub_event_id, sizeof(c->sub_event_id));
	c->has_sub_created = bw_mongo_get_int64(doc, "stripe_subscription_event_created", &c->sub_created);
	bw_stripe_copy_utf8(doc, "subscription_spus_reset_event_id", c->reset_event_id,
		  sizeof(c->reset_event_id));
	c->has_reset = bw_mongo_get_int64(doc, "subscription_spus_reset_period_start", &c->reset_ms);
	/* unix seconds as the old code and we write it, or a date of earlier versions */
	c->has_period = bw_customer_period_ms(doc, BW_CUST_PERIOD_START, &c->period_ms);
	bw_mongo_get_int64(doc, "purchased_credits", &c->purchased_credits);
	bw_mongo_get_int64(doc, "balance_version", &c->balance_version);
}

int bw_stripe_cust_load(struct bw_mongo *m, mongoc_client_t *client, const char *key,
			const char *value, struct bw_stripe_cust *c, struct bw_err *err)
{
	bson_t *filter = BCON_NEW(key, BCON_UTF8(value));
	bson_t *doc = NULL;
	int rc = bw_stripe_find_one(m, client, BW_COLL_CUSTOMERS, filter, BW_STRIPE_NO_SESSIONS,
				    &doc, err);

	memset(c, 0, sizeof(*c));
	if (rc == 0 && doc)
		bw_stripe_cust_from_doc(doc, c);
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* Creates the org's customer document if it is missing (the shared contract: $setOnInsert
 * of the fresh balances plus $inc balance_version), recording the Stripe customer id. One
 * findAndModify that returns the document into c (may be NULL), so no read follows. */
int bw_stripe_cust_ensure(struct bw_mongo *m, mongoc_client_t *client, int64_t free_grant,
			  const char *org_id, const char *customer_id, struct bw_stripe_cust *c,
			  struct bw_err *err)
{
	int64_t now = bw_mongo_now_ms();
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id));
	bson_t *fields = BCON_NEW(BW_STRIPE_NO_SESSIONS, BCON_INT32(0));
	bson_t update = BSON_INITIALIZER, soi, inc, set, reply;
	bson_iter_t it;
	bson_error_t error;
	mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	int rc = 0;

	BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
	bw_customer_append_fresh(&soi, free_grant, now);
	if (customer_id)
		BSON_APPEND_UTF8(&soi, "stripe_customer_id", customer_id);
	bson_append_document_end(&update, &soi);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
	bw_customer_append_version_bump(&inc);
	bson_append_document_end(&update, &inc);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_DATE_TIME(&set, BW_CUST_UPDATED_AT, now);
	bson_append_document_end(&update, &set);
	mongoc_find_and_modify_opts_set_update(fam, &update);
	mongoc_find_and_modify_opts_set_fields(fam, fields);
	mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_UPSERT |
						   MONGOC_FIND_AND_MODIFY_RETURN_NEW);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (!mongoc_collection_find_and_modify_with_opts(coll, filter, fam, &reply, &error)) {
		rc = bw_mongo_error(&error, "create customer", err);
		if (err->kind == BW_ERR_CONFLICT) /* created concurrently: read that one */
			rc = c ? bw_stripe_cust_load(m, client, "org_id", org_id, c, err) : 0;
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
				bw_stripe_cust_from_doc(&doc, c);
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
int bw_stripe_cust_link(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			const char *customer_id, int64_t *matched, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id), "stripe_customer_id", "{",
				  "$exists", BCON_BOOL(false), "}");
	bson_t *update = BCON_NEW("$set", "{", "stripe_customer_id", BCON_UTF8(customer_id), "}");
	int rc = bw_stripe_update_one(m, client, BW_COLL_CUSTOMERS, filter, update, 0, matched, err);

	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}


/* Appends `$or: [{field: {op: v}}, {field: {$exists: false}}]` to filter. */
void bw_stripe_append_or_missing(bson_t *filter, const char *field, const char *op, int64_t v)
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

int bw_stripe_customer_foreign(struct bw_mongo *m, mongoc_client_t *client,
			       const char *customer_id, int *out, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("_id", BCON_UTF8(customer_id)), *doc = NULL;
	int rc = bw_stripe_find_one(m, client, BW_COLL_FOREIGN_CUSTOMERS, filter, NULL, &doc, err);

	*out = rc == 0 && doc != NULL;
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}
