/* bw-usage-worker: consumes usage.events, charges each event through the waterfall exactly
 * once, writes the usage record, publishes the outcome to billing.results.
 * This file only wires config, the shared consumer loop and the batch handler. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "dlq.h"
#include "log.h"
#include "metrics.h"
#include "signals.h"
#include "usage_batch.h"
#include "worker_config.h"
#include "worker_runtime.h"

struct usage_cfg {
	char *topic;
	char *group_id;
	char *waterfall_order;
	char *alerts_topic;
	char *alert_thresholds;
	int64_t max_event_bytes;
	int64_t max_attempts;
};

#define OWN(field) offsetof(struct usage_cfg, field)

static int check_order(const char *value, char *why, size_t why_len)
{
	struct bw_waterfall_order order;
	struct bw_err err;

	if (bw_waterfall_order_parse(value, &order, &err) == 0)
		return 0;
	snprintf(why, why_len, "%s", err.msg);
	return -1;
}

static int check_thresholds(const char *value, char *why, size_t why_len)
{
	struct bw_alert_cfg cfg;
	struct bw_err err;

	if (bw_alert_thresholds_parse(value, &cfg, &err) == 0)
		return 0;
	snprintf(why, why_len, "%s", err.msg);
	return -1;
}

static const struct bw_cfg_opt usage_opts[] = {
	{ "USAGE_TOPIC", BW_CFG_STR, "usage.events", 1, 249, 0, OWN(topic),
	  "topic of usage events", NULL },
	{ "USAGE_GROUP_ID", BW_CFG_STR, "usage-worker", 1, 255, 0, OWN(group_id),
	  "consumer group of the usage workers", NULL },
	{ "WATERFALL_ORDER", BW_CFG_STR, "subscription,purchased,granted", 1, 64, 0,
	  OWN(waterfall_order), "bucket order, each of subscription, purchased, granted once",
	  check_order },
	{ "ALERTS_TOPIC", BW_CFG_STR, "billing.alerts", 1, 249, 0, OWN(alerts_topic),
	  "topic of low-balance alerts", NULL },
	{ "ALERT_THRESHOLDS", BW_CFG_STR, "", 0, 400, 0, OWN(alert_thresholds),
	  "low-balance alert thresholds of total remaining SPUs, comma-separated (\"\" = none; "
	  "exhausted always alerts)", check_thresholds },
	{ "MAX_EVENT_BYTES", BW_CFG_INT, "65536", 64, 1048576, 0, OWN(max_event_bytes),
	  "largest usage event accepted; larger ones go to the DLQ (at most what a DLQ record "
	  "carries under the producer's message.max.bytes)", NULL },
	{ "USAGE_MAX_ATTEMPTS", BW_CFG_INT, "50", 1, 10000, 0, OWN(max_attempts),
	  "conditional-update retries of a contended org before the batch is retried", NULL },
};

#define NOPTS (sizeof(usage_opts) / sizeof(usage_opts[0]))

int main(void)
{
	struct bw_common_cfg common = { 0 };
	struct usage_cfg cfg = { 0 };
	struct bw_usage_ctx ctx = { 0 };
	struct bw_err err;
	struct bw_worker_runtime rt = { 0 };
	volatile sig_atomic_t *stop = bw_signals_install();
	int exit_code = 1;

	bw_err_clear(&err);
	if (bw_worker_config_load("usage-worker", &common, usage_opts, NOPTS, &cfg) != 0) {
		exit_code = 2;
		goto done;
	}
	if (bw_dlq_limit("MAX_EVENT_BYTES", cfg.max_event_bytes, common.kafka_brokers,
			 &ctx.max_event_bytes, &err) != 0) {
		fprintf(stderr, "usage-worker: 1 configuration problem:\n%s\n", err.msg);
		exit_code = 2;
		goto done;
	}
	bw_waterfall_order_parse(cfg.waterfall_order, &ctx.order, &err); /* checked at load */
	bw_alert_thresholds_parse(cfg.alert_thresholds, &ctx.alerts, &err); /* checked at load */
	struct bw_worker_input in = { cfg.topic, cfg.group_id, 0, 10000 };
	if (bw_worker_runtime_open(&rt, &common, "bw-usage-worker", &err) != 0 ||
	    bw_worker_runtime_subscribe(&rt, &common, &in, &err) != 0) {
		exit_code = bw_worker_start_exit_code(&err);
		goto fail;
	}
	ctx.mongo = rt.mongo;
	ctx.producer = rt.producer;
	ctx.worker = "usage-worker";
	ctx.results_topic = common.results_topic;
	ctx.alerts_topic = cfg.alerts_topic;
	ctx.free_grant = common.free_grant;
	ctx.max_attempts = (int)cfg.max_attempts;
	ctx.flush_timeout_ms = 30000;
	bw_log(BW_LOG_INFO, NULL, "started: topic %s, group %s, batch %lld, order %s", cfg.topic,
	       cfg.group_id, (long long)common.batch_max, cfg.waterfall_order);
	if (bw_consumer_run_pipelined(rt.consumer, &bw_usage_handler, &ctx, stop, &err) != 0)
		goto fail;
	exit_code = 0;
	goto done;
fail:
	bw_log(BW_LOG_ERROR, NULL, "stopping: %s error: %s", bw_err_kind_name(err.kind), err.msg);
done:
	bw_worker_runtime_close(&rt);
	if (exit_code != 2)
		bw_metrics_log("final");
	bw_worker_config_free(&common, usage_opts, NOPTS, &cfg);
	return exit_code;
}
