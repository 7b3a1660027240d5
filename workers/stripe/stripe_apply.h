/* stripe_apply: applies one parsed Stripe event to MongoDB, at most once, and says what
 * happened (the outcome that becomes the billing.results message). It finds the event's
 * handler in one table by event kind (stripe_handlers.h: checkout, subscription, invoice,
 * refund/dispute, customer), resolves the org's customer document for the handlers that
 * need it, and queues the event record.
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

#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>

#include "err.h"
#include "mongo.h"
#include "stripe_cache.h"
#include "stripe_decide.h"
#include "stripe_event.h"
#include "stripe_outcome.h"
#include "sub_policy.h"

struct bw_stripe_apply_cfg {
	int64_t free_grant;
	int unknown_customer_retries;  /* waits before an unmappable event goes to the DLQ */
	int64_t applied_sessions_keep; /* checkout session ids kept in applied_sessions (>= 1) */
	struct bw_sub_policy policy;   /* the shared subscription policy's settings */
	enum bw_stripe_mode livemode;  /* STRIPE_LIVEMODE: events of the other mode are ignored */
};

/* Everything one event is applied with. The batch sets cfg and cache once, and ev, msg,
 * out (its details object created, the rest zeroed) and err per event; bw_stripe_apply
 * fills m, client (the cache's) and cust (the org's customer document, once resolved)
 * for the handlers. All pointers are borrowed. */
struct bw_stripe_apply_ctx {
	const struct bw_stripe_apply_cfg *cfg;
	struct bw_stripe_cache *cache;
	struct bw_mongo *m;
	mongoc_client_t *client;
	const struct bw_stripe_event *ev;
	const rd_kafka_message_t *msg;
	struct bw_stripe_outcome *out;
	struct bw_err *err;
	struct bw_stripe_cust cust;
};

/* Applies ax->ev (parsed from ax->msg) and fills ax->out. Returns 0 with the outcome, or
 * -1 with ax->err (TRANSIENT: the database failed; retry the batch). */
int bw_stripe_apply(struct bw_stripe_apply_ctx *ax);

#endif
