/* kafka_env: the librdkafka properties a deployment sets through the environment.
 *
 *   RDKAFKA_<NAME>=v          property <name> in lower case with '_' as '.'
 *                             (RDKAFKA_SECURITY_PROTOCOL=ssl -> security.protocol);
 *   KAFKA_MESSAGE_MAX_BYTES   message.max.bytes (a named setting: size limits derive from it);
 *   KAFKA_<NAME> (deprecated) applied only when <name> is a librdkafka property, with a
 *                             warning at start; every other KAFKA_* variable is ignored, so what a
 *                             platform injects (Kubernetes service links: KAFKA_SERVICE_HOST,
 *                             KAFKA_PORT, KAFKA_PORT_9092_TCP_ADDR, ...) never stops a worker.
 * Order of application: deprecated KAFKA_*, KAFKA_MESSAGE_MAX_BYTES, RDKAFKA_*: the later wins.
 * KAFKA_BROKERS is a setting of its own (worker_config) and is never passed through.
 * Validation happens at start-up (bw_kafka_env_check, called by worker_config), so an unknown
 * property exits 2 with every other configuration problem. */
#ifndef BW_KAFKA_ENV_H
#define BW_KAFKA_ENV_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "err.h"

/* Applies the environment's properties to conf. 0, or -1 with err (FATAL) naming the variable
 * librdkafka refused (an RDKAFKA_* one, or a bad value of a known property). */
int bw_kafka_env_apply(rd_kafka_conf_t *conf, struct bw_err *err);

/* Start-up check: one problem in probs per variable librdkafka refuses (all of them, not the
 * first). Returns the number of problems added. */
int bw_kafka_env_check(struct bw_config_problems *probs);

/* Logs a warning per deprecated KAFKA_<property> variable that is applied (after log init). */
void bw_kafka_env_warn_deprecated(void);

#endif
