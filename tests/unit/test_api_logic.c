/* bw-api's pure logic: API keys (Bearer parsing, rotation, refusals at config time) and the
 * POST /v1/usage body (object or array, per-event validation by the usage worker's parser,
 * the messages keyed by org_id, the answers). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api_auth.h"
#include "api_usage.h"
#include "testkit.h"

#define EV(id, org, spus)                                                                    \
	"{\"event_id\":\"" id "\",\"org_id\":\"" org "\",\"spus\":" spus ",\"operation\":\"p\"," \
	"\"source\":\"s\",\"timestamp\":\"2026-03-01T10:00:00Z\"}"

START_TEST(test_keys)
{
	char problem[160];
	struct bw_api_keys *k = bw_api_keys_new("old-key-0123456789ab,new-key-0123456789ab", problem,
						sizeof(problem));

	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(bw_api_keys_check(k, "Bearer old-key-0123456789ab"), 1);
	ck_assert_int_eq(bw_api_keys_check(k, "bearer new-key-0123456789ab"), 1);
	ck_assert_int_eq(bw_api_keys_check(k, "Bearer new-key-0123456789a"), 0);
	ck_assert_int_eq(bw_api_keys_check(k, "Bearer new-key-0123456789abc"), 0);
	ck_assert_int_eq(bw_api_keys_check(k, "Basic new-key-0123456789ab"), 0);
	ck_assert_int_eq(bw_api_keys_check(k, "Bearer "), 0);
	ck_assert_int_eq(bw_api_keys_check(k, NULL), 0);
	bw_api_keys_free(k);
	ck_assert_ptr_null(bw_api_keys_new("short", problem, sizeof(problem)));
	ck_assert_ptr_nonnull(strstr(problem, "item 1"));
	ck_assert_ptr_null(bw_api_keys_new("good-key-0123456789ab,", problem, sizeof(problem)));
	ck_assert_ptr_nonnull(strstr(problem, "item 2"));
	ck_assert_ptr_null(bw_api_keys_new("good key 0123456789ab", problem, sizeof(problem)));
	ck_assert_ptr_null(strstr(problem, "good")); /* never the key's text */
}
END_TEST

static int parse(const char *body, size_t max_events, struct bw_api_usage_batch *b,
		 const char **code)
{
	char detail[200];

	return bw_api_usage_parse((const unsigned char *)body, strlen(body), max_events, 65536, b,
				  code, detail, sizeof(detail));
}

START_TEST(test_usage_body)
{
	struct bw_api_usage_batch b;
	struct bw_acked_msg *msgs;
	const char *code;
	char *answer;
	json_t *j;

	/* One object. */
	ck_assert_int_eq(parse(EV("e1", "org-a", "3"), 10, &b, &code), 0);
	ck_assert_int_eq(b.n, 1);
	ck_assert_int_eq(json_array_size(b.invalid), 0);
	msgs = bw_api_usage_msgs(&b);
	ck_assert_int_eq(msgs[0].key_len, 5);
	ck_assert_int_eq(memcmp(msgs[0].key, "org-a", 5), 0);
	free(msgs);
	answer = bw_api_usage_answer(&b, NULL);
	ck_assert_str_eq(answer, "{\"accepted\":1,\"event_ids\":[\"e1\"]}");
	free(answer);
	bw_api_usage_batch_free(&b);
	/* A mix: each invalid one listed with its index and reason. */
	ck_assert_int_eq(parse("[" EV("e1", "org-a", "3") "," EV("e2", "org-b", "0") ",7,"
			       EV("e4", "", "1") "]", 10, &b, &code), 0);
	ck_assert_int_eq(b.n, 4);
	ck_assert_int_eq(json_array_size(b.invalid), 3);
	answer = bw_api_usage_answer(&b, "invalid_events");
	j = json_loads(answer, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "invalid_events");
	ck_assert_int_eq(tk_int(json_array_get(json_object_get(j, "invalid"), 0), "index"), 1);
	ck_assert_int_eq(tk_int(json_array_get(json_object_get(j, "invalid"), 1), "index"), 2);
	ck_assert_int_eq(tk_int(json_array_get(json_object_get(j, "invalid"), 2), "index"), 3);
	ck_assert(json_is_null(json_array_get(json_object_get(j, "event_ids"), 2)));
	json_decref(j);
	free(answer);
	bw_api_usage_batch_free(&b);
	/* Whole-body refusals. */
	ck_assert_int_eq(parse("", 10, &b, &code), -1);
	ck_assert_str_eq(code, "invalid_json");
	ck_assert_int_eq(parse("\"x\"", 10, &b, &code), -1);
	ck_assert_str_eq(code, "invalid_json");
	ck_assert_int_eq(parse("{\"a\":1,\"a\":2}", 10, &b, &code), -1);
	ck_assert_str_eq(code, "invalid_json");
	ck_assert_int_eq(parse("[]", 10, &b, &code), -1);
	ck_assert_str_eq(code, "empty_batch");
	ck_assert_int_eq(parse("[" EV("e1", "o", "1") "," EV("e2", "o", "1") "]", 1, &b, &code), -1);
	ck_assert_str_eq(code, "too_many_events");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api_logic");
	TCase *tc = tcase_create("api_logic");

	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_usage_body);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
