/* acked_publisher: publishes messages and waits for THEIR delivery reports, so an HTTP front
 * (the webhook ingress, bw-api) answers 2xx only once the broker has every message of the
 * request (acks=all, idempotent).
 *
 * The shared bw_producer reports delivery per flush, for all messages at once; a front needs
 * it per request while many requests publish concurrently, so this module owns its own
 * librdkafka producer (configured with the shared bw_kafka_conf_apply) with a per-request
 * opaque, a condition variable per waiting request and a thread serving delivery reports.
 *
 * Deadline: message.timeout.ms is set to the publish timeout, so librdkafka itself fails a
 * message it could not deliver in time; the waiter gives up a short grace later. A message
 * already sent to the broker when the deadline passes may still be acknowledged afterwards
 * (the request answered 503): the caller retries with the same ids and the consumers dedupe
 * (Stripe event id, usage event_id). Nothing is answered 2xx without being in Kafka. A batch
 * is not atomic: when it fails, some of its messages may have landed. */
#ifndef BW_ACKED_PUBLISHER_H
#define BW_ACKED_PUBLISHER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct bw_acked_publisher;

/* Where a delivered message landed. */
struct bw_acked_delivery {
	int32_t partition;
	int64_t offset;
};

/* One message of a batch: key and value are borrowed (copied when produced). */
struct bw_acked_msg {
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
};

/* New publisher on brokers (RDKAFKA_* properties apply, kafka_env.h; enable.idempotence=true,
 * acks=all and message.timeout.ms=timeout_ms are forced; linger_ms is the default linger,
 * overridable by KAFKA_LINGER_MS). Starts the delivery-report thread. Returns NULL with err
 * (FATAL) on bad config. */
struct bw_acked_publisher *bw_acked_publisher_new(const char *brokers, int timeout_ms,
						  int linger_ms, struct bw_err *err);

/* Publishes value under key to topic and blocks until its delivery report (or the deadline).
 * headers is taken over in every case. key and value are copied. Returns 0 when the broker
 * acknowledged it (out filled, may be NULL); -1 with err: TRANSIENT (broker down or slow,
 * deadline passed, queue full), INVALID (larger than message.max.bytes or the broker's limit:
 * never accepted) or FATAL (the idempotent producer raised a fatal error). */
int bw_acked_publish(struct bw_acked_publisher *pub, const char *topic, const void *key,
		     size_t key_len, const void *value, size_t value_len,
		     rd_kafka_headers_t *headers, struct bw_acked_delivery *out,
		     struct bw_err *err);

/* Publishes msgs[0..n) to topic (each under its own key, in order) and blocks until every
 * delivery report arrived (or the deadline). Returns 0 when the broker acknowledged all of
 * them; -1 with err (kinds as above) otherwise, after waiting for those already produced. */
int bw_acked_publish_batch(struct bw_acked_publisher *pub, const char *topic,
			   const struct bw_acked_msg *msgs, size_t n, struct bw_err *err);

/* 1 when a broker answered a metadata request within timeout_ms and the producer has no
 * fatal error, else 0. Blocks up to timeout_ms. */
int bw_acked_publisher_ready(struct bw_acked_publisher *pub, int timeout_ms);

/* 1 once the producer raised a fatal error (the process should stop). */
int bw_acked_publisher_failed(struct bw_acked_publisher *pub);

/* Stops the delivery-report thread, flushes for up to flush_ms, frees. Call only after every
 * publish call returned. NULL-safe. */
void bw_acked_publisher_destroy(struct bw_acked_publisher *pub, int flush_ms);

#endif
