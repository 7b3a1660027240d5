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

static char *jb_grow(struct jbuf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 1024;
	char *grown;

	if (b->oom)
		return NULL;
	while (cap < b->len + n + 1)
		cap *= 2;
	if (!(grown = realloc(b->p, cap))) {
		b->oom = 1;
		return NULL;
	}
	b->p = grown;
	b->cap = cap;
	return b->p + b->len;
}

/* Room for n more bytes and a NUL at b->p + b->len, or NULL (b->oom). A result is about
 * 700 bytes: the first allocation holds it. Inline, so that a literal's copy is a few moves. */
static inline char *jb_room(struct jbuf *b, size_t n)
{
	if (b->len + n + 1 > b->cap)
		return jb_grow(b, n);
	return b->p + b->len;
}

static inline void jb_raw(struct jbuf *b, const char *s, size_t n)
{
	char *d = jb_room(b, n);
	if (d) {
		memcpy(d, s, n);
		b->len += n;
	}
}

#define JB_LIT(b, s) jb_raw((b), (s), sizeof(s) - 1)

static void jb_lit(struct jbuf *b, const char *s)
{
	jb_raw(b, s, strlen(s));
}

/* The finished text (NUL-terminated, caller free()), or NULL on OOM. */
static char *jb_finish(struct jbuf *b)
{
	if (b->oom || !jb_room(b, 0)) {
		free(b->p);
		return NULL;
	}
	b->p[b->len] = '\0';
	return b->p;
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
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			run++;  /* plain ASCII, the usual id */
			continue;
		}
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

static void jb_num(struct jbuf *b, int64_t v)
{
	char *d = jb_room(b, BW_JSON_INT64_LEN);
	if (d)
		b->len += bw_json_format_int64(d, v);
}

/* ,"key":v for a literal key */
#define JB_INT(b, key, v) (JB_LIT((b), ",\"" key "\":"), jb_num((b), (v)))

static void jb_breakdown(struct jbuf *b, const struct bw_breakdown *bd)
{
	JB_LIT(b, ",\"breakdown\":{\"from_subscription\":");
	jb_num(b, bd->from_subscription);
	JB_INT(b, "from_purchased", bd->from_purchased);
	JB_INT(b, "from_granted", bd->from_granted);
	JB_INT(b, "from_paid", bd->from_paid);
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
	JB_INT(b, "subscription_spu_allowance", bal->subscription_allowance);
	JB_INT(b, "subscription_spus_used", bal->subscription_used);
	JB_INT(b, "subscription_remaining", sub_left);
	JB_INT(b, "purchased_credits", bal->purchased);
	JB_INT(b, "purchased_credits_used", bal->purchased_used);
	JB_INT(b, "purchased_remaining", pur_left);
	JB_INT(b, "granted_credits", bal->granted);
	JB_INT(b, "granted_credits_used", bal->granted_used);
	JB_INT(b, "granted_remaining", gra_left);
	JB_INT(b, "paid_spus_used", bal->paid_used);
	JB_INT(b, "total_remaining", total);
	jb_raw(b, "}", 1);
}

static void jb_balances(struct jbuf *b, const struct bw_balances *bal)
{
	JB_LIT(b, ",\"balances\":");
	jb_balances_obj(b, bal);
}

char *bw_usage_balances_json(const struct bw_balances *bal)
{
	struct jbuf b = { NULL, 0, 0, 0 };

	jb_balances_obj(&b, bal);
	return jb_finish(&b);
}

char *bw_usage_result_json(const struct bw_usage_outcome *out, const rd_kafka_message_t *msg,
			   const char *processed_at)
{
	struct jbuf b = { NULL, 0, 0, 0 };

	JB_LIT(&b, "{\"source_topic\":");
	jb_str(&b, rd_kafka_topic_name(msg->rkt));
	JB_INT(&b, "source_partition", msg->partition);
	JB_INT(&b, "source_offset", msg->offset);
	JB_LIT(&b, ",\"event_id\":");
	if (out->event_id)
		jb_str(&b, out->event_id);
	else
		JB_LIT(&b, "null");
	JB_LIT(&b, ",\"org_id\":");
	if (out->org_id)
		jb_str(&b, out->org_id);
	else
		JB_LIT(&b, "null");
	JB_LIT(&b, ",\"status\":");
	jb_str(&b, bw_usage_status_name(out->status));
	if (out->reason) {
		JB_LIT(&b, ",\"reason\":");
		jb_str(&b, out->reason);
	}
	if (out->spus > 0)
		JB_INT(&b, "spus", out->spus);
	if (out->has_breakdown)
		jb_breakdown(&b, &out->bd);
	if (out->has_balances) {
		jb_balances(&b, &out->bal);
		JB_INT(&b, "balance_version", out->balance_version);
	}
	JB_LIT(&b, ",\"processed_at\":");
	jb_str(&b, processed_at);
	jb_raw(&b, "}", 1);
	return jb_finish(&b);
}

/* Names the record sets itself: an event field of the same name is kept under "event". */
static int reserved(const char *key, uint32_t n)
{
#define R(s) { s, sizeof(s) - 1 }
	static const struct {
		const char *name;
		uint32_t len;
	} names[] = { R("hash"), R("from_subscription"), R("from_purchased"), R("from_granted"),
		      R("from_paid"), R("balance_version"), R("status"), R("period_start"),
		      R("processed_at"), R("event"), R("kafka_topic"), R("kafka_partition"),
		      R("kafka_offset"), R("_id") };
#undef R
	switch (key[0]) {  /* the first letters above */
	case 'h': case 'f': case 'b': case 's': case 'p': case 'e': case 'k': case '_':
		break;
	default:
		return 0;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].len == n && names[i].name[0] == key[0] &&
		    memcmp(key, names[i].name, n) == 0)
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

/* The record is written as BSON bytes straight from the event's tokens into one buffer, then
 * copied once into the bson_t: libbson's appenders (and the jansson conversion before them)
 * were a sixth of the worker's instructions. Type codes from bsonspec.org. */
enum { B_DOUBLE = 0x01, B_UTF8 = 0x02, B_DOC = 0x03, B_ARRAY = 0x04, B_BOOL = 0x08,
       B_DATE = 0x09, B_NULL = 0x0A, B_INT32 = 0x10, B_INT64 = 0x12 };

struct bbuf {
	uint8_t *p;
	size_t len, cap;
	int oom;
	uint8_t stack[1024];
};

static uint8_t *bb_grow(struct bbuf *b, size_t n)
{
	size_t cap = b->cap * 2;
	uint8_t *grown;

	if (b->oom)
		return NULL;
	while (cap < b->len + n)
		cap *= 2;
	grown = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
	if (!grown) {
		b->oom = 1;
		return NULL;
	}
	if (b->p == b->stack)
		memcpy(grown, b->stack, b->len);
	b->p = grown;
	b->cap = cap;
	return b->p + b->len;
}

/* Room for n more bytes at b->p + b->len, or NULL (b->oom). */
static inline uint8_t *bb_room(struct bbuf *b, size_t n)
{
	if (b->oom || b->len + n > b->cap)
		return bb_grow(b, n);
	return b->p + b->len;
}

static void le32(uint8_t *d, uint32_t v)
{
	d[0] = (uint8_t)v;
	d[1] = (uint8_t)(v >> 8);
	d[2] = (uint8_t)(v >> 16);
	d[3] = (uint8_t)(v >> 24);
}

static void le64(uint8_t *d, uint64_t v)
{
	le32(d, (uint32_t)v);
	le32(d + 4, (uint32_t)(v >> 32));
}

/* An element's type and name, with room for vlen value bytes after them (NULL on OOM). */
static inline uint8_t *bb_elem(struct bbuf *b, uint8_t type, const char *key, size_t klen,
			       size_t vlen)
{
	uint8_t *d = bb_room(b, klen + 2 + vlen);
	if (!d)
		return NULL;
	d[0] = type;
	memcpy(d + 1, key, klen);
	d[1 + klen] = 0;
	b->len += klen + 2 + vlen;
	return d + klen + 2;
}

static void bb_utf8(struct bbuf *b, const char *key, size_t klen, const char *s, size_t n)
{
	uint8_t *d = bb_elem(b, B_UTF8, key, klen, n + 5);
	if (d) {
		le32(d, (uint32_t)n + 1);
		memcpy(d + 4, s, n);
		d[4 + n] = 0;
	}
}

static void bb_64(struct bbuf *b, uint8_t type, const char *key, size_t klen, uint64_t v)
{
	uint8_t *d = bb_elem(b, type, key, klen, 8);
	if (d)
		le64(d, v);
}

static void bb_int32(struct bbuf *b, const char *key, size_t klen, int32_t v)
{
	uint8_t *d = bb_elem(b, B_INT32, key, klen, 4);
	if (d)
		le32(d, (uint32_t)v);
}

#define BB_KEY(s) (s), (sizeof(s) - 1)

/* Opens a document (or array) element; returns where its length goes (bb_end). */
static size_t bb_begin(struct bbuf *b, uint8_t type, const char *key, size_t klen)
{
	bb_elem(b, type, key, klen, 4);
	return b->len - 4;
}

static void bb_end(struct bbuf *b, size_t at)
{
	uint8_t *d = bb_room(b, 1);
	if (!d)
		return;
	*d = 0;
	b->len++;
	le32(b->p + at, (uint32_t)(b->len - at));
}

/* Value tok[i] of the event under key, as bw_mongo_append_json converts a jansson value:
 * integers int64, reals double, objects in their member order. */
static void bb_value(struct bbuf *b, const char *key, size_t klen, const struct bw_usage_event *ev,
		     uint32_t i)
{
	const struct bw_json_tok *t = &ev->tok[i];
	uint8_t *d;

	switch (t->type) {
	case BW_JT_OBJECT:
	case BW_JT_ARRAY: {
		size_t at = bb_begin(b, t->type == BW_JT_OBJECT ? B_DOC : B_ARRAY, key, klen);
		uint32_t k = i + 1;
		for (uint32_t j = 0; j < t->n; j++) {
			if (t->type == BW_JT_OBJECT) {
				const struct bw_json_tok *name = &ev->tok[k];
				bb_value(b, ev->text + name->start, name->n, ev, k + 1);
				k = ev->tok[k + 1].end;
			} else {
				char idx[BW_JSON_INT64_LEN];
				bb_value(b, idx, bw_json_format_int64(idx, j), ev, k);
				k = ev->tok[k].end;
			}
		}
		bb_end(b, at);
		return;
	}
	case BW_JT_STRING:
		bb_utf8(b, key, klen, ev->text + t->start, t->n);
		return;
	case BW_JT_INT:
		bb_64(b, B_INT64, key, klen, (uint64_t)t->v.i);
		return;
	case BW_JT_REAL: {
		uint64_t bits;
		memcpy(&bits, &t->v.d, sizeof(bits));
		bb_64(b, B_DOUBLE, key, klen, bits);
		return;
	}
	case BW_JT_TRUE:
	case BW_JT_FALSE:
		if ((d = bb_elem(b, B_BOOL, key, klen, 1)))
			*d = t->type == BW_JT_TRUE;
		return;
	default:
		bb_elem(b, B_NULL, key, klen, 0);
		return;
	}
}

bson_t *bw_usage_record_bson(const struct bw_usage_event *ev, const struct bw_usage_outcome *out,
			     int64_t period_start_ms, const rd_kafka_message_t *msg,
			     int64_t now_ms)
{
	const struct bw_json_tok *tok = ev->tok;
	const char *topic = rd_kafka_topic_name(msg->rkt), *status;
	struct bbuf b;
	bson_t *doc = NULL;
	size_t at, ev_at = 0;
	uint32_t k;
	int clashes = 0;

	b.p = b.stack;
	b.len = 0;
	b.cap = sizeof(b.stack);
	b.oom = 0;
	bb_room(&b, 4);
	b.len = 4;
	/* _id {org_id, event_id}: the key (bw_usage_record_id_append's order) */
	at = bb_begin(&b, B_DOC, BB_KEY("_id"));
	bb_utf8(&b, BB_KEY("org_id"), ev->org_id, strlen(ev->org_id));
	bb_utf8(&b, BB_KEY("event_id"), ev->event_id, strlen(ev->event_id));
	bb_end(&b, at);
	/* the event's fields, in its order; one the record sets itself goes under "event" */
	k = 1;
	for (uint32_t m = 0; m < tok[0].n; m++, k = tok[k + 1].end) {
		if (reserved(ev->text + tok[k].start, tok[k].n)) {
			clashes = 1;
			continue;
		}
		bb_value(&b, ev->text + tok[k].start, tok[k].n, ev, k + 1);
	}
	if (clashes) {
		ev_at = bb_begin(&b, B_DOC, BB_KEY("event"));
		k = 1;
		for (uint32_t m = 0; m < tok[0].n; m++, k = tok[k + 1].end)
			if (reserved(ev->text + tok[k].start, tok[k].n))
				bb_value(&b, ev->text + tok[k].start, tok[k].n, ev, k + 1);
		bb_end(&b, ev_at);
	}
	bb_utf8(&b, BB_KEY("hash"), ev->hash, 64);
	status = bw_usage_status_name(out->status);
	bb_utf8(&b, BB_KEY("status"), status, strlen(status));
	bb_64(&b, B_INT64, BB_KEY("from_subscription"), (uint64_t)out->bd.from_subscription);
	bb_64(&b, B_INT64, BB_KEY("from_purchased"), (uint64_t)out->bd.from_purchased);
	bb_64(&b, B_INT64, BB_KEY("from_granted"), (uint64_t)out->bd.from_granted);
	bb_64(&b, B_INT64, BB_KEY("from_paid"), (uint64_t)out->bd.from_paid);
	bb_64(&b, B_INT64, BB_KEY("balance_version"), (uint64_t)out->balance_version);
	if (period_start_ms > 0)
		bb_64(&b, B_DATE, BB_KEY("period_start"), (uint64_t)period_start_ms);
	bb_64(&b, B_DATE, BB_KEY("processed_at"), (uint64_t)now_ms);
	bb_utf8(&b, BB_KEY("kafka_topic"), topic, strlen(topic));
	bb_int32(&b, BB_KEY("kafka_partition"), msg->partition);
	bb_64(&b, B_INT64, BB_KEY("kafka_offset"), (uint64_t)msg->offset);
	bb_end(&b, 0);
	if (!b.oom)
		doc = bson_new_from_data(b.p, b.len);
	if (b.p != b.stack)
		free(b.p);
	return doc;
}
