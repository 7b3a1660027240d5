/* front_runtime: see front_runtime.h. Runs in the main thread of bw-api and the ingress while
 * microhttpd's threads serve the requests. */
#include "front_runtime.h"

#include <unistd.h>

#include "metrics.h"
#include "ops_http.h"
#include "worker_runtime.h"

/* Readiness of the ops endpoint beyond MongoDB's ping: the publisher is usable. */
static int publisher_ok(void *opaque)
{
	return !bw_acked_publisher_failed(opaque);
}

int bw_front_run(const struct bw_common_cfg *common, const char *mongo_uri,
		 struct bw_acked_publisher *pub, volatile sig_atomic_t *stop, struct bw_err *err)
{
	struct bw_ops_server *ops = NULL;
	int exit_code = 1;

	if (common->metrics_port > 0) {
		struct bw_ops_conf oconf = { common->metrics_bind, (int)common->metrics_port,
					     common->health_stall_ms, mongo_uri, 1000, 0 };
		ops = bw_ops_server_start(&oconf, err);
		if (!ops) {
			exit_code = bw_worker_start_exit_code(err);
			goto done;
		}
		bw_ops_server_set_check(ops, "publisher", publisher_ok, pub);
	}
	while (!*stop && !bw_acked_publisher_failed(pub)) {
		bw_metrics_heartbeat();
		usleep(100000);
	}
	if (bw_acked_publisher_failed(pub)) {
		bw_err_set(err, BW_ERR_FATAL, "the idempotent producer raised a fatal error");
		goto done;
	}
	exit_code = 0;
done:
	bw_ops_server_stop(ops);
	return exit_code;
}
