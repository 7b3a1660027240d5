/* Unit tests of the size limits derived from the producer's message.max.bytes (shared/dlq.c,
 * shared/kafka_producer.c; issue 11 defect 3). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "kafka_producer.h"
#include "testkit.h"

START_TEST(record_size_counts_key_value_and_headers)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);

	ck_assert_uint_eq(bw_kafka_record_size(3, 10, NULL), BW_KAFKA_RECORD_OVERHEAD + 13);
	rd_kafka_header_add(h, "abc", -1, "12345", 5);
	ck_assert_uint_eq(bw_kafka_record_size(3, 10, h), BW_KAFKA_RECORD_OVERHEAD + 13 + 10 + 8);
	rd_kafka_headers_destroy(h);
}
END_TEST

START_TEST(the_dlq_capacity_is_the_producer_limit_less_the_overhead)
{
	ck_assert_uint_eq(bw_dlq_max_value(1000000), 1000000 - BW_DLQ_OVERHEAD);
	ck_assert_uint_eq(bw_dlq_max_value(BW_DLQ_OVERHEAD), 0);
	/* the DLQ headers at their largest fit the allowance */
	ck_assert_int_le(10 + BW_DLQ_REASON_MAX + 16 + 249 + 20 + 11 + 17 + 20 + 10 +
			 BW_DLQ_WORKER_MAX + 8 + 32 + 8 + 128 + 15 + 20 + 8 * 10,
			 BW_DLQ_HEADERS_MAX);
}
END_TEST

START_TEST(limits_are_checked_or_derived_from_kafka_message_max_bytes)
{
	struct bw_err err;
	size_t out = 0;

	unsetenv("KAFKA_MESSAGE_MAX_BYTES");
	ck_assert_uint_eq(bw_kafka_max_message_bytes("127.0.0.1:1", &err),
			  BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
	ck_assert_int_eq(bw_dlq_limit("X_BYTES", 0, "127.0.0.1:1", &out, &err), 0);
	ck_assert_uint_eq(out, bw_dlq_max_value(BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES));
	ck_assert_int_eq(bw_dlq_limit("X_BYTES", 65536, "127.0.0.1:1", &out, &err), 0);
	ck_assert_uint_eq(out, 65536);
	ck_assert_int_eq(bw_dlq_limit("X_BYTES", 1048576, "127.0.0.1:1", &out, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_FATAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "X_BYTES: 1048576 is above"));
	setenv("KAFKA_MESSAGE_MAX_BYTES", "2000000", 1);
	ck_assert_uint_eq(bw_kafka_max_message_bytes("127.0.0.1:1", &err), 2000000);
	ck_assert_int_eq(bw_dlq_limit("X_BYTES", 1048576, "127.0.0.1:1", &out, &err), 0);
	setenv("KAFKA_MESSAGE_MAX_BYTES", "not-a-number", 1);
	ck_assert_uint_eq(bw_kafka_max_message_bytes("127.0.0.1:1", &err), 0);
	ck_assert_int_eq(err.kind, BW_ERR_FATAL);
	unsetenv("KAFKA_MESSAGE_MAX_BYTES");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dlq_limits");
	TCase *tc = tcase_create("limits");

	tcase_add_test(tc, record_size_counts_key_value_and_headers);
	tcase_add_test(tc, the_dlq_capacity_is_the_producer_limit_less_the_overhead);
	tcase_add_test(tc, limits_are_checked_or_derived_from_kafka_message_max_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(suite());
}
