/* worker_runtime: the handles every consuming worker opens at start and frees at exit, in
 * one place: the MongoDB pool (indexes ensured), the idempotent producer, and the consumer
 * of the worker's input topic.
 *
 * With METRICS_PORT set it also serves the ops endpoint (ops_http: /metrics, /healthz,
 * /readyz), from before the database is opened until the runtime is closed.
 *
 * A worker's main() loads its config (worker_config), opens the runtime, wires its handler
 * context to rt.mongo and rt.producer, runs bw_consumer_run() on rt.consumer, then closes
 * the runtime. The webhook ingress does not consume, so it does not use this module. */
#ifndef BW_WORKER_RUNTIME_H
#define BW_WORKER_RUNTIME_H

#include "err.h"
#include "kafka_consumer.h"
#include "kafka_producer.h"
#include "mongo.h"
#include "ops_http.h"
#include "worker_config.h"

/* The runtime owns all four handles; a worker borrows them until
 * bw_worker_runtime_close(). Initialise with { 0 } (all NULL). */
struct bw_worker_runtime {
	struct bw_mongo *mongo;
	struct bw_producer *producer;
	struct bw_consumer *consumer;
	struct bw_ops_server *ops;  /* NULL when METRICS_PORT is 0 */
};

/* The worker's input, beside the common config. Strings are copied by the consumer. */
struct bw_worker_input {
	const char *topic;
	const char *group_id;
	int batch_max;          /* > 0: messages per batch; 0: common BATCH_MAX */
	int backoff_max_ms;     /* cap of the consumer's retry backoff after a failed batch */
};

/* Starts the ops endpoint (METRICS_PORT > 0), opens the MongoDB pool on common's MONGO_URI/MONGO_DB under appname (e.g.
 * "bw-usage-worker"), ensures every index, and creates the producer on KAFKA_BROKERS
 * (with the metadata of RESULTS_TOPIC fetched, so the first results are not held back).
 * 0, or -1 with err: what was opened stays in rt for bw_worker_runtime_close(). */
int bw_worker_runtime_open(struct bw_worker_runtime *rt, const struct bw_common_cfg *common,
			   const char *appname, struct bw_err *err);

/* Creates rt->consumer on in's topic and group (batch wait and idle exit from common) and
 * subscribes (fetching the metadata of "<topic>.dlq" first). Separate from open so a worker can do start-up work with the database first
 * (the sync worker's prices sync) before it joins its group. 0, or -1 with err. */
int bw_worker_runtime_subscribe(struct bw_worker_runtime *rt, const struct bw_common_cfg *common,
				const struct bw_worker_input *in, struct bw_err *err);

/* Frees in reverse order of opening: the consumer (committing stored offsets, leaving the
 * group), the producer (flushed briefly), the pool; sets the handles to NULL. NULL-safe, and
 * safe on a partly opened or already closed runtime. */
void bw_worker_runtime_close(struct bw_worker_runtime *rt);

/* The exit code of a worker whose start failed with err: 2 when an operator must act first
 * (FATAL: the configuration, or stored data such as two customer documents for one org; the
 * same code as a configuration error), else 1. */
int bw_worker_start_exit_code(const struct bw_err *err);

#endif
