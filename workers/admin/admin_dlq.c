/* admin_dlq: `bw-admin dlq ls|show|replay TOPIC [--partition P] [--offset N | --all]`.
 * TOPIC is the DLQ ("usage.events.dlq") or its source ("usage.events").
 *
 * ls lists every record (position, key, reason, source, worker, time, replay state); show
 * prints one with its value; replay publishes the original key and bytes to the source topic
 * named by the record's dlq.source.topic header, exactly once per DLQ record:
 *   1. a marker {_id: {topic, partition, offset}} is inserted into payments_dlq_replays
 *      (unique _id): a second replay of the same record finds it and is refused;
 *   2. a record of the stripe DLQ: the event's payments_stripe_events record, when it says
 *      the event was rejected (state done, status rejected), is deleted — it is what would
 *      make the worker answer `duplicate` instead of applying the event;
 *   3. the message is produced (headers bw.replay.topic/partition/offset) and acknowledged;
 *   4. the marker says "sent". A failed publish deletes the marker (retry is safe); a crash
 *      between 1 and 4 leaves it "sending" and a replay is refused: check the source topic
 *      for the bw.replay.* headers, then delete the marker to send again
 *      (docs/OPERATIONS.md "DLQ replay").
 * A record sent by reference (header dlq.body, no value: shared/dlq.h) has no bytes to send
 * back: replay refuses it (exit 3) before touching the database; --all goes on past it and
 * lists it under "skipped_by_reference".
 * The workers' own dedupe (usage records, Stripe event records) still holds behind this. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "kafka_producer.h"

#define COLL_REPLAYS "payments_dlq_replays"
#define READ_TIMEOUT_MS 30000

enum dlq_cmd { DLQ_LS, DLQ_SHOW, DLQ_REPLAY };

struct dlq_run {
	struct bw_admin *a;
	enum dlq_cmd cmd;
	char topic[300];
	json_t *records;       /* ls/show: the records; replay: what was replayed */
	json_t *by_reference;  /* replay: records skipped because they carry no value */
	json_t *markers;       /* ls/show: replay markers by "<partition>:<offset>" */
	int64_t skipped;       /* replay --all: already replayed */
	int code;              /* first failure of a replay */
};

static char *header(const rd_kafka_message_t *msg, const char *name)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *val = NULL;
	size_t size = 0;

	if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(hdrs, name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
		return NULL;
	return strndup(val, size);
}

static void set_str(json_t *o, const char *key, char *s)
{
	json_t *v = s ? json_string(s) : NULL;
	json_object_set_new(o, key, v ? v : json_null());
	free(s);
}

static void append_marker_id(bson_t *b, const char *topic, int32_t partition, int64_t offset)
{
	bson_t id;

	BSON_APPEND_DOCUMENT_BEGIN(b, "_id", &id);
	BSON_APPEND_UTF8(&id, "topic", topic);
	BSON_APPEND_INT32(&id, "partition", partition);
	BSON_APPEND_INT64(&id, "offset", offset);
	bson_append_document_end(b, &id);
}

/* Every replay marker of r->topic, in one query, into r->markers keyed "<partition>:<offset>"
 * (ls and show print each record's replay state). */
static int load_markers(struct dlq_run *r)
{
	struct bw_mongo *m = bw_admin_mongo(r->a);
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	mongoc_cursor_t *cur;
	bson_t *filter;
	const bson_t *doc;
	bson_error_t error;
	int rc = 0;

	if (!m)
		return -1;
	client = bw_mongo_pop(m);
	coll = bw_mongo_coll(m, client, COLL_REPLAYS);
	filter = BCON_NEW("_id.topic", BCON_UTF8(r->topic));
	cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it, id;
		int64_t part = -1, off = -1;
		char key[48];
		json_t *j;
		if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
		    !bson_iter_recurse(&it, &id))
			continue;
		while (bson_iter_next(&id))
			if (strcmp(bson_iter_key(&id), "partition") == 0)
				part = bson_iter_as_int64(&id);
			else if (strcmp(bson_iter_key(&id), "offset") == 0)
				off = bson_iter_as_int64(&id);
		if (!(j = bw_admin_bson_json(doc)))
			continue;
		json_object_del(j, "_id");
		snprintf(key, sizeof(key), "%" PRId64 ":%" PRId64, part, off);
		json_object_set_new(r->markers, key, j);
	}
	if (mongoc_cursor_error(cur, &error))
		rc = bw_mongo_error(&error, "load replay markers", &r->a->err);
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	bw_mongo_push(m, client);
	return rc;
}

static json_t *describe(struct dlq_run *r, const rd_kafka_message_t *msg, int with_value)
{
	json_t *o = json_object(), *mk;
	char key[48];

	json_object_set_new(o, "partition", json_integer(msg->partition));
	json_object_set_new(o, "offset", json_integer(msg->offset));
	set_str(o, "key", msg->key ? strndup(msg->key, msg->key_len) : NULL);
	set_str(o, "reason", header(msg, "dlq.reason"));
	set_str(o, "source_topic", header(msg, "dlq.source.topic"));
	set_str(o, "source_partition", header(msg, "dlq.source.partition"));
	set_str(o, "source_offset", header(msg, "dlq.source.offset"));
	set_str(o, "worker", header(msg, "dlq.worker"));
	set_str(o, "time", header(msg, "dlq.time"));
	json_object_set_new(o, "bytes", json_integer((json_int_t)msg->len));
	snprintf(key, sizeof(key), "%" PRId32 ":%" PRId64, msg->partition, msg->offset);
	mk = json_object_get(r->markers, key);
	json_object_set_new(o, "replay", mk ? json_incref(mk) : json_null());
	if (with_value) {
		json_t *v = json_stringn(msg->payload ? msg->payload : "", msg->len);
		json_object_set_new(o, "value", v ? v : json_string("(not UTF-8)"));
	}
	return o;
}

/* Step 2: the stripe worker's record of a rejected event. */
static int clear_stripe_record(struct bw_mongo *m, mongoc_client_t *client,
			       const rd_kafka_message_t *msg, int64_t *cleared, struct bw_err *err)
{
	json_t *ev = json_loadb(msg->payload ? msg->payload : "", msg->len, 0, NULL);
	const char *id = json_string_value(json_object_get(ev, "id"));
	mongoc_collection_t *coll = NULL;
	bson_t *filter = NULL;
	bson_t reply;
	bson_error_t error;
	int rc = 0;

	*cleared = 0;
	bson_init(&reply);
	if (id) {
		coll = bw_mongo_coll(m, client, BW_COLL_STRIPE_EVENTS);
		filter = BCON_NEW("event_id", BCON_UTF8(id), "state", BCON_UTF8("done"), "status",
				  BCON_UTF8("rejected"));
		bson_destroy(&reply);
		if (!mongoc_collection_delete_one(coll, filter, NULL, &reply, &error))
			rc = bw_mongo_error(&error, "clear stripe event record", err);
		else
			bw_mongo_get_int64(&reply, "deletedCount", cleared);
	}
	bson_destroy(&reply);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	json_decref(ev);
	return rc;
}

static int replay_one(struct dlq_run *r, const rd_kafka_message_t *msg)
{
	struct bw_admin *a = r->a;
	struct bw_mongo *m = NULL;
	struct bw_producer *p;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL;
	bson_t mk = BSON_INITIALIZER, id = BSON_INITIALIZER;
	bson_t *update = NULL;
	bson_error_t error;
	rd_kafka_headers_t *hdrs = NULL;
	char *src = header(msg, "dlq.source.topic"), part[16], off[32];
	char *body = header(msg, "dlq.body");
	int64_t cleared = 0;
	int code = BW_ADMIN_OK, marked = 0;

	if (body) {
		/* Replaying the empty value would send a message that is not the original. */
		json_t *o = json_object();
		json_object_set_new(o, "partition", json_integer(msg->partition));
		json_object_set_new(o, "offset", json_integer(msg->offset));
		json_array_append_new(r->by_reference, o);
		code = bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_INVALID,
					  "refused: %s %" PRId32 ":%" PRId64 " was recorded by "
					  "reference (dlq.body: %s): the DLQ does not hold the "
					  "original bytes; re-send it from dlq.source.topic %s",
					  r->topic, msg->partition, msg->offset, body,
					  src ? src : "(none)");
		goto done;
	}
	if (!(m = bw_admin_mongo(a))) {
		code = bw_admin_fail(a);
		goto done;
	}
	if (!src || !src[0]) {
		code = bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_INVALID,
					  "record %" PRId32 ":%" PRId64 " has no dlq.source.topic",
					  msg->partition, msg->offset);
		goto done;
	}
	client = bw_mongo_pop(m);
	coll = bw_mongo_coll(m, client, COLL_REPLAYS);
	append_marker_id(&mk, r->topic, msg->partition, msg->offset);
	append_marker_id(&id, r->topic, msg->partition, msg->offset);
	BSON_APPEND_UTF8(&mk, "state", "sending");
	BSON_APPEND_UTF8(&mk, "source_topic", src);
	BSON_APPEND_UTF8(&mk, "who", a->cfg.user);
	BSON_APPEND_DATE_TIME(&mk, "at", bw_mongo_now_ms());
	if (!mongoc_collection_insert_one(coll, &mk, NULL, NULL, &error)) {
		if (error.code == BW_MONGO_DUPLICATE_KEY) {
			r->skipped++;
			code = bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_CONFLICT,
						  "refused: %s %" PRId32 ":%" PRId64
						  " was already replayed (dlq ls shows when)",
						  r->topic, msg->partition, msg->offset);
		} else {
			bw_mongo_error(&error, "insert replay marker", &a->err);
			code = bw_admin_fail(a);
		}
		goto done;
	}
	marked = 1;
	if (strcmp(src, a->cfg.stripe_topic) == 0 &&
	    clear_stripe_record(m, client, msg, &cleared, &a->err) != 0) {
		code = bw_admin_fail(a);
		goto done;
	}
	if (!(p = bw_admin_producer(a))) {
		code = bw_admin_fail(a);
		goto done;
	}
	snprintf(part, sizeof(part), "%" PRId32, msg->partition);
	snprintf(off, sizeof(off), "%" PRId64, msg->offset);
	hdrs = rd_kafka_headers_new(3);
	rd_kafka_header_add(hdrs, "bw.replay.topic", -1, r->topic, -1);
	rd_kafka_header_add(hdrs, "bw.replay.partition", -1, part, -1);
	rd_kafka_header_add(hdrs, "bw.replay.offset", -1, off, -1);
	if (bw_producer_send(p, src, msg->key, msg->key_len, msg->payload, msg->len, hdrs,
			     &a->err) != 0 ||
	    bw_producer_flush(p, (int)a->cfg.flush_timeout_ms, &a->err) != 0) {
		hdrs = NULL;
		code = bw_admin_fail(a);
		goto done;
	}
	hdrs = NULL; /* taken over by the send */
	update = BCON_NEW("$set", "{", "state", BCON_UTF8("sent"), "sent_at",
			  BCON_DATE_TIME(bw_mongo_now_ms()), "stripe_records_cleared",
			  BCON_INT64(cleared), "}");
	if (!mongoc_collection_update_one(coll, &id, update, NULL, NULL, &error)) {
		/* Sent: the marker stays "sending", which still refuses a second replay. */
		bw_mongo_error(&error, "mark replay sent", &a->err);
		code = bw_admin_fail(a);
		marked = 0;
		goto done;
	}
	marked = 0;
	json_t *o = json_object();
	json_object_set_new(o, "partition", json_integer(msg->partition));
	json_object_set_new(o, "offset", json_integer(msg->offset));
	json_object_set_new(o, "to_topic", json_string(src));
	json_object_set_new(o, "stripe_records_cleared", json_integer(cleared));
	json_array_append_new(r->records, o);
done:
	if (marked && coll && !mongoc_collection_delete_one(coll, &id, NULL, NULL, &error))
		bw_log(BW_LOG_ERROR, NULL, "replay of %s %" PRId32 ":%" PRId64 " failed and its "
		       "marker could not be removed: %s", r->topic, msg->partition, msg->offset,
		       error.message);
	free(src);
	free(body);
	bson_destroy(update);
	bson_destroy(&mk);
	bson_destroy(&id);
	mongoc_collection_destroy(coll);
	if (client)
		bw_mongo_push(m, client);
	return code;
}

static void visit(struct dlq_run *r, const rd_kafka_message_t *msg)
{
	int code;

	if (r->cmd != DLQ_REPLAY) {
		json_array_append_new(r->records, describe(r, msg, r->cmd == DLQ_SHOW));
		return;
	}
	code = replay_one(r, msg);
	/* --all goes on past records replayed before; any other failure stops it. */
	if (code != BW_ADMIN_OK && !(r->a->args.all && r->a->err.kind == BW_ERR_CONFLICT) &&
	    r->code == BW_ADMIN_OK)
		r->code = code;
}

/* Reads the records of r->topic: every partition (or only --partition) from its start, or the
 * one record at --offset. Calls visit() for each. */
static int read_records(struct dlq_run *r, int32_t only_part, int64_t at)
{
	struct bw_admin *a = r->a;
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(4);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = NULL;
	int64_t *last = NULL;
	int32_t nparts = 0, open = 0;
	int code = BW_ADMIN_OK;
	const char *extra[] = { "group.id=bw-admin-dlq-reader", "enable.auto.commit=false",
				"enable.auto.offset.store=false", NULL };

	if (bw_kafka_conf_apply(conf, a->common.kafka_brokers, extra, &a->err) != 0) {
		rd_kafka_conf_destroy(conf);
		code = bw_admin_fail(a);
		goto done;
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		code = bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "kafka: %s", errstr);
		goto done;
	}
	rkt = rd_kafka_topic_new(rk, r->topic, NULL);
	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    md->topic_cnt < 1) {
		code = bw_admin_fail_with(a, BW_ADMIN_UNAVAILABLE, BW_ERR_TRANSIENT,
					  "no metadata for %s from %s", r->topic,
					  a->common.kafka_brokers);
		goto done;
	}
	if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		code = bw_admin_fail_with(a, BW_ADMIN_NOT_FOUND, BW_ERR_INVALID, "topic %s: %s",
					  r->topic, rd_kafka_err2str(md->topics[0].err));
		goto done;
	}
	nparts = md->topics[0].partition_cnt;
	last = calloc((size_t)(nparts > 0 ? nparts : 1), sizeof(*last));
	for (int32_t p = 0; p < nparts; p++) {
		int64_t lo = 0, hi = 0;
		last[p] = -1;
		if (only_part >= 0 && p != only_part)
			continue;
		if (rd_kafka_query_watermark_offsets(rk, r->topic, p, &lo, &hi, 10000) !=
		    RD_KAFKA_RESP_ERR_NO_ERROR) {
			code = bw_admin_fail_with(a, BW_ADMIN_UNAVAILABLE, BW_ERR_TRANSIENT,
						  "watermarks of %s [%" PRId32 "]", r->topic, p);
			goto done;
		}
		if (at >= 0) {
			if (at < lo || at >= hi) {
				code = bw_admin_fail_with(a, BW_ADMIN_NOT_FOUND, BW_ERR_INVALID,
							  "%s [%" PRId32 "] has offsets %" PRId64
							  "..%" PRId64 ", not %" PRId64,
							  r->topic, p, lo, hi - 1, at);
				goto done;
			}
			lo = at;
			hi = at + 1;
		}
		if (lo >= hi)
			continue;
		last[p] = hi - 1;
		rd_kafka_topic_partition_list_add(parts, r->topic, p)->offset = lo;
		open++;
	}
	if (only_part >= nparts) {
		code = bw_admin_fail_with(a, BW_ADMIN_NOT_FOUND, BW_ERR_INVALID,
					  "%s has no partition %" PRId32, r->topic, only_part);
		goto done;
	}
	if (open && rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		code = bw_admin_fail_with(a, BW_ADMIN_UNAVAILABLE, BW_ERR_TRANSIENT, "assign failed");
		goto done;
	}
	for (int64_t waited = 0; open > 0 && waited < READ_TIMEOUT_MS;) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
		if (!msg) {
			waited += 200;
			continue;
		}
		if (!msg->err && msg->partition < nparts && msg->offset <= last[msg->partition]) {
			visit(r, msg);
			if (msg->offset == last[msg->partition])
				open--;
		}
		rd_kafka_message_destroy(msg);
	}
	if (open > 0)
		code = bw_admin_fail_with(a, BW_ADMIN_UNAVAILABLE, BW_ERR_TRANSIENT,
					  "%s: not every record read within %d ms", r->topic,
					  READ_TIMEOUT_MS);
done:
	free(last);
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	rd_kafka_topic_partition_list_destroy(parts);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	return code;
}

int bw_admin_dlq(struct bw_admin *a)
{
	const struct bw_admin_args *g = &a->args;
	struct dlq_run r;
	int64_t at = -1, part = -1;
	const char *sub = g->npos > 1 ? g->pos[1] : "", *topic = g->npos > 2 ? g->pos[2] : NULL;
	size_t tl;
	int code;

	memset(&r, 0, sizeof(r));
	r.a = a;
	if (strcmp(sub, "ls") == 0)
		r.cmd = DLQ_LS;
	else if (strcmp(sub, "show") == 0)
		r.cmd = DLQ_SHOW;
	else if (strcmp(sub, "replay") == 0)
		r.cmd = DLQ_REPLAY;
	else
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "dlq ls|show|replay TOPIC");
	if (!topic || g->npos > 3)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "dlq %s needs one TOPIC",
					  sub);
	if ((g->offset && bw_parse_int64(g->offset, 0, INT64_MAX, &at) != 0) ||
	    (g->partition && bw_parse_int64(g->partition, 0, INT32_MAX, &part) != 0))
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--offset and --partition are integers >= 0");
	if (r.cmd != DLQ_LS && !g->offset && !(r.cmd == DLQ_REPLAY && g->all))
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "dlq %s needs --offset N%s", sub,
					  r.cmd == DLQ_REPLAY ? " or --all" : "");
	if (g->offset && g->all)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--offset and --all exclude each other");
	tl = strlen(topic);
	snprintf(r.topic, sizeof(r.topic), "%s%s", topic,
		 tl > 4 && strcmp(topic + tl - 4, ".dlq") == 0 ? "" : ".dlq");
	if (at >= 0 && part < 0)
		part = 0;
	r.records = json_array();
	r.markers = json_object();
	r.by_reference = json_array();
	/* The replay state is part of the listing: without the database, say so and stop. */
	if (r.cmd != DLQ_REPLAY && load_markers(&r) != 0)
		code = bw_admin_fail(a);
	else
		code = read_records(&r, (int32_t)part, at);
	json_decref(r.markers);
	if (code == BW_ADMIN_OK && r.code != BW_ADMIN_OK)
		code = r.code;
	json_object_set_new(a->out, "topic", json_string(r.topic));
	if (r.cmd == DLQ_REPLAY) {
		json_object_set_new(a->out, "replayed", r.records);
		json_object_set_new(a->out, "already_replayed", json_integer(r.skipped));
		json_object_set_new(a->out, "skipped_by_reference", r.by_reference);
	} else {
		json_decref(r.by_reference);
		json_object_set_new(a->out, r.cmd == DLQ_SHOW ? "record" : "records",
				    r.cmd == DLQ_SHOW ? json_incref(json_array_get(r.records, 0))
						      : json_incref(r.records));
		json_decref(r.records);
		if (r.cmd == DLQ_SHOW && json_object_get(a->out, "record") == NULL)
			json_object_set_new(a->out, "record", json_null());
	}
	return code;
}
