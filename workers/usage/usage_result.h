/* usage_result: the billing.results message of one usage.events input, and the usage record
 * stored for an applied event. Pure builders, no I/O. */
#ifndef BW_USAGE_RESULT_H
#define BW_USAGE_RESULT_H

#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>

#include "usage_event.h"
#include "waterfall.h"

enum bw_usage_status {
	BW_USAGE_APPLIED = 0,
	BW_USAGE_INSUFFICIENT,  /* applied, with from_paid overage */
	BW_USAGE_DUPLICATE,
	BW_USAGE_CONFLICT,      /* same event_id, different content: not applied */
	BW_USAGE_REJECTED,      /* invalid: also sent to the DLQ */
};

/* "applied", "insufficient_credits", "duplicate", "conflict", "rejected". */
const char *bw_usage_status_name(enum bw_usage_status st);

/* What the batch decided for one input message. */
struct bw_usage_outcome {
	enum bw_usage_status status;
	const char *event_id;         /* borrowed, may be NULL for rejected input */
	const char *org_id;           /* borrowed, may be NULL */
	int64_t spus;
	const char *reason;           /* borrowed, rejected/conflict only */
	int has_breakdown;
	struct bw_breakdown bd;
	int has_balances;
	struct bw_balances bal;       /* balances after the event (or current, for duplicates) */
	int64_t balance_version;
};

/* The result JSON of msg (borrowed) as a new string (caller free()), or NULL on OOM. */
char *bw_usage_result_json(const struct bw_usage_outcome *out, const rd_kafka_message_t *msg,
			   const char *processed_at);

/* The "balances" object of a result alone (remaining per bucket, total, unlimited), as a new
 * string (caller free()), or NULL on OOM: bw-admin's balance command prints the same object. */
char *bw_usage_balances_json(const struct bw_balances *bal);

/* The key of a usage record: the composite _id {org_id, event_id} (the same event_id in two
 * orgs is two events; old records of the original integration have an ObjectId _id and are
 * never matched). The opening balance of an org (event_id "", which no event can have) is
 * {org_id, opening_balance: "original_integration"}. Appends it to b under key. */
void bw_usage_record_id_append(bson_t *b, const char *key, const char *org_id,
			       const char *event_id);

/* The opening-balance row of an org the original integration wrote: its used counters when
 * these workers first touched it (bd), under the opening key, naming the old integration as
 * its source. No spus and no timestamp, so the backend's usage pages do not count it. New
 * bson (caller bson_destroy). */
bson_t *bw_usage_opening_record_bson(const char *org_id, const struct bw_breakdown *bd,
				     int64_t version, int64_t period_start_ms, int64_t now_ms);

/* The payments_usage_records document of an applied event (_id: the composite key): every field
 * of the event at the top level in its order (a field named like one the record sets itself,
 * e.g. "status", under "event" instead), the hash, status, breakdown, version, period start,
 * processed_at and source position. New bson (caller bson_destroy), or NULL on OOM. */
bson_t *bw_usage_record_bson(const struct bw_usage_event *ev, const struct bw_usage_outcome *out,
			     int64_t period_start_ms, const rd_kafka_message_t *msg,
			     int64_t now_ms);

#endif
