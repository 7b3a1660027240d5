/* customer_doc: the one owner of the payments_customers document (one per org): its field
 * names, how old values read, the fields of a fresh document, the balance_version bump and
 * the opening balance of an org the original integration wrote.
 *
 * The original integration (../shared/SEED.md) added fields lazily and had races, so a stored
 * document may lack any field, hold null, or have used > total. Its readings are the contract:
 *   - a missing or null counter reads 0;
 *   - a missing or null granted_credits reads as the free grant (FREE_GRANT_SPUS);
 *   - subscription_spu_allowance null on a non-enterprise org reads 0;
 *   - remaining per bucket is max(total - used, 0): an overdrawn bucket reads 0;
 *   - enterprise (unlimited) when subscription_type is "enterprise" (the backend's
 *     organizations.type is the other flag; the caller reads that collection).
 * Every writer of a balance field bumps balance_version in the same single-document update;
 * a new document is created by an upsert whose $setOnInsert is bw_customer_append_fresh(). */
#ifndef BW_CUSTOMER_DOC_H
#define BW_CUSTOMER_DOC_H

#include <mongoc/mongoc.h>
#include <stdint.h>

#include "bson_buf.h"

#define BW_CUST_ORG_ID "org_id"
#define BW_CUST_VERSION "balance_version"
#define BW_CUST_SUB_TYPE "subscription_type"
#define BW_CUST_SUB_ALLOWANCE "subscription_spu_allowance"
#define BW_CUST_SUB_USED "subscription_spus_used"
#define BW_CUST_PURCHASED "purchased_credits"
#define BW_CUST_PURCHASED_USED "purchased_credits_used"
#define BW_CUST_GRANTED "granted_credits"
#define BW_CUST_GRANTED_USED "granted_credits_used"
#define BW_CUST_PAID_USED "paid_spus_used"
#define BW_CUST_PERIOD_START "stripe_current_billing_period_start"
#define BW_CUST_PENDING "pending_events"
#define BW_CUST_OPENING "opening_balance"
/* Low-balance alerts (the usage worker's usage_alert): the thresholds that fired and are not
 * re-armed yet (SPU values), whether "exhausted" fired, and the alerts written with the charge
 * that crossed and not yet known to be published (cleared after the broker's ack). */
#define BW_CUST_ALERTS_FIRED "alerts_fired"
#define BW_CUST_ALERT_EXHAUSTED "alert_exhausted_fired"
#define BW_CUST_PENDING_ALERTS "pending_alerts"
#define BW_CUST_CREATED_AT "created_at"
#define BW_CUST_UPDATED_AT "updated_at"

/* subscription_type of an unlimited org; "none" on a fresh document. */
#define BW_CUST_TYPE_ENTERPRISE "enterprise"
#define BW_CUST_TYPE_NONE "none"

/* The backend's own collection: {_id: ObjectId, type: "individual"|"team"|"enterprise"};
 * the org id used everywhere else is the _id as a 24-hex string. */
#define BW_COLL_ORGANIZATIONS "organizations"
#define BW_ORG_TYPE "type"

/* The source named by an opening-balance row: the counters an org had when these workers
 * first touched it were written by the original integration. */
#define BW_OPENING_SOURCE "original_integration"

/* A customer document as read (or the state of one not stored yet). */
struct bw_customer {
	int exists;
	int has_version;           /* balance_version present */
	int64_t version;
	int enterprise;            /* subscription_type == "enterprise" */
	int64_t allowance, sub_used;
	int64_t purchased, purchased_used;
	int64_t granted, granted_used;
	int64_t paid_used;
	int grant_missing;         /* granted_credits absent or null: read as the free grant */
	int has_opening;           /* created by these workers, or its opening balance is recorded */
	int64_t period_start_ms;   /* 0 when none */
};

/* The state of an org without a document: what bw_customer_append_fresh() will write. */
void bw_customer_init_fresh(struct bw_customer *c, int64_t free_grant);

/* Reads doc with the original integration's readings (above). */
void bw_customer_read(const bson_t *doc, int64_t free_grant, struct bw_customer *c);

struct bw_mongo_member; /* mongo.h */
#define BW_CUST_READ_EXTRA_MAX 16
/* bw_customer_read() that also finds the caller's members extra[0..nextra) (at most
 * BW_CUST_READ_EXTRA_MAX) in the same single pass over doc: extra_out[i] is positioned at
 * the first member named extra[i] when bit i of the returned mask is set. */
uint32_t bw_customer_read_more(const bson_t *doc, int64_t free_grant, struct bw_customer *c,
			       const char *const *extra, size_t nextra,
			       struct bw_mongo_member *extra_out);

/* What is left in a bucket: max(total - used, 0); 0 for a total <= 0; a negative (corrupt)
 * used counter never hands out more than the total. */
int64_t bw_customer_remaining(int64_t total, int64_t used);

/* Appends the members of a fresh document's $setOnInsert to soi (open document): the free
 * grant, zero purchased credits and allowance, subscription_type "none", created_at, and the
 * opening-balance marker (a fresh org has no old counters). Callers add their own fields. */
void bw_customer_append_fresh(bson_t *soi, int64_t free_grant, int64_t now_ms);

/* Appends "balance_version": 1 to an $inc document: the bump every balance writer does. */
void bw_customer_append_version_bump(bson_t *inc);

/* The opening balance of an old org: its used counters, made consistent with the readings.
 * A bucket overdrawn by the old code (used > total) is clamped to its total and the excess
 * is overage (paid_used): that usage happened and no bucket covered it, and a later purchase
 * must not be eaten by it. Enterprise orgs keep their subscription counter as it is. */
struct bw_opening {
	int64_t sub_used, purchased_used, granted_used, paid_used; /* after normalising */
	int64_t raw_sub_used, raw_purchased_used, raw_granted_used, raw_paid_used;
};

/* Fills o from c and sets c's used counters to the normalised ones. 0, or -1 when a counter
 * would overflow (c unchanged). */
int bw_customer_opening(struct bw_customer *c, struct bw_opening *o);

/* Appends the opening_balance marker document (counters, raw counters, source, time) to a
 * $set document; also materialises granted_credits when it was missing, so the reading no
 * longer depends on FREE_GRANT_SPUS. */
void bw_customer_append_opening(bson_t *set, const struct bw_customer *c,
				const struct bw_opening *o, int64_t now_ms);

/* Appends one entry of pending_events as a document under key (a field name, or NULL: the
 * next index of the open array) of b: a charge written with the balance whose record is not
 * known to be stored yet, split over the buckets, with the balance_version right after it.
 * The usage worker writes and reads them (usage_store, usage_load); the entry of event_id ""
 * and hash "opening_balance" is an org's opening balance. bson_buf: the usage worker's hot
 * path; a failure is sticky in b (bson_buf.h). */
void bw_customer_append_pending(struct bw_bson_buf *b, const char *key, const char *event_id,
				const char *hash, int64_t from_subscription,
				int64_t from_purchased, int64_t from_granted, int64_t from_paid,
				int64_t version);

/* Appends the opening balance's pending_events entry (above) for o under key of parent.
 * Returns 0, or -1 out of memory (parent unchanged). */
int bw_customer_append_opening_pending(bson_t *parent, const char *key,
				       const struct bw_opening *o, int64_t version);

/* 1 when org_id is a 24-hex string (an organizations _id); oid then holds it. */
int bw_customer_org_oid(const char *org_id, bson_oid_t *oid);

/* The billing period (stripe_current_billing_period_start|end): the old contract, which the
 * backend's pages read, is unix seconds as an integer (or null). Written as int64 seconds;
 * read from that, from int32 or an integral double (the old Python code), or from a date
 * (earlier versions of these workers wrote one). A filter comparing the field must cover
 * both types: bw_customer_append_period_lte(). */
#define BW_CUST_PERIOD_END "stripe_current_billing_period_end"
/* Stripe's pending cancellation of the org's subscription (not balance fields: no
 * balance_version bump): cancel_at_period_end (bool) and cancel_at (int64 unix seconds, or
 * null), what bw-api's GET .../subscription answers. Written only through
 * bw_customer_append_cancel(), by every writer of the subscription state: the stripe worker
 * (customer.subscription.* events, under its event ordering), the sync worker (the API's
 * subscription objects, unless a newer event is stored; bw-api runs the same code after its
 * cancel, reactivate and plan-change calls) and bw-api (Stripe's answer to those calls, only
 * when that re-read failed). */
#define BW_CUST_CANCEL_AT_END "subscription_cancel_at_period_end"
#define BW_CUST_CANCEL_AT "subscription_cancel_at"

/* Appends both cancellation fields to a $set document. ended: the subscription is over
 * (deleted, or a status bw_sub_policy_ended() names): nothing is pending any more, so false
 * and null whatever Stripe's object still says. Else at_period_end, and cancel_at_s (unix
 * seconds; <= 0: none, null). */
void bw_customer_append_cancel(bson_t *set, int ended, int at_period_end, int64_t cancel_at_s);

/* The period field key (start or end) of doc in milliseconds. 1 when present and readable
 * (*ms then holds it), else 0 with *ms = 0 (missing, null, another type). */
int bw_customer_period_ms(const bson_t *doc, const char *key, int64_t *ms);

/* Appends both period fields to a $set document as int64 unix seconds. */
void bw_customer_append_period(bson_t *set, int64_t start_s, int64_t end_s);

/* Appends to an open $or array (next index *i) the clauses "key <= at_s" for both stored
 * forms (a number of seconds, a date) and "key null or missing". */
void bw_customer_append_period_lte(bson_t *or_array, uint32_t *i, const char *key,
				   int64_t at_s);

#endif
