/* worker_config: the settings every worker shares (Kafka, MongoDB, logging, batching), as one
 * config table, and the start-up routine that loads a worker's own table beside it.
 * See README.md "Configuration" for the full list. */
#ifndef BW_WORKER_CONFIG_H
#define BW_WORKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct bw_common_cfg {
	char *kafka_brokers;
	char *mongo_uri;
	char *mongo_db;
	char *log_level;
	char *results_topic;
	int64_t batch_max;
	int64_t batch_wait_ms;
	int64_t idle_exit_ms;
	int64_t free_grant;
	int print_config;
	int64_t metrics_port;      /* 0: no ops endpoint */
	char *metrics_bind;
	int64_t health_stall_ms;
};

/* Loads the common table and the worker's own (own may be NULL/0) from the environment,
 * initialises logging under worker, and the fault-injection hook. On any problem it prints
 * every problem to stderr and returns -1: main() exits 2. Strings: bw_worker_config_free(). */
int bw_worker_config_load(const char *worker, struct bw_common_cfg *common,
			  const struct bw_cfg_opt *own, size_t nown, void *own_cfg);

void bw_worker_config_free(struct bw_common_cfg *common, const struct bw_cfg_opt *own,
			   size_t nown, void *own_cfg);

#endif
