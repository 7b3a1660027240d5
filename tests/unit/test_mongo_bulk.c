/* Unit tests of the bulk-reply checker (shared/mongo.c, bw_mongo_bulk_check). Each reply is
 * shaped as mongoc 1.23's mongoc_bulk_operation_execute() fills it (_mongoc_write_result_
 * complete): the n* counters, an always-present writeErrors array, writeConcernErrors only
 * when there are some, and the bson_error_t it sets (the first write error's code, else the
 * write concern error, else the execute's own failure). */
#include <check.h>
#include <string.h>

#include "mongo.h"
#include "testkit.h"

/* reply from relaxed JSON; ok and error as the driver returns them */
struct exec {
	bson_t *reply;
	uint32_t ok;
	bson_error_t error;
};

static struct exec exec_of(const char *reply_json, uint32_t ok, uint32_t domain, uint32_t code,
			   const char *message)
{
	struct exec x;
	bson_error_t perr;

	memset(&x, 0, sizeof(x));
	x.reply = bson_new_from_json((const uint8_t *)reply_json, -1, &perr);
	ck_assert_msg(x.reply != NULL, "bad test JSON: %s", perr.message);
	x.ok = ok;
	if (!ok)
		bson_set_error(&x.error, domain, code, "%s", message);
	return x;
}

static int check(struct exec *x, enum bw_err_kind dup_kind, size_t nreported,
		 struct bw_mongo_bulk_result *res, struct bw_err *err)
{
	bw_err_clear(err);
	int rc = bw_mongo_bulk_check(x->ok, x->reply, &x->error, dup_kind, nreported, "test write",
				     res, err);
	bson_destroy(x->reply);
	return rc;
}

#define COUNTS(ins, mat, ups) \
	"\"nInserted\": " #ins ", \"nMatched\": " #mat ", \"nModified\": " #mat \
	", \"nRemoved\": 0, \"nUpserted\": " #ups

#define DUP(i) \
	"{\"index\": " #i ", \"code\": 11000, \"errmsg\": \"E11000 duplicate key error " \
	"collection: t.payments_usage_records index: event_id_1 dup key: { event_id: \\\"e\\\" }\"}"

START_TEST(a_clean_reply_is_success_with_counts)
{
	struct exec x = exec_of("{" COUNTS(3, 0, 0) ", \"writeErrors\": []}", 1, 0, 0, NULL);
	struct bw_mongo_bulk_result res;
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 3, &res, &err), 0);
	ck_assert_int_eq(res.inserted, 3);
	ck_assert_uint_eq(res.write_errors, 0);
	ck_assert_int_eq(err.kind, BW_ERR_NONE);
}
END_TEST

START_TEST(duplicate_keys_follow_the_policy)
{
	const char *json = "{" COUNTS(1, 0, 0) ", \"writeErrors\": [" DUP(1) ", " DUP(2) "]}";
	const char *msg = "Multiple write errors: \"E11000 ...\", \"E11000 ...\"";
	struct bw_mongo_bulk_result res;
	struct bw_err err;
	struct exec x = exec_of(json, 0, MONGOC_ERROR_SERVER, 11000, msg);

	/* records: a duplicate means "already recorded" */
	ck_assert_int_eq(check(&x, BW_ERR_NONE, 3, &res, &err), 0);
	ck_assert_uint_eq(res.duplicates, 2);
	ck_assert_int_eq(res.inserted, 1);
	x = exec_of(json, 0, MONGOC_ERROR_SERVER, 11000, msg);
	ck_assert_int_eq(check(&x, BW_ERR_CONFLICT, 3, &res, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_CONFLICT);
	x = exec_of(json, 0, MONGOC_ERROR_SERVER, 11000, msg);
	ck_assert_int_eq(check(&x, BW_ERR_TRANSIENT, 0, &res, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
}
END_TEST

/* Defect 1: after a dropped connection the reply holds writeErrors: [] and the error is the
 * stream's. Finding no error code in the array is not success. */
START_TEST(a_dropped_connection_with_empty_write_errors_is_transient)
{
	struct exec x = exec_of("{" COUNTS(0, 0, 0) ", \"writeErrors\": []}", 0,
				MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET,
				"Failed to read 4 bytes: socket error or timeout");
	struct bw_mongo_bulk_result res;
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 2, &res, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "socket error"));
}
END_TEST

START_TEST(an_ok0_command_error_with_empty_write_errors_is_transient)
{
	struct exec x = exec_of("{" COUNTS(0, 0, 0) ", \"writeErrors\": [], "
				"\"errorLabels\": [\"RetryableWriteError\"]}",
				0, MONGOC_ERROR_SERVER, 11602,
				"operation was interrupted because a client disconnected");
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 2, NULL, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
}
END_TEST

START_TEST(no_server_and_an_empty_reply_is_transient)
{
	struct exec x = exec_of("{}", 0, MONGOC_ERROR_SERVER_SELECTION,
				MONGOC_ERROR_SERVER_SELECTION_FAILURE,
				"No suitable servers found");
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 0, NULL, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
}
END_TEST

/* Defect 2: the documents were written (nInserted counts them) but not to a majority. */
START_TEST(a_write_concern_error_is_transient)
{
	const char *json = "{" COUNTS(2, 0, 0) ", \"writeErrors\": [], \"writeConcernErrors\": "
			   "[{\"code\": 64, \"codeName\": \"WriteConcernFailed\", \"errmsg\": "
			   "\"waiting for replication timed out\", \"errInfo\": {\"wtimeout\": "
			   "true}}]}";
	struct bw_mongo_bulk_result res;
	struct bw_err err;
	struct exec x = exec_of(json, 0, MONGOC_ERROR_WRITE_CONCERN, 64,
				"waiting for replication timed out");

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 2, &res, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_uint_eq(res.wc_errors, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "write concern"));
	/* also when the driver said ok (a write concern error without errmsg sets no error) */
	x = exec_of("{" COUNTS(2, 0, 0) ", \"writeErrors\": [], \"writeConcernErrors\": "
		    "[{\"code\": 64}]}", 1, 0, 0, NULL);
	ck_assert_int_eq(check(&x, BW_ERR_NONE, 2, &res, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	/* and beside duplicate keys */
	x = exec_of("{" COUNTS(1, 0, 0) ", \"writeErrors\": [" DUP(1) "], \"writeConcernErrors\": "
		    "[{\"code\": 100, \"errmsg\": \"no quorum\"}]}", 0, MONGOC_ERROR_SERVER, 11000,
		    "E11000 duplicate key error");
	ck_assert_int_eq(check(&x, BW_ERR_NONE, 2, &res, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
}
END_TEST

START_TEST(another_write_error_is_transient_with_its_code)
{
	struct exec x = exec_of("{" COUNTS(1, 0, 0) ", \"writeErrors\": [" DUP(0) ", {\"index\": 1, "
				"\"code\": 121, \"errmsg\": \"Document failed validation\"}]}",
				0, MONGOC_ERROR_SERVER, 11000, "Multiple write errors");
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 3, NULL, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "121"));
}
END_TEST

/* A bulk split into several commands: the first had a duplicate, the second lost its
 * connection. The driver's error is then the duplicate's (it overwrites the stream error),
 * so only the counts show that ops are missing. */
START_TEST(duplicates_then_a_failed_sub_batch_is_transient_for_inserts)
{
	struct exec x = exec_of("{" COUNTS(1, 0, 0) ", \"writeErrors\": [" DUP(1) "]}", 0,
				MONGOC_ERROR_SERVER, 11000, "E11000 duplicate key error");
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 5, NULL, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "2 of 5"));
}
END_TEST

/* The usage worker's customer bulk: a lost creation race is a duplicate on an upsert,
 * reported as a write error beside the matched updates; the caller reloads that org. */
START_TEST(a_lost_upsert_race_is_counted_not_an_error)
{
	struct exec x = exec_of("{" COUNTS(0, 2, 0) ", \"writeErrors\": [" DUP(2) "]}", 0,
				MONGOC_ERROR_SERVER, 11000, "E11000 duplicate key error");
	struct bw_mongo_bulk_result res;
	struct bw_err err;

	ck_assert_int_eq(check(&x, BW_ERR_NONE, 0, &res, &err), 0);
	ck_assert_int_eq(res.matched, 2);
	ck_assert_uint_eq(res.duplicates, 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mongo_bulk");
	TCase *tc = tcase_create("bulk_check");

	tcase_add_test(tc, a_clean_reply_is_success_with_counts);
	tcase_add_test(tc, duplicate_keys_follow_the_policy);
	tcase_add_test(tc, a_dropped_connection_with_empty_write_errors_is_transient);
	tcase_add_test(tc, an_ok0_command_error_with_empty_write_errors_is_transient);
	tcase_add_test(tc, no_server_and_an_empty_reply_is_transient);
	tcase_add_test(tc, a_write_concern_error_is_transient);
	tcase_add_test(tc, another_write_error_is_transient_with_its_code);
	tcase_add_test(tc, duplicates_then_a_failed_sub_batch_is_transient_for_inserts);
	tcase_add_test(tc, a_lost_upsert_race_is_counted_not_an_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(suite());
}
