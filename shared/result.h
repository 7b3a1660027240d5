/* result: the envelope every billing.results record shares (schemas/billing-result.schema.json):
 * which input it answers (source_topic, source_partition, source_offset) and when it was
 * processed (processed_at). Each worker adds its own fields (event_id, org_id, status, ...)
 * between bw_result_new() and bw_result_finish(). */
#ifndef BW_RESULT_H
#define BW_RESULT_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>

/* A new JSON object with source_topic, source_partition and source_offset of msg (borrowed).
 * NULL on OOM. */
json_t *bw_result_new(const rd_kafka_message_t *msg);

/* Sets processed_at (RFC 3339, see bw_log_format_now()) on o, serialises o compactly and
 * releases it (o is taken over; NULL-safe). Returns a new string (caller free()) or NULL. */
char *bw_result_finish(json_t *o, const char *processed_at);

#endif
