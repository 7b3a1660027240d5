/* stripe_apply: applies one parsed Stripe event to MongoDB, at most once, and says what
 * happened (the outcome that becomes the billing.results message).
 *
 * Crash safety without transactions: every effect is one single-document update guarded so
 * that running it again changes nothing (applied_sessions on the customer for credits, the
 * stored event `created` for subscriptions, the reset marker for billing periods), and the
 * event record in payments_stripe_events (state "done") is written last. A redelivery after
 * a crash anywhere re-runs the guarded steps: nothing twice, nothing lost. The record keeps
 * the source offset and outcome, so a replay of the same Kafka message (after a crash or a
 * rewound batch) reports the original outcome, and a re-sent copy reports `duplicate`. */
#ifndef BW_STRIPE_APPLY_H
#define BW_STRIPE_APPLY_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>

#include "dlq.h"
#include "err.h"
#include "mongo.h"
#include "stripe_event.h"

/* Outcome statuses, as written in billing.results. */
enum bw_stripe_status {
	BW_SS_APPLIED = 0,
	BW_SS_DUPLICATE,
	BW_SS_IGNORED,
	BW_SS_STALE,
	BW_SS_DEFERRED,
	BW_SS_REJECTED,
};

struct bw_stripe_outcome {
	enum bw_stripe_status status;
	char org_id[BW_STRIPE_ID_MAX + 1];   /* "" when unknown */
	json_t *details;                     /* owned object (bw_stripe_outcome_cleanup) */
	char reason[BW_DLQ_REASON_MAX];      /* why: rejected / stale / deferred / ignored */
	int to_dlq;                          /* rejected: publish the input to the DLQ */
	int waiting;                         /* customer unknown: retry the batch later */
	char tick_reason[64];                /* "" or why a customer sync tick is published */
	char tick_id[2 * BW_STRIPE_ID_MAX];  /* id of that tick */
};

struct bw_stripe_apply_cfg {
	int64_t free_grant;
	int unknown_customer_retries;  /* waits before an unmappable event goes to the DLQ */
	int64_t applied_sessions_keep; /* checkout session ids kept in applied_sessions (>= 1) */
};

/* "applied", "duplicate", ... (static). */
const char *bw_stripe_status_name(enum bw_stripe_status st);

/* What one batch looks up before it applies anything: the event records of its events
 * and the customer documents of their orgs / Stripe customers, each set read with one $in
 * query instead of one read per event. Events whose record is `done` then replay it
 * without a round trip. bw_stripe_apply keeps it current (customers it creates or links
 * are added) and queues the event records it writes in one bulk write, which
 * bw_stripe_cache_flush sends after every effect of the batch (so a record still means
 * its effect is durable). One batch and one client only. */
struct bw_stripe_cache;

/* New empty cache (bw_stripe_cache_destroy), or NULL when out of memory. */
struct bw_stripe_cache *bw_stripe_cache_new(void);
void bw_stripe_cache_destroy(struct bw_stripe_cache *cache);

/* Notes the keys ev (borrowed) will look up. 0, or -1 when out of memory. */
int bw_stripe_cache_want(struct bw_stripe_cache *cache, const struct bw_stripe_event *ev);

/* Reads every wanted key: at most two queries. 0, or -1 with err (TRANSIENT). */
int bw_stripe_cache_load(struct bw_stripe_cache *cache, struct bw_mongo *m,
			 mongoc_client_t *client, struct bw_err *err);

/* Writes the queued event records (one round trip; fault point after_event_record). 0, or
 * -1 with err (TRANSIENT). Must run before the batch's results are published. */
int bw_stripe_cache_flush(struct bw_stripe_cache *cache, struct bw_err *err);

/* Applies ev (parsed from msg, both borrowed) and fills out (zeroed by the caller), using
 * and updating cache (borrowed; NULL: read everything per event). Returns 0 with the
 * outcome, or -1 with err (TRANSIENT: the database failed; retry the batch). */
int bw_stripe_apply(struct bw_mongo *m, mongoc_client_t *client,
		    const struct bw_stripe_apply_cfg *cfg, struct bw_stripe_cache *cache,
		    const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
		    struct bw_stripe_outcome *out, struct bw_err *err);

void bw_stripe_outcome_cleanup(struct bw_stripe_outcome *out);

#endif
