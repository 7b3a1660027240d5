/* front_runtime: the running phase the HTTP fronts' main() share (bw-api, the webhook
 * ingress) once their server listens: the ops endpoint on METRICS_PORT with the publisher's
 * health as its extra readiness check, the heartbeat /healthz reads, and the stop on a
 * signal or on the idempotent producer's fatal error. The consuming workers have
 * worker_runtime and bw_consumer_run instead. */
#ifndef BW_FRONT_RUNTIME_H
#define BW_FRONT_RUNTIME_H

#include <signal.h>

#include "acked_publisher.h"
#include "err.h"
#include "worker_config.h"

/* Serves the ops endpoint (common's METRICS_PORT > 0; MongoDB pinged by /readyz when
 * mongo_uri is not NULL) and beats the heartbeat every 100 ms until *stop is set or pub's
 * producer raised a fatal error; stops the ops endpoint before it returns. pub is borrowed.
 * Returns the process's exit code: 0 after a stop signal; with err filled,
 * bw_worker_start_exit_code(err) when the ops endpoint could not start, 1 after the
 * producer's fatal error. */
int bw_front_run(const struct bw_common_cfg *common, const char *mongo_uri,
		 struct bw_acked_publisher *pub, volatile sig_atomic_t *stop, struct bw_err *err);

#endif
