/* bw-sync-worker: consumes sync.ticks, reconciles plan prices, customers and subscriptions
 * with the Stripe API, answers every tick on billing.results. Runs a prices sync once at
 * start. Without STRIPE_SECRET_KEY it runs local-only: every tick is answered `skipped`.
 * This file only wires config, the Stripe client, the shared consumer loop and the handler. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "dlq.h"
#include "log.h"
#include "metrics.h"
#include "signals.h"
#include "stripe_api.h"
#include "sub_policy.h"
#include "sync_batch.h"
#include "worker_config.h"
#include "worker_runtime.h"

struct sync_cfg {
	char *topic;
	char *group_id;
	char *secret_key;
	char *api_base;
	char *api_version;
	char *product_tag;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int64_t max_response_bytes;
	int64_t max_retries;
	int64_t retry_base_ms;
	int64_t retry_max_ms;
	int64_t rate_limit_rps;
	int64_t max_tick_attempts;
	int64_t max_tick_bytes;
	int64_t backoff_max_ms;
	int prices_at_start;
	int past_due_keeps_allowance;
};

#define OWN(field) offsetof(struct sync_cfg, field)

static const struct bw_cfg_opt sync_opts[] = {
	{ "SYNC_TOPIC", BW_CFG_STR, "sync.ticks", 1, 249, 0, OWN(topic), "topic of sync ticks", NULL },
	{ "SYNC_GROUP_ID", BW_CFG_STR, "sync-worker", 1, 255, 0, OWN(group_id),
	  "consumer group of the sync workers", NULL },
	{ "STRIPE_SECRET_KEY", BW_CFG_STR, "", 0, 255, 1, OWN(secret_key),
	  "Stripe secret API key; unset = local-only mode (ticks answered skipped)", NULL },
	{ "STRIPE_API_BASE", BW_CFG_STR, "https://api.stripe.com", 8, 1024, 0, OWN(api_base),
	  "Stripe API base URL (a stub's URL in tests)", NULL },
	{ "STRIPE_API_VERSION", BW_CFG_STR, BW_STRIPE_API_VERSION_DEFAULT, 10, 64, 0,
	  OWN(api_version), "pinned Stripe-Version header", NULL },
	{ "STRIPE_PRODUCT_TAG", BW_CFG_STR, "doc_router", 1, 128, 0, OWN(product_tag),
	  "product metadata product=<tag> that marks this service's prices", NULL },
	{ "STRIPE_CONNECT_TIMEOUT_MS", BW_CFG_INT, "5000", 100, 60000, 0,
	  OWN(connect_timeout_ms), "connect timeout of one Stripe request", NULL },
	{ "STRIPE_TIMEOUT_MS", BW_CFG_INT, "30000", 100, 300000, 0, OWN(timeout_ms),
	  "total timeout of one Stripe request attempt", NULL },
	{ "STRIPE_MAX_RESPONSE_BYTES", BW_CFG_INT, "8388608", 4096, 268435456, 0,
	  OWN(max_response_bytes), "largest Stripe response body read", NULL },
	{ "STRIPE_MAX_RETRIES", BW_CFG_INT, "4", 0, 20, 0, OWN(max_retries),
	  "retries of a request after a network error, 429 or 5xx", NULL },
	{ "STRIPE_RETRY_BASE_MS", BW_CFG_INT, "500", 1, 60000, 0, OWN(retry_base_ms),
	  "first retry backoff (doubles, with jitter)", NULL },
	{ "STRIPE_RETRY_MAX_MS", BW_CFG_INT, "20000", 1, 300000, 0, OWN(retry_max_ms),
	  "cap of one backoff and of an honoured Retry-After", NULL },
	{ "SYNC_RATE_LIMIT_RPS", BW_CFG_INT, "20", 0, 10000, 0, OWN(rate_limit_rps),
	  "most Stripe requests per second (0 = unpaced)", NULL },
	{ "SYNC_MAX_TICK_ATTEMPTS", BW_CFG_INT, "5", 1, 1000, 0, OWN(max_tick_attempts),
	  "transient failures of one tick in a row before it is answered failed", NULL },
	{ "SYNC_MAX_TICK_BYTES", BW_CFG_INT, "16384", 64, 1048576, 0, OWN(max_tick_bytes),
	  "largest tick accepted; larger ones go to the DLQ (at most what a DLQ record carries "
	  "under the producer's message.max.bytes)", NULL },
	{ "SYNC_BACKOFF_MAX_MS", BW_CFG_INT, "30000", 10, 600000, 0, OWN(backoff_max_ms),
	  "cap of the consumer's backoff after a transiently failed tick", NULL },
	{ "SYNC_PRICES_AT_START", BW_CFG_BOOL, "true", 0, 0, 0, OWN(prices_at_start),
	  "run a prices sync once at start (not in local-only mode)", NULL },
	{ BW_SUB_POLICY_PAST_DUE_VAR, BW_CFG_BOOL, "true", 0, 0, 0,
	  OWN(past_due_keeps_allowance),
	  "a past_due subscription keeps its allowance while Stripe retries the payment", NULL },
};

#define NOPTS (sizeof(sync_opts) / sizeof(sync_opts[0]))

/* The prices sync at start: a failure is logged, not fatal (ticks will retry it). */
static void prices_at_start(struct bw_sync_ctx *ctx)
{
	struct bw_sync_outcome out = { 0 };
	struct bw_stripe_error serr;
	struct bw_err err;
	char run_id[48];

	bw_err_clear(&err);
	if (bw_sync_run(ctx, BW_SYNC_PRICES, NULL, NULL, &out, run_id, sizeof(run_id), NULL, &serr,
			&err) == 0)
		bw_log(BW_LOG_INFO, NULL,
		       "start-up prices sync %s: %lld prices on %lld pages, %lld stored, %lld "
		       "requests, %lld retries",
		       run_id, (long long)out.counts.prices_seen, (long long)out.counts.pages,
		       (long long)out.counts.prices_stored, (long long)out.counts.requests,
		       (long long)out.counts.retries);
	else
		bw_log(BW_LOG_WARN, NULL, "start-up prices sync failed (%s): %s",
		       bw_err_kind_name(err.kind), err.msg);
}

int main(void)
{
	struct bw_common_cfg common = { 0 };
	struct sync_cfg cfg = { 0 };
	struct bw_sync_ctx ctx = { 0 };
	struct bw_err err;
	struct bw_worker_runtime rt = { 0 };
	struct bw_stripe_api *api = NULL;
	volatile sig_atomic_t *stop = bw_signals_install();
	int exit_code = 1;

	bw_err_clear(&err);
	if (bw_worker_config_load("sync-worker", &common, sync_opts, NOPTS, &cfg) != 0) {
		exit_code = 2;
		goto done;
	}
	if (bw_dlq_limit("SYNC_MAX_TICK_BYTES", cfg.max_tick_bytes, common.kafka_brokers,
			 &ctx.max_tick_bytes, &err) != 0) {
		fprintf(stderr, "sync-worker: 1 configuration problem:\n%s\n", err.msg);
		exit_code = 2;
		goto done;
	}
	if (cfg.secret_key && cfg.secret_key[0]) {
		struct bw_stripe_api_conf aconf = {
			.base_url = cfg.api_base,
			.secret_key = cfg.secret_key,
			.api_version = cfg.api_version,
			.connect_timeout_ms = (long)cfg.connect_timeout_ms,
			.timeout_ms = (long)cfg.timeout_ms,
			.max_body = (size_t)cfg.max_response_bytes,
			.max_retries = (int)cfg.max_retries,
			.retry_base_ms = (int)cfg.retry_base_ms,
			.retry_max_ms = (int)cfg.retry_max_ms,
			.rate_limit_rps = (int)cfg.rate_limit_rps,
		};
		api = bw_stripe_api_new(&aconf, &err);
		if (!api) {
			exit_code = bw_worker_start_exit_code(&err);
			goto fail;
		}
	}
	if (bw_worker_runtime_open(&rt, &common, "bw-sync-worker", &err) != 0) {
		exit_code = bw_worker_start_exit_code(&err);
		goto fail;
	}
	ctx.mongo = rt.mongo;
	ctx.producer = rt.producer;
	ctx.api = api;
	ctx.worker = "sync-worker";
	ctx.results_topic = common.results_topic;
	ctx.product_tag = cfg.product_tag;
	ctx.free_grant = common.free_grant;
	ctx.policy.past_due_keeps_allowance = cfg.past_due_keeps_allowance;
	ctx.max_tick_attempts = (int)cfg.max_tick_attempts;
	ctx.flush_timeout_ms = 30000;
	bw_log(BW_LOG_INFO, NULL, "started: topic %s, group %s, %s", cfg.topic, cfg.group_id,
	       api ? "Stripe API mode" : "local-only mode (no STRIPE_SECRET_KEY): ticks skipped");
	if (api && cfg.prices_at_start)
		prices_at_start(&ctx);
	/* One tick per batch: a rewind redoes exactly that tick. */
	struct bw_worker_input in = { cfg.topic, cfg.group_id, 1, (int)cfg.backoff_max_ms };
	if (bw_worker_runtime_subscribe(&rt, &common, &in, &err) != 0) {
		exit_code = bw_worker_start_exit_code(&err);
		goto fail;
	}
	if (bw_consumer_run(rt.consumer, bw_sync_process_batch, &ctx, stop, &err) != 0)
		goto fail;
	exit_code = 0;
	goto done;
fail:
	bw_log(BW_LOG_ERROR, NULL, "stopping: %s error: %s", bw_err_kind_name(err.kind), err.msg);
done:
	bw_worker_runtime_close(&rt);
	bw_stripe_api_destroy(api);
	if (exit_code != 2)
		bw_metrics_log("final");
	bw_worker_config_free(&common, sync_opts, NOPTS, &cfg);
	return exit_code;
}
