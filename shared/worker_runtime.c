/* worker_runtime: see worker_runtime.h. */
#include "worker_runtime.h"

#include <stddef.h>
#include <stdio.h>

#include "metrics.h"

int bw_worker_runtime_open(struct bw_worker_runtime *rt, const struct bw_common_cfg *common,
			   const char *appname, struct bw_err *err)
{
	if (common->metrics_port > 0) {
		struct bw_ops_conf oconf = {
			.bind = common->metrics_bind,
			.port = (int)common->metrics_port,
			.stall_ms = common->health_stall_ms,
			.mongo_uri = common->mongo_uri,
			.mongo_timeout_ms = 1000,
			.consumer = 1,
		};
		rt->ops = bw_ops_server_start(&oconf, err);
		if (!rt->ops)
			return -1;
	}
	rt->mongo = bw_mongo_new(common->mongo_uri, common->mongo_db, appname, err);
	if (!rt->mongo)
		return -1;
	if (bw_mongo_ensure_indexes(rt->mongo, err) != 0)
		return -1;
	rt->producer = bw_producer_new(common->kafka_brokers, NULL, err);
	if (!rt->producer)
		return -1;
	bw_ops_server_set_producer(rt->ops, bw_producer_handle(rt->producer));
	bw_producer_warm(rt->producer, common->results_topic, 5000);
	return 0;
}

int bw_worker_runtime_subscribe(struct bw_worker_runtime *rt, const struct bw_common_cfg *common,
				const struct bw_worker_input *in, struct bw_err *err)
{
	struct bw_consumer_conf cconf = {
		.brokers = common->kafka_brokers,
		.group_id = in->group_id,
		.topic = in->topic,
		.batch_max = in->batch_max > 0 ? in->batch_max : (int)common->batch_max,
		.batch_wait_ms = (int)common->batch_wait_ms,
		.idle_exit_ms = (int)common->idle_exit_ms,
		.backoff_max_ms = in->backoff_max_ms,
		/* lag per partition for /metrics; RDKAFKA_STATISTICS_INTERVAL_MS overrides */
		.stats_interval_ms = common->metrics_port > 0 ? 5000 : 0,
	};

	char dlq[300];

	bw_metrics_set_labels(NULL, in->topic);
	snprintf(dlq, sizeof(dlq), "%s.dlq", in->topic);
	if (rt->producer)
		bw_producer_warm(rt->producer, dlq, 5000);
	rt->consumer = bw_consumer_new(&cconf, err);
	return rt->consumer ? 0 : -1;
}

void bw_worker_runtime_close(struct bw_worker_runtime *rt)
{
	if (!rt)
		return;
	bw_ops_server_stop(rt->ops);
	rt->ops = NULL;
	bw_consumer_destroy(rt->consumer);
	rt->consumer = NULL;
	bw_producer_destroy(rt->producer);
	rt->producer = NULL;
	bw_mongo_destroy(rt->mongo);
	rt->mongo = NULL;
}

int bw_worker_start_exit_code(const struct bw_err *err)
{
	return err && err->kind == BW_ERR_FATAL ? 2 : 1;
}
