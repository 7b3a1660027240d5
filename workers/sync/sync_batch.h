/* sync_batch: the sync worker's batch handler (a bw_batch_fn for the consumer loop).
 *
 * Each tick is parsed (a bad one goes to the DLQ and is answered `rejected`), run against the
 * Stripe API (or answered `skipped` in local-only mode, when no secret key is configured),
 * and answered on billing.results; the result is acknowledged before the offset is stored.
 *
 * A transient failure (Stripe after the client's retries, MongoDB) fails the batch, so the
 * loop rewinds and backs off; the same tick failing max_tick_attempts times in a row is
 * answered `failed` and passed, so a Stripe outage never blocks the partition for good.
 * A Stripe 4xx is answered `failed` at once with Stripe's error type, code and message.
 * The worker runs batches of one tick (main sets batch_max 1): a rewind redoes one tick. */
#ifndef BW_SYNC_BATCH_H
#define BW_SYNC_BATCH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kafka_producer.h"
#include "mongo.h"
#include "stripe_api.h"
#include "sub_policy.h"
#include "sync_tick.h"

struct bw_sync_ctx {
	struct bw_mongo *mongo;          /* borrowed */
	struct bw_producer *producer;    /* borrowed */
	struct bw_stripe_api *api;       /* borrowed; NULL: local-only mode */
	const char *worker;              /* borrowed */
	const char *results_topic;       /* borrowed */
	const char *product_tag;         /* borrowed */
	int64_t free_grant;
	struct bw_sub_policy policy;     /* the shared subscription policy's settings */
	size_t max_tick_bytes;
	int max_tick_attempts;
	int flush_timeout_ms;
	/* the tick that failed transiently last, and how often in a row */
	int32_t failed_partition;
	int64_t failed_offset;
	int failed_attempts;
};

/* Runs one sync of scope (org_id / stripe_customer_id for scope customer) and fills
 * out->counts, out->sync_run (borrowed from run_id, which the caller provides, >= 40 bytes)
 * and *serr. customer_errors (may be NULL) collects scope all's refused customers.
 * Returns 0, or -1 with err. Used for ticks and for the prices sync at start. */
int bw_sync_run(struct bw_sync_ctx *ctx, enum bw_sync_scope scope, const char *org_id,
		const char *stripe_customer_id, struct bw_sync_outcome *out, char *run_id,
		size_t run_id_len, json_t *customer_errors, struct bw_stripe_error *serr,
		struct bw_err *err);

/* bw_batch_fn: opaque is a struct bw_sync_ctx. */
int bw_sync_process_batch(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			  struct bw_err *err);

#endif
