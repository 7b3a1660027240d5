/* dlq: publishes a message a worker cannot process to "<source topic>.dlq".
 *
 * The record's value is the original bytes, its key the original key; headers carry the
 * reason and where it came from: dlq.reason, dlq.source.topic, dlq.source.partition,
 * dlq.source.offset, dlq.worker, dlq.time (RFC 3339). The send is asynchronous: the caller's
 * next bw_producer_flush() says whether it landed, before the source offset is stored. */
#ifndef BW_DLQ_H
#define BW_DLQ_H

#include <librdkafka/rdkafka.h>

#include "err.h"
#include "kafka_producer.h"

/* The longest reason kept; longer reasons are cut. */
#define BW_DLQ_REASON_MAX 512

/* Queues the DLQ record for src (borrowed). Returns 0 or -1 with err. */
int bw_dlq_publish(struct bw_producer *p, const char *worker, const rd_kafka_message_t *src,
		   const char *reason, struct bw_err *err);

#endif
