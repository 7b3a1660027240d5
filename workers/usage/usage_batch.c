/* usage_batch: see usage_batch.h. */
#include "usage_batch.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "dlq.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "usage_event.h"
#include "usage_org.h"
#include "usage_result.h"
#include "usage_store.h"

struct item {
	const rd_kafka_message_t *msg;
	size_t index;
	struct bw_usage_event ev;
	int valid;
	char *raw_event_id, *raw_org_id;   /* ids of a rejected message, when readable */
	char reason[BW_DLQ_REASON_MAX];
	struct item *prev_copy;            /* earlier item of the batch, same org and event_id */
	int applied_here;                  /* this copy charged (or repaired) the event */
	struct bw_org *org;
	struct bw_usage_outcome out;
	int need_record;
	int to_dlq;
};

struct batch {
	struct item *items;
	size_t n;
	struct item **valid;   /* every valid item, sorted by (org_id, index) */
	size_t nvalid;
	struct bw_org *orgs;
	size_t norgs;
	size_t nalerts;        /* alerts published (their $pull follows the acks) */
	int settled;           /* acks in, alerts cleared */
};

static int cmp_by_event(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
	int c = strcmp(x->ev.org_id, y->ev.org_id);
	if (!c)
		c = strcmp(x->ev.event_id, y->ev.event_id);
	return c ? c : (x->index < y->index ? -1 : x->index > y->index);
}

static int cmp_by_org(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
	int c = strcmp(x->ev.org_id, y->ev.org_id);
	return c ? c : (x->index < y->index ? -1 : x->index > y->index);
}

static void reject(struct item *it, const char *reason)
{
	snprintf(it->reason, sizeof(it->reason), "%s", reason);
	it->out.status = BW_USAGE_REJECTED;
	it->out.reason = it->reason;
	it->to_dlq = 1;
}

/* Parses every message; links each later copy of an event (same org_id and event_id) to the
 * copy before it; groups the valid items by org. Every copy gets its own outcome, as if it
 * came in a batch of its own (org_compute). */
static int batch_prepare(struct batch *b, const struct bw_usage_ctx *ctx,
			 rd_kafka_message_t *const *msgs, size_t n, struct bw_err *err)
{
	struct item **by_event = NULL;
	size_t nv = 0;

	b->items = calloc(n, sizeof(*b->items));
	b->valid = calloc(n, sizeof(*b->valid));
	by_event = calloc(n, sizeof(*by_event));
	if (!b->items || !b->valid || !by_event) {
		free(by_event);
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	}
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &b->items[i];
		struct bw_err perr;
		it->msg = msgs[i];
		it->index = i;
		bw_err_clear(&perr);
		if (bw_usage_event_parse(msgs[i]->payload, msgs[i]->len, ctx->max_event_bytes,
					 &it->ev, &it->raw_event_id, &it->raw_org_id,
					 &perr) != 0) {
			if (perr.kind == BW_ERR_TRANSIENT) {   /* out of memory: not the event's fault */
				free(by_event);
				*err = perr;
				return -1;
			}
			reject(it, perr.msg);
			it->out.event_id = it->raw_event_id;
			it->out.org_id = it->raw_org_id;
			continue;
		}
		it->valid = 1;
		it->out.event_id = it->ev.event_id;
		it->out.org_id = it->ev.org_id;
		it->out.spus = it->ev.spus;
		by_event[nv++] = it;
	}
	qsort(by_event, nv, sizeof(*by_event), cmp_by_event);
	for (size_t i = 0; i < nv; i++) {
		if (i > 0 && strcmp(by_event[i]->ev.org_id, by_event[i - 1]->ev.org_id) == 0 &&
		    strcmp(by_event[i]->ev.event_id, by_event[i - 1]->ev.event_id) == 0)
			by_event[i]->prev_copy = by_event[i - 1];
		b->valid[b->nvalid++] = by_event[i];
	}
	free(by_event);
	qsort(b->valid, b->nvalid, sizeof(*b->valid), cmp_by_org);

	b->orgs = calloc(b->nvalid ? b->nvalid : 1, sizeof(*b->orgs));
	if (!b->orgs)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	for (size_t i = 0; i < b->nvalid; i++) {
		if (i == 0 || strcmp(b->valid[i]->ev.org_id, b->valid[i - 1]->ev.org_id) != 0)
			b->orgs[b->norgs++].org_id = b->valid[i]->ev.org_id;
		b->valid[i]->org = &b->orgs[b->norgs - 1];
	}
	return 0;
}

static void set_outcome(struct item *it, enum bw_usage_status st, const struct bw_breakdown *bd,
			const struct bw_balances *bal, int64_t version)
{
	it->out.status = st;
	it->out.has_breakdown = bd != NULL;
	if (bd)
		it->out.bd = *bd;
	it->out.has_balances = 1;
	it->out.bal = *bal;
	it->out.balance_version = version;
}

/* The earlier copy of it in this batch that charged (or repaired) the event, or NULL. */
static const struct item *charged_copy(const struct item *it)
{
	const struct item *q = it->prev_copy;
	while (q && !q->applied_here)
		q = q->prev_copy;
	return q;
}

static int same_message(const struct bw_found_record *rec, const rd_kafka_message_t *msg)
{
	return rec->kafka_topic && strcmp(rec->kafka_topic, rd_kafka_topic_name(msg->rkt)) == 0 &&
	       rec->kafka_partition == msg->partition && rec->kafka_offset == msg->offset;
}

/* Alerts fired by one charge become pending alerts of the org's write. */
static int alerts_after_charge(struct bw_org *org, const struct item *it,
			       const struct bw_balances *bal, int64_t version,
			       const struct bw_alert_cfg *cfg, struct bw_err *err)
{
	struct bw_alert_fire fired[BW_ALERT_MAX_THRESHOLDS + 1];
	int64_t remaining = bw_alert_remaining(bal);
	size_t n = bw_alert_after_charge(&org->alerts, cfg, remaining, it->out.bd.from_paid > 0,
					 fired);

	for (size_t i = 0; i < n; i++)
		if (bw_usage_alerts_add(org, it->ev.event_id, fired[i].threshold, remaining,
					version, bw_mongo_now_ms(), err) != 0)
			return -1;
	return 0;
}

/* Runs the org's events (items, in batch order) through dedupe and the waterfall in memory,
 * each copy of an event as if it came alone: a stored record, an earlier copy of this batch
 * that charged it, a pending entry, else a charge. */
static int org_compute(struct bw_org *org, struct item **items, size_t nitems,
		       const struct bw_found_record *found, size_t nfound,
		       const struct bw_usage_ctx *ctx, struct bw_err *err)
{
	struct bw_balances bal = org->bal;
	int64_t version = org->version;

	org->new_pending = calloc(org->npending + nitems + 1, sizeof(*org->new_pending));
	if (!org->new_pending)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	/* Keep pending entries until a write has seen their usage record. */
	for (size_t i = 0; i < org->npending; i++) {
		struct bw_pending *p = &org->pending[i];
		p->record_found = bw_found_record_lookup(found, nfound, org->org_id, p->event_id) !=
				  NULL;
		if (p->record_found)
			continue;
		org->new_pending[org->nnew_pending++] = *p;
		if (p->event_id[0] == '\0') { /* the opening row is missing: write it now */
			org->record_opening = 1;
			org->opening_bd = p->bd;
			org->opening_version = p->version;
		}
	}
	if (org->exists && !org->cust.has_opening)
		bw_usage_org_open(org, &bal, &version);
	struct bw_alert_state alerts_read = org->alerts;
	size_t npalerts_read = org->npalerts;
	int alerting = !bal.enterprise;
	if (alerting)
		bw_usage_org_alerts_open(org, &bal, &ctx->alerts);
	for (size_t i = 0; i < nitems; i++) {
		struct item *it = items[i];
		const struct bw_found_record *rec =
			bw_found_record_lookup(found, nfound, org->org_id, it->ev.event_id);
		const struct item *q;
		struct bw_pending *p;
		struct bw_breakdown bd;
		struct bw_err cerr;

		it->need_record = 0;
		it->applied_here = 0;
		it->to_dlq = 0;
		it->out.reason = NULL;
		if (rec) {
			int same = strcmp(rec->hash, it->ev.hash) == 0;
			enum bw_usage_status st = same ? BW_USAGE_DUPLICATE : BW_USAGE_CONFLICT;
			/* The very message that charged it, redelivered after a crash that came
			 * before its result: answered as the charge, as it would have been. */
			if (same && same_message(rec, it->msg))
				st = rec->bd.from_paid > 0 ? BW_USAGE_INSUFFICIENT : BW_USAGE_APPLIED;
			set_outcome(it, st, &rec->bd, &bal, rec->version);
			if (!same)
				it->out.reason = "event_id already recorded with different content";
			continue;
		}
		q = charged_copy(it);
		if (q) {
			int same = strcmp(q->ev.hash, it->ev.hash) == 0;
			set_outcome(it, same ? BW_USAGE_DUPLICATE : BW_USAGE_CONFLICT, &q->out.bd, &bal,
				    q->out.balance_version);
			if (!same)
				it->out.reason = "event_id seen in this batch with different content";
			continue;
		}
		p = bw_org_find_pending(org, it->ev.event_id);
		if (p) {
			/* Applied by an attempt that did not finish (crash, or a write whose
			 * outcome we could not see): finish it with the stored breakdown. */
			if (strcmp(p->hash, it->ev.hash) != 0) {
				set_outcome(it, BW_USAGE_CONFLICT, &p->bd, &bal, p->version);
				it->out.reason = "event_id already applied with different content";
				continue;
			}
			set_outcome(it, p->bd.from_paid > 0 ? BW_USAGE_INSUFFICIENT : BW_USAGE_APPLIED,
				    &p->bd, &bal, p->version);
			it->need_record = 1;
			it->applied_here = 1;
			continue;
		}
		bw_err_clear(&cerr);
		if (bw_waterfall_charge(&bal, it->ev.spus, &ctx->order, &bd, &cerr) != 0) {
			reject(it, cerr.msg);
			set_outcome(it, BW_USAGE_REJECTED, NULL, &bal, version);
			continue;
		}
		version++;
		set_outcome(it, bd.from_paid > 0 ? BW_USAGE_INSUFFICIENT : BW_USAGE_APPLIED, &bd,
			    &bal, version);
		it->need_record = 1;
		it->applied_here = 1;
		struct bw_pending *np = &org->new_pending[org->nnew_pending++];
		np->event_id = (char *)it->ev.event_id; /* borrowed for the write */
		memcpy(np->hash, it->ev.hash, sizeof(np->hash));
		np->bd = bd;
		np->version = version;
		org->dirty = 1;
		if (alerting && alerts_after_charge(org, it, &bal, version, &ctx->alerts, err) != 0)
			return -1;
	}
	org->alerts_changed = org->npalerts != npalerts_read ||
			      org->alerts.nfired != alerts_read.nfired ||
			      org->alerts.exhausted_fired != alerts_read.exhausted_fired ||
			      memcmp(org->alerts.fired, alerts_read.fired,
				     org->alerts.nfired * sizeof(org->alerts.fired[0])) != 0;
	org->new_bal = bal;
	org->new_version = version;
	return 0;
}

/* Load, dedupe, compute and conditionally write orgs[0..n); repeat for the orgs whose write
 * missed, up to ctx->max_attempts. */
static int batch_apply(struct batch *b, const struct bw_usage_ctx *ctx,
		       mongoc_client_t *client, struct bw_err *err)
{
	struct bw_org **todo = calloc(b->norgs ? b->norgs : 1, sizeof(*todo));
	struct bw_record_key *keys = NULL;
	size_t ntodo = 0;
	int64_t mark = bw_metrics_now_us();
	int rc = -1;

	if (!todo)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	for (size_t i = 0; i < b->norgs; i++)
		todo[ntodo++] = &b->orgs[i];
	/* Once per batch, not per retry: the backend's enterprise flag (b->orgs is sorted). */
	if (bw_usage_store_load_org_types(ctx->mongo, client, b->orgs, b->norgs, err) != 0)
		goto done;
	for (int attempt = 0; ntodo > 0; attempt++) {
		struct bw_found_record *found = NULL;
		size_t nfound = 0, nids = 0, cap = 0;

		if (attempt >= ctx->max_attempts) {
			bw_err_set(err, BW_ERR_TRANSIENT,
				   "%zu orgs still contended after %d attempts", ntodo, attempt);
			goto done;
		}
		if (attempt > 0) {
			/* 5 ms more per round, at most a second (issue 11 defect 6) */
			struct timespec ts = bw_backoff_jitter(attempt, 5, 1000, (unsigned long)rand());
			nanosleep(&ts, NULL);
		}
		if (bw_usage_store_load_orgs(ctx->mongo, client, todo, ntodo, ctx->free_grant,
					     err) != 0)
			goto done;
		for (size_t i = 0; i < ntodo; i++)
			cap += todo[i]->npending;
		cap += b->nvalid;
		free(keys);
		keys = calloc(cap ? cap : 1, sizeof(*keys));
		if (!keys) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < ntodo; i++)
			for (size_t j = 0; j < todo[i]->npending; j++)
				keys[nids++] = (struct bw_record_key){
					todo[i]->org_id, todo[i]->pending[j].event_id };
		for (size_t i = 0; i < b->nvalid; i++)
			if (!b->valid[i]->org->confirmed)
				keys[nids++] = (struct bw_record_key){ b->valid[i]->ev.org_id,
								       b->valid[i]->ev.event_id };
		if (bw_usage_store_find_records(ctx->mongo, client, keys, nids, &found, &nfound,
						err) != 0)
			goto done;
		bw_metrics_stage_lap(BW_STAGE_READS, &mark);
		/* b->valid is grouped by org: each org's events are one run. */
		for (size_t i = 0, start = 0; i <= b->nvalid; i++) {
			if (i < b->nvalid && (i == start || b->valid[i]->org == b->valid[start]->org))
				continue;
			struct bw_org *org = b->valid[start]->org;
			if (!org->confirmed &&
			    org_compute(org, &b->valid[start], i - start, found, nfound, ctx,
					err) != 0) {
				bw_found_records_free(found, nfound);
				goto done;
			}
			start = i;
		}
		bw_found_records_free(found, nfound);
		bw_metrics_stage_lap(BW_STAGE_COMPUTE, &mark);
		if (bw_usage_store_write_orgs(ctx->mongo, client, todo, ntodo, ctx->free_grant,
					      err) != 0)
			goto done;
		bw_metrics_stage_lap(BW_STAGE_WRITES, &mark);
		size_t left = 0;
		for (size_t i = 0; i < ntodo; i++)
			if (!todo[i]->confirmed)
				todo[left++] = todo[i];
		if (left)
			bw_metrics_add(BW_M_VERSION_MISSES, left);
		ntodo = left;
	}
	rc = 0;
done:
	free(keys);
	free(todo);
	return rc;
}

static int batch_record(struct batch *b, const struct bw_usage_ctx *ctx,
			mongoc_client_t *client, struct bw_err *err)
{
	bson_t **docs = calloc(b->nvalid + b->norgs + 1, sizeof(*docs));
	size_t ndocs = 0;
	int64_t now = bw_mongo_now_ms(), mark = bw_metrics_now_us();
	int rc = -1;

	if (!docs)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	for (size_t i = 0; i < b->nvalid; i++) {
		struct item *it = b->valid[i];
		if (!it->need_record)
			continue;
		docs[ndocs] = bw_usage_record_bson(&it->ev, &it->out, it->org->period_start_ms,
						   it->msg, now);
		if (!docs[ndocs]) {
			bw_err_set(err, BW_ERR_TRANSIENT, "cannot build usage record");
			goto done;
		}
		ndocs++;
	}
	for (size_t i = 0; i < b->norgs; i++) {
		const struct bw_org *org = &b->orgs[i];
		if (org->record_opening)
			docs[ndocs++] = bw_usage_opening_record_bson(org->org_id, &org->opening_bd,
								     org->opening_version,
								     org->period_start_ms, now);
	}
	bw_metrics_stage_lap(BW_STAGE_COMPUTE, &mark);
	rc = bw_usage_store_insert_records(ctx->mongo, client, docs, ndocs, err);
	bw_metrics_stage_lap(BW_STAGE_WRITES, &mark);
done:
	for (size_t i = 0; i < ndocs; i++)
		bson_destroy(docs[i]);
	free(docs);
	return rc;
}

static void log_outcome(const struct item *it)
{
	struct bw_log_ctx lc = { rd_kafka_topic_name(it->msg->rkt), it->msg->partition,
				 it->msg->offset, it->out.org_id, it->out.event_id };
	if (it->out.status == BW_USAGE_REJECTED)
		bw_log(BW_LOG_WARN, &lc, "rejected to DLQ: %s", it->reason);
	else if (it->out.status == BW_USAGE_CONFLICT)
		bw_log(BW_LOG_WARN, &lc, "conflict: %s", it->out.reason);
	else
		bw_log(BW_LOG_DEBUG, &lc, "%s", bw_usage_status_name(it->out.status));
}

/* Publishes the pending alerts of the batch's orgs whose crossing charge is an event of this
 * batch (charged now, or redelivered after a crash before the alert was cleared). */
static int publish_alerts(struct batch *b, const struct bw_usage_ctx *ctx, struct bw_err *err)
{
	for (size_t i = 0; i < b->nvalid; i++) {
		struct bw_org *org = b->valid[i]->org;
		for (size_t j = 0; j < org->npalerts; j++) {
			struct bw_pending_alert *a = &org->palerts[j];
			if (a->published || strcmp(a->event_id, b->valid[i]->ev.event_id) != 0)
				continue;
			char *json = bw_alert_message_json(org->org_id, a->event_id, a->threshold,
							   a->remaining, a->version,
							   a->created_at_ms);
			if (!json)
				return bw_err_set(err, BW_ERR_TRANSIENT, "cannot build alert");
			int rc = bw_producer_send(ctx->producer, ctx->alerts_topic, org->org_id,
						  strlen(org->org_id), json, strlen(json), NULL,
						  err);
			free(json);
			if (rc != 0)
				return -1;
			a->published = 1;
			b->nalerts++;
			bw_metrics_add(BW_M_ALERTS, 1);
		}
	}
	return 0;
}

/* Queues one result per message, the DLQ records and the alerts; their acks come later. */
static int batch_publish(struct batch *b, const struct bw_usage_ctx *ctx, struct bw_err *err)
{
	char now[BW_LOG_TIME_LEN];
	static const enum bw_metric metric_of[] = { BW_M_APPLIED, BW_M_APPLIED, BW_M_DUPLICATES,
						    BW_M_CONFLICTS, BW_M_REJECTED };

	bw_log_format_now(now, sizeof(now));
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = &b->items[i];
		const char *key = it->out.org_id;
		char *json;

		log_outcome(it);
		if (it->to_dlq && bw_dlq_publish(ctx->producer, ctx->worker, it->msg, it->reason,
						 err) != 0)
			return -1;
		json = bw_usage_result_json(&it->out, it->msg, now);
		if (!json)
			return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		int rc = bw_producer_send(ctx->producer, ctx->results_topic, key,
					  key ? strlen(key) : 0, json, strlen(json), NULL, err);
		free(json);
		if (rc != 0)
			return -1;
		bw_metrics_add(metric_of[it->out.status], 1);
		bw_metrics_add(BW_M_RESULTS, 1);
	}
	return publish_alerts(b, ctx, err);
}

static void batch_cleanup(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		bw_usage_event_cleanup(&b->items[i].ev);
		free(b->items[i].raw_event_id);
		free(b->items[i].raw_org_id);
	}
	for (size_t i = 0; i < b->norgs; i++)
		bw_org_reset(&b->orgs[i]);
	free(b->items);
	free(b->valid);
	free(b->orgs);
}

/* The steps of one batch: apply, publish, settle (usage_batch.h). */
int bw_usage_batch_apply(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			 void **state, struct bw_err *err)
{
	const struct bw_usage_ctx *ctx = opaque;
	struct batch *b = calloc(1, sizeof(*b));
	mongoc_client_t *client = NULL;
	int64_t mark = bw_metrics_now_us();
	int rc = -1;

	*state = NULL;
	if (!b) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	if (batch_prepare(b, ctx, msgs, count, err) != 0)
		goto done;
	bw_metrics_stage_lap(BW_STAGE_PARSE, &mark);
	client = bw_mongo_pop(ctx->mongo);
	if (b->norgs > 0 && batch_apply(b, ctx, client, err) != 0)
		goto done;
	bw_fault_point("after_db_write");
	if (batch_record(b, ctx, client, err) != 0)
		goto done;
	bw_fault_point("after_records");
	*state = b;
	b = NULL; /* the loop's until bw_usage_batch_discard */
	rc = 0;
done:
	bw_mongo_push(ctx->mongo, client);
	bw_usage_batch_discard(opaque, b);
	return rc;
}

int bw_usage_batch_publish(void *opaque, void *state, struct bw_err *err)
{
	struct batch *b = state;

	if (batch_publish(b, opaque, err) != 0)
		return -1;
	/* An alert stays pending in its org until the $pull after its ack: the next batch's load
	 * would see it and, holding a re-send of its event, publish it again. So a batch that
	 * published alerts (rare: a threshold crossed) is settled before the next one loads. */
	if (b->nalerts > 0)
		return bw_usage_batch_settle(opaque, state, err);
	return 0;
}

int bw_usage_batch_settle(void *opaque, void *state, struct bw_err *err)
{
	const struct bw_usage_ctx *ctx = opaque;
	struct batch *b = state;
	mongoc_client_t *client = NULL;
	int rc = -1;

	if (b->settled)
		return 0;
	/* Only this batch's messages are queued: the loop settles a batch before the next one
	 * publishes, so this flush waits for exactly its results, DLQ records and alerts. */
	if (bw_producer_flush(ctx->producer, ctx->flush_timeout_ms, err) != 0)
		goto done;
	bw_fault_point("after_results");
	/* Only after the acks: a pending alert is removed once it is known published. */
	if (b->nalerts > 0) {
		client = bw_mongo_pop(ctx->mongo);
		if (bw_usage_alerts_clear(ctx->mongo, client, b->orgs, b->norgs, err) != 0)
			goto done;
	}
	b->settled = 1;
	rc = 0;
done:
	bw_mongo_push(ctx->mongo, client);
	return rc;
}

void bw_usage_batch_discard(void *opaque, void *state)
{
	(void)opaque;
	if (state)
		batch_cleanup(state);
	free(state);
}

const struct bw_batch_handler bw_usage_handler = {
	bw_usage_batch_apply, bw_usage_batch_publish, bw_usage_batch_settle, bw_usage_batch_discard,
};
