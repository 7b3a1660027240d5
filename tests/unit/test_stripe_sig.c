/* Unit tests of shared/stripe_sig: table-driven vectors from tests/data/stripe_sig/vectors.txt
 * (signatures computed with `openssl dgst -sha256 -hmac` by gen_vectors.sh, independently of
 * the code under test), plus properties the table cannot express. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "stripe_sig.h"
#include "testkit.h"

#define MAX_VECTORS 128
#define VEC_DIR BW_TEST_DATA_DIR "/stripe_sig"

struct vector {
	char name[64];
	char expect[64];
	int64_t now;
	int64_t tolerance;
	char *secrets;
	char *header; /* NULL: no header */
	unsigned char *body;
	size_t body_len;
	size_t header_pad;
};

static struct vector vectors[MAX_VECTORS];
static int nvectors;

/* The loader runs before Check does, so its failures exit the program directly. */
#define LOAD_CHECK(cond, ...)                                 \
	do {                                                  \
		if (!(cond)) {                                \
			fprintf(stderr, __VA_ARGS__);         \
			fputc('\n', stderr);                  \
			exit(EXIT_FAILURE);                   \
		}                                             \
	} while (0)

static char *dup_str(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);
	LOAD_CHECK(d != NULL, "out of memory");
	memcpy(d, s, n + 1);
	return d;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(1 << 20);
	LOAD_CHECK(f != NULL, "cannot open %s", path);
	LOAD_CHECK(buf != NULL, "out of memory");
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

/* Parses vectors.txt: "[name]" starts a vector, then key=value lines (value to end of line). */
static void load_vectors(void)
{
	FILE *f = fopen(VEC_DIR "/vectors.txt", "r");
	static char line[20000];
	struct vector *v = NULL;

	LOAD_CHECK(f != NULL, "cannot open vectors.txt");
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (line[0] == '[') {
			LOAD_CHECK(nvectors < MAX_VECTORS, "more than %d vectors", MAX_VECTORS);
			v = &vectors[nvectors++];
			memset(v, 0, sizeof(*v));
			snprintf(v->name, sizeof(v->name), "%.*s", (int)(n - 2), line + 1);
			continue;
		}
		char *eq = strchr(line, '=');
		LOAD_CHECK(v && eq, "bad line in vectors.txt: %s", line);
		*eq = '\0';
		const char *key = line, *val = eq + 1;
		if (!strcmp(key, "expect"))
			snprintf(v->expect, sizeof(v->expect), "%s", val);
		else if (!strcmp(key, "now"))
			LOAD_CHECK(bw_parse_int64(val, 0, INT64_MAX / 2, &v->now) == 0,
				   "[%s] bad now", v->name);
		else if (!strcmp(key, "tolerance"))
			LOAD_CHECK(bw_parse_int64(val, 0, 86400, &v->tolerance) == 0,
				   "[%s] bad tolerance", v->name);
		else if (!strcmp(key, "secrets"))
			v->secrets = dup_str(val);
		else if (!strcmp(key, "header"))
			v->header = dup_str(val);
		else if (!strcmp(key, "body")) {
			v->body = (unsigned char *)dup_str(val);
			v->body_len = strlen(val);
		} else if (!strcmp(key, "body_file")) {
			char path[512];
			snprintf(path, sizeof(path), "%s/%s", VEC_DIR, val);
			v->body = read_file(path, &v->body_len);
		} else if (!strcmp(key, "header_pad")) {
			int64_t pad;
			LOAD_CHECK(bw_parse_int64(val, 1, 100000, &pad) == 0,
				   "[%s] bad header_pad", v->name);
			v->header_pad = (size_t)pad;
		} else
			LOAD_CHECK(0, "unknown key %s", key);
	}
	fclose(f);
	/* header_pad: append ",x=aaa..." so the header is longer than the pad. */
	for (int i = 0; i < nvectors; i++) {
		struct vector *p = &vectors[i];
		if (!p->header_pad)
			continue;
		size_t hl = strlen(p->header), total = p->header_pad + 16;
		char *h = malloc(total + 1);
		LOAD_CHECK(h != NULL, "out of memory");
		memcpy(h, p->header, hl);
		memcpy(h + hl, ",x=", 3);
		memset(h + hl + 3, 'a', total - hl - 3);
		h[total] = '\0';
		free(p->header);
		p->header = h;
	}
}

static void free_vectors(void)
{
	for (int i = 0; i < nvectors; i++) {
		free(vectors[i].secrets);
		free(vectors[i].header);
		free(vectors[i].body);
	}
	nvectors = 0;
}

START_TEST(vector_gives_expected_result)
{
	const struct vector *v = &vectors[_i];
	int64_t t = 0;
	enum bw_stripe_sig_result r = bw_stripe_sig_verify(
		v->header, v->body ? v->body : (const unsigned char *)"", v->body_len, v->secrets,
		v->tolerance, v->now, &t);

	ck_assert_msg(!strcmp(bw_stripe_sig_result_name(r), v->expect),
		      "vector [%s]: got %s, expected %s", v->name, bw_stripe_sig_result_name(r),
		      v->expect);
}
END_TEST

START_TEST(vector_file_covers_every_result)
{
	const char *needed[] = { "ok", "signature_missing", "signature_malformed",
				 "signature_no_v1", "timestamp_outside_tolerance",
				 "signature_mismatch" };

	ck_assert_int_ge(nvectors, 30);
	for (size_t k = 0; k < sizeof(needed) / sizeof(needed[0]); k++) {
		int seen = 0;
		for (int i = 0; i < nvectors; i++)
			seen |= !strcmp(vectors[i].expect, needed[k]);
		ck_assert_msg(seen, "no vector expects %s", needed[k]);
	}
}
END_TEST

/* The signer agrees with openssl on the recorded [valid] vector (independent computation). */
START_TEST(sign_matches_openssl_recorded_hex)
{
	const struct vector *v = NULL;
	char hex[65];

	for (int i = 0; i < nvectors; i++)
		if (!strcmp(vectors[i].name, "valid"))
			v = &vectors[i];
	ck_assert(v != NULL);
	ck_assert_int_eq(bw_stripe_sig_sign(v->secrets, strlen(v->secrets), v->now, v->body,
					    v->body_len, hex),
			 0);
	ck_assert_str_eq(hex, "6d3bb21366d6cfa52d75fecf6ffec8b324424bf94f3f34ece0b829a9b5109c81");
	ck_assert_ptr_nonnull(strstr(v->header, hex));
}
END_TEST

START_TEST(non_ascii_and_control_bytes_are_malformed)
{
	const char *body = "{}";
	const char *secret = "whsec_x";
	char hex[65], header[128];

	ck_assert_int_eq(bw_stripe_sig_sign(secret, strlen(secret), 100, (const void *)body, 2, hex),
			 0);
	snprintf(header, sizeof(header), "t=100,v1=%s\x80", hex);
	ck_assert_int_eq(bw_stripe_sig_verify(header, (const void *)body, 2, secret, 300, 100, NULL),
			 BW_SIG_MALFORMED_HEADER);
	snprintf(header, sizeof(header), "t=100,\tv1=%s", hex);
	ck_assert_int_eq(bw_stripe_sig_verify(header, (const void *)body, 2, secret, 300, 100, NULL),
			 BW_SIG_MALFORMED_HEADER);
	snprintf(header, sizeof(header), "t=100,v1=%s", hex);
	ck_assert_int_eq(bw_stripe_sig_verify(header, (const void *)body, 2, secret, 300, 100, NULL),
			 BW_SIG_OK);
}
END_TEST

START_TEST(timestamp_is_reported_and_secrets_list_may_be_empty)
{
	const char *body = "{}";
	char hex[65], header[128];
	int64_t t = 0;

	ck_assert_int_eq(bw_stripe_sig_sign("whsec_a", 7, 1234, (const void *)body, 2, hex), 0);
	snprintf(header, sizeof(header), "t=1234,v1=%s", hex);
	ck_assert_int_eq(bw_stripe_sig_verify(header, (const void *)body, 2, "", 300, 1234, &t),
			 BW_SIG_NO_MATCH);
	ck_assert_int_eq(t, 1234);
	ck_assert_int_eq(bw_stripe_sig_verify(header, (const void *)body, 2, NULL, 300, 1234, &t),
			 BW_SIG_NO_MATCH);
	ck_assert_int_eq(bw_stripe_sig_verify("nonsense", (const void *)body, 2, "whsec_a", 300,
					      1234, &t),
			 BW_SIG_MALFORMED_HEADER);
	ck_assert_int_eq(t, -1);
}
END_TEST

/* A header at the limit full of v1 items is refused without reading past it. */
START_TEST(too_many_v1_values_are_malformed)
{
	char header[4096];
	size_t n = (size_t)snprintf(header, sizeof(header), "t=1");

	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(header + n, sizeof(header) - n, ",v1=%064d", i);
	ck_assert_int_eq(bw_stripe_sig_verify(header, (const void *)"{}", 2, "whsec_a", 300, 1,
					      NULL),
			 BW_SIG_MALFORMED_HEADER);
}
END_TEST

static Suite *stripe_sig_suite(void)
{
	Suite *s = suite_create("stripe_sig");
	TCase *tc = tcase_create("vectors");

	tcase_add_loop_test(tc, vector_gives_expected_result, 0, nvectors);
	tcase_add_test(tc, vector_file_covers_every_result);
	tcase_add_test(tc, sign_matches_openssl_recorded_hex);
	suite_add_tcase(s, tc);
	tc = tcase_create("parsing");
	tcase_add_test(tc, non_ascii_and_control_bytes_are_malformed);
	tcase_add_test(tc, timestamp_is_reported_and_secrets_list_may_be_empty);
	tcase_add_test(tc, too_many_v1_values_are_malformed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int rc;

	load_vectors();
	rc = tk_run_suite(stripe_sig_suite());
	free_vectors();
	return rc;
}
