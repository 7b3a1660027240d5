/* bw-api: the backend's HTTP door: balances and the pre-check read by the usage worker's own
 * code, and usage intake published to usage.events with the broker's acknowledgement.
 * Stateless: scaled by adding processes. This file only wires config, the API keys, MongoDB,
 * the acknowledged publisher, the HTTP server, the ops endpoint and the shutdown sequence. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "acked_publisher.h"
#include "api_auth.h"
#include "api_http.h"
#include "api_pay.h"
#include "log.h"
#include "metrics.h"
#include "mongo.h"
#include "front_runtime.h"
#include "signals.h"
#include "worker_config.h"

struct api_cfg {
	int64_t port;
	char *bind;
	char *keys;
	char *topic;
	int64_t max_body;
	int64_t max_events;
	int64_t max_event_bytes;
	int64_t publish_timeout_ms;
	int64_t max_connections;
	int64_t cache_ms;
	int64_t report_max_days, report_max_records;
	int past_due_keeps_allowance;
	char *secret_key, *api_base, *api_version, *product_tag;
	int64_t connect_timeout_ms, timeout_ms, max_retries, retry_base_ms, retry_max_ms;
};

#define OWN(field) offsetof(struct api_cfg, field)

static const struct bw_cfg_opt api_opts[] = {
	{ "API_PORT", BW_CFG_INT, "8090", 0, 65535, 0, OWN(port),
	  "TCP port of the API (0: any free port, logged at start)", NULL },
	{ "API_BIND", BW_CFG_STR, "127.0.0.1", 2, 45, 0, OWN(bind),
	  "numeric IPv4/IPv6 address to listen on (0.0.0.0 in containers)", NULL },
	{ "BW_API_KEYS", BW_CFG_STR, NULL, 16, 4096, 1, OWN(keys),
	  "API keys (Authorization: Bearer), comma-separated during rotation, 16+ chars each",
	  NULL },
	{ "USAGE_TOPIC", BW_CFG_STR, "usage.events", 1, 249, 0, OWN(topic),
	  "topic POST /v1/usage publishes to (the usage workers' input)", NULL },
	{ "API_MAX_BODY_BYTES", BW_CFG_INT, "4194304", 1024, 268435456, 0, OWN(max_body),
	  "largest request body accepted; larger ones get 413", NULL },
	{ "API_MAX_EVENTS", BW_CFG_INT, "1000", 1, 1000, 0, OWN(max_events),
	  "events per POST /v1/usage request", NULL },
	{ "MAX_EVENT_BYTES", BW_CFG_INT, "65536", 64, 1048576, 0, OWN(max_event_bytes),
	  "largest event (set it as the usage workers' MAX_EVENT_BYTES)", NULL },
	{ "API_PUBLISH_TIMEOUT_MS", BW_CFG_INT, "5000", 100, 120000, 0, OWN(publish_timeout_ms),
	  "longest wait for Kafka's acknowledgements before 503", NULL },
	{ "API_MAX_CONNECTIONS", BW_CFG_INT, "1024", 1, 65536, 0, OWN(max_connections),
	  "concurrent HTTP connections (one thread each)", NULL },
	{ "API_BALANCE_CACHE_MS", BW_CFG_INT, "200", 0, 60000, 0, OWN(cache_ms),
	  "how long a balance read from MongoDB is reused for the same org (0: never)", NULL },
	{ "API_USAGE_MAX_DAYS", BW_CFG_INT, "366", 1, 3660, 0, OWN(report_max_days),
	  "longest from..to range of GET /v1/orgs/{org_id}/usage", NULL },
	{ "API_USAGE_MAX_RECORDS", BW_CFG_INT, "200000", 1, 10000000, 0, OWN(report_max_records),
	  "most usage records one GET /v1/orgs/{org_id}/usage reads (more: 400)", NULL },
	{ BW_SUB_POLICY_PAST_DUE_VAR, BW_CFG_BOOL, "true", 0, 0, 0,
	  OWN(past_due_keeps_allowance),
	  "as the stripe and sync workers' (the state re-read after a subscription change)", NULL },
	{ "STRIPE_SECRET_KEY", BW_CFG_STR, "", 0, 255, 1, OWN(secret_key),
	  "Stripe secret API key; unset = local-only mode (the Stripe-backed calls answer 409)",
	  NULL },
	{ "STRIPE_API_BASE", BW_CFG_STR, "https://api.stripe.com", 8, 1024, 0, OWN(api_base),
	  "Stripe API base URL (a stub's URL in tests)", NULL },
	{ "STRIPE_API_VERSION", BW_CFG_STR, BW_STRIPE_API_VERSION_DEFAULT, 10, 64, 0,
	  OWN(api_version), "pinned Stripe-Version header", NULL },
	{ "STRIPE_PRODUCT_TAG", BW_CFG_STR, "doc_router", 1, 128, 0, OWN(product_tag),
	  "product metadata product=<tag> of customers created here (as the sync worker's)", NULL },
	{ "STRIPE_CONNECT_TIMEOUT_MS", BW_CFG_INT, "5000", 100, 60000, 0,
	  OWN(connect_timeout_ms), "connect timeout of one Stripe request", NULL },
	{ "STRIPE_TIMEOUT_MS", BW_CFG_INT, "10000", 100, 300000, 0, OWN(timeout_ms),
	  "total timeout of one Stripe request attempt (a user is waiting)", NULL },
	{ "STRIPE_MAX_RETRIES", BW_CFG_INT, "2", 0, 20, 0, OWN(max_retries),
	  "retries of a Stripe request after a network error, 409, 429 or 5xx", NULL },
	{ "STRIPE_RETRY_BASE_MS", BW_CFG_INT, "300", 1, 60000, 0, OWN(retry_base_ms),
	  "first retry backoff (doubles, with jitter)", NULL },
	{ "STRIPE_RETRY_MAX_MS", BW_CFG_INT, "2000", 1, 300000, 0, OWN(retry_max_ms),
	  "cap of one backoff and of an honoured Retry-After", NULL },
};

#define NOPTS (sizeof(api_opts) / sizeof(api_opts[0]))

int main(void)
{
	struct bw_common_cfg common = { 0 };
	struct api_cfg cfg = { 0 };
	struct bw_err err;
	struct bw_api_keys *keys = NULL;
	struct bw_acked_publisher *pub = NULL;
	struct bw_mongo *mongo = NULL;
	struct bw_api_balance_cache *cache = NULL;
	struct bw_api_server *srv = NULL;
	volatile sig_atomic_t *stop = bw_signals_install();
	char problem[160];
	int exit_code = 1;

	bw_err_clear(&err);
	if (bw_worker_config_load("api", &common, api_opts, NOPTS, &cfg) != 0) {
		exit_code = 2;
		goto done;
	}
	keys = bw_api_keys_new(cfg.keys, problem, sizeof(problem));
	if (!keys) {
		fprintf(stderr, "api: 1 configuration problem:\n%s\n", problem);
		exit_code = 2;
		goto done;
	}
	mongo = bw_mongo_new(common.mongo_uri, common.mongo_db, "bw-api", &err);
	if (!mongo)
		goto fail;
	pub = bw_acked_publisher_new(common.kafka_brokers, (int)cfg.publish_timeout_ms, 5, &err);
	if (!pub)
		goto fail;
	struct bw_api_pay_cfg pay = {
		.stripe = {
			.base_url = cfg.api_base,
			.secret_key = cfg.secret_key,
			.api_version = cfg.api_version,
			.connect_timeout_ms = (long)cfg.connect_timeout_ms,
			.timeout_ms = (long)cfg.timeout_ms,
			.max_body = 1 << 20,
			.max_retries = (int)cfg.max_retries,
			.retry_base_ms = (int)cfg.retry_base_ms,
			.retry_max_ms = (int)cfg.retry_max_ms,
		},
		.product_tag = cfg.product_tag,
		.free_grant = common.free_grant,
		.policy = { .past_due_keeps_allowance = cfg.past_due_keeps_allowance },
	};
	struct bw_api_http_cfg hcfg = {
		.bind = cfg.bind,
		.port = (int)cfg.port,
		.max_body = (size_t)cfg.max_body,
		.max_events = (size_t)cfg.max_events,
		.max_event_bytes = (size_t)cfg.max_event_bytes,
		.topic = cfg.topic,
		.free_grant = common.free_grant,
		.max_connections = (unsigned)cfg.max_connections,
		.pay = &pay,
		.report_max_days = cfg.report_max_days,
		.report_max_records = cfg.report_max_records,
	};
	bw_metrics_set_labels(NULL, cfg.topic);
	cache = bw_api_balance_cache_new(cfg.cache_ms);
	srv = bw_api_server_start(&hcfg, keys, pub, mongo, cache, &err);
	if (!srv)
		goto fail;
	bw_log(BW_LOG_INFO, NULL, "listening on %s:%d, POST /v1/usage -> %s, max %lld events, "
	       "max body %lld, balance cache %lld ms, %s", cfg.bind, bw_api_server_port(srv),
	       cfg.topic, (long long)cfg.max_events, (long long)cfg.max_body,
	       (long long)cfg.cache_ms, cfg.secret_key && cfg.secret_key[0] ? "Stripe API mode" :
	       "local-only mode (no STRIPE_SECRET_KEY): Stripe-backed calls answer 409");
	exit_code = bw_front_run(&common, common.mongo_uri, pub, stop, &err);
	if (exit_code != 0)
		goto fail;
	bw_log(BW_LOG_INFO, NULL, "stopping: draining requests in progress");
	goto done;
fail:
	bw_log(BW_LOG_ERROR, NULL, "stopping: %s error: %s", bw_err_kind_name(err.kind), err.msg);
done:
	/* Order (bw_front_run stopped the ops endpoint): stop accepting and let in-flight
	 * requests get their delivery reports, then flush and free the producer and the
	 * database pool. */
	bw_api_server_stop(srv, (int)cfg.publish_timeout_ms + 1000);
	bw_acked_publisher_destroy(pub, (int)cfg.publish_timeout_ms);
	bw_api_balance_cache_free(cache);
	bw_mongo_destroy(mongo);
	bw_api_keys_free(keys);
	if (exit_code != 2)
		bw_metrics_log("final");
	bw_worker_config_free(&common, api_opts, NOPTS, &cfg);
	return exit_code;
}
