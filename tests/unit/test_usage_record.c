/* Unit tests of the usage record (usage_result.c: bw_usage_record_bson), written as BSON bytes
 * from the event's tokens: every event field at the top level as jansson + libbson converted
 * it before (bw_mongo_append_json), the event not repeated under "event" (only a field named
 * like one the record sets itself goes there), and the record's own fields. */
#include <check.h>
#include <jansson.h>
#include <string.h>

#include "mongo.h"
#include "testkit.h"
#include "usage_result.h"

static const char *EVENT =
	"{\"event_id\":\"e\\u00e9\",\"org_id\":\"o1\",\"spus\":7,\"operation\":\"llm_call\","
	"\"source\":\"s\",\"timestamp\":\"2026-11-25T12:00:00Z\",\"llm_provider\":null,"
	"\"prompt_tokens\":9223372036854775807,\"actual_cost\":0.25,"
	"\"x\":{\"a\":[1,-0,2.5,\"s\\n\",true,false,null,{\"b\":{}}],\"c\":[]},"
	"\"status\":\"theirs\",\"event\":{\"k\":1}}";

static bson_t *record(struct bw_usage_event *ev, rd_kafka_t **rk, rd_kafka_topic_t **rkt)
{
	rd_kafka_message_t msg;
	struct bw_usage_outcome out;
	struct bw_err err;
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	ck_assert_int_eq(rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)),
			 RD_KAFKA_CONF_OK);
	*rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	*rkt = rd_kafka_topic_new(*rk, "usage.events", NULL);
	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)EVENT, strlen(EVENT), 65536,
					      ev, NULL, NULL, &err), 0);
	memset(&msg, 0, sizeof(msg));
	msg.rkt = *rkt;
	msg.partition = 3;
	msg.offset = 77;
	memset(&out, 0, sizeof(out));
	out.status = BW_USAGE_INSUFFICIENT;
	out.bd.from_granted = 2;
	out.bd.from_paid = 5;
	out.balance_version = 9;
	return bw_usage_record_bson(ev, &out, 1764000000000, &msg, 1764000000123);
}

START_TEST(event_fields_are_converted_as_before)
{
	struct bw_usage_event ev;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	bson_t *doc = record(&ev, &rk, &rkt);
	json_t *root = json_loads(EVENT, 0, NULL), *v;
	const char *key;
	bson_iter_t it;

	ck_assert_ptr_nonnull(doc);
	json_object_foreach(root, key, v) {
		bson_t want = BSON_INITIALIZER;
		bson_iter_t w;
		const char *where = strcmp(key, "status") == 0 || strcmp(key, "event") == 0 ?
					    "event." : "";
		char path[64];

		snprintf(path, sizeof(path), "%s%s", where, key);
		ck_assert_int_eq(bw_mongo_append_json(&want, key, v), 0);
		ck_assert(bson_iter_init_find(&w, &want, key));
		ck_assert_msg(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it),
			      "%s missing", path);
		ck_assert_int_eq(bson_iter_type(&it), bson_iter_type(&w));
		ck_assert_msg(bson_iter_value(&it)->value_type == bson_iter_value(&w)->value_type,
			      "%s", path);
		if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
			const uint8_t *a, *b;
			uint32_t la, lb;
			if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
				bson_iter_document(&it, &la, &a);
				bson_iter_document(&w, &lb, &b);
			} else {
				bson_iter_array(&it, &la, &a);
				bson_iter_array(&w, &lb, &b);
			}
			ck_assert_msg(la == lb && memcmp(a, b, la) == 0, "%s differs", path);
		} else {
			bson_t one = BSON_INITIALIZER, two = BSON_INITIALIZER;
			bson_append_iter(&one, "v", 1, &it);
			bson_append_iter(&two, "v", 1, &w);
			ck_assert_msg(bson_equal(&one, &two), "%s differs", path);
			bson_destroy(&one);
			bson_destroy(&two);
		}
		bson_destroy(&want);
	}
	json_decref(root);
	bson_destroy(doc);
	bw_usage_event_cleanup(&ev);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
}
END_TEST

START_TEST(record_does_not_repeat_the_event)
{
	struct bw_usage_event ev;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	bson_t *doc = record(&ev, &rk, &rkt);
	bson_iter_t it, sub;
	uint32_t n = 0;

	ck_assert(bson_validate(doc, BSON_VALIDATE_NONE, NULL));
	/* _id first, {org_id, event_id} in that order */
	ck_assert(bson_iter_init(&it, doc) && bson_iter_next(&it));
	ck_assert_str_eq(bson_iter_key(&it), "_id");
	ck_assert(bson_iter_recurse(&it, &sub) && bson_iter_next(&sub));
	ck_assert_str_eq(bson_iter_key(&sub), "org_id");
	ck_assert(bson_iter_next(&sub));
	ck_assert_str_eq(bson_iter_key(&sub), "event_id");
	ck_assert_str_eq(bson_iter_utf8(&sub, NULL), "e\xc3\xa9");
	/* "event" holds only the two fields named like the record's own */
	ck_assert(bson_iter_init_find(&it, doc, "event") && bson_iter_recurse(&it, &sub));
	while (bson_iter_next(&sub))
		n++;
	ck_assert_int_eq(n, 2);
	ck_assert(bson_iter_init_find(&it, doc, "status"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "insufficient_credits");
	ck_assert(bson_iter_init_find(&it, doc, "hash"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), ev.hash);
	ck_assert(bson_iter_init_find(&it, doc, "from_paid") && bson_iter_int64(&it) == 5);
	ck_assert(bson_iter_init_find(&it, doc, "balance_version") && bson_iter_int64(&it) == 9);
	ck_assert(bson_iter_init_find(&it, doc, "period_start") &&
		  bson_iter_date_time(&it) == 1764000000000);
	ck_assert(bson_iter_init_find(&it, doc, "processed_at") &&
		  bson_iter_date_time(&it) == 1764000000123);
	ck_assert(bson_iter_init_find(&it, doc, "kafka_topic"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "usage.events");
	ck_assert(bson_iter_init_find(&it, doc, "kafka_partition") && bson_iter_int32(&it) == 3);
	ck_assert(bson_iter_init_find(&it, doc, "kafka_offset") && bson_iter_int64(&it) == 77);
	bson_destroy(doc);
	bw_usage_event_cleanup(&ev);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_record");
	TCase *tc = tcase_create("record");

	tcase_add_test(tc, event_fields_are_converted_as_before);
	tcase_add_test(tc, record_does_not_repeat_the_event);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
