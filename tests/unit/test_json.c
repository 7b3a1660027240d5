/* Unit tests of shared/json: strict getters, malformed input, RFC 3339, canonical hash. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testkit.h"

static json_t *parse(const char *s, struct bw_err *err)
{
	return bw_json_parse_object((const unsigned char *)s, strlen(s), 4096, err);
}

START_TEST(malformed_input_is_invalid_with_a_reason)
{
	static const struct { const char *text, *reason; } cases[] = {
		{ "", "empty message" },
		{ "{", "malformed JSON" },
		{ "not json", "malformed JSON" },
		{ "[1,2]", "not an object" },
		{ "\"str\"", "malformed JSON" },
		{ "{\"a\":1,\"a\":2}", "malformed JSON" },            /* duplicate key */
		{ "{\"a\":99999999999999999999}", "malformed JSON" }, /* beyond int64 */
		{ "{\"a\":\"\xff\"}", "malformed JSON" },             /* invalid UTF-8 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bw_err err;
		bw_err_clear(&err);
		ck_assert_ptr_null(parse(cases[i].text, &err));
		ck_assert_int_eq(err.kind, BW_ERR_INVALID);
		ck_assert_msg(strstr(err.msg, cases[i].reason), "case %zu: %s", i, err.msg);
	}
}
END_TEST

START_TEST(oversized_input_is_refused_before_parsing)
{
	struct bw_err err;
	const char *s = "{\"a\":1}";
	ck_assert_ptr_null(bw_json_parse_object((const unsigned char *)s, strlen(s), 3, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "exceeds the limit"));
}
END_TEST

START_TEST(getters_enforce_types)
{
	struct bw_err err;
	json_t *o = parse("{\"s\":\"x\",\"i\":5,\"r\":5.0,\"b\":true,\"e\":\"\",\"n\":null}", &err);
	const char *s;
	int64_t i;
	int present;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(bw_json_get_str(o, "s", 1, 10, &s, &err), 0);
	ck_assert_str_eq(s, "x");
	ck_assert_int_eq(bw_json_get_str(o, "i", 1, 10, &s, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "'i' must be a string"));
	ck_assert_int_eq(bw_json_get_str(o, "e", 1, 10, &s, &err), -1);
	ck_assert_int_eq(bw_json_get_str(o, "missing", 0, 10, &s, &err), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(bw_json_get_str(o, "missing", 1, 10, &s, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "'missing' is required"));
	ck_assert_int_eq(bw_json_get_int64(o, "i", 1, 1, 10, &i, &present, &err), 0);
	ck_assert_int_eq(i, 5);
	ck_assert_int_eq(present, 1);
	ck_assert_int_eq(bw_json_get_int64(o, "r", 1, 1, 10, &i, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "must be an integer"));
	ck_assert_int_eq(bw_json_get_int64(o, "b", 1, 1, 10, &i, NULL, &err), -1);
	ck_assert_int_eq(bw_json_get_int64(o, "i", 1, 6, 10, &i, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "outside [6, 10]"));
	ck_assert_int_eq(bw_json_get_int64(o, "n", 0, 1, 10, &i, &present, &err), 0);
	ck_assert_int_eq(present, 0);
	json_decref(o);
}
END_TEST

START_TEST(rfc3339_accepts_only_date_times)
{
	static const char *good[] = { "2026-11-25T12:00:00Z", "2026-11-25T12:00:00.5+01:00",
				      "2026-02-28t23:59:60z", "2026-11-25 12:00:00-08:00" };
	static const char *bad[] = { "2026-11-25", "2026-13-01T00:00:00Z", "2026-11-25T24:00:00Z",
				     "2026-11-25T12:00:00", "2026-11-25T12:00:00+0100",
				     "2026-11-25T12:00:00.Z", "yesterday", "" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(bw_json_check_rfc3339(good[i]) == 0, "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(bw_json_check_rfc3339(bad[i]) != 0, "%s", bad[i]);
}
END_TEST

START_TEST(canonical_hash_ignores_key_order_not_values)
{
	struct bw_err err;
	json_t *a = parse("{\"x\":1,\"y\":{\"b\":2,\"a\":3}}", &err);
	json_t *b = parse("{\"y\":{\"a\":3,\"b\":2},\"x\":1}", &err);
	json_t *c = parse("{\"y\":{\"a\":3,\"b\":2},\"x\":2}", &err);
	char ha[65], hb[65], hc[65];

	ck_assert_int_eq(bw_json_canonical_hash(a, ha), 0);
	ck_assert_int_eq(bw_json_canonical_hash(b, hb), 0);
	ck_assert_int_eq(bw_json_canonical_hash(c, hc), 0);
	ck_assert_str_eq(ha, hb);
	ck_assert_str_ne(ha, hc);
	ck_assert_int_eq(strlen(ha), 64);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}
END_TEST

/* The canonical form must stay byte-identical to jansson's sorted compact dump (stored hashes
 * were made with it). */
START_TEST(canonical_dump_matches_jansson_byte_for_byte)
{
	static const char *inputs[] = {
		"{}", "[]", "{\"a\":[]}", "{\"b\":1,\"a\":{\"d\":[1,2,{\"z\":null,\"y\":true}],\"c\":false}}",
		"{\"s\":\"quote \\\" back \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"}",
		"{\"ctl\":\"\\u0001\\u001f\\u007f\"}",
		"{\"u\":\"h\\u00e9llo \\u2028 \\ud83d\\ude00 \\u65e5\\u672c\"}",
		"{\"n\":-9223372036854775808,\"m\":9223372036854775807,\"z\":0,\"neg\":-42}",
		"{\"r\":0.0042,\"big\":1e300,\"small\":-2.5e-8,\"one\":1.0,\"third\":0.3333333333333333}",
		"{\"B\":1,\"a\":2,\"_\":3,\"aa\":4,\"a b\":5,\"\u00e9\":6,\"1\":7}",
		"[\"x\",1,2.5,null,[[]],{}]",
	};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		json_error_t jerr;
		json_t *v = json_loads(inputs[i], JSON_DECODE_ANY, &jerr);
		ck_assert_msg(v != NULL, "input %zu: %s", i, jerr.text);
		char *ours = bw_json_canonical_dump(v);
		char *theirs = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		ck_assert_msg(ours && theirs && strcmp(ours, theirs) == 0, "input %zu:\n%s\n%s", i,
			      ours, theirs);
		free(ours);
		free(theirs);
		json_decref(v);
	}
	/* many keys (past the small on-stack key array) and a long text (past the stack buffer) */
	json_t *wide = json_object();
	char key[16], *ours, *theirs;
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "k%d", (i * 7919) % 1000);
		json_object_set_new(wide, key, json_integer(i));
	}
	json_object_set_new(wide, "long", json_string_nocheck(
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	ours = bw_json_canonical_dump(wide);
	theirs = json_dumps(wide, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	ck_assert_str_eq(ours, theirs);
	free(ours);
	free(theirs);
	json_decref(wide);
}
END_TEST

START_TEST(int64_formatting_covers_the_range)
{
	char buf[BW_JSON_INT64_LEN];
	ck_assert_int_eq(bw_json_format_int64(buf, 0), 1);
	ck_assert_str_eq(buf, "0");
	bw_json_format_int64(buf, -42);
	ck_assert_str_eq(buf, "-42");
	ck_assert_int_eq(bw_json_format_int64(buf, INT64_MAX), 19);
	ck_assert_str_eq(buf, "9223372036854775807");
	ck_assert_int_eq(bw_json_format_int64(buf, INT64_MIN), 20);
	ck_assert_str_eq(buf, "-9223372036854775808");
}
END_TEST

START_TEST(path_lookup_walks_objects)
{
	struct bw_err err;
	json_t *o = parse("{\"a\":{\"b\":{\"c\":\"deep\"},\"n\":1}}", &err);

	ck_assert_str_eq(bw_json_path_str(o, "a.b.c"), "deep");
	ck_assert_ptr_null(bw_json_path_str(o, "a.n"));
	ck_assert_ptr_null(bw_json_path_str(o, "a.x.c"));
	ck_assert_ptr_null(bw_json_path_str(o, "a..c"));
	json_decref(o);
}
END_TEST

START_TEST(storable_check_refuses_mongo_reserved_names)
{
	struct bw_err err;
	json_t *ok = parse("{\"a\":{\"b\":[{\"c\":1}]},\"x$\":2}", &err);
	json_t *dollar = parse("{\"a\":{\"$set\":1}}", &err);
	json_t *dot = parse("{\"a\":[{\"b.c\":1}]}", &err);
	json_t *empty = parse("{\"\":1}", &err);

	ck_assert_int_eq(bw_json_check_storable(ok, 4, &err), 0);
	ck_assert_int_eq(bw_json_check_storable(ok, 3, &err), -1); /* 4 levels deep */
	ck_assert_int_eq(bw_json_check_storable(dollar, 8, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "'$set'"));
	ck_assert_int_eq(bw_json_check_storable(dot, 8, &err), -1);
	ck_assert_int_eq(bw_json_check_storable(empty, 8, &err), -1);
	json_decref(ok);
	json_decref(dollar);
	json_decref(dot);
	json_decref(empty);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("helpers");

	tcase_add_test(tc, malformed_input_is_invalid_with_a_reason);
	tcase_add_test(tc, oversized_input_is_refused_before_parsing);
	tcase_add_test(tc, getters_enforce_types);
	tcase_add_test(tc, rfc3339_accepts_only_date_times);
	tcase_add_test(tc, canonical_hash_ignores_key_order_not_values);
	tcase_add_test(tc, path_lookup_walks_objects);
	tcase_add_test(tc, canonical_dump_matches_jansson_byte_for_byte);
	tcase_add_test(tc, int64_formatting_covers_the_range);
	tcase_add_test(tc, storable_check_refuses_mongo_reserved_names);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
