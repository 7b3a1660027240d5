/* kafka_stats: librdkafka's statistics (statistics.interval.ms) turned into metrics: the
 * consumer lag of every assigned partition. Registered on the consumer's conf; runs on the
 * thread that polls the consumer, once per interval, so parsing the JSON stays off the hot path. */
#ifndef BW_KAFKA_STATS_H
#define BW_KAFKA_STATS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* librdkafka's stats_cb: parses json (borrowed; returns 0 so librdkafka frees it) and
 * replaces the lag table of metrics. */
int bw_kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque);

/* Parses one statistics document into the lag table. Returns the partitions found, or -1
 * when json is not a statistics object (the table is then left as it was). */
int bw_kafka_stats_parse(const char *json, size_t len);

#endif
