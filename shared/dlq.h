/* dlq: publishes a message a worker cannot process to "<source topic>.dlq".
 *
 * The record's value is the original bytes, its key the original key; headers carry the
 * reason and where it came from: dlq.reason, dlq.source.topic, dlq.source.partition,
 * dlq.source.offset, dlq.worker, dlq.time (RFC 3339). The send is asynchronous: the caller's
 * next bw_producer_flush() says whether it landed, before the source offset is stored.
 *
 * Size: a DLQ record is the original plus headers, so it can be larger than anything the
 * broker accepted. Every size limit derives from one setting, the producer's
 * message.max.bytes (KAFKA_MESSAGE_MAX_BYTES, default 1,000,000): bw_dlq_max_value() is the
 * largest original a DLQ record carries, and the limits on accepted input (MAX_EVENT_BYTES,
 * STRIPE_MAX_EVENT_BYTES, SYNC_MAX_TICK_BYTES, the ingress body) are checked against it at
 * start (bw_dlq_limit). A message that still does not fit (a larger one the broker took from
 * another producer, a huge key), or whose DLQ record the broker refuses in its delivery report
 * (the broker's or the DLQ topic's own limit is lower), is recorded by reference: no value, the key only when it
 * fits the allowance, and the headers dlq.body ("omitted: ...") and dlq.source.size. Never a
 * retry: a record that can never fit is not a transient error. */
#ifndef BW_DLQ_H
#define BW_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kafka_producer.h"

/* The longest reason kept; longer reasons are cut. */
#define BW_DLQ_REASON_MAX 512

/* The longest dlq.worker value kept. */
#define BW_DLQ_WORKER_MAX 64

/* The headers of a DLQ record at their largest: names, values (reason, a topic name of 249
 * bytes, partition, offset, worker, time, the by-reference note and size) and varints. */
#define BW_DLQ_HEADERS_MAX 1280

/* The original key a DLQ record keeps with its value; a longer key makes it by reference. */
#define BW_DLQ_KEY_ALLOWANCE 1024

/* What a DLQ record adds to the original value at most. */
#define BW_DLQ_OVERHEAD (BW_KAFKA_RECORD_OVERHEAD + BW_DLQ_HEADERS_MAX + BW_DLQ_KEY_ALLOWANCE)

/* The largest original value a DLQ record carries under max_message_bytes (0: none). */
size_t bw_dlq_max_value(size_t max_message_bytes);

/* Start-up check of a limit on accepted input, named var: configured 0 means "derived" and
 * *out becomes bw_dlq_max_value() of the producer's message.max.bytes (from the KAFKA_*
 * environment, see bw_kafka_max_message_bytes); a configured value above it fails with err
 * (FATAL) saying so, since a rejected message of that size could not reach the DLQ.
 * Returns 0 with *out set, or -1. */
int bw_dlq_limit(const char *var, int64_t configured, const char *brokers, size_t *out,
		 struct bw_err *err);

/* Queues the DLQ record for src (borrowed): with its value when it fits, else by reference
 * (logged). Returns 0 or -1 with err (TRANSIENT or FATAL from the producer). */
int bw_dlq_publish(struct bw_producer *p, const char *worker, const rd_kafka_message_t *src,
		   const char *reason, struct bw_err *err);

#endif
