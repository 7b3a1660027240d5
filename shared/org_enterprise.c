/* org_enterprise: see org_enterprise.h. */
#include "org_enterprise.h"

#include "customer_doc.h"
#include "metrics.h"
#include "sub_policy.h"

int bw_org_enterprise(struct bw_mongo *mongo, mongoc_client_t *client, const char *org_id,
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
