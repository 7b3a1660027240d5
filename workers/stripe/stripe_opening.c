/* stripe_opening: see stripe_opening.h. */
#include "stripe_opening.h"

#include "customer_doc.h"
#include "org_enterprise.h"
#include "stripe_store.h"

#define OPEN_ATTEMPTS 5

/* One attempt: *done = 1 when the org needs no opening or this update opened it. */
static int open_once(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
		     int64_t free_grant, int *done, struct bw_err *err)
{
	bson_t *doc = NULL, *find = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id));
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, push, cond;
	struct bw_customer c;
	struct bw_opening o;
	int64_t matched = 0, version, now = bw_mongo_now_ms();
	int org_ent = 0, rc = -1;

	*done = 0;
	if (bw_stripe_find_one(m, client, BW_COLL_CUSTOMERS, find, BW_STRIPE_NO_SESSIONS, &doc,
			       err) != 0)
		goto done;
	if (doc)
		bw_customer_read(doc, free_grant, &c);
	if (!doc || c.has_opening) {
		*done = 1;
		rc = 0;
		goto done;
	}
	if (!c.enterprise && bw_org_enterprise(m, client, org_id, &org_ent, err) != 0)
		goto done;
	c.enterprise = c.enterprise || org_ent;
	if (bw_customer_opening(&c, &o) != 0) /* an excess overflowing paid: keep as they are */
		o = (struct bw_opening){ c.sub_used, c.purchased_used, c.granted_used, c.paid_used,
					 c.sub_used, c.purchased_used, c.granted_used,
					 c.paid_used };
	version = c.has_version ? c.version + 1 : 1;
	BSON_APPEND_UTF8(&filter, BW_CUST_ORG_ID, org_id);
	if (c.has_version)
		BSON_APPEND_INT64(&filter, BW_CUST_VERSION, c.version);
	else {
		BSON_APPEND_DOCUMENT_BEGIN(&filter, BW_CUST_VERSION, &cond);
		BSON_APPEND_BOOL(&cond, "$exists", false);
		bson_append_document_end(&filter, &cond);
	}
	BSON_APPEND_DOCUMENT_BEGIN(&filter, BW_CUST_OPENING, &cond);
	BSON_APPEND_BOOL(&cond, "$exists", false);
	bson_append_document_end(&filter, &cond);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_INT64(&set, BW_CUST_SUB_USED, o.sub_used);
	BSON_APPEND_INT64(&set, BW_CUST_PURCHASED_USED, o.purchased_used);
	BSON_APPEND_INT64(&set, BW_CUST_GRANTED_USED, o.granted_used);
	BSON_APPEND_INT64(&set, BW_CUST_PAID_USED, o.paid_used);
	BSON_APPEND_INT64(&set, BW_CUST_VERSION, version);
	BSON_APPEND_DATE_TIME(&set, BW_CUST_UPDATED_AT, now);
	bw_customer_append_opening(&set, &c, &o, now);
	bson_append_document_end(&update, &set);
	if (o.sub_used || o.purchased_used || o.granted_used || o.paid_used) {
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &push);
		int built = bw_customer_append_opening_pending(&push, BW_CUST_PENDING, &o, version);
		bson_append_document_end(&update, &push);
		if (built != 0) {
			bw_err_set(err, BW_ERR_TRANSIENT, "opening balance: out of memory");
			goto done;
		}
	}
	if (bw_stripe_update_one(m, client, BW_COLL_CUSTOMERS, &filter, &update, 0, &matched,
				 err) != 0)
		goto done;
	*done = matched == 1;
	rc = 0;
done:
	bson_destroy(&filter);
	bson_destroy(&update);
	bson_destroy(find);
	bson_destroy(doc);
	return rc;
}

int bw_stripe_open_old_org(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			   int64_t free_grant, struct bw_err *err)
{
	int done = 0;

	for (int i = 0; i < OPEN_ATTEMPTS && !done; i++)
		if (open_once(m, client, org_id, free_grant, &done, err) != 0)
			return -1;
	if (!done)
		return bw_err_set(err, BW_ERR_TRANSIENT, "opening balance of %s: %d writers came "
				  "first", org_id, OPEN_ATTEMPTS);
	return 0;
}
