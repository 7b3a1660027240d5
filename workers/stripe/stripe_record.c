/* stripe_record: see stripe_record.h. */
#include "stripe_record.h"

#include <stdio.h>
#include <string.h>

#include "stripe_store.h"

void bw_stripe_rec_cleanup(struct bw_stripe_rec *r)
{
	json_decref(r->details);
	r->details = NULL;
}

void bw_stripe_rec_from_doc(const bson_t *doc, struct bw_stripe_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->found = 1;
	bw_stripe_copy_utf8(doc, "state", r->state, sizeof(r->state));
	bw_stripe_copy_utf8(doc, "status", r->status, sizeof(r->status));
	bw_stripe_copy_utf8(doc, "org_id", r->org_id, sizeof(r->org_id));
	bw_stripe_copy_utf8(doc, "reason", r->reason, sizeof(r->reason));
	bw_stripe_copy_utf8(doc, "source_topic", r->source_topic, sizeof(r->source_topic));
	bw_mongo_get_int64(doc, "source_partition", &r->source_partition);
	bw_mongo_get_int64(doc, "source_offset", &r->source_offset);
	bw_mongo_get_int64(doc, "attempts", &r->attempts);
	r->details = bw_stripe_subdoc_json(doc, "details");
}

int bw_stripe_rec_load(struct bw_mongo *m, mongoc_client_t *client, const char *event_id,
		       struct bw_stripe_rec *r, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("event_id", BCON_UTF8(event_id));
	bson_t *doc = NULL;
	int rc = bw_stripe_find_one(m, client, BW_COLL_STRIPE_EVENTS, filter, NULL, &doc, err);

	memset(r, 0, sizeof(*r));
	if (rc == 0 && doc)
		bw_stripe_rec_from_doc(doc, r);
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

void bw_stripe_rec_update(const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
			  const struct bw_stripe_outcome *out, int64_t attempts, bson_t *update)
{
	int64_t now = bw_mongo_now_ms();
	bson_t set, soi;

	BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
	BSON_APPEND_UTF8(&set, "event_type", ev->type);
	BSON_APPEND_INT64(&set, "event_created", ev->created);
	BSON_APPEND_UTF8(&set, "state", out->waiting ? "waiting" : "done");
	BSON_APPEND_UTF8(&set, "status",
			 out->waiting ? "waiting" : bw_stripe_status_name(out->status));
	if (out->org_id[0])
		BSON_APPEND_UTF8(&set, "org_id", out->org_id);
	if (ev->customer_id)
		BSON_APPEND_UTF8(&set, "stripe_customer_id", ev->customer_id);
	BSON_APPEND_UTF8(&set, "reason", out->reason);
	if (bw_mongo_append_json(&set, "details", out->details) != 0)
		BSON_APPEND_DOCUMENT(&set, "details", &(bson_t)BSON_INITIALIZER);
	BSON_APPEND_INT64(&set, "attempts", attempts);
	BSON_APPEND_UTF8(&set, "source_topic", rd_kafka_topic_name(msg->rkt));
	BSON_APPEND_INT64(&set, "source_partition", msg->partition);
	BSON_APPEND_INT64(&set, "source_offset", msg->offset);
	BSON_APPEND_DATE_TIME(&set, "updated_at", now);
	bson_append_document_end(update, &set);
	BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
	BSON_APPEND_DATE_TIME(&soi, "first_seen_at", now);
	bson_append_document_end(update, &soi);
}

void bw_stripe_rec_replay(const struct bw_stripe_rec *r, const rd_kafka_message_t *msg,
			  struct bw_stripe_outcome *out)
{
	enum bw_stripe_status st = BW_SS_APPLIED;
	int same = strcmp(r->source_topic, rd_kafka_topic_name(msg->rkt)) == 0 &&
		   r->source_partition == msg->partition && r->source_offset == msg->offset;

	if (r->legacy) {
		bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "event already processed by the "
				      "previous integration (%s)", BW_COLL_OLD_STRIPE_EVENTS);
		bw_stripe_detail_str(out, "original_status", "previous_integration");
		return;
	}
	snprintf(out->org_id, sizeof(out->org_id), "%s", r->org_id);
	if (bw_stripe_status_parse(r->status, &st) != 0)
		st = BW_SS_APPLIED;
	if (same) {
		json_decref(out->details);
		out->details = json_deep_copy(r->details);
		bw_stripe_outcome_set(out, st, "%s", r->reason);
		return;
	}
	bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "event already processed (%s)", r->status);
	bw_stripe_detail_str(out, "original_status", r->status);
}
