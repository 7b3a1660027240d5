/* Unit tests of shared/json_scan (the one-pass scan of usage events) against jansson, the
 * parser it replaces on the hot path: the same verdict on every input (json_loadb with
 * JSON_REJECT_DUPLICATES, a container at the root) and, for accepted ones, the same canonical
 * bytes (json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"
#include "testkit.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

/* Scans s[0..len) (max_depth deep) and checks it against jansson; returns whether the scan
 * accepted it (duplicate keys included). want_canon, when not NULL, is the canonical text. */
static int same_as_jansson(const char *s, size_t len, int max_depth, const char *want_canon)
{
	struct bw_json_scan sc;
	json_t *v = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
	int scanned = bw_json_scan((const unsigned char *)s, len, max_depth, &sc) == 0;
	char *text = NULL, *ours = NULL, *theirs = NULL;

	if (scanned) {
		text = malloc(len + 1);
		memcpy(text, s, len);
		bw_json_scan_decode(text, sc.tok, sc.n);
		ours = bw_json_tok_canonical_dump((const unsigned char *)s, text, sc.tok);
	}
	ck_assert_msg((v != NULL) == (ours != NULL), "%.*s: jansson %s, scan %s", (int)len, s,
		      v ? "accepts" : "refuses", ours ? "accepts" : "refuses");
	if (v) {
		theirs = json_dumps(v, DUMP_FLAGS);
		ck_assert_str_eq(ours, theirs);
	}
	if (want_canon)
		ck_assert_msg(ours && strcmp(ours, want_canon) == 0, "%s: got %s, want %s", s,
			      ours ? ours : "(refused)", want_canon);
	free(theirs);
	free(ours);
	free(text);
	bw_json_scan_cleanup(&sc);
	json_decref(v);
	return scanned && v;
}

static int same(const char *s, const char *want_canon)
{
	return same_as_jansson(s, strlen(s), 32, want_canon);
}

START_TEST(duplicate_keys_are_refused_at_every_depth)
{
	ck_assert(!same("{\"a\":1,\"a\":2}", NULL));
	ck_assert(!same("{\"a\":1,\"b\":2,\"a\":1}", NULL));
	ck_assert(!same("{\"x\":{\"a\":1,\"a\":1}}", NULL));
	ck_assert(!same("{\"x\":[{\"y\":{\"z\":{\"k\":1,\"k\":2}}}]}", NULL));
	ck_assert(!same("[{\"a\":1},{\"b\":1,\"b\":1}]", NULL));
	ck_assert(!same("{\"a\":1,\"\\u0061\":2}", NULL)); /* the same name, escaped */
	ck_assert(!same("{\"\":1,\"\":2}", NULL));
	ck_assert(same("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":1}]}", NULL));
	ck_assert(same("{\"ab\":1,\"a\":2,\"a\\u0000\":3}", NULL) == 0); /* \u0000: refused */
	ck_assert(same("{\"b\":1,\"a\":2,\"ab\":3,\"\":4}", "{\"\":4,\"a\":2,\"ab\":3,\"b\":1}"));
}
END_TEST

START_TEST(escapes_decode_as_jansson_does)
{
	ck_assert(same("{\"s\":\"\\ud83d\\ude00\"}", "{\"s\":\"\xf0\x9f\x98\x80\"}"));
	ck_assert(same("{\"s\":\"\\u00e9\\/\\\\\\\"\"}", "{\"s\":\"\xc3\xa9/\\\\\\\"\"}"));
	ck_assert(same("{\"s\":\"\\b\\f\\n\\r\\t\\u001f\\u007f\"}",
		       "{\"s\":\"\\b\\f\\n\\r\\t\\u001F\x7f\"}"));
	ck_assert(same("{\"\\u00e9\":\"\\uFFFF\",\"e\":1}", NULL));
	ck_assert(!same("{\"s\":\"\\ud83d\"}", NULL));          /* lone high surrogate */
	ck_assert(!same("{\"s\":\"\\ude00\"}", NULL));          /* lone low surrogate */
	ck_assert(!same("{\"s\":\"\\ud83d\\u0041\"}", NULL));   /* high, then not low */
	ck_assert(!same("{\"s\":\"\\ud83dx\"}", NULL));
	ck_assert(!same("{\"s\":\"\\ude00\\ud83d\"}", NULL));   /* reversed pair */
	ck_assert(!same("{\"s\":\"\\u0000\"}", NULL));
	ck_assert(!same("{\"s\":\"\\u12\"}", NULL));
	ck_assert(!same("{\"s\":\"\\u12G4\"}", NULL));
	ck_assert(!same("{\"s\":\"\\x\"}", NULL));
	ck_assert(!same("{\"s\":\"\\\"}", NULL));
	ck_assert(!same("{\"s\":\"a\tb\"}", NULL));             /* raw control character */
	ck_assert(!same_as_jansson("{\"s\":\"a\0b\"}", 9, 32, NULL));
}
END_TEST

START_TEST(utf8_is_checked_as_jansson_does)
{
	ck_assert(same("{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}", NULL));
	ck_assert(same("{\"s\":\"\xef\xbf\xbe\"}", NULL));       /* U+FFFE: a noncharacter */
	ck_assert(!same("{\"s\":\"\xff\"}", NULL));
	ck_assert(!same("{\"s\":\"\xc0\x80\"}", NULL));          /* overlong */
	ck_assert(!same("{\"s\":\"\xe0\x80\xaf\"}", NULL));      /* overlong */
	ck_assert(!same("{\"s\":\"\xed\xa0\x80\"}", NULL));      /* encoded surrogate */
	ck_assert(!same("{\"s\":\"\xf4\x90\x80\x80\"}", NULL));  /* above U+10FFFF */
	ck_assert(!same("{\"s\":\"\xc3\"}", NULL));              /* truncated */
	ck_assert(!same("{\"s\":\"\x80\"}", NULL));              /* lone continuation */
	ck_assert(!same("{\"\xc3\xa9\":1,\xc3\xa9:2}", NULL));   /* outside a string */
}
END_TEST

START_TEST(numbers_read_and_dump_as_jansson_does)
{
	ck_assert(same("{\"n\":-0}", "{\"n\":0}"));
	ck_assert(same("{\"n\":-0.0}", "{\"n\":-0.0}"));
	ck_assert(same("{\"n\":1e5}", "{\"n\":100000.0}"));
	ck_assert(same("{\"n\":1E+2}", "{\"n\":100.0}"));
	ck_assert(same("{\"n\":0.1}", NULL));
	ck_assert(same("{\"n\":1e-400}", "{\"n\":0.0}"));         /* underflow reads 0 */
	ck_assert(same("{\"n\":9223372036854775807}", "{\"n\":9223372036854775807}"));
	ck_assert(same("{\"n\":-9223372036854775808}", "{\"n\":-9223372036854775808}"));
	ck_assert(!same("{\"n\":9223372036854775808}", NULL));
	ck_assert(!same("{\"n\":-9223372036854775809}", NULL));
	ck_assert(!same("{\"n\":99999999999999999999}", NULL));
	ck_assert(same("{\"n\":99999999999999999999.0}", NULL));
	ck_assert(!same("{\"n\":1e400}", NULL));                  /* overflow */
	ck_assert(!same("{\"n\":-1e400}", NULL));
	ck_assert(!same("{\"n\":01}", NULL));
	ck_assert(!same("{\"n\":-01}", NULL));
	ck_assert(!same("{\"n\":1.}", NULL));
	ck_assert(!same("{\"n\":.5}", NULL));
	ck_assert(!same("{\"n\":-}", NULL));
	ck_assert(!same("{\"n\":+1}", NULL));
	ck_assert(!same("{\"n\":1e}", NULL));
	ck_assert(!same("{\"n\":1e+}", NULL));
	ck_assert(!same("{\"n\":0x10}", NULL));
	ck_assert(!same("{\"n\":NaN}", NULL));
	ck_assert(!same("{\"n\":Infinity}", NULL));
	ck_assert(same("[0,-1,12,3.25e-3,true,false,null]", "[0,-1,12,0.0032499999999999999,true,"
							 "false,null]"));
}
END_TEST

START_TEST(only_one_container_with_whitespace_around_it)
{
	ck_assert(same(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n ", "{\"a\":[1,2]}"));
	ck_assert(same("[]", "[]"));
	ck_assert(same("{}", "{}"));
	ck_assert(!same("", NULL));
	ck_assert(!same("   ", NULL));
	ck_assert(!same("\xef\xbb\xbf{}", NULL));                  /* BOM */
	ck_assert(!same("{}x", NULL));
	ck_assert(!same("{} {}", NULL));
	ck_assert(!same("{},", NULL));
	ck_assert(!same("\"s\"", NULL));
	ck_assert(!same("1", NULL));
	ck_assert(!same("null", NULL));
	ck_assert(!same("{\"a\":1,}", NULL));
	ck_assert(!same("[1,]", NULL));
	ck_assert(!same("{\"a\"}", NULL));
	ck_assert(!same("{\"a\" 1}", NULL));
	ck_assert(!same("{a:1}", NULL));
	ck_assert(!same("{\"a\":tru}", NULL));
	ck_assert(!same("{\"a\":truex}", NULL));
	ck_assert(!same("{\"a\":nul}", NULL));
	ck_assert(!same("{\"a\":1", NULL));
	ck_assert(!same("{\"a\":\"x", NULL));
	ck_assert(!same("[[", NULL));
	ck_assert(!same("{\"a\":[}", NULL));
	ck_assert(!same("{\"a\":{]}", NULL));
	ck_assert(!same_as_jansson("{}\0", 3, 32, NULL));
	/* jansson skips one NUL right after a number or a literal (and only there) */
	ck_assert(same_as_jansson("[1,2\0,3]", 8, 32, "[1,2,3]"));
	ck_assert(same_as_jansson("{\"a\":true\0,\"b\":1.5\0}", 20, 32, "{\"a\":true,\"b\":1.5}"));
	ck_assert(!same_as_jansson("[1\0\0]", 5, 32, NULL));
	ck_assert(!same_as_jansson("[\"x\"\0]", 6, 32, NULL));
	ck_assert(!same_as_jansson("[\0 1]", 5, 32, NULL));
	ck_assert(!same_as_jansson("[1\0" "2]", 5, 32, NULL));
}
END_TEST

/* n levels of arrays inside the root object: {"d":[[...]]} is n + 1 levels deep. */
static char *nested(int levels)
{
	char *s = malloc((size_t)levels * 2 + 16);
	size_t n = 0;

	n += (size_t)sprintf(s, "{\"d\":");
	for (int i = 1; i < levels; i++)
		s[n++] = '[';
	for (int i = 1; i < levels; i++)
		s[n++] = ']';
	s[n++] = '}';
	s[n] = '\0';
	return s;
}

START_TEST(nesting_is_refused_beyond_the_limit)
{
	struct bw_json_scan sc;
	char *at = nested(16), *over = nested(17), *deep = nested(3000);

	ck_assert_int_eq(bw_json_scan((const unsigned char *)at, strlen(at), 16, &sc), 0);
	ck_assert_int_eq(sc.n, 17);  /* the object, its key, 15 arrays */
	ck_assert_int_eq(sc.tok[0].end, 17);
	ck_assert_int_eq(sc.tok[16].type, BW_JT_ARRAY);
	bw_json_scan_cleanup(&sc);
	ck_assert_int_eq(bw_json_scan((const unsigned char *)over, strlen(over), 16, &sc), -1);
	bw_json_scan_cleanup(&sc);
	ck_assert_int_eq(bw_json_scan((const unsigned char *)deep, strlen(deep), 16, &sc), -1);
	bw_json_scan_cleanup(&sc);
	ck_assert(same_as_jansson(over, strlen(over), 17, NULL));
	free(at);
	free(over);
	free(deep);
}
END_TEST

START_TEST(tokens_describe_the_values)
{
	const char *s = "{\"a\":[1,{\"b\":\"x\\ny\"}],\"c\":-5,\"d\":2.5}";
	struct bw_json_scan sc;
	char *text;

	ck_assert_int_eq(bw_json_scan((const unsigned char *)s, strlen(s), 16, &sc), 0);
	text = strdup(s);
	bw_json_scan_decode(text, sc.tok, sc.n);
	/* { a [ 1 { b "x\ny" } ] c -5 d 2.5 } */
	ck_assert_int_eq(sc.n, 11);
	ck_assert_int_eq(sc.tok[0].n, 3);
	ck_assert_int_eq(sc.tok[0].end, 11);
	ck_assert(sc.tok[1].flags & BW_JT_KEY);
	ck_assert(bw_json_tok_eq(text, &sc.tok[1], "a", 1));
	ck_assert_int_eq(sc.tok[2].type, BW_JT_ARRAY);
	ck_assert_int_eq(sc.tok[2].n, 2);
	ck_assert_int_eq(sc.tok[2].end, 7);
	ck_assert_int_eq(sc.tok[3].v.i, 1);
	ck_assert_int_eq(sc.tok[6].n, 3);
	ck_assert_str_eq(text + sc.tok[6].start, "x\ny");
	ck_assert_int_eq(sc.tok[8].v.i, -5);
	ck_assert(sc.tok[10].type == BW_JT_REAL && sc.tok[10].v.d == 2.5);
	ck_assert_int_eq(bw_json_scan_names_storable(text, sc.tok, sc.n), 0);
	free(text);
	bw_json_scan_cleanup(&sc);
}
END_TEST

START_TEST(many_values_grow_past_the_inline_tokens)
{
	enum { N = 5000 };
	char *s = malloc(N * 16 + 16), *p = s;

	p += sprintf(p, "{");
	for (int i = 0; i < N; i++)
		p += sprintf(p, "%s\"k%d\":[%d]", i ? "," : "", N - i, i);
	sprintf(p, "}");
	ck_assert(same(s, NULL));
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json_scan");
	TCase *tc = tcase_create("scan");

	tcase_add_test(tc, duplicate_keys_are_refused_at_every_depth);
	tcase_add_test(tc, escapes_decode_as_jansson_does);
	tcase_add_test(tc, utf8_is_checked_as_jansson_does);
	tcase_add_test(tc, numbers_read_and_dump_as_jansson_does);
	tcase_add_test(tc, only_one_container_with_whitespace_around_it);
	tcase_add_test(tc, nesting_is_refused_beyond_the_limit);
	tcase_add_test(tc, tokens_describe_the_values);
	tcase_add_test(tc, many_values_grow_past_the_inline_tokens);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
