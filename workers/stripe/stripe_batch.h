/* stripe_batch: the stripe worker's batch handler (a bw_batch_fn for the consumer loop).
 *
 * Each message of a polled batch is parsed (malformed: DLQ + `rejected`), the batch's event
 * records and customers are read with one query each (bw_stripe_cache_load), and the events
 * are applied in order by stripe_apply, which writes MongoDB and queues the event records;
 * those are written in one bulk after all effects. Then the customer sync ticks are
 * published to the ticks topic, every input's result to the results topic (and the DLQ
 * records), and the handler waits for the broker's acks: only then does the loop store the
 * offsets. When an event waits for an unknown customer, the ticks are flushed
 * and the batch fails TRANSIENT: the loop rewinds and backs off, the other events replay
 * their recorded outcomes, and the waiting one counts an attempt (bounded, then DLQ). */
#ifndef BW_STRIPE_BATCH_H
#define BW_STRIPE_BATCH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "err.h"
#include "kafka_producer.h"
#include "mongo.h"
#include "stripe_apply.h"
#include "stripe_event.h"

struct bw_stripe_ctx {
	struct bw_mongo *mongo;          /* borrowed */
	struct bw_producer *producer;    /* borrowed */
	const char *worker;              /* borrowed: name in DLQ records */
	const char *results_topic;       /* borrowed */
	const char *ticks_topic;         /* borrowed */
	struct bw_stripe_apply_cfg apply;
	size_t max_event_bytes;
	int flush_timeout_ms;
};

/* bw_batch_fn: opaque is a struct bw_stripe_ctx. */
int bw_stripe_process_batch(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			    struct bw_err *err);

/* The billing.results message of one input (schemas/billing-result.schema.json):
 * source_topic, source_partition, source_offset, event_id, event_type, org_id, status,
 * reason (when set), details, processed_at. ev may be partly parsed (NULL id/type).
 * Returns a new string (free) or NULL. */
char *bw_stripe_result_json(const struct bw_stripe_event *ev,
			    const struct bw_stripe_outcome *out, const rd_kafka_message_t *msg,
			    const char *processed_at);

#endif
