/* Unit tests of the BSON writer (shared/bson_buf.c): its bytes equal libbson's for the same
 * members, nesting and array keys; growth past the first allocation; the hard maximum,
 * unbalanced ends and too deep nesting fail once, at the view. Also the one-pass member
 * finder of shared/mongo.c (bw_mongo_find_keys) against bson_iter_init_find, and the usage
 * store's record key (bw_usage_record_id_buf) against usage_result's libbson one. */
#include <check.h>
#include <string.h>

#include "bson_buf.h"
#include "mongo.h"
#include "testkit.h"
#include "usage_result.h"
#include "usage_store.h"

static void assert_same(struct bw_bson_buf *b, const bson_t *want)
{
	bson_t view;

	ck_assert_int_eq(bw_bson_buf_view(b, &view), 0);
	ck_assert_msg(bson_validate(&view, BSON_VALIDATE_NONE, NULL), "invalid BSON");
	ck_assert_uint_eq(view.len, want->len);
	ck_assert_msg(memcmp(bson_get_data(&view), bson_get_data(want), want->len) == 0,
		      "bytes differ from libbson's");
}

START_TEST(every_type_matches_libbson)
{
	struct bw_bson_buf b;
	bson_t want = BSON_INITIALIZER, sub = BSON_INITIALIZER, child, arr, entry;

	BSON_APPEND_UTF8(&sub, "x", "y");
	BSON_APPEND_UTF8(&want, "org_id", "org-1");
	BSON_APPEND_UTF8(&want, "empty", "");
	BSON_APPEND_INT64(&want, "i64", INT64_MIN);
	BSON_APPEND_INT32(&want, "i32", -7);
	BSON_APPEND_BOOL(&want, "t", true);
	BSON_APPEND_BOOL(&want, "f", false);
	BSON_APPEND_DATE_TIME(&want, "at", 1764640000123);
	BSON_APPEND_DOCUMENT(&want, "sub", &sub);
	BSON_APPEND_DOCUMENT_BEGIN(&want, "$set", &child);
	BSON_APPEND_INT64(&child, "v", 42);
	BSON_APPEND_ARRAY_BEGIN(&child, "pending", &arr);
	for (uint32_t i = 0; i < 12; i++) { /* two-digit keys too */
		char idx[16];
		const char *key;
		bson_uint32_to_string(i, &key, idx, sizeof(idx));
		bson_append_document_begin(&arr, key, -1, &entry);
		BSON_APPEND_UTF8(&entry, "event_id", "ev");
		BSON_APPEND_INT64(&entry, "n", i);
		bson_append_document_end(&arr, &entry);
	}
	bson_append_array_end(&child, &arr);
	BSON_APPEND_ARRAY_BEGIN(&child, "none", &arr);
	bson_append_array_end(&child, &arr);
	bson_append_document_end(&want, &child);

	bw_bson_buf_init(&b, BW_BSON_BUF_MAX);
	bw_bson_buf_utf8(&b, "org_id", "org-1");
	bw_bson_buf_utf8(&b, "empty", "");
	bw_bson_buf_int64(&b, "i64", INT64_MIN);
	bw_bson_buf_int32(&b, "i32", -7);
	bw_bson_buf_bool(&b, "t", 1);
	bw_bson_buf_bool(&b, "f", 0);
	bw_bson_buf_date_time(&b, "at", 1764640000123);
	bw_bson_buf_document(&b, "sub", &sub);
	bw_bson_buf_begin_document(&b, "$set");
	bw_bson_buf_int64(&b, "v", 42);
	bw_bson_buf_begin_array(&b, "pending");
	for (int i = 0; i < 12; i++) {
		bw_bson_buf_begin_document(&b, NULL);
		bw_bson_buf_utf8(&b, "event_id", "ev");
		bw_bson_buf_int64(&b, "n", i);
		bw_bson_buf_end(&b);
	}
	bw_bson_buf_end(&b);
	bw_bson_buf_begin_array(&b, "none");
	bw_bson_buf_end(&b);
	bw_bson_buf_end(&b);
	assert_same(&b, &want);

	/* members of a libbson-built part, inside a nested document */
	bw_bson_buf_reset(&b);
	bson_reinit(&want);
	BSON_APPEND_DOCUMENT_BEGIN(&want, "$set", &child);
	BSON_APPEND_INT64(&child, "v", 1);
	BSON_APPEND_UTF8(&child, "x", "y");
	bson_append_document_end(&want, &child);
	bw_bson_buf_begin_document(&b, "$set");
	bw_bson_buf_int64(&b, "v", 1);
	bw_bson_buf_members(&b, &sub);
	bw_bson_buf_end(&b);
	assert_same(&b, &want);

	/* reset reuses the buffer for the next document */
	bw_bson_buf_reset(&b);
	bson_reinit(&want);
	BSON_APPEND_INT32(&want, "again", 1);
	bw_bson_buf_int32(&b, "again", 1);
	assert_same(&b, &want);
	bw_bson_buf_cleanup(&b);
	bson_destroy(&want);
	bson_destroy(&sub);
}
END_TEST

START_TEST(grows_past_its_first_allocation)
{
	struct bw_bson_buf b;
	bson_t want = BSON_INITIALIZER, arr;
	char long_s[3000];

	memset(long_s, 'a', sizeof(long_s) - 1);
	long_s[sizeof(long_s) - 1] = '\0';
	bw_bson_buf_init(&b, BW_BSON_BUF_MAX);
	bw_bson_buf_begin_array(&b, "ids");
	BSON_APPEND_ARRAY_BEGIN(&want, "ids", &arr);
	for (uint32_t i = 0; i < 2000; i++) {
		char idx[16];
		const char *key;
		bson_uint32_to_string(i, &key, idx, sizeof(idx));
		bson_append_utf8(&arr, key, -1, i % 500 ? "event" : long_s, -1);
		bw_bson_buf_utf8(&b, NULL, i % 500 ? "event" : long_s);
	}
	bson_append_array_end(&want, &arr);
	bw_bson_buf_end(&b);
	assert_same(&b, &want);
	ck_assert_uint_gt(b.cap, 256);
	bw_bson_buf_cleanup(&b);
	bson_destroy(&want);
}
END_TEST

START_TEST(failures_are_sticky_and_reported_at_the_view)
{
	struct bw_bson_buf b;
	bson_t view;

	/* the maximum */
	bw_bson_buf_init(&b, 64);
	for (int i = 0; i < 10; i++)
		bw_bson_buf_int64(&b, "n", i);
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), -1);
	bw_bson_buf_reset(&b); /* and a reset starts over */
	bw_bson_buf_int64(&b, "n", 1);
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), 0);
	ck_assert_uint_eq(view.len, 4 + 1 + 2 + 8 + 1);
	/* a write after the view */
	bw_bson_buf_int64(&b, "late", 1);
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), -1);
	bw_bson_buf_cleanup(&b);

	/* an end without a begin, a begin without an end */
	bw_bson_buf_init(&b, BW_BSON_BUF_MAX);
	bw_bson_buf_end(&b);
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), -1);
	bw_bson_buf_reset(&b);
	bw_bson_buf_begin_document(&b, "open");
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), -1);
	/* nesting deeper than BW_BSON_BUF_DEPTH */
	bw_bson_buf_reset(&b);
	for (int i = 0; i < BW_BSON_BUF_DEPTH + 1; i++)
		bw_bson_buf_begin_document(&b, "d");
	for (int i = 0; i < BW_BSON_BUF_DEPTH + 1; i++)
		bw_bson_buf_end(&b);
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), -1);
	/* a NULL key outside an array is the next index too (libbson writes any key) */
	bw_bson_buf_reset(&b);
	bw_bson_buf_int32(&b, NULL, 5);
	ck_assert_int_eq(bw_bson_buf_view(&b, &view), 0);
	bw_bson_buf_cleanup(&b);
	bw_bson_buf_cleanup(NULL);
}
END_TEST

START_TEST(find_keys_positions_like_init_find)
{
	static const char *const keys[] = { "b", "missing", "a", "ab", "dup" };
	struct bw_mongo_member m[5];
	bson_t doc = BSON_INITIALIZER;
	bson_iter_t it;

	BSON_APPEND_INT32(&doc, "a", 1);
	BSON_APPEND_INT32(&doc, "abc", 2); /* a longer key with the same start */
	BSON_APPEND_INT32(&doc, "ab", 3);
	BSON_APPEND_INT32(&doc, "dup", 4);
	BSON_APPEND_INT32(&doc, "b", 5);
	BSON_APPEND_INT32(&doc, "dup", 6); /* the first one counts, as bson_iter_find's */
	uint32_t has = bw_mongo_find_keys(&doc, keys, 5, m);
	ck_assert_uint_eq(has, 1u | 4u | 8u | 16u);
	for (int i = 0; i < 5; i++) {
		if (!(has >> i & 1)) {
			ck_assert(!bson_iter_init_find(&it, &doc, keys[i]));
			continue;
		}
		ck_assert(bson_iter_init_find(&it, &doc, keys[i]));
		ck_assert_int_eq(bson_iter_int32(&m[i].it), bson_iter_int32(&it));
	}
	ck_assert_uint_eq(bw_mongo_find_keys(&doc, keys, 0, m), 0);
	bson_destroy(&doc);
}
END_TEST

START_TEST(record_key_matches_usage_result)
{
	static const char *const events[] = { "ev-1", "", "x" };
	struct bw_bson_buf b;
	bson_t want = BSON_INITIALIZER, arr;

	bw_bson_buf_init(&b, BW_BSON_BUF_MAX);
	BSON_APPEND_ARRAY_BEGIN(&want, "$in", &arr);
	bw_bson_buf_begin_array(&b, "$in");
	for (uint32_t i = 0; i < 3; i++) { /* an event, the opening balance, another event */
		char idx[16];
		const char *key;
		bson_uint32_to_string(i, &key, idx, sizeof(idx));
		bw_usage_record_id_append(&arr, key, "org-7", events[i]);
		bw_usage_record_id_buf(&b, NULL, "org-7", events[i]);
	}
	bson_append_array_end(&want, &arr);
	bw_bson_buf_end(&b);
	bw_usage_record_id_buf(&b, "_id", "org-8", "ev-2");
	bw_usage_record_id_append(&want, "_id", "org-8", "ev-2");
	assert_same(&b, &want);
	bw_bson_buf_cleanup(&b);
	bson_destroy(&want);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bson_buf");
	TCase *tc = tcase_create("bson_buf");

	tcase_add_test(tc, every_type_matches_libbson);
	tcase_add_test(tc, grows_past_its_first_allocation);
	tcase_add_test(tc, failures_are_sticky_and_reported_at_the_view);
	tcase_add_test(tc, find_keys_positions_like_init_find);
	tcase_add_test(tc, record_key_matches_usage_result);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(suite());
}
