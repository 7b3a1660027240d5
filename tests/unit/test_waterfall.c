/* Unit tests of the usage worker's waterfall (workers/usage/waterfall.c). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "testkit.h"
#include "waterfall.h"

static struct bw_waterfall_order default_order(void)
{
	struct bw_waterfall_order o;
	struct bw_err err;
	ck_assert_int_eq(bw_waterfall_order_parse("subscription,purchased,granted", &o, &err), 0);
	return o;
}

static struct bw_balances bal(int64_t allowance, int64_t sub_used, int64_t purchased,
			      int64_t pur_used, int64_t granted, int64_t gra_used)
{
	struct bw_balances b = { 0, allowance, sub_used, purchased, pur_used, granted, gra_used, 0 };
	return b;
}

static void charge_ok(struct bw_balances *b, int64_t spus, const struct bw_waterfall_order *o,
		      int64_t s, int64_t p, int64_t g, int64_t paid)
{
	struct bw_breakdown bd;
	struct bw_err err;
	ck_assert_int_eq(bw_waterfall_charge(b, spus, o, &bd, &err), 0);
	ck_assert_int_eq(bd.from_subscription, s);
	ck_assert_int_eq(bd.from_purchased, p);
	ck_assert_int_eq(bd.from_granted, g);
	ck_assert_int_eq(bd.from_paid, paid);
	ck_assert(bd.from_subscription + bd.from_purchased + bd.from_granted + bd.from_paid == spus);
}

START_TEST(each_tier_is_exhausted_in_turn)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(10, 0, 20, 0, 30, 0);

	charge_ok(&b, 4, &o, 4, 0, 0, 0);
	charge_ok(&b, 10, &o, 6, 4, 0, 0);     /* allowance boundary crossed */
	charge_ok(&b, 16, &o, 0, 16, 0, 0);    /* purchased exactly used up */
	ck_assert_int_eq(b.purchased_used, 20);
	charge_ok(&b, 30, &o, 0, 0, 30, 0);    /* granted exactly used up */
	charge_ok(&b, 7, &o, 0, 0, 0, 7);      /* everything else is overage */
	ck_assert_int_eq(b.subscription_used, 10);
	ck_assert_int_eq(b.granted_used, 30);
	ck_assert_int_eq(b.paid_used, 7);
}
END_TEST

START_TEST(one_event_spanning_all_tiers_and_overage)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(5, 2, 4, 1, 3, 0);

	charge_ok(&b, 20, &o, 3, 3, 3, 11);
	ck_assert_int_eq(bw_waterfall_remaining(b.subscription_allowance, b.subscription_used), 0);
	ck_assert_int_eq(bw_waterfall_remaining(b.purchased, b.purchased_used), 0);
	ck_assert_int_eq(bw_waterfall_remaining(b.granted, b.granted_used), 0);
}
END_TEST

START_TEST(zero_allowance_and_empty_buckets_go_to_paid)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(0, 0, 0, 0, 0, 0);

	charge_ok(&b, 9, &o, 0, 0, 0, 9);
	ck_assert_int_eq(b.paid_used, 9);
}
END_TEST

START_TEST(granted_before_purchased_order_works)
{
	struct bw_waterfall_order o;
	struct bw_err err;
	struct bw_balances b = bal(1, 0, 10, 0, 10, 0);

	ck_assert_int_eq(bw_waterfall_order_parse("subscription,granted,purchased", &o, &err), 0);
	charge_ok(&b, 5, &o, 1, 0, 4, 0);
	charge_ok(&b, 10, &o, 0, 4, 6, 0);
}
END_TEST

START_TEST(enterprise_is_unlimited)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(0, 0, 10, 0, 10, 0);

	b.enterprise = 1;
	charge_ok(&b, 1000000, &o, 1000000, 0, 0, 0);
	ck_assert_int_eq(b.subscription_used, 1000000);
	ck_assert_int_eq(b.purchased_used, 0);
}
END_TEST

START_TEST(used_above_cap_never_goes_negative)
{
	struct bw_waterfall_order o = default_order();
	/* allowance lowered below what was already used (plan downgrade) */
	struct bw_balances b = bal(10, 15, 5, 0, 0, 0);

	charge_ok(&b, 8, &o, 0, 5, 0, 3);
	ck_assert_int_eq(b.subscription_used, 15);
	ck_assert_int_eq(bw_waterfall_remaining(10, 15), 0);
	ck_assert_int_eq(bw_waterfall_remaining(10, -5), 10);
	ck_assert_int_eq(bw_waterfall_remaining(-1, 0), 0);
}
END_TEST

START_TEST(huge_values_near_int64_limits)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(INT64_MAX, 0, INT64_MAX, 0, INT64_MAX, 0);
	struct bw_breakdown bd;
	struct bw_err err;

	charge_ok(&b, INT64_MAX, &o, INT64_MAX, 0, 0, 0);
	charge_ok(&b, INT64_MAX, &o, 0, INT64_MAX, 0, 0);
	charge_ok(&b, INT64_MAX - 1, &o, 0, 0, INT64_MAX - 1, 0);
	charge_ok(&b, INT64_MAX, &o, 0, 0, 1, INT64_MAX - 1);
	/* the overage counter would overflow: refused, balances unchanged */
	struct bw_balances before = b;
	ck_assert_int_eq(bw_waterfall_charge(&b, 2, &o, &bd, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "overflow"));
	ck_assert(before.paid_used == b.paid_used && before.granted_used == b.granted_used &&
		  before.purchased_used == b.purchased_used &&
		  before.subscription_used == b.subscription_used);
	charge_ok(&b, 1, &o, 0, 0, 0, 1);
	ck_assert(b.paid_used == INT64_MAX);
}
END_TEST

START_TEST(enterprise_overflow_is_refused)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(0, INT64_MAX - 1, 0, 0, 0, 0);
	struct bw_breakdown bd;
	struct bw_err err;

	b.enterprise = 1;
	ck_assert_int_eq(bw_waterfall_charge(&b, 2, &o, &bd, &err), -1);
	ck_assert_int_eq(b.subscription_used, INT64_MAX - 1);
}
END_TEST

START_TEST(non_positive_spus_are_refused)
{
	struct bw_waterfall_order o = default_order();
	struct bw_balances b = bal(10, 0, 0, 0, 0, 0);
	struct bw_breakdown bd;
	struct bw_err err;

	ck_assert_int_eq(bw_waterfall_charge(&b, 0, &o, &bd, &err), -1);
	ck_assert_int_eq(bw_waterfall_charge(&b, -5, &o, &bd, &err), -1);
	ck_assert_int_eq(b.subscription_used, 0);
}
END_TEST

START_TEST(order_parse_rejects_bad_lists)
{
	static const char *bad[] = { "", "subscription", "subscription,purchased",
				     "subscription,purchased,granted,granted",
				     "subscription,subscription,granted", "subscription,paid,granted",
				     "subscription,,granted" };
	struct bw_waterfall_order o;
	struct bw_err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(bw_waterfall_order_parse(bad[i], &o, &err) == -1, "'%s'", bad[i]);
	ck_assert_int_eq(bw_waterfall_order_parse("granted,purchased,subscription", &o, &err), 0);
	ck_assert_int_eq(o.bucket[0], BW_BUCKET_GRANTED);
	ck_assert_int_eq(o.bucket[2], BW_BUCKET_SUBSCRIPTION);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("waterfall");
	TCase *tc = tcase_create("charge");

	tcase_add_test(tc, each_tier_is_exhausted_in_turn);
	tcase_add_test(tc, one_event_spanning_all_tiers_and_overage);
	tcase_add_test(tc, zero_allowance_and_empty_buckets_go_to_paid);
	tcase_add_test(tc, granted_before_purchased_order_works);
	tcase_add_test(tc, enterprise_is_unlimited);
	tcase_add_test(tc, used_above_cap_never_goes_negative);
	tcase_add_test(tc, huge_values_near_int64_limits);
	tcase_add_test(tc, enterprise_overflow_is_refused);
	tcase_add_test(tc, non_positive_spus_are_refused);
	tcase_add_test(tc, order_parse_rejects_bad_lists);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
