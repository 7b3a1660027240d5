/* ingress_publisher: publishes one webhook event and waits for THAT message's delivery report,
 * so the ingress answers 2xx only once the broker has the event (acks=all, idempotent).
 *
 * The shared bw_producer reports delivery per flush, for all messages at once; the ingress
 * needs it per request while many requests publish concurrently, so this module owns its own
 * librdkafka producer (configured with the shared bw_kafka_conf_apply) with a per-message
 * opaque, a condition variable per waiting request and a thread serving delivery reports.
 *
 * Deadline: message.timeout.ms is set to the publish timeout, so librdkafka itself fails a
 * message it could not deliver in time; the waiter gives up a short grace later. A message
 * already sent to the broker when the deadline passes may still be acknowledged afterwards
 * (the request answered 503): Stripe then retries and the event lands twice, which the
 * stripe worker dedupes by event id. An event is never answered 2xx without being in Kafka. */
#ifndef BW_INGRESS_PUBLISHER_H
#define BW_INGRESS_PUBLISHER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct bw_ingress_publisher;

/* What a published webhook adds to its body at most: the key (an id of up to 255 bytes,
 * BW_INGRESS_ID_MAX), the four stripe.* headers and the record overhead. */
#define BW_INGRESS_RECORD_OVERHEAD (128 + 255 + 15 + 255 + 17 + 255 + 18 + 32 + 25 + 5 + 40)

/* The largest webhook body the ingress accepts under the producer's message.max.bytes: one it
 * can publish, and one the stripe worker's DLQ record carries with its body (the larger of
 * the two overheads). 0 when none fits. */
size_t bw_ingress_max_body(size_t max_message_bytes);

/* Where a delivered message landed. */
struct bw_ingress_delivery {
	int32_t partition;
	int64_t offset;
};

/* New publisher on brokers (RDKAFKA_* properties apply, kafka_env.h; enable.idempotence=true,
 * acks=all and message.timeout.ms=timeout_ms are forced). Starts the delivery-report thread.
 * Returns NULL with err (FATAL) on bad config. */
struct bw_ingress_publisher *bw_ingress_publisher_new(const char *brokers, int timeout_ms,
						      struct bw_err *err);

/* Publishes value under key to topic and blocks until its delivery report (or the deadline).
 * headers is taken over in every case. key and value are copied. Returns 0 when the broker
 * acknowledged it (out filled, may be NULL); -1 with err: TRANSIENT (broker down or slow,
 * deadline passed, queue full), INVALID (larger than message.max.bytes or the broker's limit:
 * never accepted) or FATAL (the idempotent producer raised a fatal error). */
int bw_ingress_publish(struct bw_ingress_publisher *pub, const char *topic, const void *key,
		       size_t key_len, const void *value, size_t value_len,
		       rd_kafka_headers_t *headers, struct bw_ingress_delivery *out,
		       struct bw_err *err);

/* 1 when a broker answered a metadata request within timeout_ms and the producer has no
 * fatal error, else 0. Blocks up to timeout_ms. */
int bw_ingress_publisher_ready(struct bw_ingress_publisher *pub, int timeout_ms);

/* 1 once the producer raised a fatal error (the process should stop). */
int bw_ingress_publisher_failed(struct bw_ingress_publisher *pub);

/* Stops the delivery-report thread, flushes for up to flush_ms, frees. Call only after every
 * bw_ingress_publish call returned. NULL-safe. */
void bw_ingress_publisher_destroy(struct bw_ingress_publisher *pub, int flush_ms);

#endif
