/* Guard of the constant-time signature compare in shared/stripe_sig.c (issue 11).
 *
 * Deterministic, no timing: this program defines CRYPTO_memcmp itself, so the verifier (linked
 * statically from bw_shared) calls this definition instead of libcrypto's. It records every
 * compare that touches a v1 value of the header, then forwards to OpenSSL's. The tests fail
 * when the verifier stops comparing with CRYPTO_memcmp over the whole 64-character digest, or
 * stops comparing every v1 value (an early exit at the first match, or at a mismatching
 * prefix, leaks where and how much matched). A source check makes sure no other compare
 * (memcmp, strcmp, strncmp, bcmp) appears in the verifier. */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stripe_sig.h"
#include "testkit.h"

#define MAX_CALLS 64

static struct {
	const void *a, *b;
	size_t len;
} calls[MAX_CALLS];
static int ncalls;
static const char *watch_lo, *watch_hi; /* the header under test */

static int in_header(const void *p)
{
	const char *c = p;
	return watch_lo && c >= watch_lo && c < watch_hi;
}

int CRYPTO_memcmp(const void *a, const void *b, size_t len)
{
	static int (*real)(const void *, const void *, size_t);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "CRYPTO_memcmp");
	if ((in_header(a) || in_header(b)) && ncalls < MAX_CALLS) {
		calls[ncalls].a = a;
		calls[ncalls].b = b;
		calls[ncalls].len = len;
		ncalls++;
	}
	return real(a, b, len);
}

#define SECRET "whsec_constant_time_guard"
#define BODY "{\"id\":\"evt_ct\",\"type\":\"invoice.paid\"}"
#define T 1700000000

static enum bw_stripe_sig_result verify(const char *header, const char *secrets)
{
	ncalls = 0;
	watch_lo = header;
	watch_hi = header + strlen(header);
	enum bw_stripe_sig_result r = bw_stripe_sig_verify(header, (const unsigned char *)BODY,
							   strlen(BODY), secrets, 300, T, NULL);
	watch_lo = watch_hi = NULL;
	return r;
}

/* Asserts one full-length CRYPTO_memcmp per (v1 value, secret) pair, in any order. */
static void assert_each_v1_compared(const char *header, int nsecrets)
{
	int nv1 = 0;

	for (const char *p = strstr(header, "v1="); p; p = strstr(p + 1, "v1=")) {
		int seen = 0;
		for (int k = 0; k < ncalls; k++) {
			if (calls[k].a == p + 3 || calls[k].b == p + 3) {
				ck_assert_uint_eq(calls[k].len, 64);
				seen++;
			}
		}
		ck_assert_msg(seen == nsecrets, "v1 #%d compared %d times, want %d", nv1, seen,
			      nsecrets);
		nv1++;
	}
	ck_assert_int_eq(ncalls, nv1 * nsecrets);
}

static void sign(const char *secret, char hex[65])
{
	ck_assert_int_eq(bw_stripe_sig_sign(secret, strlen(secret), T,
					    (const unsigned char *)BODY, strlen(BODY), hex), 0);
}

/* The matching value first, in the middle, last, and missing: the same compares each time. */
START_TEST(every_v1_compared_full_length)
{
	char good[65], bad[65], header[512];

	sign(SECRET, good);
	memcpy(bad, good, sizeof(bad));
	bad[63] = bad[63] == '0' ? '1' : '0'; /* differs only in the last character */

	snprintf(header, sizeof(header), "t=%d,v1=%s,v1=%s,v1=%s", T, good, bad, bad);
	ck_assert_int_eq(verify(header, SECRET), BW_SIG_OK);
	assert_each_v1_compared(header, 1);

	snprintf(header, sizeof(header), "t=%d,v1=%s,v1=%s,v1=%s", T, bad, good, bad);
	ck_assert_int_eq(verify(header, SECRET), BW_SIG_OK);
	assert_each_v1_compared(header, 1);

	snprintf(header, sizeof(header), "t=%d,v1=%s,v1=%s,v1=%s", T, bad, bad, good);
	ck_assert_int_eq(verify(header, SECRET), BW_SIG_OK);
	assert_each_v1_compared(header, 1);

	snprintf(header, sizeof(header), "t=%d,v1=%s,v1=%s,v1=%s", T, bad, bad, bad);
	ck_assert_int_eq(verify(header, SECRET), BW_SIG_NO_MATCH);
	assert_each_v1_compared(header, 1);
}
END_TEST

/* Secret rotation: every secret is tried against every v1 even after a match. */
START_TEST(every_secret_compared)
{
	char good[65], header[256];

	sign(SECRET, good);
	snprintf(header, sizeof(header), "t=%d,v1=%s,v1=%064d", T, good, 0);
	ck_assert_int_eq(verify(header, SECRET ",whsec_old,whsec_older"), BW_SIG_OK);
	assert_each_v1_compared(header, 3);
}
END_TEST

/* A v1 of another length never matches and is not compared (no prefix compare). */
START_TEST(wrong_length_not_prefix_compared)
{
	char good[65], header[256];

	sign(SECRET, good);
	snprintf(header, sizeof(header), "t=%d,v1=%.32s,v1=%sff", T, good, good);
	ck_assert_int_eq(verify(header, SECRET), BW_SIG_NO_MATCH);
	ck_assert_int_eq(ncalls, 0);
}
END_TEST

/* No variable-time compare anywhere in the verifier's source. */
START_TEST(source_has_no_other_compare)
{
	static const char *const banned[] = { "memcmp(", "strcmp(", "strncmp(", "bcmp(",
					      "strcasecmp(", "strncasecmp(" };
	FILE *f = fopen(BW_SOURCE_DIR "/shared/stripe_sig.c", "r");
	char line[1024];
	int n = 0, uses = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		n++;
		for (size_t k = 0; k < sizeof(banned) / sizeof(banned[0]); k++) {
			for (const char *p = strstr(line, banned[k]); p; p = strstr(p + 1, banned[k]))
				ck_assert_msg(p >= line + 7 && strncmp(p - 7, "CRYPTO_", 7) == 0,
					      "stripe_sig.c:%d: %s outside CRYPTO_memcmp", n,
					      banned[k]);
		}
		if (strstr(line, "CRYPTO_memcmp(expected,"))
			uses++;
	}
	fclose(f);
	ck_assert_msg(uses == 1, "the digest compare is not CRYPTO_memcmp(expected, ...)");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_sig_ct");
	TCase *tc = tcase_create("ct");

	tcase_add_test(tc, every_v1_compared_full_length);
	tcase_add_test(tc, every_secret_compared);
	tcase_add_test(tc, wrong_length_not_prefix_compared);
	tcase_add_test(tc, source_has_no_other_compare);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
