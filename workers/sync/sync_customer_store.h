/* sync_customer_store: the sync worker's reads and writes of one org's payments_customers
 * document (fresh defaults and the version bump through shared/customer_doc): the state it
 * decides on, and the one conditional write (balance_version) of a customer sync, retried on
 * a miss. What is written is described in sync_customer.h. */
#ifndef BW_SYNC_CUSTOMER_STORE_H
#define BW_SYNC_CUSTOMER_STORE_H

#include <mongoc/mongoc.h>
#include <stdint.h>

#include "err.h"
#include "mongo.h"
#include "sub_period.h"
#include "sync_subscription.h"

/* What the customer document holds now. */
struct bw_sync_doc {
	int exists;
	int has_version;
	int64_t version;
	char *org_id, *stripe_customer_id, *subscription_type;
	int64_t allowance;
	struct bw_period_stored periods;  /* reset marker and stored period (milliseconds) */
	int enterprise;          /* subscription_type or organizations.type is "enterprise" */
	int64_t customers_deleted; /* stripe_customers_deleted: Stripe customers of the org deleted */
	int has_sub_created;
	int64_t sub_created;     /* stripe_subscription_event_created, unix seconds */
};

void bw_sync_doc_cleanup(struct bw_sync_doc *d);

/* Loads the document matching key=value into d (d->exists 0 when none). 0, or -1 with err
 * (TRANSIENT). */
int bw_sync_doc_load(mongoc_collection_t *coll, const char *key, const char *value,
		     struct bw_sync_doc *d, struct bw_err *err);

/* What one write of the org's document carries. */
struct bw_sync_write {
	const char *cus;                 /* the Stripe customer */
	const struct bw_sub_state *st;   /* NULL: only stripe_customer_id */
	int64_t read_s;                  /* Stripe's clock when st was read */
	int cus_deleted;                 /* Stripe says the customer is deleted: clear its id */
	int64_t free_grant;
};

/* Writes w to org_id's document (coll of client): a new document gets the fresh defaults
 * first; the subscription fields follow the policy (an enterprise org, by its document or
 * the backend's organizations, keeps its plan; a webhook newer than the read is kept).
 * Reloads and redoes on a missed conditional update. 0, or -1 with err. */
int bw_sync_doc_write(struct bw_mongo *mongo, mongoc_client_t *client, mongoc_collection_t *coll,
		      const char *org_id, const struct bw_sync_write *w, struct bw_err *err);

/* A non-empty string member of doc as a new string (free), or NULL. */
char *bw_sync_dup_str(const bson_t *doc, const char *key);

#endif
