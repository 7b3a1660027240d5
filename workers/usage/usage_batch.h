/* usage_batch: the usage worker's batch handler (a pipelined bw_batch_handler for the consumer
 * loop, kafka_consumer.h).
 *
 * One polled batch, in three steps:
 *  apply    parse and validate every message (invalid ones go to the DLQ); link the copies of
 *           an event (org_id, event_id) inside the batch; group by org; read the backend's
 *           organizations for the enterprise flag (1 query, only for ObjectId org ids), load
 *           those orgs (1 query) and the usage records of the batch's events by their
 *           composite _id (1 query); run the waterfall in memory, each copy judged after the
 *           one before; write every changed org with one conditional update on
 *           balance_version (1 unordered bulk; misses are reloaded and redone); insert the
 *           usage records (1 unordered bulk). Fault points after_db_write, after_records.
 *  publish  queue one result per message, the DLQ records and the alerts (no waiting).
 *  settle   wait for their acks (fault point after_results), then $pull the published alerts.
 * Only then does the loop store the offsets (after_offset_store). The loop runs the next
 * batch's apply while this batch's acks are in flight, and settles this batch before the next
 * one publishes, so the flush in settle waits for this batch's messages only.
 *
 * Exactly-once effect: an applied event's id, hash and breakdown are written atomically with
 * the balances (pending_events on the customer document) and stay there until a later write
 * has seen its usage record, so a crash between any two steps is repaired on redelivery.
 *
 * Low-balance alerts (usage_alert.h): the alert state and the alerts a charge fires are part
 * of the same conditional update (pending_alerts), so each crossing is decided exactly once,
 * whichever worker wins. A pending alert is published with the results by any batch holding
 * the event whose charge crossed (the first attempt, or its redelivery after a crash), and is
 * removed by a $pull only after the broker acknowledged it. So every alert is published at
 * least once, and more than once only after a crash or error between its publish and that
 * removal, then as the same message (alert_id = org_id:threshold:balance_version). */
#ifndef BW_USAGE_BATCH_H
#define BW_USAGE_BATCH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kafka_consumer.h"
#include "kafka_producer.h"
#include "mongo.h"
#include "usage_alert.h"
#include "waterfall.h"

struct bw_usage_ctx {
	struct bw_mongo *mongo;          /* borrowed */
	struct bw_producer *producer;    /* borrowed */
	const char *worker;              /* borrowed: worker name for DLQ records */
	const char *results_topic;       /* borrowed */
	const char *alerts_topic;        /* borrowed: low-balance alerts (usage_alert.h) */
	struct bw_alert_cfg alerts;
	struct bw_waterfall_order order;
	int64_t free_grant;
	size_t max_event_bytes;
	int max_attempts;                /* conditional-update retries before a transient error */
	int flush_timeout_ms;
};

/* The steps as bw_batch_handler members; opaque is a struct bw_usage_ctx, state the batch
 * (new from apply, freed by discard, NULL-safe). publish settles a batch that published alerts
 * at once (see there); settle is then a no-op. */
int bw_usage_batch_apply(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			 void **state, struct bw_err *err);
int bw_usage_batch_publish(void *opaque, void *state, struct bw_err *err);
int bw_usage_batch_settle(void *opaque, void *state, struct bw_err *err);
void bw_usage_batch_discard(void *opaque, void *state);

/* The four above, for bw_consumer_run_pipelined(). */
extern const struct bw_batch_handler bw_usage_handler;

#endif
