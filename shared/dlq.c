/* dlq: see dlq.h. */
#include "dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

int bw_dlq_publish(struct bw_producer *p, const char *worker, const rd_kafka_message_t *src,
		   const char *reason, struct bw_err *err)
{
	char topic[256], part[16], off[32], now[BW_LOG_TIME_LEN];
	const char *src_topic = rd_kafka_topic_name(src->rkt);
	size_t reason_len = strnlen(reason, BW_DLQ_REASON_MAX);
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);

	snprintf(topic, sizeof(topic), "%s.dlq", src_topic);
	snprintf(part, sizeof(part), "%" PRId32, src->partition);
	snprintf(off, sizeof(off), "%" PRId64, src->offset);
	bw_log_format_now(now, sizeof(now));
	rd_kafka_header_add(hdrs, "dlq.reason", -1, reason, (ssize_t)reason_len);
	rd_kafka_header_add(hdrs, "dlq.source.topic", -1, src_topic, -1);
	rd_kafka_header_add(hdrs, "dlq.source.partition", -1, part, -1);
	rd_kafka_header_add(hdrs, "dlq.source.offset", -1, off, -1);
	rd_kafka_header_add(hdrs, "dlq.worker", -1, worker, -1);
	rd_kafka_header_add(hdrs, "dlq.time", -1, now, -1);
	if (bw_producer_send(p, topic, src->key, src->key_len, src->payload, src->len, hdrs,
			     err) != 0)
		return -1;
	bw_metrics_dlq(reason);
	return 0;
}
