/* stripe_batch: see stripe_batch.h. */
#include "stripe_batch.h"

#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "result.h"

struct item {
	struct bw_stripe_event ev;
	struct bw_stripe_outcome out;
	int parsed;
};

char *bw_stripe_result_json(const struct bw_stripe_event *ev,
			    const struct bw_stripe_outcome *out, const rd_kafka_message_t *msg,
			    const char *processed_at)
{
	json_t *o = bw_result_new(msg);

	if (!o)
		return NULL;
	json_object_set_new(o, "event_id", ev->id ? json_string(ev->id) : json_null());
	json_object_set_new(o, "event_type", ev->type ? json_string(ev->type) : json_null());
	json_object_set_new(o, "org_id", out->org_id[0] ? json_string(out->org_id) : json_null());
	json_object_set_new(o, "status", json_string(bw_stripe_status_name(out->status)));
	if (out->reason[0])
		json_object_set_new(o, "reason", json_string(out->reason));
	json_object_set_new(o, "details", out->details ? json_incref(out->details) : json_object());
	return bw_result_finish(o, processed_at);
}

static void log_outcome(const struct item *it, const rd_kafka_message_t *msg)
{
	struct bw_log_ctx lc = { rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
				 it->out.org_id[0] ? it->out.org_id : NULL, it->ev.id };
	const char *st = bw_stripe_status_name(it->out.status);

	if (it->out.status == BW_SS_REJECTED)
		bw_log(BW_LOG_WARN, &lc, "rejected to DLQ: %s", it->out.reason);
	else if (it->out.waiting)
		bw_log(BW_LOG_INFO, &lc, "waiting: %s", it->out.reason);
	else if (it->out.status == BW_SS_STALE || it->out.status == BW_SS_DEFERRED)
		bw_log(BW_LOG_INFO, &lc, "%s %s: %s", it->ev.type, st, it->out.reason);
	else
		bw_log(BW_LOG_DEBUG, &lc, "%s %s", it->ev.type ? it->ev.type : "?", st);
}

static int publish_ticks(const struct item *items, size_t n, const struct bw_stripe_ctx *ctx,
			 struct bw_err *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];
		const char *org = it->out.org_id[0] ? it->out.org_id : NULL;
		const char *key = org ? org : it->ev.customer_id;
		char *json;
		int rc;

		if (!it->out.tick_reason[0])
			continue;
		json = bw_stripe_tick_json(it->out.tick_id, org, it->ev.customer_id,
					   it->out.tick_reason);
		if (!json)
			return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		rc = bw_producer_send(ctx->producer, ctx->ticks_topic, key, key ? strlen(key) : 0,
				      json, strlen(json), NULL, err);
		free(json);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int publish_results(const struct item *items, rd_kafka_message_t *const *msgs, size_t n,
			   const struct bw_stripe_ctx *ctx, struct bw_err *err)
{
	char now[BW_LOG_TIME_LEN];

	bw_log_format_now(now, sizeof(now));
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];
		const char *key = it->out.org_id[0] ? it->out.org_id
				  : it->ev.customer_id ? it->ev.customer_id : it->ev.id;
		char *json;
		int rc;

		log_outcome(it, msgs[i]);
		if (it->out.to_dlq) {
			if (bw_dlq_publish(ctx->producer, ctx->worker, msgs[i], it->out.reason,
					   err) != 0)
				return -1;
		}
		json = bw_stripe_result_json(&it->ev, &it->out, msgs[i], now);
		if (!json)
			return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		rc = bw_producer_send(ctx->producer, ctx->results_topic, key, key ? strlen(key) : 0,
				      json, strlen(json), NULL, err);
		free(json);
		if (rc != 0)
			return -1;
		switch (it->out.status) {
		case BW_SS_APPLIED: bw_metrics_add(BW_M_APPLIED, 1); break;
		case BW_SS_DUPLICATE: bw_metrics_add(BW_M_DUPLICATES, 1); break;
		case BW_SS_REJECTED: bw_metrics_add(BW_M_REJECTED, 1); break;
		default: break;
		}
		bw_metrics_add(BW_M_RESULTS, 1);
	}
	return 0;
}

int bw_stripe_process_batch(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			    struct bw_err *err)
{
	const struct bw_stripe_ctx *ctx = opaque;
	struct item *items = calloc(count ? count : 1, sizeof(*items));
	mongoc_client_t *client = bw_mongo_pop(ctx->mongo);
	struct bw_stripe_cache *cache = bw_stripe_cache_new(ctx->mongo, client);
	struct bw_stripe_apply_ctx ax = { .cfg = &ctx->apply, .cache = cache, .err = err };
	size_t waiting = 0;
	int rc = -1;

	if (!items || !cache) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < count; i++) {
		struct item *it = &items[i];
		struct bw_err perr;
		static const unsigned char empty[1] = { 0 };

		bw_err_clear(&perr);
		it->out.details = json_object();
		if (!it->out.details) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		if (bw_stripe_event_parse(msgs[i]->payload ? msgs[i]->payload : empty,
					  msgs[i]->len, ctx->max_event_bytes, &it->ev, &perr) != 0) {
			it->out.status = BW_SS_REJECTED;
			it->out.to_dlq = 1;
			snprintf(it->out.reason, sizeof(it->out.reason), "%s", perr.msg);
			continue;
		}
		it->parsed = 1;
		if (bw_stripe_cache_want(cache, &it->ev) != 0) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
	}
	/* One read of the batch's event records and customers, then each event in order. */
	if (bw_stripe_cache_load(cache, err) != 0)
		goto done;
	for (size_t i = 0; i < count; i++) {
		struct item *it = &items[i];

		if (!it->parsed)
			continue;
		ax.ev = &it->ev;
		ax.msg = msgs[i];
		ax.out = &it->out;
		if (bw_stripe_apply(&ax) != 0)
			goto done;
		waiting += it->out.waiting != 0;
	}
	if (bw_stripe_cache_flush(cache, err) != 0)
		goto done;
	bw_fault_point("after_db_write");
	if (publish_ticks(items, count, ctx, err) != 0)
		goto done;
	if (waiting) {
		for (size_t i = 0; i < count; i++)
			if (items[i].out.waiting)
				log_outcome(&items[i], msgs[i]);
		if (bw_producer_flush(ctx->producer, ctx->flush_timeout_ms, err) == 0)
			bw_err_set(err, BW_ERR_TRANSIENT,
				   "%zu event(s) wait for an unknown Stripe customer", waiting);
		bw_metrics_add(BW_M_RETRIES, 1);
		goto done;
	}
	if (publish_results(items, msgs, count, ctx, err) != 0 ||
	    bw_producer_flush(ctx->producer, ctx->flush_timeout_ms, err) != 0)
		goto done;
	bw_fault_point("after_results");
	rc = 0;
done:
	bw_stripe_cache_destroy(cache); /* before its client goes back to the pool */
	bw_mongo_push(ctx->mongo, client);
	for (size_t i = 0; items && i < count; i++) {
		bw_stripe_event_cleanup(&items[i].ev);
		bw_stripe_outcome_cleanup(&items[i].out);
	}
	free(items);
	return rc;
}
