/* api_balance: see api_balance.h. */
#include "api_balance.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "customer_doc.h"
#include "metrics.h"
#include "usage_result.h"
#include "usage_store.h"
#include "waterfall.h"

/* The subscription fields of the customer document, as stored (extended JSON for dates). */
static int load_subscription(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			     json_t **out, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id));
	bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id", BCON_INT32(0),
				BW_CUST_SUB_TYPE, BCON_INT32(1), "stripe_subscription_status",
				BCON_INT32(1), BW_CUST_SUB_ALLOWANCE, BCON_INT32(1),
				BW_CUST_PERIOD_START, BCON_INT32(1),
				"stripe_current_billing_period_end", BCON_INT32(1),
				"subscription_cancel_at_period_end", BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t error;
	int rc = -1;

	*out = NULL;
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_cursor_next(cur, &doc)) {
		char *text = bson_as_relaxed_extended_json(doc, NULL);
		*out = text ? json_loads(text, 0, NULL) : NULL;
		bson_free(text);
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load subscription", err);
		goto done;
	}
	if (!*out)
		*out = json_pack("{ss}", BW_CUST_SUB_TYPE, BW_CUST_TYPE_NONE);
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	return rc;
}

static void add_precheck(json_t *o, const struct bw_balances *bal, int64_t spus)
{
	int64_t available = bw_waterfall_available(bal);

	json_object_set_new(o, "spus", json_integer(spus));
	if (bal->enterprise) {
		json_object_set_new(o, "allowed", json_true());
		json_object_set_new(o, "available", json_null());
		json_object_set_new(o, "shortfall", json_integer(0));
		return;
	}
	json_object_set_new(o, "allowed", json_boolean(available >= spus));
	json_object_set_new(o, "available", json_integer(available));
	/* available >= 0 and spus > 0: the difference cannot overflow */
	json_object_set_new(o, "shortfall", json_integer(available >= spus ? 0 : spus - available));
}

int bw_api_balance_json(struct bw_mongo *m, const char *org_id, int64_t free_grant, int64_t spus,
			char **out, struct bw_err *err)
{
	struct bw_org org;
	struct bw_org *orgp = &org;
	mongoc_client_t *client = bw_mongo_pop(m);
	json_t *o = NULL, *sub = NULL, *bal = NULL;
	char *bal_text = NULL;
	int rc = -1;

	*out = NULL;
	memset(&org, 0, sizeof(org));
	org.org_id = org_id;
	if (bw_usage_store_load_org_types(m, client, &org, 1, err) != 0 ||
	    bw_usage_store_load_orgs(m, client, &orgp, 1, free_grant, err) != 0 ||
	    load_subscription(m, client, org_id, &sub, err) != 0)
		goto done;
	bal_text = bw_usage_balances_json(&org.bal);
	bal = bal_text ? json_loads(bal_text, 0, NULL) : NULL;
	o = json_object();
	if (!bal || !o) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	json_object_set_new(o, "org_id", json_string(org_id));
	json_object_set_new(o, "known", json_boolean(org.exists));
	json_object_set_new(o, "enterprise", json_boolean(org.bal.enterprise));
	json_object_set_new(o, "balance_version", json_integer(org.version));
	json_object_set_new(o, "balances", bal);
	bal = NULL;
	json_object_set_new(o, "subscription", sub);
	sub = NULL;
	if (spus >= 1)
		add_precheck(o, &org.bal, spus);
	*out = json_dumps(o, JSON_COMPACT);
	if (!*out) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	rc = 0;
done:
	json_decref(o);
	json_decref(sub);
	json_decref(bal);
	free(bal_text);
	bw_org_reset(&org);
	bw_mongo_push(m, client);
	return rc;
}
