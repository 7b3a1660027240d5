/* sync_tick: the sync.ticks message (parse and validate) and the billing.results message the
 * sync worker answers every tick with. Pure functions, no I/O.
 *
 * Tick (schemas/sync-tick.schema.json): {"tick_id": str, "scope": "prices"|"customer"|"all",
 * "org_id"?: str, "stripe_customer_id"?: str, "reason"?: str}; scope "customer" needs org_id
 * or stripe_customer_id. */
#ifndef BW_SYNC_TICK_H
#define BW_SYNC_TICK_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "stripe_api.h"

enum bw_sync_scope { BW_SYNC_PRICES = 0, BW_SYNC_CUSTOMER, BW_SYNC_ALL };

struct bw_sync_tick {
	json_t *root;                    /* owned: the parsed message */
	const char *tick_id;             /* borrowed from root */
	enum bw_sync_scope scope;
	const char *org_id;              /* borrowed, may be NULL */
	const char *stripe_customer_id;  /* borrowed, may be NULL */
	const char *reason;              /* borrowed, may be NULL */
};

/* Parses len bytes (at most max_len) into tick. On failure returns -1 with err (INVALID)
 * and *raw_tick_id set to a new copy of a readable tick_id (or NULL) for the result.
 * On success the caller frees with bw_sync_tick_cleanup(). */
int bw_sync_tick_parse(const void *buf, size_t len, size_t max_len, struct bw_sync_tick *tick,
		       char **raw_tick_id, struct bw_err *err);

void bw_sync_tick_cleanup(struct bw_sync_tick *tick);

/* "prices", "customer", "all". */
const char *bw_sync_scope_name(enum bw_sync_scope scope);

enum bw_sync_status { BW_SYNC_APPLIED = 0, BW_SYNC_SKIPPED, BW_SYNC_FAILED, BW_SYNC_REJECTED };

/* "applied", "skipped", "failed", "rejected". */
const char *bw_sync_status_name(enum bw_sync_status st);

/* What one sync run did: the counts of the result. */
struct bw_sync_counts {
	int64_t prices_seen;         /* prices listed (every product) */
	int64_t prices_stored;       /* prices of our product upserted */
	int64_t prices_invalid;      /* stored with a metadata_error, or of unreadable shape */
	int64_t prices_deactivated;  /* stored prices not listed any more: active=false */
	int64_t pages;               /* list pages read */
	int64_t requests;            /* HTTP attempts, retries included */
	int64_t retries;
	int64_t customers_seen;
	int64_t customers_updated;   /* subscription fields written */
	int64_t customers_created;   /* Stripe customers created for orgs without one */
	int64_t customers_failed;    /* scope all: customers Stripe refused (4xx) */
	int64_t customers_foreign;   /* another product's customers recorded as such */
};

/* Outcome of one tick (strings borrowed). */
struct bw_sync_outcome {
	enum bw_sync_status status;
	const char *tick_id;
	const char *scope;            /* NULL for a rejected tick */
	const char *org_id;
	const char *stripe_customer_id;
	const char *reason;
	const char *sync_run;
	int attempts;
	struct bw_sync_counts counts;
	const struct bw_stripe_error *stripe_error;  /* failed: what Stripe said, or NULL */
	json_t *customer_errors;      /* borrowed array (scope all), or NULL */
};

/* The result JSON for msg (borrowed) as a new string (caller free()), or NULL on OOM. */
char *bw_sync_result_json(const struct bw_sync_outcome *out, const rd_kafka_message_t *msg,
			  const char *processed_at);

#endif
