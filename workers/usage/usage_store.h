/* usage_store: the usage worker's MongoDB I/O, one round trip per call, whatever the number
 * of orgs or events in the batch. Reads in usage_load.c, writes in usage_store.c, the alert
 * fields of the customer document in usage_alert_store.c.
 *
 *   load_org_types find organizations where _id in [...] and type "enterprise" (the
 *                  backend's flag; skipped when no org id of the batch is an ObjectId)
 *   load_orgs      find payments_customers where org_id in [...]
 *   find_records   find payments_usage_records where _id in [{org_id, event_id}, ...]
 *   write_orgs     one unordered bulk of conditional updates (filter on balance_version;
 *                  upsert for orgs seen for the first time)
 *   insert_records one unordered bulk insert; duplicate keys are fine (already recorded)
 *   alerts_clear   one unordered bulk of $pull of the alerts just published (only when some
 *                  were: alerts are rare)
 *
 * Every writer of a customer document's balance fields bumps balance_version, so the
 * conditional update here misses whenever anything changed since the read. */
#ifndef BW_USAGE_STORE_H
#define BW_USAGE_STORE_H

#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdint.h>

#include "bson_buf.h"
#include "customer_doc.h"
#include "err.h"
#include "mongo.h"
#include "usage_alert.h"
#include "waterfall.h"

/* An event applied to an org whose usage record may not be written yet: kept on the customer
 * document (pending_events) until a later write sees the record. */
struct bw_pending {
	char *event_id;          /* owned; "" is the org's opening balance */
	char hash[65];
	struct bw_breakdown bd;
	int64_t version;         /* balance_version right after this event */
	int record_found;        /* set by the caller after find_records */
};

/* An alert written with the charge that crossed (pending_alerts), until its publish was
 * acknowledged and a later write cleared it (usage_alert.h). */
struct bw_pending_alert {
	char *event_id;          /* owned: the event whose charge crossed */
	int64_t threshold;       /* SPUs; 0 is "exhausted" */
	int64_t remaining;       /* total remaining after that charge */
	int64_t version;         /* balance_version after that charge */
	int64_t created_at_ms;
	int published;           /* sent by this batch */
};

/* One org of a batch. The store fills the loaded part; the batch logic the rest. */
struct bw_org {
	const char *org_id;      /* borrowed (from an event of the batch) */
	int org_enterprise;      /* organizations.type is "enterprise" (kept by bw_org_reset) */
	/* loaded */
	struct bw_customer cust; /* the document as read (shared/customer_doc) */
	int exists;
	int64_t version;
	int version_missing;     /* the document has no balance_version field yet */
	struct bw_balances bal;
	int64_t period_start_ms;
	struct bw_pending *pending;  /* owned array */
	size_t npending;
	struct bw_pending **pending_by_id; /* owned array: pending sorted by event_id */
	/* computed by the batch logic */
	struct bw_balances new_bal;
	int64_t new_version;
	struct bw_pending *new_pending; /* owned array: what the write stores */
	size_t nnew_pending;
	int write_opening;       /* first touch of an old org: the write records the opening */
	struct bw_opening opening;
	int record_opening;      /* the opening-balance row is to be (re)inserted */
	struct bw_breakdown opening_bd;
	int64_t opening_version;
	struct bw_alert_state alerts;       /* loaded; then as the charges left it */
	struct bw_pending_alert *palerts;   /* owned array: loaded, then the new ones */
	size_t npalerts, palerts_cap;
	int alerts_changed;      /* the write stores the alert fields */
	int dirty;               /* has a write to do */
	int confirmed;           /* write known to have landed (or nothing to write) */
};

/* The key of a usage record (usage_result.h: bw_usage_record_id_append). */
struct bw_record_key {
	const char *org_id, *event_id;   /* borrowed */
};

/* A usage record found by key. */
struct bw_found_record {
	char *event_id;          /* owned ("" for an opening balance) */
	char *org_id;            /* owned */
	char hash[65];
	struct bw_breakdown bd;
	int64_t version;
	char *kafka_topic;       /* owned, or NULL: the message that charged it */
	int32_t kafka_partition;
	int64_t kafka_offset;
};

/* Frees the loaded and computed arrays of org (not org itself) and zeroes them, keeping
 * org_id and org_enterprise. */
void bw_org_reset(struct bw_org *org);

/* Sets org_enterprise of orgs[0..n) (sorted by org_id) from the backend's organizations
 * collection: one query for the orgs whose id is an ObjectId string, none when no id is. */
int bw_usage_store_load_org_types(struct bw_mongo *m, mongoc_client_t *client,
				  struct bw_org *orgs, size_t n, struct bw_err *err);

/* Loads the customer documents of orgs[0..n) (one query), read by shared/customer_doc. An org
 * without a document gets exists = 0, version 0 and the balances of a new org (granted =
 * free_grant). An org is enterprise when its document or organizations says so. */
int bw_usage_store_load_orgs(struct bw_mongo *m, mongoc_client_t *client,
			     struct bw_org *const *orgs, size_t n, int64_t free_grant,
			     struct bw_err *err);

/* The first loaded pending entry of event_id (by binary search), or NULL. */
struct bw_pending *bw_org_find_pending(const struct bw_org *org, const char *event_id);

/* Appends the key of a usage record to b under key (NULL: the next array index), the same
 * bytes as bw_usage_record_id_append() (usage_result.h) writes with libbson, at a tenth of
 * the instructions: the $in of find_records holds one per event of the batch. */
void bw_usage_record_id_buf(struct bw_bson_buf *b, const char *key, const char *org_id,
			    const char *event_id);

/* Finds the usage records of keys[0..n) (one query on _id). *out: new array sorted by
 * (org_id, event_id) (bw_found_records_free). */
int bw_usage_store_find_records(struct bw_mongo *m, mongoc_client_t *client,
				const struct bw_record_key *keys, size_t n,
				struct bw_found_record **out, size_t *nout, struct bw_err *err);

/* Binary search in a sorted found-record array. Borrowed pointer or NULL. */
const struct bw_found_record *bw_found_record_lookup(const struct bw_found_record *recs,
						     size_t n, const char *org_id,
						     const char *event_id);
void bw_found_records_free(struct bw_found_record *recs, size_t n);

/* Writes every dirty org of orgs[0..n) in one unordered bulk. Sets org->confirmed for writes
 * known to have landed; the rest missed (another writer came first) or are uncertain and
 * must be reloaded. Returns 0 (even with misses) or -1 with err (TRANSIENT). */
int bw_usage_store_write_orgs(struct bw_mongo *m, mongoc_client_t *client,
			      struct bw_org *const *orgs, size_t n, int64_t free_grant,
			      struct bw_err *err);

/* Alert fields of the customer document (usage_alert_store.c). */
/* Reads alerts_fired, alert_exhausted_fired and pending_alerts into org: the members m[0],
 * m[1], m[2] of the customer document, each present when bit 0, 1, 2 of has is set (found
 * with the balances in one pass: bw_customer_read_more). */
int bw_usage_alerts_load(uint32_t has, const struct bw_mongo_member *m, struct bw_org *org,
			 struct bw_err *err);
/* Appends a new pending alert (event_id copied). */
int bw_usage_alerts_add(struct bw_org *org, const char *event_id, int64_t threshold,
			int64_t remaining, int64_t version, int64_t now_ms, struct bw_err *err);
/* Appends the alert fields to a $set document when org->alerts_changed. */
void bw_usage_alerts_append_set(bson_t *set, const struct bw_org *org);
/* Frees org's pending alerts. */
void bw_usage_alerts_free(struct bw_org *org);
/* After the broker acknowledged them: removes the published pending alerts of orgs[0..n)
 * (one unordered bulk of $pull, each bumping balance_version so a concurrent write that read
 * them misses and reloads instead of writing them back). */
int bw_usage_alerts_clear(struct bw_mongo *m, mongoc_client_t *client, struct bw_org *orgs,
			  size_t n, struct bw_err *err);

/* Inserts docs[0..n) into payments_usage_records in one unordered bulk, ignoring duplicate
 * keys. docs stay owned by the caller. */
int bw_usage_store_insert_records(struct bw_mongo *m, mongoc_client_t *client,
				  bson_t *const *docs, size_t n, struct bw_err *err);

#endif
