/* Unit tests of usage-event parsing against the fixture files the JSON Schema is also checked
 * with (tests/data/usage_events/{valid,invalid}), plus specific reasons. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "testkit.h"
#include "usage_event.h"

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static int check_dir(const char *sub, int expect_ok)
{
	char dir[512], path[1024];
	DIR *d;
	struct dirent *e;
	int count = 0;

	snprintf(dir, sizeof(dir), "%s/usage_events/%s", BW_TEST_DATA_DIR, sub);
	d = opendir(dir);
	ck_assert_msg(d != NULL, "opendir %s", dir);
	while ((e = readdir(d))) {
		struct bw_usage_event ev;
		struct bw_err err;
		size_t len;
		char *buf;

		if (!strstr(e->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		buf = read_file(path, &len);
		bw_err_clear(&err);
		int rc = bw_usage_event_parse((unsigned char *)buf, len, 65536, &ev, NULL, NULL, &err);
		ck_assert_msg((rc == 0) == expect_ok, "%s: rc=%d %s", e->d_name, rc, err.msg);
		if (rc != 0)
			ck_assert_msg(err.kind == BW_ERR_INVALID && err.msg[0], "%s: no reason", e->d_name);
		bw_usage_event_cleanup(&ev);
		free(buf);
		count++;
	}
	closedir(d);
	return count;
}

START_TEST(valid_fixtures_parse)
{
	ck_assert_int_ge(check_dir("valid", 1), 4);
}
END_TEST

START_TEST(invalid_fixtures_are_refused_with_a_reason)
{
	ck_assert_int_ge(check_dir("invalid", 0), 10);
}
END_TEST

static void expect_reason(const char *json, const char *reason)
{
	struct bw_usage_event ev;
	struct bw_err err;
	char *eid = NULL, *oid = NULL;

	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)json, strlen(json), 65536, &ev,
					      &eid, &oid, &err), -1);
	ck_assert_msg(strstr(err.msg, reason), "got '%s', want '%s'", err.msg, reason);
	free(eid);
	free(oid);
}

START_TEST(reasons_name_the_field)
{
	expect_reason("{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":0,\"operation\":\"x\","
		      "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\"}",
		      "'spus' = 0 is outside");
	expect_reason("{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1.5,\"operation\":\"x\","
		      "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\"}",
		      "'spus' must be an integer");
	expect_reason("{\"org_id\":\"o\",\"spus\":1}", "'event_id' is required");
	expect_reason("{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
		      "\"source\":\"y\",\"timestamp\":\"noon\"}",
		      "'timestamp' is not an RFC 3339");
}
END_TEST

START_TEST(ids_of_a_rejected_event_are_reported)
{
	const char *json = "{\"event_id\":\"e9\",\"org_id\":\"o9\",\"spus\":-1}";
	struct bw_usage_event ev;
	struct bw_err err;
	char *eid = NULL, *oid = NULL;

	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)json, strlen(json), 65536, &ev,
					      &eid, &oid, &err), -1);
	ck_assert_str_eq(eid, "e9");
	ck_assert_str_eq(oid, "o9");
	free(eid);
	free(oid);
}
END_TEST

START_TEST(unstorable_names_and_deep_nesting_are_refused)
{
	char deep[1024];
	size_t n;

	expect_reason("{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
		      "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"x\":[{\"$gt\":1}]}",
		      "field name '$gt'");
	expect_reason("{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
		      "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"a.b\":1}",
		      "field name 'a.b'");
	n = (size_t)snprintf(deep, sizeof(deep),
			     "{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
			     "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"d\":");
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "[");
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "]");
	snprintf(deep + n, sizeof(deep) - n, "}");
	expect_reason(deep, "nests deeper than 16");
}
END_TEST

START_TEST(oversized_event_is_refused)
{
	const char *json = "{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
			   "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\"}";
	struct bw_usage_event ev;
	struct bw_err err;

	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)json, strlen(json), 64, &ev,
					      NULL, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "exceeds the limit"));
}
END_TEST

/* Running out of memory is not the event's fault: a TRANSIENT error (the batch is retried),
 * never INVALID (that would dead-letter a good event and store its offset: never charged). */
START_TEST(out_of_memory_is_transient_not_a_refusal)
{
	const char *json = "{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
			   "\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\"}";
	struct bw_usage_event ev;
	struct bw_err err;

	setenv("BW_FAULT_FAIL", "usage_event_alloc", 1);
	ck_assert_int_eq(bw_fault_init(), 0);
	bw_err_clear(&err);
	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)json, strlen(json), 4096, &ev,
					      NULL, NULL, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	unsetenv("BW_FAULT_FAIL");
	ck_assert_int_eq(bw_fault_init(), 0);
	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)json, strlen(json), 4096, &ev,
					      NULL, NULL, &err), 0);
	bw_usage_event_cleanup(&ev);
}
END_TEST

START_TEST(same_content_same_hash_different_content_different_hash)
{
	const char *a = "{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":1,\"operation\":\"x\","
			"\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\"}";
	const char *b = "{\"timestamp\":\"2026-01-01T00:00:00Z\",\"source\":\"y\",\"operation\":\"x\","
			"\"spus\":1,\"org_id\":\"o\",\"event_id\":\"e\"}";
	const char *c = "{\"event_id\":\"e\",\"org_id\":\"o\",\"spus\":2,\"operation\":\"x\","
			"\"source\":\"y\",\"timestamp\":\"2026-01-01T00:00:00Z\"}";
	struct bw_usage_event ea, eb, ec;
	struct bw_err err;

	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)a, strlen(a), 4096, &ea, NULL,
					      NULL, &err), 0);
	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)b, strlen(b), 4096, &eb, NULL,
					      NULL, &err), 0);
	ck_assert_int_eq(bw_usage_event_parse((const unsigned char *)c, strlen(c), 4096, &ec, NULL,
					      NULL, &err), 0);
	ck_assert_str_eq(ea.hash, eb.hash);
	ck_assert_str_ne(ea.hash, ec.hash);
	ck_assert_int_eq(ec.spus, 2);
	bw_usage_event_cleanup(&ea);
	bw_usage_event_cleanup(&eb);
	bw_usage_event_cleanup(&ec);
}
END_TEST


/* An event with the required fields before extra (a JSON fragment starting with ','). */
#define EV_HEAD "{\"event_id\":\"e\",\"org_id\":\"o\",\"operation\":\"x\",\"source\":\"y\"," \
		"\"timestamp\":\"2026-01-01T00:00:00Z\""
#define EV(extra) EV_HEAD ",\"spus\":1" extra "}"

static void sha256_hex(const char *s, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	ck_assert(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) == 1 && n == 32);
	for (unsigned int i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* The one-pass parse gives every input the verdict and reason the jansson-based parser gave
 * (the reasons below are its texts), and an accepted event the hash of jansson's dump. */
START_TEST(scan_keeps_the_verdicts_and_reasons_of_the_jansson_parser)
{
	static const struct {
		const char *json;
		size_t len;        /* 0: strlen */
		const char *reason; /* NULL: accepted */
	} cases[] = {
		{ EV(""), 0, NULL },
		{ EV(",\"x\":{\"a\":1,\"a\":2}"), 0, "duplicate object key" },
		{ EV(",\"x\":[{\"y\":{\"k\":1,\"k\":1}}]"), 0, "duplicate object key" },
		{ EV(",\"org_id\":\"o2\""), 0, "duplicate object key" },
		{ EV(",\"o\":1,\"\\u006f\":2"), 0, "duplicate object key" },
		{ EV(",\"s\":\"\\ud83d\\ude00\\u00e9\\/\""), 0, NULL },
		{ EV(",\"s\":\"\\ud83d\""), 0, "invalid Unicode" },
		{ EV(",\"s\":\"\\ude00\""), 0, "invalid Unicode" },
		{ EV(",\"s\":\"\\u0000\""), 0, "\\u0000 is not allowed" },
		{ EV(",\"s\":\"\xed\xa0\x80\""), 0, "malformed JSON" },
		{ EV(",\"n\":-0"), 0, NULL },
		{ EV(",\"n\":1e5"), 0, NULL },
		{ EV(",\"n\":9223372036854775807"), 0, NULL },
		{ EV(",\"n\":9223372036854775808"), 0, "too big integer" },
		{ EV(",\"n\":-9223372036854775809"), 0, "too big negative integer" },
		{ EV(",\"n\":1e999"), 0, "real number overflow" },
		{ EV(",\"n\":01"), 0, "invalid token" },
		{ EV_HEAD ",\"spus\":-0}", 0, "'spus' = 0 is outside" },
		{ EV_HEAD ",\"spus\":1e5}", 0, "'spus' must be an integer" },
		{ EV_HEAD ",\"spus\":9223372036854775807}", 0, NULL },
		{ EV_HEAD ",\"spus\":9223372036854775808}", 0, "too big integer" },
		{ EV_HEAD ",\"spus\":null}", 0, "'spus' is required" },
		{ EV(",\"actual_cost\":-0.0"), 0, NULL },
		{ EV(",\"actual_cost\":-1e-400"), 0, NULL },
		{ EV(",\"actual_cost\":-1"), 0, "'actual_cost' must be >= 0" },
		{ EV(",\"actual_cost\":\"1\""), 0, "'actual_cost' must be a number" },
		{ EV(",\"llm_model\":\"\""), 0, "'llm_model' must not be empty" },
		{ EV(",\"llm_model\":null,\"prompt_tokens\":null"), 0, NULL },
		{ EV(",\"prompt_tokens\":1.0"), 0, "'prompt_tokens' must be an integer" },
		{ EV(",\"total_tokens\":-1"), 0, "'total_tokens' = -1 is outside" },
		{ EV(",\"\":1"), 0, "field name '' is empty" },
		{ EV(",\"x\":{\"a.b\":1}"), 0, "field name 'a.b'" },
		{ EV(",\"x\":[[{\"$set\":1}]]"), 0, "field name '$set'" },
		{ EV(",\"x\":\"\\u0024\""), 0, NULL },
		{ "{\"timestamp\":\"2026-01-01T00:00:00Z\",\"source\":\"y\",\"operation\":\"x\","
		  "\"spus\":1,\"org_id\":\"o\",\"event_id\":\"\\u0065\"}", 0, NULL },
		{ EV("") "x", 0, "end of file expected" },
		{ EV("") " \n", 0, NULL },
		{ "\xef\xbb\xbf" EV(""), 0, "'[' or '{' expected" },
		{ "", 0, "empty message" },
		{ "  ", 0, "malformed JSON" },
		{ "[1]", 0, "not an object" },
		{ EV("") "\0", sizeof(EV("")), "malformed JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].json);
		struct bw_usage_event ev;
		struct bw_err err;
		char *eid = NULL, *oid = NULL;
		int rc;

		bw_err_clear(&err);
		rc = bw_usage_event_parse((const unsigned char *)cases[i].json, len, 65536, &ev,
					  &eid, &oid, &err);
		if (cases[i].reason) {
			ck_assert_msg(rc == -1, "case %zu accepted", i);
			ck_assert_msg(strstr(err.msg, cases[i].reason), "case %zu: '%s', want '%s'",
				      i, err.msg, cases[i].reason);
		} else {
			json_t *v = json_loadb(cases[i].json, len, JSON_REJECT_DUPLICATES, NULL);
			char *dump = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
			char want[65];
			ck_assert_msg(rc == 0, "case %zu: %s", i, err.msg);
			sha256_hex(dump, want);
			ck_assert_str_eq(ev.hash, want);
			ck_assert_str_eq(ev.event_id, eid);
			ck_assert_str_eq(ev.org_id, oid);
			free(dump);
			json_decref(v);
		}
		bw_usage_event_cleanup(&ev);
		free(eid);
		free(oid);
	}
}
END_TEST

/* {"d":[[...]]}: levels counted from the event object (1). */
static void nested_event(char *buf, size_t size, int levels)
{
	size_t n = (size_t)snprintf(buf, size, "%s", EV_HEAD ",\"spus\":1,\"d\":");
	for (int i = 1; i < levels; i++)
		buf[n++] = '[';
	for (int i = 1; i < levels; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	buf[n] = '\0';
}

START_TEST(nesting_up_to_the_limit_is_kept)
{
	char buf[8192];
	struct bw_usage_event ev;
	struct bw_err err;

	nested_event(buf, sizeof(buf), BW_USAGE_MAX_DEPTH);
	ck_assert_int_eq(bw_usage_event_parse((unsigned char *)buf, strlen(buf), 65536, &ev, NULL,
					      NULL, &err), 0);
	bw_usage_event_cleanup(&ev);
	nested_event(buf, sizeof(buf), BW_USAGE_MAX_DEPTH + 1);
	ck_assert_int_eq(bw_usage_event_parse((unsigned char *)buf, strlen(buf), 65536, &ev, NULL,
					      NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "nests deeper than 16"));
	nested_event(buf, sizeof(buf), 3000);
	ck_assert_int_eq(bw_usage_event_parse((unsigned char *)buf, strlen(buf), 65536, &ev, NULL,
					      NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "maximum parsing depth"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_event");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, valid_fixtures_parse);
	tcase_add_test(tc, invalid_fixtures_are_refused_with_a_reason);
	tcase_add_test(tc, reasons_name_the_field);
	tcase_add_test(tc, ids_of_a_rejected_event_are_reported);
	tcase_add_test(tc, oversized_event_is_refused);
	tcase_add_test(tc, unstorable_names_and_deep_nesting_are_refused);
	tcase_add_test(tc, same_content_same_hash_different_content_different_hash);
	tcase_add_test(tc, scan_keeps_the_verdicts_and_reasons_of_the_jansson_parser);
	tcase_add_test(tc, nesting_up_to_the_limit_is_kept);
	tcase_add_test(tc, out_of_memory_is_transient_not_a_refusal);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
