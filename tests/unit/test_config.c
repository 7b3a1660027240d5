/* Unit tests of shared/config: the environment table loader and its validation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testkit.h"

static int only_abc(const char *value, char *why, size_t len)
{
	if (strspn(value, "abc") == strlen(value))
		return 0;
	snprintf(why, len, "only a, b and c are allowed");
	return -1;
}

struct demo_cfg {
	char *name;
	int64_t count;
	int flag;
	char *token;
};

static const struct bw_cfg_opt opts[] = {
	{ "T_NAME", BW_CFG_STR, "abc", 1, 8, 0, offsetof(struct demo_cfg, name), "a name",
	  only_abc },
	{ "T_COUNT", BW_CFG_INT, "5", 1, 100, 0, offsetof(struct demo_cfg, count), "a count", NULL },
	{ "T_FLAG", BW_CFG_BOOL, "false", 0, 0, 0, offsetof(struct demo_cfg, flag), "a flag", NULL },
	{ "T_TOKEN", BW_CFG_STR, NULL, 1, 0, 1, offsetof(struct demo_cfg, token), "a secret", NULL },
};
#define N (sizeof(opts) / sizeof(opts[0]))

static void clear_env(void)
{
	unsetenv("T_NAME");
	unsetenv("T_COUNT");
	unsetenv("T_FLAG");
	unsetenv("T_TOKEN");
}

START_TEST(defaults_apply_and_required_is_enforced)
{
	struct demo_cfg cfg = { 0 };
	struct bw_config_problems probs = { 0, "" };

	clear_env();
	ck_assert_int_eq(bw_config_load(opts, N, &cfg, &probs), 1);
	ck_assert_ptr_nonnull(strstr(probs.text, "T_TOKEN: required"));
	ck_assert_str_eq(cfg.name, "abc");
	ck_assert_int_eq(cfg.count, 5);
	ck_assert_int_eq(cfg.flag, 0);
	bw_config_free(opts, N, &cfg);
}
END_TEST

START_TEST(every_problem_is_listed_at_once)
{
	struct demo_cfg cfg = { 0 };
	struct bw_config_problems probs = { 0, "" };

	clear_env();
	setenv("T_NAME", "much-too-long", 1);
	setenv("T_COUNT", "12abc", 1);
	setenv("T_FLAG", "maybe", 1);
	setenv("T_TOKEN", "s3cret", 1);
	ck_assert_int_eq(bw_config_load(opts, N, &cfg, &probs), 3);
	ck_assert_ptr_nonnull(strstr(probs.text, "T_NAME: length 13 outside [1, 8]"));
	ck_assert_ptr_nonnull(strstr(probs.text, "T_COUNT: '12abc' is not a whole number"));
	ck_assert_ptr_nonnull(strstr(probs.text, "T_FLAG: 'maybe' is not a boolean"));
	ck_assert_ptr_null(strstr(probs.text, "s3cret"));
	bw_config_free(opts, N, &cfg);
	clear_env();
}
END_TEST

START_TEST(validator_problems_are_listed)
{
	struct demo_cfg cfg = { 0 };
	struct bw_config_problems probs = { 0, "" };

	clear_env();
	setenv("T_TOKEN", "x", 1);
	setenv("T_NAME", "abd", 1);
	ck_assert_int_eq(bw_config_load(opts, N, &cfg, &probs), 1);
	ck_assert_ptr_nonnull(strstr(probs.text, "T_NAME: only a, b and c are allowed"));
	bw_config_free(opts, N, &cfg);
	clear_env();
}
END_TEST

START_TEST(integer_range_is_checked)
{
	struct demo_cfg cfg = { 0 };
	struct bw_config_problems probs = { 0, "" };

	clear_env();
	setenv("T_TOKEN", "x", 1);
	setenv("T_COUNT", "101", 1);
	ck_assert_int_eq(bw_config_load(opts, N, &cfg, &probs), 1);
	ck_assert_ptr_nonnull(strstr(probs.text, "T_COUNT: '101' is not a whole number in [1, 100]"));
	bw_config_free(opts, N, &cfg);
	clear_env();
}
END_TEST

START_TEST(values_are_read_and_secrets_hidden_when_printed)
{
	struct demo_cfg cfg = { 0 };
	struct bw_config_problems probs = { 0, "" };
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	clear_env();
	setenv("T_NAME", "abc", 1);
	setenv("T_COUNT", "42", 1);
	setenv("T_FLAG", "yes", 1);
	setenv("T_TOKEN", "hunter2", 1);
	ck_assert_int_eq(bw_config_load(opts, N, &cfg, &probs), 0);
	ck_assert_str_eq(cfg.name, "abc");
	ck_assert_int_eq(cfg.count, 42);
	ck_assert_int_eq(cfg.flag, 1);
	ck_assert_str_eq(cfg.token, "hunter2");
	out = open_memstream(&buf, &len);
	bw_config_print(opts, N, &cfg, out);
	fclose(out);
	ck_assert_ptr_null(strstr(buf, "hunter2"));
	ck_assert_ptr_nonnull(strstr(buf, "\"T_TOKEN\":\"***\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"T_COUNT\":42"));
	free(buf);
	bw_config_free(opts, N, &cfg);
	clear_env();
}
END_TEST

START_TEST(parse_int64_rejects_garbage_and_overflow)
{
	int64_t v = 0;

	ck_assert_int_eq(bw_parse_int64("123", 0, 1000, &v), 0);
	ck_assert_int_eq(v, 123);
	ck_assert_int_eq(bw_parse_int64("", 0, 10, &v), -1);
	ck_assert_int_eq(bw_parse_int64(" 1", 0, 10, &v), -1);
	ck_assert_int_eq(bw_parse_int64("1 ", 0, 10, &v), -1);
	ck_assert_int_eq(bw_parse_int64("0x10", 0, 100, &v), -1);
	ck_assert_int_eq(bw_parse_int64("99999999999999999999", 0, INT64_MAX, &v), -1);
	ck_assert_int_eq(bw_parse_int64("-1", 0, 10, &v), -1);
	ck_assert_int_eq(bw_parse_int64("9223372036854775807", 0, INT64_MAX, &v), 0);
	ck_assert(v == INT64_MAX);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, defaults_apply_and_required_is_enforced);
	tcase_add_test(tc, every_problem_is_listed_at_once);
	tcase_add_test(tc, integer_range_is_checked);
	tcase_add_test(tc, validator_problems_are_listed);
	tcase_add_test(tc, values_are_read_and_secrets_hidden_when_printed);
	tcase_add_test(tc, parse_int64_rejects_garbage_and_overflow);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
