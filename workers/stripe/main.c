/* bw-stripe-worker: consumes stripe.events (raw Stripe webhook events from the ingress),
 * applies each one at most once to MongoDB (credits, subscription, billing period),
 * publishes customer sync ticks to sync.ticks and the outcome to billing.results.
 * This file only wires config, the shared consumer loop and the batch handler. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "log.h"
#include "metrics.h"
#include "signals.h"
#include "stripe_batch.h"
#include "sub_policy.h"
#include "worker_config.h"
#include "worker_runtime.h"

struct stripe_cfg {
	char *topic;
	char *group_id;
	char *ticks_topic;
	int64_t max_event_bytes;
	int64_t unknown_customer_retries;
	int64_t backoff_max_ms;
	int64_t applied_sessions_keep;
	char *livemode;
	int past_due_keeps_allowance;
};

#define OWN(field) offsetof(struct stripe_cfg, field)

static int check_livemode(const char *value, char *why, size_t why_len)
{
	if (!*value || strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
		return 0;
	snprintf(why, why_len, "must be true, false or unset");
	return -1;
}

static const struct bw_cfg_opt stripe_opts[] = {
	{ "STRIPE_EVENTS_TOPIC", BW_CFG_STR, "stripe.events", 1, 249, 0, OWN(topic),
	  "topic of the raw Stripe events published by the webhook ingress", NULL },
	{ "STRIPE_GROUP_ID", BW_CFG_STR, "stripe-worker", 1, 255, 0, OWN(group_id),
	  "consumer group of the stripe workers", NULL },
	{ "SYNC_TICKS_TOPIC", BW_CFG_STR, "sync.ticks", 1, 249, 0, OWN(ticks_topic),
	  "topic of the customer sync ticks this worker asks the sync worker for", NULL },
	{ "STRIPE_MAX_EVENT_BYTES", BW_CFG_INT, "0", 0, 16777216, 0, OWN(max_event_bytes),
	  "largest Stripe event accepted, larger ones go to the DLQ; 0: the largest a DLQ record "
	  "carries under the producer's message.max.bytes", NULL },
	{ "STRIPE_UNKNOWN_CUSTOMER_RETRIES", BW_CFG_INT, "5", 0, 1000, 0,
	  OWN(unknown_customer_retries),
	  "batch retries an event of an unknown Stripe customer waits before the DLQ", NULL },
	{ "STRIPE_BACKOFF_MAX_MS", BW_CFG_INT, "10000", 10, 600000, 0, OWN(backoff_max_ms),
	  "cap of the retry backoff after a failed or waiting batch", NULL },
	{ "STRIPE_APPLIED_SESSIONS_KEEP", BW_CFG_INT, "1000", 1, 1000000, 0,
	  OWN(applied_sessions_keep),
	  "last checkout session ids kept in a customer's applied_sessions (crash-window guard)", NULL },
	{ "STRIPE_LIVEMODE", BW_CFG_STR, "", 0, 5, 0, OWN(livemode),
	  "true: live-mode events only, false: test-mode only, unset: both (warned); the other "
	  "mode's events are recorded and ignored", check_livemode },
	{ BW_SUB_POLICY_PAST_DUE_VAR, BW_CFG_BOOL, "true", 0, 0, 0,
	  OWN(past_due_keeps_allowance),
	  "a past_due subscription keeps its allowance while Stripe retries the payment", NULL },
};

#define NOPTS (sizeof(stripe_opts) / sizeof(stripe_opts[0]))

int main(void)
{
	struct bw_common_cfg common = { 0 };
	struct stripe_cfg cfg = { 0 };
	struct bw_stripe_ctx ctx = { 0 };
	struct bw_err err;
	struct bw_worker_runtime rt = { 0 };
	volatile sig_atomic_t *stop = bw_signals_install();
	int exit_code = 1;

	bw_err_clear(&err);
	if (bw_worker_config_load("stripe-worker", &common, stripe_opts, NOPTS, &cfg) != 0) {
		exit_code = 2;
		goto done;
	}
	if (bw_dlq_limit("STRIPE_MAX_EVENT_BYTES", cfg.max_event_bytes, common.kafka_brokers,
			 &ctx.max_event_bytes, &err) != 0) {
		fprintf(stderr, "stripe-worker: 1 configuration problem:\n%s\n", err.msg);
		exit_code = 2;
		goto done;
	}
	struct bw_worker_input in = { cfg.topic, cfg.group_id, 0, (int)cfg.backoff_max_ms };
	if (bw_worker_runtime_open(&rt, &common, "bw-stripe-worker", &err) != 0 ||
	    bw_worker_runtime_subscribe(&rt, &common, &in, &err) != 0) {
		exit_code = bw_worker_start_exit_code(&err); /* 2: an operator must act first */
		goto fail;
	}
	ctx.mongo = rt.mongo;
	ctx.producer = rt.producer;
	ctx.worker = "stripe-worker";
	ctx.results_topic = common.results_topic;
	ctx.ticks_topic = cfg.ticks_topic;
	ctx.apply.free_grant = common.free_grant;
	ctx.apply.unknown_customer_retries = (int)cfg.unknown_customer_retries;
	ctx.apply.applied_sessions_keep = cfg.applied_sessions_keep;
	ctx.apply.policy.past_due_keeps_allowance = cfg.past_due_keeps_allowance;
	ctx.apply.livemode = !cfg.livemode[0] ? BW_STRIPE_MODE_ANY
			     : strcmp(cfg.livemode, "true") == 0 ? BW_STRIPE_MODE_LIVE
								 : BW_STRIPE_MODE_TEST;
	if (ctx.apply.livemode == BW_STRIPE_MODE_ANY)
		bw_log(BW_LOG_WARN, NULL, "STRIPE_LIVEMODE is not set: live and test-mode events "
		       "are both applied (set it to true or false)");
	ctx.flush_timeout_ms = 30000;
	bw_log(BW_LOG_INFO, NULL, "started: topic %s, group %s, batch %lld, ticks %s", cfg.topic,
	       cfg.group_id, (long long)common.batch_max, cfg.ticks_topic);
	if (bw_consumer_run(rt.consumer, bw_stripe_process_batch, &ctx, stop, &err) != 0)
		goto fail;
	exit_code = 0;
	goto done;
fail:
	bw_log(BW_LOG_ERROR, NULL, "stopping: %s error: %s", bw_err_kind_name(err.kind), err.msg);
done:
	bw_worker_runtime_close(&rt);
	if (exit_code != 2)
		bw_metrics_log("final");
	bw_worker_config_free(&common, stripe_opts, NOPTS, &cfg);
	return exit_code;
}
