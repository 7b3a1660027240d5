/* loadgen_kafka: the Kafka clients of bw-bench-loadgen (loadgen.h), and the `count` mode:
 * the pipe ceiling, reading a topic from the beginning with no processing. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "loadgen.h"

rd_kafka_t *lg_kafka_new(rd_kafka_type_t type, const char *const *props, void *opaque,
			 lg_delivery_cb *on_delivery)
{
	char errstr[512];
	const char *brokers = getenv("KAFKA_BROKERS");
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers ? brokers : "127.0.0.1:9092",
			      errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		goto fail;
	for (; props && props[0]; props += 2)
		if (rd_kafka_conf_set(conf, props[0], props[1], errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK)
			goto fail;
	if (on_delivery) {
		rd_kafka_conf_set_opaque(conf, opaque);
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	}
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (rk)
		return rk;
	conf = NULL;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	fprintf(stderr, "loadgen: kafka: %s\n", errstr);
	return NULL;
}

/* Assigns every partition of topic from the beginning (no group: nothing is committed). */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_topic_partition_list_t *list = NULL;
	int rc = -1;

	for (int attempt = 0; attempt < 20; attempt++) {
		if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    md->topic_cnt == 1 && md->topics[0].partition_cnt > 0)
			break;
		if (md)
			rd_kafka_metadata_destroy(md);
		md = NULL;
		struct timespec ts = { 0, 250000000L };
		nanosleep(&ts, NULL);
	}
	if (!md) {
		fprintf(stderr, "loadgen: no metadata for topic %s\n", topic);
		goto done;
	}
	list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(list, topic, md->topics[0].partitions[i].id)
			->offset = RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rc = 0;
done:
	if (list)
		rd_kafka_topic_partition_list_destroy(list);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return rc;
}

rd_kafka_t *lg_reader_new(const char *topic)
{
	static const char *const props[] = { "group.id", "bw-bench-reader",
					     "enable.auto.commit", "false",
					     "enable.partition.eof", "false",
					     "fetch.wait.max.ms", "5", NULL };
	rd_kafka_t *rk = lg_kafka_new(RD_KAFKA_CONSUMER, props, NULL, NULL);

	if (rk)
		rd_kafka_poll_set_consumer(rk);
	if (rk && assign_all(rk, topic) != 0) {
		rd_kafka_destroy(rk);
		rk = NULL;
	}
	return rk;
}

int lg_mode_count(const struct opts *o)
{
	rd_kafka_t *rk = lg_reader_new(o->topic);
	long n = 0;
	int64_t first = 0, last = 0, last_progress = lg_now_us();

	if (!rk)
		return 1;
	while (n < o->events) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		int64_t t = lg_now_us();
		if (!m) {
			if ((double)(t - last_progress) > o->timeout_s * 1e6)
				break;
			continue;
		}
		if (!m->err) {
			if (n++ == 0)
				first = t;
			last = t;
			last_progress = t;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	double secs = (double)(last - first) / 1e6;
	printf("{\"mode\":\"count\",\"messages\":%ld,\"seconds\":%.3f,\"events_per_s\":%.1f}\n", n,
	       secs, secs > 0 ? (double)n / secs : 0);
	return n == o->events ? 0 : 3;
}

