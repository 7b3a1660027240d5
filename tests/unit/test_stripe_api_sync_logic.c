/* test_stripe_api_sync_logic: the sync worker's pure logic over Stripe API shapes: tick
 * parsing (valid and invalid vectors), reading a price of an expanded list page (product tag,
 * strict metadata numbers), picking the live subscription, and the result message. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sync_customer.h"
#include "sync_prices.h"
#include "sync_tick.h"
#include "testkit.h"

static const struct {
	const char *json;
	int ok;
	const char *err_part;
} tick_vectors[] = {
	{ "{\"tick_id\":\"t1\",\"scope\":\"prices\"}", 1, NULL },
	{ "{\"tick_id\":\"t2\",\"scope\":\"all\",\"reason\":\"cron\"}", 1, NULL },
	{ "{\"tick_id\":\"t3\",\"scope\":\"customer\",\"org_id\":\"org_1\"}", 1, NULL },
	{ "{\"tick_id\":\"t4\",\"scope\":\"customer\",\"stripe_customer_id\":\"cus_1\"}", 1, NULL },
	{ "{\"tick_id\":\"t5\",\"scope\":\"customer\"}", 0, "needs org_id" },
	{ "{\"tick_id\":\"t6\",\"scope\":\"everything\"}", 0, "scope" },
	{ "{\"scope\":\"prices\"}", 0, "tick_id" },
	{ "{\"tick_id\":7,\"scope\":\"prices\"}", 0, "tick_id" },
	{ "{\"tick_id\":\"t8\",\"scope\":\"customer\",\"org_id\":5}", 0, "org_id" },
	{ "{\"tick_id\":\"\",\"scope\":\"prices\"}", 0, "tick_id" },
	{ "[1,2]", 0, NULL },
	{ "not json", 0, NULL },
};

START_TEST(tick_vectors_parse_or_reject)
{
	struct bw_sync_tick tick;
	struct bw_err err;
	char *raw = NULL;
	const char *j = tick_vectors[_i].json;

	bw_err_clear(&err);
	int rc = bw_sync_tick_parse(j, strlen(j), 4096, &tick, &raw, &err);
	ck_assert_msg((rc == 0) == tick_vectors[_i].ok, "%s: %s", j, err.msg);
	if (rc == 0) {
		ck_assert_ptr_nonnull(tick.tick_id);
		bw_sync_tick_cleanup(&tick);
	} else {
		ck_assert_int_eq(err.kind, BW_ERR_INVALID);
		if (tick_vectors[_i].err_part)
			ck_assert_msg(strstr(err.msg, tick_vectors[_i].err_part) != NULL, "%s: %s", j,
				      err.msg);
	}
	free(raw);
}
END_TEST

START_TEST(oversized_tick_is_rejected_with_its_id)
{
	char buf[600];
	struct bw_sync_tick tick;
	struct bw_err err;
	char *raw = NULL;

	snprintf(buf, sizeof(buf), "{\"tick_id\":\"big\",\"scope\":\"prices\",\"reason\":\"%0300d\"}", 0);
	ck_assert_int_eq(bw_sync_tick_parse(buf, strlen(buf), 100, &tick, &raw, &err), -1);
	free(raw);
	snprintf(buf, sizeof(buf), "{\"tick_id\":\"t\",\"scope\":\"all\",\"reason\":\"%0300d\"}", 0);
	ck_assert_int_eq(bw_sync_tick_parse(buf, strlen(buf), 4096, &tick, &raw, &err), -1);
	ck_assert_str_eq(raw, "t");
	ck_assert_ptr_nonnull(strstr(err.msg, "reason"));
	free(raw);
}
END_TEST

static json_t *price(const char *product_md, const char *price_md)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"id\":\"price_1\",\"active\":true,\"currency\":\"usd\",\"unit_amount\":4900,"
		 "\"product\":{\"id\":\"prod_1\",\"name\":\"P\",\"metadata\":%s},"
		 "\"transform_quantity\":{\"divide_by\":10,\"round\":\"up\"},"
		 "\"recurring\":{\"interval\":\"month\"},\"metadata\":%s}",
		 product_md, price_md);
	json_t *p = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(p);
	return p;
}

START_TEST(price_of_our_product_is_read_strictly)
{
	struct bw_price p;
	struct bw_err err;
	json_t *j = price("{\"product\":\"doc_router\"}",
			  "{\"price_type\":\"base\",\"tier\":\"team\",\"included_spus\":\"5000\"}");

	ck_assert_int_eq(bw_sync_price_parse(j, "doc_router", &p, &err), 1);
	ck_assert_str_eq(p.price_id, "price_1");
	ck_assert_str_eq(p.product_id, "prod_1");
	ck_assert_str_eq(p.tier, "team");
	ck_assert_int_eq(p.has_included_spus, 1);
	ck_assert_int_eq(p.included_spus, 5000);
	ck_assert_int_eq(p.unit_amount, 4900);
	ck_assert_int_eq(p.divide_by, 10);
	ck_assert_str_eq(p.error, "");
	/* another tag */
	ck_assert_int_eq(bw_sync_price_parse(j, "other", &p, &err), 0);
	json_decref(j);

	static const char *const bad[] = { "\"12abc\"", "\"-5\"", "\"1e3\"", "\" 12\"", "12",
					   "\"99999999999999999999\"", "\"\"" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char md[200];
		snprintf(md, sizeof(md),
			 "{\"price_type\":\"base\",\"tier\":\"team\",\"included_spus\":%s}", bad[i]);
		j = price("{\"product\":\"doc_router\"}", md);
		ck_assert_int_eq(bw_sync_price_parse(j, "doc_router", &p, &err), 1);
		ck_assert_msg(p.error[0] != '\0', "included_spus %s accepted", bad[i]);
		json_decref(j);
	}
	/* a base price without included_spus is flagged too */
	j = price("{\"product\":\"doc_router\"}", "{\"price_type\":\"base\",\"tier\":\"team\"}");
	ck_assert_int_eq(bw_sync_price_parse(j, "doc_router", &p, &err), 1);
	ck_assert_ptr_nonnull(strstr(p.error, "base price"));
	json_decref(j);
	/* untagged product, and a product left as an id (not expanded) */
	j = price("{}", "{}");
	ck_assert_int_eq(bw_sync_price_parse(j, "doc_router", &p, &err), 0);
	json_decref(j);
	j = json_loads("{\"id\":\"price_2\",\"product\":\"prod_1\"}", 0, NULL);
	ck_assert_int_eq(bw_sync_price_parse(j, "doc_router", &p, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	json_decref(j);
}
END_TEST

static json_t *subs_of(const char *text)
{
	json_error_t jerr;
	json_t *s = json_loads(text, 0, &jerr);
	ck_assert_msg(s != NULL, "%s", jerr.text);
	return s;
}

#define SUB(id, status, created, tier, spus, extra)                                          \
	"{\"id\":\"" id "\",\"status\":\"" status "\",\"created\":" #created extra               \
	",\"items\":{\"data\":[{\"price\":{\"id\":\"price_" id "\",\"metadata\":{\"price_type\":" \
	"\"base\",\"tier\":\"" tier "\",\"included_spus\":\"" spus "\"}}}]}}"

START_TEST(the_latest_live_base_subscription_wins)
{
	const struct bw_sub_policy policy = { 1 };
	struct bw_sub_state st;
	struct bw_err err;
	json_t *s = subs_of("[" SUB("s_old", "active", 100, "individual", "1000",
				    ",\"current_period_start\":100,\"current_period_end\":200") ","
			    SUB("s_new", "trialing", 300, "team", "5000",
				",\"current_period_start\":300,\"current_period_end\":400") ","
			    SUB("s_dead", "canceled", 500, "enterprise", "0", "") "]");

	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), 0);
	ck_assert_int_eq(st.live, 1);
	ck_assert_str_eq(st.subscription_id, "s_new");
	ck_assert_str_eq(st.subscription_type, "team");
	ck_assert_int_eq(st.allowance, 5000);
	ck_assert_int_eq(st.period_start_s, 300);
	ck_assert_int_eq(st.period_end_s, 400);
	json_decref(s);

	/* none live: "none", the latest subscription's id and status */
	s = subs_of("[" SUB("s_a", "canceled", 100, "team", "5000", "") ","
		    SUB("s_b", "incomplete_expired", 200, "team", "5000", "") "]");
	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), 0);
	ck_assert_int_eq(st.live, 0);
	ck_assert_str_eq(st.subscription_type, "none");
	ck_assert_int_eq(st.allowance, 0);
	ck_assert_str_eq(st.subscription_id, "s_b");
	ck_assert_str_eq(st.status, "incomplete_expired");
	json_decref(s);

	/* the period on the item (API 2025-03-31 and later) */
	s = subs_of("[{\"id\":\"s_i\",\"status\":\"active\",\"created\":1,\"items\":{\"data\":[{"
		    "\"current_period_start\":10,\"current_period_end\":20,\"price\":{\"id\":\"p\","
		    "\"metadata\":{\"price_type\":\"base\",\"tier\":\"team\",\"included_spus\":\"7\"}}}"
		    "]}}]");
	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), 0);
	ck_assert_int_eq(st.has_period, 1);
	ck_assert_int_eq(st.period_start_s, 10);
	ck_assert_int_eq(st.allowance, 7);
	json_decref(s);

	/* a live base price with a broken included_spus is an error, not a zero allowance */
	s = subs_of("[" SUB("s_x", "active", 1, "team", "5k", "") "]");
	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	json_decref(s);

	s = subs_of("[]");
	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), 0);
	ck_assert_ptr_null(st.subscription_id);
	json_decref(s);

	/* a period that is not unix seconds of a real date (the write multiplies it by 1000:
	 * int64 overflow) is no period, on the subscription as on the item */
	s = subs_of("[" SUB("s_big", "active", 1, "team", "5000",
			    ",\"current_period_start\":9223372036854775807,"
			    "\"current_period_end\":9223372036854775807") "]");
	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), 0);
	ck_assert_int_eq(st.live, 1);
	ck_assert_int_eq(st.has_period, 0);
	json_decref(s);
	s = subs_of("[" SUB("s_neg", "active", 1, "team", "5000",
			    ",\"current_period_start\":-5,\"current_period_end\":20") "]");
	ck_assert_int_eq(bw_sync_pick_subscription(s, &policy, &st, &err), 0);
	ck_assert_int_eq(st.has_period, 0);
	json_decref(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sync_logic");
	TCase *tc = tcase_create("pure");

	tcase_add_loop_test(tc, tick_vectors_parse_or_reject, 0,
			    (int)(sizeof(tick_vectors) / sizeof(tick_vectors[0])));
	tcase_add_test(tc, oversized_tick_is_rejected_with_its_id);
	tcase_add_test(tc, price_of_our_product_is_read_strictly);
	tcase_add_test(tc, the_latest_live_base_subscription_wins);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
