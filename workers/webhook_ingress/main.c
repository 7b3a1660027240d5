/* bw-webhook-ingress: the HTTP endpoint Stripe calls. Verifies each webhook's signature and
 * publishes the raw event to stripe.events, answering 2xx only once Kafka acknowledged it.
 * This file only wires config, the publisher, the HTTP server and the shutdown sequence. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ingress_http.h"
#include "acked_publisher.h"
#include "ingress_event.h"
#include "kafka_producer.h"
#include "log.h"
#include "metrics.h"
#include "front_runtime.h"
#include "signals.h"
#include "worker_config.h"
#include "worker_runtime.h"

struct ingress_cfg {
	int64_t port;
	char *bind;
	char *path;
	int64_t max_body;
	char *secrets;
	int64_t tolerance_s;
	char *topic;
	int64_t publish_timeout_ms;
	int64_t ready_timeout_ms;
	int64_t max_connections;
};

#define OWN(field) offsetof(struct ingress_cfg, field)

static const struct bw_cfg_opt ingress_opts[] = {
	{ "HTTP_PORT", BW_CFG_INT, "8080", 0, 65535, 0, OWN(port),
	  "TCP port of the HTTP server (0: any free port, logged at start)", NULL },
	{ "HTTP_BIND", BW_CFG_STR, "127.0.0.1", 2, 45, 0, OWN(bind),
	  "numeric IPv4/IPv6 address to listen on (0.0.0.0 in containers)", NULL },
	{ "WEBHOOK_PATH", BW_CFG_STR, "/webhooks/stripe", 2, 200, 0, OWN(path),
	  "path of the Stripe webhook endpoint", NULL },
	{ "WEBHOOK_MAX_BODY_BYTES", BW_CFG_INT, "0", 0, 67108864, 0, OWN(max_body),
	  "largest webhook body accepted, larger ones get 413; 0: the largest the producer's "
	  "message.max.bytes lets it publish and a DLQ record carry", NULL },
	{ "STRIPE_WEBHOOK_SECRET", BW_CFG_STR, NULL, 7, 4096, 1, OWN(secrets),
	  "endpoint signing secret(s), whsec_..., comma-separated during rotation", NULL },
	{ "STRIPE_SIGNATURE_TOLERANCE_S", BW_CFG_INT, "300", 1, 86400, 0, OWN(tolerance_s),
	  "largest age (or lead) of a signature timestamp, seconds", NULL },
	{ "STRIPE_EVENTS_TOPIC", BW_CFG_STR, "stripe.events", 1, 249, 0, OWN(topic),
	  "topic verified events are published to", NULL },
	{ "INGRESS_PUBLISH_TIMEOUT_MS", BW_CFG_INT, "5000", 100, 120000, 0,
	  OWN(publish_timeout_ms), "longest wait for Kafka's acknowledgement before 503", NULL },
	{ "INGRESS_READY_TIMEOUT_MS", BW_CFG_INT, "1000", 50, 30000, 0, OWN(ready_timeout_ms),
	  "how long /readyz waits for a broker's metadata answer", NULL },
	{ "INGRESS_MAX_CONNECTIONS", BW_CFG_INT, "1024", 1, 65536, 0, OWN(max_connections),
	  "concurrent HTTP connections (one thread each)", NULL },
};

#define NOPTS (sizeof(ingress_opts) / sizeof(ingress_opts[0]))

/* Every comma-separated item of STRIPE_WEBHOOK_SECRET must be a whsec_ secret without
 * whitespace. The problem names the item's position, never its text. */
static int check_secrets(const char *list, char *problem, size_t len)
{
	int idx = 0;

	for (const char *s = list;; idx++) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		if (n <= 6 || strncmp(s, "whsec_", 6) != 0) {
			snprintf(problem, len, "STRIPE_WEBHOOK_SECRET: item %d is not a whsec_ secret",
				 idx + 1);
			return -1;
		}
		for (size_t k = 0; k < n; k++)
			if ((unsigned char)s[k] <= 0x20 || (unsigned char)s[k] >= 0x7f) {
				snprintf(problem, len,
					 "STRIPE_WEBHOOK_SECRET: item %d holds whitespace or "
					 "non-ASCII bytes", idx + 1);
				return -1;
			}
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

int main(void)
{
	struct bw_common_cfg common = { 0 };
	struct ingress_cfg cfg = { 0 };
	struct bw_err err;
	struct bw_acked_publisher *pub = NULL;
	struct bw_ingress_server *srv = NULL;
	volatile sig_atomic_t *stop = bw_signals_install();
	char problem[160];
	int exit_code = 1;

	bw_err_clear(&err);
	if (bw_worker_config_load("webhook-ingress", &common, ingress_opts, NOPTS, &cfg) != 0) {
		exit_code = 2;
		goto done;
	}
	if (check_secrets(cfg.secrets, problem, sizeof(problem)) != 0 || cfg.path[0] != '/') {
		fprintf(stderr, "webhook-ingress: 1 configuration problem:\n%s\n",
			cfg.path[0] != '/' ? "WEBHOOK_PATH: must start with /" : problem);
		exit_code = 2;
		goto done;
	}
	size_t mmb = bw_kafka_max_message_bytes(common.kafka_brokers, &err);
	size_t limit = bw_ingress_max_body(mmb);
	if (mmb == 0 || (size_t)cfg.max_body > limit) {
		if (mmb != 0)
			snprintf(err.msg, sizeof(err.msg),
				 "WEBHOOK_MAX_BODY_BYTES: %lld is above %zu, the largest body the "
				 "producer's message.max.bytes %zu (KAFKA_MESSAGE_MAX_BYTES) lets it "
				 "publish and a DLQ record carry; lower it, or 0 for that maximum",
				 (long long)cfg.max_body, limit, mmb);
		fprintf(stderr, "webhook-ingress: 1 configuration problem:\n%s\n", err.msg);
		exit_code = 2;
		goto done;
	}
	if (cfg.max_body == 0)
		cfg.max_body = (int64_t)limit;
	pub = bw_acked_publisher_new(common.kafka_brokers, (int)cfg.publish_timeout_ms, 1, &err);
	if (!pub) {
		exit_code = bw_worker_start_exit_code(&err);
		goto fail;
	}
	struct bw_ingress_http_cfg hcfg = {
		.bind = cfg.bind,
		.port = (int)cfg.port,
		.path = cfg.path,
		.max_body = (size_t)cfg.max_body,
		.secrets = cfg.secrets,
		.tolerance_s = cfg.tolerance_s,
		.topic = cfg.topic,
		.ready_timeout_ms = (int)cfg.ready_timeout_ms,
		.max_connections = (unsigned)cfg.max_connections,
	};
	bw_metrics_set_labels(NULL, cfg.topic);
	srv = bw_ingress_server_start(&hcfg, pub, &err);
	if (!srv) {
		exit_code = bw_worker_start_exit_code(&err);
		goto fail;
	}
	bw_log(BW_LOG_INFO, NULL, "listening on %s:%d, POST %s -> %s, max body %lld, tolerance %llds",
	       cfg.bind, bw_ingress_server_port(srv), cfg.path, cfg.topic,
	       (long long)cfg.max_body, (long long)cfg.tolerance_s);
	exit_code = bw_front_run(&common, NULL, pub, stop, &err);
	if (exit_code != 0)
		goto fail;
	bw_log(BW_LOG_INFO, NULL, "stopping: draining requests in progress");
	goto done;
fail:
	bw_log(BW_LOG_ERROR, NULL, "stopping: %s error: %s", bw_err_kind_name(err.kind), err.msg);
done:
	/* Order (bw_front_run stopped the ops endpoint): stop accepting and let in-flight
	 * requests get their delivery reports, then flush and free the producer. */
	bw_ingress_server_stop(srv, (int)cfg.publish_timeout_ms + 1000);
	bw_acked_publisher_destroy(pub, (int)cfg.publish_timeout_ms);
	if (exit_code != 2)
		bw_metrics_log("final");
	bw_worker_config_free(&common, ingress_opts, NOPTS, &cfg);
	return exit_code;
}
