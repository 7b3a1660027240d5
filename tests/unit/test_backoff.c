/* Unit tests of the retry backoff (shared/backoff.c), issue 11 defect 6: with
 * USAGE_MAX_ATTEMPTS above 200 the usage worker's delay passed a second in tv_nsec, nanosleep
 * failed with EINVAL and there was no backoff at all. */
#include <check.h>
#include <limits.h>
#include <stdlib.h>

#include "backoff.h"
#include "testkit.h"

static long ms_of(struct timespec ts)
{
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000L;
}

/* The usage worker's parameters: 5 ms per round, capped at a second. */
START_TEST(every_delay_is_a_valid_timespec_within_the_cap)
{
	const unsigned long rnds[] = { 0, 1, 999, 1000, 1001, 4999, 50000, RAND_MAX, ULONG_MAX };

	for (int attempt = 1; attempt <= 10000; attempt++)
		for (size_t i = 0; i < sizeof(rnds) / sizeof(rnds[0]); i++) {
			struct timespec ts = bw_backoff_jitter(attempt, 5, 1000, rnds[i]);
			ck_assert_msg(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L,
				      "attempt %d rnd %lu: tv_nsec %ld", attempt, rnds[i],
				      ts.tv_nsec);
			ck_assert(ts.tv_sec >= 0);
			ck_assert_msg(ms_of(ts) <= 1000 && ms_of(ts) <= attempt * 5L,
				      "attempt %d rnd %lu: %ld ms", attempt, rnds[i], ms_of(ts));
		}
}
END_TEST

/* Round 201 with a draw of 1000: a one-second delay, as {1 s, 0 ns}. */
START_TEST(a_second_is_carried_into_tv_sec)
{
	struct timespec ts = bw_backoff_jitter(201, 5, 1000, 1000);

	ck_assert_int_eq(ts.tv_sec, 1);
	ck_assert_int_eq(ts.tv_nsec, 0);
	ts = bw_backoff_jitter(3, 1000, 60000, 2500);
	ck_assert_int_eq(ts.tv_sec, 2);
	ck_assert_int_eq(ts.tv_nsec, 500000000L);
}
END_TEST

START_TEST(the_jitter_spans_zero_to_the_bound)
{
	ck_assert_int_eq(ms_of(bw_backoff_jitter(1, 5, 1000, 0)), 0);
	ck_assert_int_eq(ms_of(bw_backoff_jitter(1, 5, 1000, 5)), 5);
	ck_assert_int_eq(ms_of(bw_backoff_jitter(1, 5, 1000, 6)), 0);
	ck_assert_int_eq(ms_of(bw_backoff_jitter(INT_MAX, 5, 1000, 1000)), 1000);
	ck_assert_int_eq(ms_of(bw_backoff_jitter(0, 5, 1000, 12345)), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("jitter");

	tcase_add_test(tc, every_delay_is_a_valid_timespec_within_the_cap);
	tcase_add_test(tc, a_second_is_carried_into_tv_sec);
	tcase_add_test(tc, the_jitter_spans_zero_to_the_bound);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(suite());
}
