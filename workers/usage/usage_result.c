/* usage_result: see usage_result.h. */
#include "usage_result.h"

#include <stdlib.h>
#include <string.h>

#include "mongo.h"
#include "result.h"

const char *bw_usage_status_name(enum bw_usage_status st)
{
	switch (st) {
	case BW_USAGE_APPLIED: return "applied";
	case BW_USAGE_INSUFFICIENT: return "insufficient_credits";
	case BW_USAGE_DUPLICATE: return "duplicate";
	case BW_USAGE_CONFLICT: return "conflict";
	case BW_USAGE_REJECTED: return "rejected";
	}
	return "unknown";
}

static json_t *breakdown_json(const struct bw_breakdown *bd)
{
	return json_pack("{sIsIsIsI}", "from_subscription", (json_int_t)bd->from_subscription,
			 "from_purchased", (json_int_t)bd->from_purchased, "from_granted",
			 (json_int_t)bd->from_granted, "from_paid", (json_int_t)bd->from_paid);
}

static json_t *balances_json(const struct bw_balances *b)
{
	int64_t sub_left = b->enterprise ? 0
					 : bw_waterfall_remaining(b->subscription_allowance,
								  b->subscription_used);
	int64_t pur_left = bw_waterfall_remaining(b->purchased, b->purchased_used);
	int64_t gra_left = bw_waterfall_remaining(b->granted, b->granted_used);
	int64_t total;

	if (__builtin_add_overflow(sub_left, pur_left, &total) ||
	    __builtin_add_overflow(total, gra_left, &total))
		total = INT64_MAX;
	return json_pack("{sbsIsIsIsIsIsIsIsIsIsIsI}", "unlimited", b->enterprise,
			 "subscription_spu_allowance", (json_int_t)b->subscription_allowance,
			 "subscription_spus_used", (json_int_t)b->subscription_used,
			 "subscription_remaining", (json_int_t)sub_left,
			 "purchased_credits", (json_int_t)b->purchased,
			 "purchased_credits_used", (json_int_t)b->purchased_used,
			 "purchased_remaining", (json_int_t)pur_left,
			 "granted_credits", (json_int_t)b->granted,
			 "granted_credits_used", (json_int_t)b->granted_used,
			 "granted_remaining", (json_int_t)gra_left,
			 "paid_spus_used", (json_int_t)b->paid_used,
			 "total_remaining", (json_int_t)total);
}

char *bw_usage_result_json(const struct bw_usage_outcome *out, const rd_kafka_message_t *msg,
			   const char *processed_at)
{
	json_t *o = bw_result_new(msg);

	if (!o)
		return NULL;
	json_object_set_new(o, "event_id", out->event_id ? json_string(out->event_id) : json_null());
	json_object_set_new(o, "org_id", out->org_id ? json_string(out->org_id) : json_null());
	json_object_set_new(o, "status", json_string(bw_usage_status_name(out->status)));
	if (out->reason)
		json_object_set_new(o, "reason", json_string(out->reason));
	if (out->spus > 0)
		json_object_set_new(o, "spus", json_integer(out->spus));
	if (out->has_breakdown)
		json_object_set_new(o, "breakdown", breakdown_json(&out->bd));
	if (out->has_balances) {
		json_object_set_new(o, "balances", balances_json(&out->bal));
		json_object_set_new(o, "balance_version", json_integer(out->balance_version));
	}
	return bw_result_finish(o, processed_at);
}

/* Names the record sets itself: an event field of the same name stays under "event" only. */
static int reserved(const char *key)
{
	static const char *const names[] = { "hash", "from_subscription", "from_purchased",
					     "from_granted", "from_paid", "balance_version",
					     "status", "period_start", "processed_at", "event",
					     "kafka_topic", "kafka_partition", "kafka_offset",
					     "_id" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(key, names[i]) == 0)
			return 1;
	return 0;
}

bson_t *bw_usage_record_bson(const struct bw_usage_event *ev, const struct bw_usage_outcome *out,
			     int64_t period_start_ms, const rd_kafka_message_t *msg,
			     int64_t now_ms)
{
	bson_t *doc = bson_new();
	const char *key;
	json_t *v;
	int rc = 0;

	json_object_foreach(ev->raw, key, v)
		if (!reserved(key) && bw_mongo_append_json(doc, key, v) != 0)
			rc = -1;
	if (bw_mongo_append_json(doc, "event", ev->raw) != 0)
		rc = -1;
	BSON_APPEND_UTF8(doc, "hash", ev->hash);
	BSON_APPEND_UTF8(doc, "status", bw_usage_status_name(out->status));
	BSON_APPEND_INT64(doc, "from_subscription", out->bd.from_subscription);
	BSON_APPEND_INT64(doc, "from_purchased", out->bd.from_purchased);
	BSON_APPEND_INT64(doc, "from_granted", out->bd.from_granted);
	BSON_APPEND_INT64(doc, "from_paid", out->bd.from_paid);
	BSON_APPEND_INT64(doc, "balance_version", out->balance_version);
	if (period_start_ms > 0)
		BSON_APPEND_DATE_TIME(doc, "period_start", period_start_ms);
	BSON_APPEND_DATE_TIME(doc, "processed_at", now_ms);
	BSON_APPEND_UTF8(doc, "kafka_topic", rd_kafka_topic_name(msg->rkt));
	BSON_APPEND_INT32(doc, "kafka_partition", msg->partition);
	BSON_APPEND_INT64(doc, "kafka_offset", msg->offset);
	if (rc != 0) {
		bson_destroy(doc);
		return NULL;
	}
	return doc;
}
