/* dlq: see dlq.h. */
#include "dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

size_t bw_dlq_max_value(size_t max_message_bytes)
{
	return max_message_bytes > BW_DLQ_OVERHEAD ? max_message_bytes - BW_DLQ_OVERHEAD : 0;
}

int bw_dlq_limit(const char *var, int64_t configured, const char *brokers, size_t *out,
		 struct bw_err *err)
{
	size_t mmb = bw_kafka_max_message_bytes(brokers, err);
	size_t max = bw_dlq_max_value(mmb);

	if (mmb == 0)
		return -1;
	if (configured < 0 || (uint64_t)configured > max)
		return bw_err_set(err, BW_ERR_FATAL,
				  "%s: %lld is above %zu, the largest message a DLQ record can carry "
				  "(the producer's message.max.bytes %zu, KAFKA_MESSAGE_MAX_BYTES, less "
				  "%d bytes of DLQ headers and key); lower it, or 0 for that maximum",
				  var, (long long)configured, max, mmb, BW_DLQ_OVERHEAD);
	*out = configured > 0 ? (size_t)configured : max;
	return 0;
}

/* The DLQ headers of src. New list. */
static rd_kafka_headers_t *dlq_headers(const char *worker, const rd_kafka_message_t *src,
				       const char *reason)
{
	char part[16], off[32], now[BW_LOG_TIME_LEN];
	const char *src_topic = rd_kafka_topic_name(src->rkt);
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);

	snprintf(part, sizeof(part), "%" PRId32, src->partition);
	snprintf(off, sizeof(off), "%" PRId64, src->offset);
	bw_log_format_now(now, sizeof(now));
	rd_kafka_header_add(hdrs, "dlq.reason", -1, reason,
			    (ssize_t)strnlen(reason, BW_DLQ_REASON_MAX));
	rd_kafka_header_add(hdrs, "dlq.source.topic", -1, src_topic, -1);
	rd_kafka_header_add(hdrs, "dlq.source.partition", -1, part, -1);
	rd_kafka_header_add(hdrs, "dlq.source.offset", -1, off, -1);
	rd_kafka_header_add(hdrs, "dlq.worker", -1, worker,
			    (ssize_t)strnlen(worker, BW_DLQ_WORKER_MAX));
	rd_kafka_header_add(hdrs, "dlq.time", -1, now, -1);
	return hdrs;
}

/* Queues the record by reference: hdrs (the DLQ headers, taken over) plus dlq.body = note and
 * dlq.source.size = value_len; no value; the key only when it fits the allowance. Never a
 * fallback: if even this is refused, the flush fails. */
static int send_by_reference(struct bw_producer *p, const char *topic, const void *key,
			     size_t key_len, size_t value_len, rd_kafka_headers_t *hdrs,
			     const char *note, struct bw_err *err)
{
	char size[32];
	int keep_key = key_len <= BW_DLQ_KEY_ALLOWANCE;

	snprintf(size, sizeof(size), "%zu", value_len);
	rd_kafka_header_add(hdrs, "dlq.body", -1, note, -1);
	rd_kafka_header_add(hdrs, "dlq.source.size", -1, size, -1);
	if (bw_producer_send(p, topic, keep_key ? key : NULL, keep_key ? key_len : 0, NULL, 0,
			     hdrs, err) != 0)
		return -1;
	bw_log(BW_LOG_WARN, NULL, "DLQ record to %s by reference (%zu-byte message%s): %s", topic,
	       value_len, keep_key ? "" : ", key omitted", note);
	return 0;
}

/* Delivery-report fallback: the broker refused a DLQ record with its body (its own or the DLQ
 * topic's limit is below message.max.bytes). The same record again, by reference. */
static int refused_by_broker(struct bw_producer *p, const rd_kafka_message_t *refused)
{
	rd_kafka_headers_t *orig = NULL;
	struct bw_err err;
	char note[128];

	if (rd_kafka_message_headers(refused, &orig) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	snprintf(note, sizeof(note), "omitted: the broker refused the %zu-byte record as too large",
		 bw_kafka_record_size(refused->key_len, refused->len, orig));
	return send_by_reference(p, rd_kafka_topic_name(refused->rkt), refused->key,
				 refused->key_len, refused->len, rd_kafka_headers_copy(orig), note,
				 &err);
}

static const struct bw_producer_fallback dlq_fallback = { refused_by_broker };

int bw_dlq_publish(struct bw_producer *p, const char *worker, const rd_kafka_message_t *src,
		   const char *reason, struct bw_err *err)
{
	char topic[256], note[128];
	size_t max = bw_producer_max_message_bytes(p);
	rd_kafka_headers_t *hdrs = dlq_headers(worker, src, reason);
	size_t size = bw_kafka_record_size(src->key_len, src->len, hdrs);
	struct bw_err serr;

	snprintf(topic, sizeof(topic), "%s.dlq", rd_kafka_topic_name(src->rkt));
	if (size <= max) {
		bw_err_clear(&serr);
		if (bw_producer_send_fb(p, topic, src->key, src->key_len, src->payload, src->len,
					hdrs, &dlq_fallback, &serr) == 0) {
			bw_metrics_dlq(reason);
			return 0;
		}
		if (serr.kind != BW_ERR_INVALID) { /* only "too large" falls back */
			if (err)
				*err = serr;
			return -1;
		}
		hdrs = dlq_headers(worker, src, reason); /* the send took the first list */
	}
	/* By reference: where it is, how big, why; never the body. */
	snprintf(note, sizeof(note), "omitted: a %zu-byte record is over message.max.bytes %zu",
		 size, max);
	if (send_by_reference(p, topic, src->key, src->key_len, src->len, hdrs, note, err) != 0)
		return -1;
	bw_metrics_dlq(reason);
	return 0;
}
