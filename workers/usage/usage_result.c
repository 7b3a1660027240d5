/* usage_result: see usage_result.h. */
#include "usage_result.h"

#include <stdlib.h>
#include <string.h>

#include "customer_doc.h"
#include "json.h"
#include "mongo.h"

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

/* The result is built straight into a growing buffer: it is written once per input message,
 * and a jansson tree plus its serialisation cost about a quarter of the worker's CPU
 * (docs/PERFORMANCE.md). Field order and content match schemas/billing-result.schema.json. */
struct jbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void jb_raw(struct jbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *grown = realloc(b->p, cap);
		if (!grown) {
			b->oom = 1;
			return;
		}
		b->p = grown;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jb_lit(struct jbuf *b, const char *s)
{
	jb_raw(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		return (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F))
			return 0; /* overlong, surrogate */
		return 3;
	}
	if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
			return 0;
		return 4;
	}
	return 0;
}

/* A JSON string: escaped, and any byte that is not valid UTF-8 (a parser's error text can
 * quote broken input) replaced by U+FFFD, so the result is always valid JSON. */
static void jb_str(struct jbuf *b, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t run = 0;

	jb_raw(b, "\"", 1);
	while (s[run]) {
		unsigned char c = s[run];
		size_t n = utf8_len(s + run);
		if (n > 1 || (n == 1 && c >= 0x20 && c != '"' && c != '\\')) {
			run += n;
			continue;
		}
		jb_raw(b, (const char *)s, run);
		s += run;
		run = 0;
		if (n == 0) {
			jb_lit(b, "\\ufffd");
		} else if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			jb_raw(b, esc, 2);
		} else {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			jb_raw(b, esc, 6);
		}
		s++;
	}
	jb_raw(b, (const char *)s, run);
	jb_raw(b, "\"", 1);
}

static void jb_key(struct jbuf *b, const char *key)
{
	jb_raw(b, ",\"", 2);
	jb_lit(b, key);
	jb_raw(b, "\":", 2);
}

static void jb_num(struct jbuf *b, int64_t v)
{
	char num[BW_JSON_INT64_LEN];
	jb_raw(b, num, bw_json_format_int64(num, v));
}

static void jb_int(struct jbuf *b, const char *key, int64_t v)
{
	jb_key(b, key);
	jb_num(b, v);
}

static void jb_breakdown(struct jbuf *b, const struct bw_breakdown *bd)
{
	jb_lit(b, ",\"breakdown\":{\"from_subscription\":");
	jb_num(b, bd->from_subscription);
	jb_int(b, "from_purchased", bd->from_purchased);
	jb_int(b, "from_granted", bd->from_granted);
	jb_int(b, "from_paid", bd->from_paid);
	jb_raw(b, "}", 1);
}

/* The balances object itself ("{...}"), shared by the results and bw-admin balance. */
static void jb_balances_obj(struct jbuf *b, const struct bw_balances *bal)
{
	int64_t sub_left = bal->enterprise ? 0
					   : bw_waterfall_remaining(bal->subscription_allowance,
								    bal->subscription_used);
	int64_t pur_left = bw_waterfall_remaining(bal->purchased, bal->purchased_used);
	int64_t gra_left = bw_waterfall_remaining(bal->granted, bal->granted_used);
	int64_t total = bw_waterfall_available(bal);
	jb_lit(b, bal->enterprise ? "{\"unlimited\":true" : "{\"unlimited\":false");
	jb_int(b, "subscription_spu_allowance", bal->subscription_allowance);
	jb_int(b, "subscription_spus_used", bal->subscription_used);
	jb_int(b, "subscription_remaining", sub_left);
	jb_int(b, "purchased_credits", bal->purchased);
	jb_int(b, "purchased_credits_used", bal->purchased_used);
	jb_int(b, "purchased_remaining", pur_left);
	jb_int(b, "granted_credits", bal->granted);
	jb_int(b, "granted_credits_used", bal->granted_used);
	jb_int(b, "granted_remaining", gra_left);
	jb_int(b, "paid_spus_used", bal->paid_used);
	jb_int(b, "total_remaining", total);
	jb_raw(b, "}", 1);
}

static void jb_balances(struct jbuf *b, const struct bw_balances *bal)
{
	jb_lit(b, ",\"balances\":");
	jb_balances_obj(b, bal);
}

char *bw_usage_balances_json(const struct bw_balances *bal)
{
	struct jbuf b = { NULL, 0, 0, 0 };

	jb_balances_obj(&b, bal);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

char *bw_usage_result_json(const struct bw_usage_outcome *out, const rd_kafka_message_t *msg,
			   const char *processed_at)
{
	struct jbuf b = { NULL, 0, 0, 0 };

	jb_lit(&b, "{\"source_topic\":");
	jb_str(&b, rd_kafka_topic_name(msg->rkt));
	jb_int(&b, "source_partition", msg->partition);
	jb_int(&b, "source_offset", msg->offset);
	jb_key(&b, "event_id");
	if (out->event_id)
		jb_str(&b, out->event_id);
	else
		jb_lit(&b, "null");
	jb_key(&b, "org_id");
	if (out->org_id)
		jb_str(&b, out->org_id);
	else
		jb_lit(&b, "null");
	jb_key(&b, "status");
	jb_str(&b, bw_usage_status_name(out->status));
	if (out->reason) {
		jb_key(&b, "reason");
		jb_str(&b, out->reason);
	}
	if (out->spus > 0)
		jb_int(&b, "spus", out->spus);
	if (out->has_breakdown)
		jb_breakdown(&b, &out->bd);
	if (out->has_balances) {
		jb_balances(&b, &out->bal);
		jb_int(&b, "balance_version", out->balance_version);
	}
	jb_key(&b, "processed_at");
	jb_str(&b, processed_at);
	jb_raw(&b, "}", 1);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
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

void bw_usage_record_id_append(bson_t *b, const char *key, const char *org_id,
			       const char *event_id)
{
	bson_t id;

	/* Field order matters: {org_id, event_id} is the key, {event_id, org_id} another. */
	bson_append_document_begin(b, key, -1, &id);
	BSON_APPEND_UTF8(&id, "org_id", org_id);
	if (event_id[0])
		BSON_APPEND_UTF8(&id, "event_id", event_id);
	else
		BSON_APPEND_UTF8(&id, BW_CUST_OPENING, BW_OPENING_SOURCE);
	bson_append_document_end(b, &id);
}

static void append_breakdown(bson_t *doc, const struct bw_breakdown *bd, int64_t version)
{
	BSON_APPEND_INT64(doc, "from_subscription", bd->from_subscription);
	BSON_APPEND_INT64(doc, "from_purchased", bd->from_purchased);
	BSON_APPEND_INT64(doc, "from_granted", bd->from_granted);
	BSON_APPEND_INT64(doc, "from_paid", bd->from_paid);
	BSON_APPEND_INT64(doc, "balance_version", version);
}

bson_t *bw_usage_opening_record_bson(const char *org_id, const struct bw_breakdown *bd,
				     int64_t version, int64_t period_start_ms, int64_t now_ms)
{
	bson_t *doc = bson_new();

	bw_usage_record_id_append(doc, "_id", org_id, "");
	BSON_APPEND_UTF8(doc, "org_id", org_id);
	BSON_APPEND_UTF8(doc, "operation", BW_CUST_OPENING);
	BSON_APPEND_UTF8(doc, "source", BW_OPENING_SOURCE);
	BSON_APPEND_UTF8(doc, "status", BW_CUST_OPENING);
	append_breakdown(doc, bd, version);
	if (period_start_ms > 0)
		BSON_APPEND_DATE_TIME(doc, "period_start", period_start_ms);
	BSON_APPEND_DATE_TIME(doc, "processed_at", now_ms);
	return doc;
}

bson_t *bw_usage_record_bson(const struct bw_usage_event *ev, const struct bw_usage_outcome *out,
			     int64_t period_start_ms, const rd_kafka_message_t *msg,
			     int64_t now_ms)
{
	bson_t *doc = bson_new();
	bson_t event = BSON_INITIALIZER;
	bson_iter_t it;
	const char *key;
	json_t *v;
	int rc = 0;

	bw_usage_record_id_append(doc, "_id", ev->org_id, ev->event_id);
	/* Convert the event once; its fields are then copied to the top level as BSON. */
	json_object_foreach(ev->raw, key, v)
		if (bw_mongo_append_json(&event, key, v) != 0)
			rc = -1;
	if (bson_iter_init(&it, &event))
		while (bson_iter_next(&it))
			if (!reserved(bson_iter_key(&it)))
				bson_append_iter(doc, NULL, 0, &it);
	BSON_APPEND_DOCUMENT(doc, "event", &event);
	bson_destroy(&event);
	BSON_APPEND_UTF8(doc, "hash", ev->hash);
	BSON_APPEND_UTF8(doc, "status", bw_usage_status_name(out->status));
	append_breakdown(doc, &out->bd, out->balance_version);
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
