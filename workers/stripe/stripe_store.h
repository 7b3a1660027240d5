/* stripe_store: the stripe worker's MongoDB reads and writes of single documents: a find,
 * a guarded update, and the org's customer document (read, create on first sight, link the
 * Stripe customer id). Errors are classified here (bw_mongo_error) and passed up. Every
 * call counts one round trip in the metrics. */
#ifndef BW_STRIPE_STORE_H
#define BW_STRIPE_STORE_H

#include <jansson.h>
#include <mongoc/mongoc.h>

#include "err.h"
#include "mongo.h"
#include "stripe_decide.h"

/* applied_sessions can hold STRIPE_APPLIED_SESSIONS_KEEP ids: customer reads that do not
 * need it leave it out (as the `omit` of bw_stripe_find_one). */
#define BW_STRIPE_NO_SESSIONS "applied_sessions"

/* The _id of our ledger rows in payments_credit_transactions is this prefix + the checkout
 * session id: a key the original integration's rows (ObjectId _id) never carry, so it is
 * unique on every server without an index that would have to build over their rows. */
#define BW_STRIPE_LEDGER_ID_PREFIX "checkout:"

/* dst = doc[key] when it is a string, else "". */
void bw_stripe_copy_utf8(const bson_t *doc, const char *key, char *dst, size_t len);

/* doc[key] as a new JSON object ({} when missing or not a document). */
json_t *bw_stripe_subdoc_json(const bson_t *doc, const char *key);

/* Appends `$or: [{field: {op: v}}, {field: {$exists: false}}]` to filter. */
void bw_stripe_append_or_missing(bson_t *filter, const char *field, const char *op, int64_t v);

/* Finds one document of coll matching filter, without the field `omit` (NULL: all). *doc
 * is a new copy (bson_destroy) or NULL. 0, or -1 with err. */
int bw_stripe_find_one(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		       const bson_t *filter, const char *omit, bson_t **doc, struct bw_err *err);

/* One update_one. *matched = matched + upserted documents. A duplicate key (an upsert
 * racing a creation) is CONFLICT, everything else TRANSIENT. */
int bw_stripe_update_one(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
			 const bson_t *filter, const bson_t *update, int upsert,
			 int64_t *matched, struct bw_err *err);

/* One findAndModify returning the updated document without the field `omit` (NULL: all)
 * into *doc (a new copy, bson_destroy; NULL when nothing matched). 0, or -1 with err
 * (TRANSIENT, or CONFLICT on a duplicate key). */
int bw_stripe_find_and_modify(struct bw_mongo *m, mongoc_client_t *client,
			      const char *coll_name, const bson_t *filter, const bson_t *update,
			      const char *omit, bson_t **doc, struct bw_err *err);

/* Fills c from a payments_customers document (c->found = c->fresh = 1). */
void bw_stripe_cust_from_doc(const bson_t *doc, struct bw_stripe_cust *c);

/* Reads the customer document whose key equals value into c (c->found = 0: none). */
int bw_stripe_cust_load(struct bw_mongo *m, mongoc_client_t *client, const char *key,
			const char *value, struct bw_stripe_cust *c, struct bw_err *err);

/* Creates the org's customer document if it is missing (shared/customer_doc: $setOnInsert
 * of the fresh document plus the balance_version bump), recording the Stripe customer id
 * (may be NULL). One findAndModify that returns the document into c (may be NULL), so no
 * read follows. */
int bw_stripe_cust_ensure(struct bw_mongo *m, mongoc_client_t *client, int64_t free_grant,
			  const char *org_id, const char *customer_id, struct bw_stripe_cust *c,
			  struct bw_err *err);

/* Sets the customer's Stripe id when the document has none yet (not a balance field), so
 * later events of that customer map without metadata. *matched: 1 when this set it. */
int bw_stripe_cust_link(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			const char *customer_id, int64_t *matched, struct bw_err *err);

/* *out = 1 when the sync worker recorded customer_id as another product's Stripe customer
 * (payments_foreign_customers): its events are recorded and ignored. 0, or -1 with err. */
int bw_stripe_customer_foreign(struct bw_mongo *m, mongoc_client_t *client,
			       const char *customer_id, int *out, struct bw_err *err);

#endif
