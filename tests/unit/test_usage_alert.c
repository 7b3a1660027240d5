/* Unit tests of the low-balance alert rule (workers/usage/usage_alert.c): thresholds parsing,
 * crossing, re-arm from a balance read, exhausted, the message against the schema's fixture. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"
#include "usage_alert.h"

static struct bw_alert_cfg cfg_of(const char *text)
{
	struct bw_alert_cfg c;
	struct bw_err err;
	ck_assert_msg(bw_alert_thresholds_parse(text, &c, &err) == 0, "%s", err.msg);
	return c;
}

/* Charges `remaining` (and overage) and returns the fired thresholds as "t,t,.." text. */
static const char *charge(struct bw_alert_state *s, const struct bw_alert_cfg *c,
			  int64_t remaining, int overage)
{
	static char text[256];
	struct bw_alert_fire out[BW_ALERT_MAX_THRESHOLDS + 1];
	size_t n = bw_alert_after_charge(s, c, remaining, overage, out);
	size_t len = 0;
	text[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%lld", i ? "," : "",
					(long long)out[i].threshold);
	return text;
}

START_TEST(thresholds_parse_and_validate)
{
	struct bw_alert_cfg c = cfg_of("100,1000,10");
	struct bw_err err;
	ck_assert_int_eq((int)c.n, 3);
	ck_assert_int_eq(c.threshold[0], 1000); /* highest first */
	ck_assert_int_eq(c.threshold[2], 10);
	ck_assert_int_eq((int)cfg_of("").n, 0);
	const char *bad[] = { "0", "-5", "10,10", "abc", "10,", ",10", "1e3", "10 ,20",
			      "1000000000000001", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(bw_alert_thresholds_parse(bad[i], &c, &err) == -1 &&
				      err.kind == BW_ERR_INVALID,
			      "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(remaining_sums_buckets_clamped)
{
	struct bw_balances b = { 0, 100, 30, 50, 60, 20, 5, 0 }; /* 70 + 0 (overdrawn) + 15 */
	ck_assert_int_eq(bw_alert_remaining(&b), 85);
	b.enterprise = 1;
	ck_assert_int_eq(bw_alert_remaining(&b), 0);
	struct bw_balances big = { 0, INT64_MAX, 0, INT64_MAX, 0, 5, 0, 0 };
	ck_assert(bw_alert_remaining(&big) == INT64_MAX);
}
END_TEST

START_TEST(fires_once_per_crossing_never_per_event)
{
	struct bw_alert_cfg c = cfg_of("500,100");
	struct bw_alert_state s = { { 0 }, 0, 0 };

	ck_assert_str_eq(charge(&s, &c, 900, 0), "");
	ck_assert_str_eq(charge(&s, &c, 500, 0), "500"); /* at the threshold: crossed */
	ck_assert_str_eq(charge(&s, &c, 499, 0), "");
	ck_assert_str_eq(charge(&s, &c, 300, 0), "");
	ck_assert_str_eq(charge(&s, &c, 20, 0), "100");
	ck_assert_str_eq(charge(&s, &c, 0, 0), "");      /* zero is not overage yet */
	ck_assert_str_eq(charge(&s, &c, 0, 1), "0");     /* overage starts: exhausted */
	ck_assert_str_eq(charge(&s, &c, 0, 1), "");
	/* A batch's reload re-arms nothing while the balance stays low. */
	bw_alert_rearm(&s, 0);
	ck_assert_str_eq(charge(&s, &c, 0, 1), "");
}
END_TEST

START_TEST(one_charge_crosses_several)
{
	struct bw_alert_cfg c = cfg_of("10,500,100");
	struct bw_alert_state s = { { 0 }, 0, 0 };
	ck_assert_str_eq(charge(&s, &c, 0, 1), "500,100,10,0");
	ck_assert_int_eq((int)s.nfired, 3);
	ck_assert_int_eq(s.exhausted_fired, 1);
}
END_TEST

START_TEST(rearm_only_above_the_threshold)
{
	struct bw_alert_cfg c = cfg_of("500,100");
	struct bw_alert_state s = { { 0 }, 0, 0 };
	ck_assert_str_eq(charge(&s, &c, 0, 1), "500,100,0");
	bw_alert_rearm(&s, 100); /* a grant to exactly 100: 100 stays fired, exhausted re-arms */
	ck_assert_int_eq((int)s.nfired, 2);
	ck_assert_int_eq(s.exhausted_fired, 0);
	ck_assert_str_eq(charge(&s, &c, 60, 0), "");
	bw_alert_rearm(&s, 200); /* a purchase above 100, below 500 */
	ck_assert_int_eq((int)s.nfired, 1);
	ck_assert_str_eq(charge(&s, &c, 150, 0), "");
	ck_assert_str_eq(charge(&s, &c, 90, 0), "100");
	bw_alert_rearm(&s, 501); /* a new period */
	ck_assert_int_eq((int)s.nfired, 0);
	ck_assert_str_eq(charge(&s, &c, 0, 1), "500,100,0");
}
END_TEST

START_TEST(alert_id_is_deterministic)
{
	char a[BW_ALERT_ID_MAX], b[BW_ALERT_ID_MAX], tiny[8];
	ck_assert_int_eq(bw_alert_id(a, sizeof(a), "org-1", 100, 42), 0);
	ck_assert_str_eq(a, "org-1:100:42");
	ck_assert_int_eq(bw_alert_id(b, sizeof(b), "org-1", 0, 43), 0);
	ck_assert_str_eq(b, "org-1:exhausted:43");
	ck_assert_int_eq(bw_alert_id(tiny, sizeof(tiny), "org-1", 100, 42), -1);
}
END_TEST

/* The message equals the schema's valid fixtures byte for byte (check_schemas.py validates
 * them), so the code and schemas/billing-alert.schema.json agree. */
static void message_matches(const char *fixture, const char *json)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/billing_alerts/valid/%s", BW_TEST_DATA_DIR, fixture);
	FILE *f = fopen(path, "r");
	char want[1024];
	ck_assert_ptr_nonnull(f);
	size_t n = fread(want, 1, sizeof(want) - 1, f);
	fclose(f);
	want[n] = '\0';
	while (n > 0 && want[n - 1] == '\n')
		want[--n] = '\0';
	ck_assert_str_eq(json, want);
}

START_TEST(message_matches_schema_fixtures)
{
	const int64_t at = 1796175000000LL;
	char *low = bw_alert_message_json("org-1", "evt-7", 100, 95, 42, at + 123);
	char *ex = bw_alert_message_json("org-1", "evt-8", 0, 0, 43, at + 1000);
	message_matches("low_balance.json", low);
	message_matches("exhausted.json", ex);
	free(low);
	free(ex);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_alert");
	TCase *tc = tcase_create("rule");

	tcase_add_test(tc, thresholds_parse_and_validate);
	tcase_add_test(tc, remaining_sums_buckets_clamped);
	tcase_add_test(tc, fires_once_per_crossing_never_per_event);
	tcase_add_test(tc, one_charge_crosses_several);
	tcase_add_test(tc, rearm_only_above_the_threshold);
	tcase_add_test(tc, alert_id_is_deterministic);
	tcase_add_test(tc, message_matches_schema_fixtures);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
