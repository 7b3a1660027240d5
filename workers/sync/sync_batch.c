/* sync_batch: see sync_batch.h. */
#include "sync_batch.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "log.h"
#include "metrics.h"
#include "sync_customer.h"
#include "sync_prices.h"

static void make_run_id(char *buf, size_t len)
{
	static __thread unsigned int seed;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!seed)
		seed = (unsigned int)ts.tv_nsec ^ (unsigned int)(uintptr_t)&seed;
	snprintf(buf, len, "sync-%lld-%08x", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
		 (unsigned int)rand_r(&seed));
}

int bw_sync_run(struct bw_sync_ctx *ctx, enum bw_sync_scope scope, const char *org_id,
		const char *stripe_customer_id, struct bw_sync_outcome *out, char *run_id,
		size_t run_id_len, json_t *customer_errors, struct bw_stripe_error *serr,
		struct bw_err *err)
{
	struct bw_stripe_api_stats before, after;
	struct bw_sync_customer_cfg ccfg = { ctx->free_grant, &ctx->policy, ctx->product_tag };
	int rc = -1;

	memset(serr, 0, sizeof(*serr));
	make_run_id(run_id, run_id_len);
	out->sync_run = run_id;
	bw_stripe_api_get_stats(ctx->api, &before);
	switch (scope) {
	case BW_SYNC_PRICES:
		rc = bw_sync_prices(ctx->api, ctx->mongo, ctx->product_tag, run_id, &out->counts,
				    serr, err);
		break;
	case BW_SYNC_CUSTOMER: {
		struct bw_sync_customer_req req = { org_id, stripe_customer_id, 1, &ccfg };
		rc = bw_sync_customer(ctx->api, ctx->mongo, &req, &out->counts, serr, err);
		break;
	}
	case BW_SYNC_ALL:
		rc = bw_sync_prices(ctx->api, ctx->mongo, ctx->product_tag, run_id, &out->counts,
				    serr, err);
		if (rc == 0)
			rc = bw_sync_all_customers(ctx->api, ctx->mongo, &ccfg, &out->counts, customer_errors, serr, err);
		break;
	}
	bw_stripe_api_get_stats(ctx->api, &after);
	out->counts.requests += (int64_t)(after.requests - before.requests);
	out->counts.retries += (int64_t)(after.retries - before.retries);
	bw_metrics_add(BW_M_RETRIES, after.retries - before.retries);
	return rc;
}

static int publish(struct bw_sync_ctx *ctx, const struct bw_sync_outcome *out,
		   const rd_kafka_message_t *msg, struct bw_err *err)
{
	char now[BW_LOG_TIME_LEN];
	char *json;
	const char *key = out->org_id ? out->org_id : out->tick_id;
	static const enum bw_metric metric_of[] = { BW_M_APPLIED, BW_M_APPLIED, BW_M_REJECTED,
						    BW_M_REJECTED };

	bw_log_format_now(now, sizeof(now));
	json = bw_sync_result_json(out, msg, now);
	if (!json)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	int rc = bw_producer_send(ctx->producer, ctx->results_topic, key, key ? strlen(key) : 0,
				  json, strlen(json), NULL, err);
	free(json);
	if (rc == 0) {
		bw_metrics_add(metric_of[out->status], 1);
		bw_metrics_add(BW_M_RESULTS, 1);
	}
	return rc;
}

/* Processes one tick. Returns 0 (answered), or -1 with err (TRANSIENT: retry the batch). */
static int process_tick(struct bw_sync_ctx *ctx, const rd_kafka_message_t *msg,
			struct bw_err *err)
{
	struct bw_sync_tick tick;
	struct bw_sync_outcome out;
	struct bw_stripe_error serr;
	struct bw_err terr;
	struct bw_log_ctx lc = { rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
				 NULL, NULL };
	char *raw_id = NULL, run_id[48];
	json_t *cerrors = json_array();
	int rc = -1;

	memset(&out, 0, sizeof(out));
	memset(&serr, 0, sizeof(serr));
	bw_err_clear(&terr);
	if (!cerrors)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	if (bw_sync_tick_parse(msg->payload, msg->len, ctx->max_tick_bytes, &tick, &raw_id,
			       &terr) != 0) {
		out.status = BW_SYNC_REJECTED;
		out.tick_id = raw_id;
		out.reason = terr.msg;
		lc.event_id = raw_id;
		bw_log(BW_LOG_WARN, &lc, "rejected to DLQ: %s", terr.msg);
		if (bw_dlq_publish(ctx->producer, ctx->worker, msg, terr.msg, err) != 0)
			goto done;
		rc = publish(ctx, &out, msg, err);
		goto done;
	}
	lc.event_id = tick.tick_id;
	lc.org_id = tick.org_id;
	out.tick_id = tick.tick_id;
	out.scope = bw_sync_scope_name(tick.scope);
	out.org_id = tick.org_id;
	out.stripe_customer_id = tick.stripe_customer_id;
	if (!ctx->api) {
		out.status = BW_SYNC_SKIPPED;
		out.reason = "local-only mode: STRIPE_SECRET_KEY is not set";
		bw_log(BW_LOG_INFO, &lc, "tick %s skipped (local-only)", tick.tick_id);
		rc = publish(ctx, &out, msg, err);
		goto done_tick;
	}
	int same = ctx->failed_attempts > 0 && ctx->failed_partition == msg->partition &&
		   ctx->failed_offset == msg->offset;
	out.attempts = (same ? ctx->failed_attempts : 0) + 1;
	if (bw_sync_run(ctx, tick.scope, tick.org_id, tick.stripe_customer_id, &out, run_id,
			sizeof(run_id), cerrors, &serr, &terr) == 0) {
		out.status = BW_SYNC_APPLIED;
		if (tick.scope == BW_SYNC_CUSTOMER && out.counts.customers_foreign > 0) {
			out.status = BW_SYNC_SKIPPED;
			out.reason = "Stripe customer of another product: recorded, its events "
				     "are ignored";
		}
		out.customer_errors = cerrors;
		ctx->failed_attempts = 0;
		bw_log(BW_LOG_INFO, &lc, "tick %s (%s) applied: %lld requests, %lld retries",
		       tick.tick_id, out.scope, (long long)out.counts.requests,
		       (long long)out.counts.retries);
		rc = publish(ctx, &out, msg, err);
		goto done_tick;
	}
	if (terr.kind == BW_ERR_FATAL) {
		*err = terr;
		goto done_tick;
	}
	if (terr.kind != BW_ERR_INVALID && out.attempts < ctx->max_tick_attempts) {
		ctx->failed_partition = msg->partition;
		ctx->failed_offset = msg->offset;
		ctx->failed_attempts = out.attempts;
		bw_log(BW_LOG_WARN, &lc, "tick %s attempt %d of %d failed, will retry: %s",
		       tick.tick_id, out.attempts, ctx->max_tick_attempts, terr.msg);
		*err = terr;
		goto done_tick;
	}
	ctx->failed_attempts = 0;
	out.status = BW_SYNC_FAILED;
	out.reason = terr.msg;
	out.stripe_error = &serr;
	out.customer_errors = cerrors;
	bw_log(BW_LOG_ERROR, &lc, "tick %s failed after %d attempt%s: %s", tick.tick_id,
	       out.attempts, out.attempts == 1 ? "" : "s", terr.msg);
	rc = publish(ctx, &out, msg, err);
done_tick:
	bw_sync_tick_cleanup(&tick);
done:
	json_decref(cerrors);
	free(raw_id);
	return rc;
}

int bw_sync_process_batch(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			  struct bw_err *err)
{
	struct bw_sync_ctx *ctx = opaque;

	for (size_t i = 0; i < count; i++)
		if (process_tick(ctx, msgs[i], err) != 0)
			return -1;
	return bw_producer_flush(ctx->producer, ctx->flush_timeout_ms, err);
}
