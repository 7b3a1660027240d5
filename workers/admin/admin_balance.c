/* admin_balance: `bw-admin balance ORG`: the org's balances read exactly as the usage worker
 * reads them (usage_store's loads, shared/customer_doc's readings, the organizations flag)
 * and printed as the same "balances" object its results carry, with the subscription and the
 * last usage event. */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "customer_doc.h"
#include "usage_result.h"
#include "usage_store.h"

static const char *const sub_fields[] = { "subscription_type", "stripe_customer_id",
					  "stripe_subscription_id", "stripe_subscription_status",
					  BW_CUST_PERIOD_START, "stripe_current_billing_period_end",
					  "subscription_spus_reset_period_start" };

/* The subscription fields of the stored document, as they are. */
static json_t *subscription_json(const bson_t *doc)
{
	json_t *all = bw_admin_bson_json(doc), *sub = json_object();

	for (size_t i = 0; all && i < sizeof(sub_fields) / sizeof(sub_fields[0]); i++) {
		json_t *v = json_object_get(all, sub_fields[i]);
		if (v)
			json_object_set(sub, sub_fields[i], v);
	}
	json_decref(all);
	return sub;
}

/* The org's newest usage record of an event (the opening row has no event_id). */
static int last_usage(struct bw_mongo *m, mongoc_client_t *client, const char *org,
		      json_t **out, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_USAGE_RECORDS);
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org), "event_id", "{", "$exists",
				  BCON_BOOL(true), "}");
	bson_t *opts = BCON_NEW("sort", "{", "processed_at", BCON_INT32(-1), "}", "limit",
				BCON_INT64(1), "projection", "{", "_id", BCON_INT32(0),
				"event_id", BCON_INT32(1), "spus", BCON_INT32(1), "operation",
				BCON_INT32(1), "timestamp", BCON_INT32(1), "processed_at",
				BCON_INT32(1), "status", BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t error;
	int rc = -1;

	*out = NULL;
	if (mongoc_cursor_next(cur, &doc))
		*out = bw_admin_bson_json(doc);
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "last usage record", err);
		goto done;
	}
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	return rc;
}

int bw_admin_balance(struct bw_admin *a)
{
	const char *org_id = a->args.npos > 1 ? a->args.pos[1] : NULL;
	struct bw_org org;
	struct bw_org *orgp = &org;
	struct bw_mongo *m;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t *filter = NULL;
	const bson_t *doc;
	bson_error_t error;
	json_t *last = NULL;
	char *bal = NULL;
	int code;

	memset(&org, 0, sizeof(org));
	if (!org_id)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "balance needs ORG");
	if (!(m = bw_admin_mongo(a)))
		return bw_admin_fail(a);
	client = bw_mongo_pop(m);
	org.org_id = org_id;
	if (bw_usage_store_load_org_types(m, client, &org, 1, &a->err) != 0 ||
	    bw_usage_store_load_orgs(m, client, &orgp, 1, a->common.free_grant, &a->err) != 0) {
		code = bw_admin_fail(a);
		goto done;
	}
	json_object_set_new(a->out, "org_id", json_string(org_id));
	if (!org.exists) {
		code = bw_admin_fail_with(a, BW_ADMIN_NOT_FOUND, BW_ERR_INVALID,
					  "org %s has no customer document", org_id);
		goto done;
	}
	bal = bw_usage_balances_json(&org.bal);
	json_object_set_new(a->out, "balances", bal ? json_loads(bal, 0, NULL) : json_null());
	json_object_set_new(a->out, "balance_version", json_integer(org.version));
	json_object_set_new(a->out, "pending_events", json_integer((json_int_t)org.npending));
	json_object_set_new(a->out, "opening_balance_recorded",
			    json_boolean(org.cust.has_opening));
	coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id));
	cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
	if (mongoc_cursor_next(cur, &doc))
		json_object_set_new(a->out, "subscription", subscription_json(doc));
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load customer", &a->err);
		code = bw_admin_fail(a);
		goto done;
	}
	if (last_usage(m, client, org_id, &last, &a->err) != 0) {
		code = bw_admin_fail(a);
		goto done;
	}
	json_object_set_new(a->out, "last_usage", last ? last : json_null());
	last = NULL;
	code = BW_ADMIN_OK;
done:
	free(bal);
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	bw_org_reset(&org);
	if (client)
		bw_mongo_push(m, client);
	return code;
}
