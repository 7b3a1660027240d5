/* worker_config: see worker_config.h. */
#include "worker_config.h"

#include <stdio.h>

#include "fault.h"
#include "kafka_env.h"
#include "log.h"
#include "metrics.h"

#define COMMON(field) offsetof(struct bw_common_cfg, field)

static const struct bw_cfg_opt common_opts[] = {
	{ "KAFKA_BROKERS", BW_CFG_STR, "127.0.0.1:9092", 1, 4096, 0, COMMON(kafka_brokers),
	  "Kafka bootstrap servers, host:port[,host:port]", NULL },
	{ "MONGO_URI", BW_CFG_STR, "mongodb://127.0.0.1:27017", 10, 4096, 1, COMMON(mongo_uri),
	  "MongoDB connection string (may hold credentials)", NULL },
	{ "MONGO_DB", BW_CFG_STR, "billing", 1, 63, 0, COMMON(mongo_db), "MongoDB database", NULL },
	{ "LOG_LEVEL", BW_CFG_STR, "info", 4, 5, 0, COMMON(log_level), "debug|info|warn|error", NULL },
	{ "RESULTS_TOPIC", BW_CFG_STR, "billing.results", 1, 249, 0, COMMON(results_topic),
	  "topic of the outcome of every input message", NULL },
	{ "BATCH_MAX", BW_CFG_INT, "500", 1, 10000, 0, COMMON(batch_max),
	  "most messages handled as one batch", NULL },
	{ "BATCH_WAIT_MS", BW_CFG_INT, "20", 0, 10000, 0, COMMON(batch_wait_ms),
	  "longest wait to fill a batch", NULL },
	{ "IDLE_EXIT_MS", BW_CFG_INT, "0", 0, 86400000, 0, COMMON(idle_exit_ms),
	  "exit 0 after this long without messages (0 = never; for demos and tests)", NULL },
	{ "FREE_GRANT_SPUS", BW_CFG_INT, "100", 0, INT64_MAX / 4, 0, COMMON(free_grant),
	  "granted credits of an org seen for the first time", NULL },
	{ "PRINT_CONFIG", BW_CFG_BOOL, "false", 0, 0, 0, COMMON(print_config),
	  "log the effective configuration (secrets hidden) at start", NULL },
	{ "METRICS_PORT", BW_CFG_INT, "0", 0, 65535, 0, COMMON(metrics_port),
	  "port of GET /metrics, /healthz, /readyz (0 = off; 9100 in containers)", NULL },
	{ "METRICS_BIND", BW_CFG_STR, "0.0.0.0", 2, 45, 0, COMMON(metrics_bind),
	  "numeric IPv4/IPv6 address of the METRICS_PORT endpoint", NULL },
	{ "HEALTH_STALL_MS", BW_CFG_INT, "120000", 1000, 3600000, 0, COMMON(health_stall_ms),
	  "/healthz fails when the worker's loop has not run for this long", NULL },
};

#define NCOMMON (sizeof(common_opts) / sizeof(common_opts[0]))

int bw_worker_config_load(const char *worker, struct bw_common_cfg *common,
			  const struct bw_cfg_opt *own, size_t nown, void *own_cfg)
{
	struct bw_config_problems probs = { 0, "" };
	enum bw_log_level level = BW_LOG_INFO;

	bw_config_load(common_opts, NCOMMON, common, &probs);
	if (own && nown)
		bw_config_load(own, nown, own_cfg, &probs);
	if (common->log_level && bw_log_level_parse(common->log_level, &level) != 0)
		bw_config_problem(&probs, "LOG_LEVEL: '%s' is not debug, info, warn or error",
				  common->log_level);
	if (bw_fault_init() != 0)
		bw_config_problem(&probs, "BW_FAULT_AT: expected <step> or <step>:<count>");
	bw_kafka_env_check(&probs);
	if (probs.count > 0) {
		fprintf(stderr, "%s: %d configuration problem%s:\n%s", worker, probs.count,
			probs.count == 1 ? "" : "s", probs.text);
		return -1;
	}
	bw_log_init(worker, level);
	bw_metrics_set_labels(worker, NULL);
	bw_kafka_env_warn_deprecated();
	if (common->print_config) {
		bw_config_print(common_opts, NCOMMON, common, stderr);
		if (own && nown)
			bw_config_print(own, nown, own_cfg, stderr);
	}
	return 0;
}

void bw_worker_config_free(struct bw_common_cfg *common, const struct bw_cfg_opt *own,
			   size_t nown, void *own_cfg)
{
	bw_config_free(common_opts, NCOMMON, common);
	if (own && nown)
		bw_config_free(own, nown, own_cfg);
}
