/* kafka_stats: see kafka_stats.h. Shape read (librdkafka STATISTICS.md):
 * {"topics": {"<topic>": {"partitions": {"<id>": {"consumer_lag": N, "desired": bool}}}}};
 * partition "-1" is librdkafka's internal UA partition and is skipped, as are partitions this
 * consumer does not hold (desired false) and those whose lag is not known yet (-1). */
#include "kafka_stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "metrics.h"

#define MAX_ROWS 256

int bw_kafka_stats_parse(const char *json, size_t len)
{
	json_t *root = json_loadb(json, len, 0, NULL);
	json_t *topics = root ? json_object_get(root, "topics") : NULL;
	struct bw_metrics_lag *rows = NULL;
	const char *tname, *pid;
	json_t *topic, *part;
	size_t n = 0;
	int rc = -1;

	if (!json_is_object(topics))
		goto done;
	rows = calloc(MAX_ROWS, sizeof(*rows));
	if (!rows)
		goto done;
	json_object_foreach(topics, tname, topic) {
		json_t *parts = json_object_get(topic, "partitions");
		json_object_foreach(parts, pid, part) {
			int64_t id;
			json_int_t lag = json_integer_value(json_object_get(part, "consumer_lag"));
			if (n >= MAX_ROWS || bw_parse_int64(pid, 0, INT32_MAX, &id) != 0 ||
			    !json_is_true(json_object_get(part, "desired")) || lag < 0)
				continue;
			snprintf(rows[n].topic, sizeof(rows[n].topic), "%s", tname);
			rows[n].partition = (int32_t)id;
			rows[n].lag = (int64_t)lag;
			n++;
		}
	}
	bw_metrics_lag_replace(rows, n);
	rc = (int)n;
done:
	free(rows);
	json_decref(root);
	return rc;
}

int bw_kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	(void)opaque;
	bw_kafka_stats_parse(json, len);
	return 0;
}
