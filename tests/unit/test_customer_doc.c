/* Unit tests of shared/customer_doc: the original integration's readings of old customer
 * documents, the fresh-document defaults and the opening balance. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "customer_doc.h"
#include "mongo.h"
#include "testkit.h"

static bson_t *doc_of(const char *json)
{
	bson_error_t error;
	bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &error);
	ck_assert_msg(b != NULL, "%s: %s", json, error.message);
	return b;
}

START_TEST(missing_fields_read_as_the_old_code_read_them)
{
	bson_t *d = doc_of("{\"org_id\": \"o\"}");
	struct bw_customer c;

	bw_customer_read(d, 100, &c);
	ck_assert_int_eq(c.exists, 1);
	ck_assert_int_eq(c.has_version, 0);
	ck_assert_int_eq(c.granted, 100);
	ck_assert_int_eq(c.grant_missing, 1);
	ck_assert_int_eq(c.sub_used + c.purchased + c.purchased_used + c.granted_used, 0);
	ck_assert_int_eq(c.allowance, 0);
	ck_assert_int_eq(c.enterprise, 0);
	ck_assert_int_eq(c.has_opening, 0);
	bson_destroy(d);
}
END_TEST

START_TEST(null_fields_read_as_zero_or_the_free_grant)
{
	bson_t *d = doc_of("{\"org_id\": \"o\", \"granted_credits\": null, "
			   "\"subscription_spu_allowance\": null, \"subscription_type\": \"team\", "
			   "\"purchased_credits\": null, \"stripe_current_billing_period_start\": "
			   "1700000000}");
	struct bw_customer c;

	bw_customer_read(d, 30, &c);
	ck_assert_int_eq(c.granted, 30);
	ck_assert_int_eq(c.allowance, 0);
	ck_assert_int_eq(c.purchased, 0);
	ck_assert_int_eq(c.enterprise, 0);
	ck_assert_int_eq(c.period_start_ms, 1700000000000LL); /* old code: unix seconds */
	bson_destroy(d);
}
END_TEST

START_TEST(enterprise_by_subscription_type)
{
	bson_t *d = doc_of("{\"org_id\": \"o\", \"subscription_type\": \"enterprise\", "
			   "\"subscription_spu_allowance\": null, \"balance_version\": 4}");
	struct bw_customer c;

	bw_customer_read(d, 100, &c);
	ck_assert_int_eq(c.enterprise, 1);
	ck_assert_int_eq(c.has_version, 1);
	ck_assert_int_eq(c.version, 4);
	bson_destroy(d);
}
END_TEST

START_TEST(overdrawn_bucket_reads_zero_and_the_opening_moves_the_excess_to_overage)
{
	bson_t *d = doc_of("{\"org_id\": \"o\", \"purchased_credits\": 100, "
			   "\"purchased_credits_used\": 130, \"granted_credits\": 100, "
			   "\"granted_credits_used\": 40}");
	struct bw_customer c;
	struct bw_opening o;

	bw_customer_read(d, 100, &c);
	ck_assert_int_eq(bw_customer_remaining(c.purchased, c.purchased_used), 0);
	ck_assert_int_eq(bw_customer_opening(&c, &o), 0);
	ck_assert_int_eq(o.raw_purchased_used, 130);
	ck_assert_int_eq(o.purchased_used, 100);
	ck_assert_int_eq(o.paid_used, 30);
	ck_assert_int_eq(o.granted_used, 40);
	ck_assert_int_eq(c.purchased_used, 100);
	ck_assert_int_eq(c.paid_used, 30);
	/* a later purchase of 50 is all available: the overdraft is not repaid from it */
	ck_assert_int_eq(bw_customer_remaining(c.purchased + 50, c.purchased_used), 50);
	bson_destroy(d);
}
END_TEST

START_TEST(remaining_never_negative)
{
	ck_assert_int_eq(bw_customer_remaining(10, 3), 7);
	ck_assert_int_eq(bw_customer_remaining(10, 11), 0);
	ck_assert_int_eq(bw_customer_remaining(0, 0), 0);
	ck_assert_int_eq(bw_customer_remaining(-5, 0), 0);
	ck_assert_int_eq(bw_customer_remaining(10, -4), 10);
}
END_TEST

START_TEST(fresh_defaults_carry_the_grant_and_the_opening_marker)
{
	bson_t soi = BSON_INITIALIZER;
	struct bw_customer c, fresh;

	bw_customer_append_fresh(&soi, 77, 1000);
	bw_customer_read(&soi, 5, &c);
	bw_customer_init_fresh(&fresh, 77);
	ck_assert_int_eq(c.granted, 77);
	ck_assert_int_eq(fresh.granted, 77);
	ck_assert_int_eq(c.has_opening, 1);
	ck_assert_int_eq(fresh.has_opening, 1);
	ck_assert_int_eq(c.enterprise, 0);
	bson_destroy(&soi);
}
END_TEST

START_TEST(org_oid_only_for_24_lowercase_hex)
{
	bson_oid_t oid;
	ck_assert_int_eq(bw_customer_org_oid("65a1b2c3d4e5f60718293a4b", &oid), 1);
	ck_assert_int_eq(bw_customer_org_oid("65A1B2C3D4E5F60718293A4B", &oid), 0);
	ck_assert_int_eq(bw_customer_org_oid("org-1", &oid), 0);
	ck_assert_int_eq(bw_customer_org_oid("65a1b2c3d4e5f60718293a4", &oid), 0);
}
END_TEST

START_TEST(read_more_reads_the_same_and_finds_the_extra_members)
{
	static const char *const extra[] = { "pending_events", "absent", "balance_version" };
	bson_t *d = doc_of("{\"org_id\": \"o\", \"balance_version\": 7, "
			   "\"pending_events\": [{\"event_id\": \"e\"}], "
			   "\"subscription_type\": \"enterprise\", \"granted_credits\": 5, "
			   "\"opening_balance\": {}, \"paid_spus_used\": 3}");
	struct bw_customer a, b;
	struct bw_mongo_member m[3];

	bw_customer_read(d, 100, &a);
	uint32_t has = bw_customer_read_more(d, 100, &b, extra, 3, m);
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	ck_assert_int_eq(a.version, 7);
	ck_assert_int_eq(a.has_version, 1);
	ck_assert_int_eq(a.enterprise, 1);
	ck_assert_int_eq(a.granted, 5);
	ck_assert_int_eq(a.has_opening, 1);
	ck_assert_int_eq(a.paid_used, 3);
	ck_assert_uint_eq(has, 1u | 4u);
	ck_assert(BSON_ITER_HOLDS_ARRAY(&m[0].it));
	ck_assert_int_eq(bson_iter_as_int64(&m[2].it), 7);
	bson_destroy(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("customer_doc");
	TCase *tc = tcase_create("readings");

	tcase_add_test(tc, missing_fields_read_as_the_old_code_read_them);
	tcase_add_test(tc, null_fields_read_as_zero_or_the_free_grant);
	tcase_add_test(tc, enterprise_by_subscription_type);
	tcase_add_test(tc, overdrawn_bucket_reads_zero_and_the_opening_moves_the_excess_to_overage);
	tcase_add_test(tc, remaining_never_negative);
	tcase_add_test(tc, fresh_defaults_carry_the_grant_and_the_opening_marker);
	tcase_add_test(tc, org_oid_only_for_24_lowercase_hex);
	tcase_add_test(tc, read_more_reads_the_same_and_finds_the_extra_members);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
