/* kafka_producer: the idempotent producer every worker publishes results and DLQ records with.
 *
 * enable.idempotence=true and acks=all always; linger.ms 0 unless the environment sets it;
 * other librdkafka properties come from the environment (kafka_env.h: RDKAFKA_<name>,
 * KAFKA_MESSAGE_MAX_BYTES). Sends are asynchronous;
 * bw_producer_flush() waits for every delivery report and fails if any message since the
 * previous flush was not acknowledged, so a caller stores offsets only after a successful
 * flush. */
#ifndef BW_KAFKA_PRODUCER_H
#define BW_KAFKA_PRODUCER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "err.h"

struct bw_producer;

/* librdkafka's default message.max.bytes, the one setting every size limit derives from: the
 * DLQ record, the ingress body limit, MAX_EVENT_BYTES and the like (see dlq.h). */
#define BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES 1000000

/* Bytes a record counts beside its key, value and headers, at most: a v2 record's varints and
 * attributes (36) and the header of a record batch (61) that carries it alone, rounded up. */
#define BW_KAFKA_RECORD_OVERHEAD 128

/* An upper bound of what a record of key_len, value_len and hdrs (may be NULL) counts
 * against message.max.bytes, on the client and on the broker. */
size_t bw_kafka_record_size(size_t key_len, size_t value_len, const rd_kafka_headers_t *hdrs);

/* The producer's message.max.bytes as the KAFKA_* environment sets it (KAFKA_MESSAGE_MAX_BYTES),
 * else librdkafka's default: what bw_producer_new() would use. 0 with err (FATAL) when the
 * KAFKA_* variables are invalid. */
size_t bw_kafka_max_message_bytes(const char *brokers, struct bw_err *err);

/* New producer on brokers; extra_props are "name=value" pairs (NULL-terminated, may be NULL)
 * applied after the environment (kafka_env.h). Returns NULL with err (FATAL) on bad config. */
struct bw_producer *bw_producer_new(const char *brokers, const char *const *extra_props,
				    struct bw_err *err);

/* Queues one message (key and value copied). headers, if not NULL, is taken over in every
 * case (the caller must not touch it after the call). Returns 0 or -1 with err
 * (TRANSIENT when the local queue is full and stays full, INVALID when the message is larger
 * than message.max.bytes allows: it never fits, FATAL on a fatal producer error). */
int bw_producer_send(struct bw_producer *p, const char *topic, const void *key, size_t key_len,
		     const void *value, size_t value_len, rd_kafka_headers_t *headers,
		     struct bw_err *err);

/* A replacement for a message the broker refused as too large (its own limit or the topic's
 * is below message.max.bytes), called from that message's delivery report: it may queue a
 * smaller message with bw_producer_send() and returns 0 when it did; the refusal then does
 * not fail the flush, which also waits for the replacement. */
struct bw_producer_fallback {
	int (*too_large)(struct bw_producer *p, const rd_kafka_message_t *refused);
};

/* bw_producer_send() with a fallback (borrowed, static; NULL: none) for a broker refusal. */
int bw_producer_send_fb(struct bw_producer *p, const char *topic, const void *key,
			size_t key_len, const void *value, size_t value_len,
			rd_kafka_headers_t *headers, const struct bw_producer_fallback *fb,
			struct bw_err *err);

/* Waits up to timeout_ms for every queued message's delivery report. Returns 0 when all
 * messages sent since the last flush were acknowledged; -1 with err otherwise (TRANSIENT for
 * timeouts and broker errors, FATAL when the idempotent producer raised a fatal error or the
 * broker refused a message without fallback as too large: every message sent fits
 * message.max.bytes, so the broker's or topic's own limit is below it, a misconfiguration a
 * retry never fixes). */
int bw_producer_flush(struct bw_producer *p, int timeout_ms, struct bw_err *err);

/* Fetches the metadata of topic so the first message sent to it does not wait for
 * librdkafka's next metadata refresh (up to a second of latency on a worker's first batch).
 * Best effort: a missing topic or a timeout is only logged. */
void bw_producer_warm(struct bw_producer *p, const char *topic, int timeout_ms);

/* The message.max.bytes this producer enforces. */
size_t bw_producer_max_message_bytes(const struct bw_producer *p);

/* Serves delivery reports without blocking. */
void bw_producer_poll(struct bw_producer *p);

/* Borrowed librdkafka handle (for metadata queries). */
rd_kafka_t *bw_producer_handle(struct bw_producer *p);

/* Flushes briefly and frees. NULL-safe. */
void bw_producer_destroy(struct bw_producer *p);

/* Shared by producer and consumer: applies the environment's properties (kafka_env.h) and
 * extra "k=v" pairs to conf. Returns 0 or -1 with err (FATAL). */
int bw_kafka_conf_apply(rd_kafka_conf_t *conf, const char *brokers,
			const char *const *extra_props, struct bw_err *err);

#endif
