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

/* The DLQ headers of src; note (may be NULL) marks a record by reference. New list. */
static rd_kafka_headers_t *dlq_headers(const char *worker, const rd_kafka_message_t *src,
				       const char *reason, const char *note)
{
	char part[16], off[32], size[32], now[BW_LOG_TIME_LEN];
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
	if (note) {
		snprintf(size, sizeof(size), "%zu", src->len);
		rd_kafka_header_add(hdrs, "dlq.body", -1, note, -1);
		rd_kafka_header_add(hdrs, "dlq.source.size", -1, size, -1);
	}
	return hdrs;
}

int bw_dlq_publish(struct bw_producer *p, const char *worker, const rd_kafka_message_t *src,
		   const char *reason, struct bw_err *err)
{
	char topic[256], note[128];
	size_t max = bw_producer_max_message_bytes(p);
	rd_kafka_headers_t *hdrs = dlq_headers(worker, src, reason, NULL);
	size_t size = bw_kafka_record_size(src->key_len, src->len, hdrs);
	struct bw_err serr;

	snprintf(topic, sizeof(topic), "%s.dlq", rd_kafka_topic_name(src->rkt));
	if (size <= max) {
		bw_err_clear(&serr);
		if (bw_producer_send(p, topic, src->key, src->key_len, src->payload, src->len, hdrs,
				     &serr) == 0) {
			bw_metrics_dlq(reason);
			return 0;
		}
		if (serr.kind != BW_ERR_INVALID) { /* only "too large" falls back */
			if (err)
				*err = serr;
			return -1;
		}
	} else {
		rd_kafka_headers_destroy(hdrs);
	}
	/* By reference: where it is, how big, why; never the body. */
	snprintf(note, sizeof(note), "omitted: a %zu-byte record is over message.max.bytes %zu",
		 size, max);
	hdrs = dlq_headers(worker, src, reason, note);
	int keep_key = src->key_len <= BW_DLQ_KEY_ALLOWANCE;
	if (bw_producer_send(p, topic, keep_key ? src->key : NULL, keep_key ? src->key_len : 0,
			     NULL, 0, hdrs, err) != 0)
		return -1;
	struct bw_log_ctx ctx = BW_LOG_CTX_NONE;
	ctx.topic = rd_kafka_topic_name(src->rkt);
	ctx.partition = src->partition;
	ctx.offset = src->offset;
	bw_log(BW_LOG_WARN, &ctx, "DLQ record by reference (%zu-byte message%s): %s", src->len,
	       keep_key ? "" : ", key omitted", note);
	bw_metrics_dlq(reason);
	return 0;
}
