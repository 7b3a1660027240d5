/* fuzz_stripe_sig: the Stripe-Signature header parser and verifier (shared/stripe_sig.c).
 *
 * Input: the header up to the first '\n' (cut at a NUL, as a C string), the body after it.
 * Properties:
 *  - a signature matches (ok / timestamp_outside_tolerance) exactly when one comma-separated
 *    item of the header is "v1=<HMAC of t.body under a configured secret>" — checked here by
 *    an independent scan, so no forged header is ever accepted;
 *  - ok only within the tolerance; a failed parse reports no timestamp;
 *  - a header built with bw_stripe_sig_sign() for this body always verifies. */
#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "stripe_sig.h"

#define NOW INT64_C(1700000000)
#define TOLERANCE 300
/* The secrets of tests/data/stripe_sig/vectors.txt, so the seeds reach the matching path. */
#define S1 "whsec_test_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"
#define S2 "whsec_other_kVL3ZSsH0yH3vXqHaM4dQh9E2pNe1cT7"

/* 1 when one item of header (split on ',') is exactly "v1=" + hex. */
static int has_v1_item(const char *header, const char *hex)
{
	for (const char *p = header; p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 67 && memcmp(p, "v1=", 3) == 0 && memcmp(p + 3, hex, 64) == 0)
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int signed_by_a_secret(const char *header, int64_t t, const unsigned char *body,
			      size_t len)
{
	static const char *const secrets[] = { S1, S2 };
	char hex[65];

	for (size_t i = 0; i < 2; i++) {
		FUZZ_CHECK(bw_stripe_sig_sign(secrets[i], strlen(secrets[i]), t, body, len, hex) == 0);
		if (has_v1_item(header, hex))
			return 1;
	}
	return 0;
}

int BW_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl ? (size_t)(nl - data) : size;
	char *header = fuzz_strndup(data, hlen);
	const unsigned char *body = nl ? nl + 1 : data + size;
	size_t blen = nl ? size - hlen - 1 : 0;
	char good[128], hex[65];
	int64_t t = -2, t_signed = NOW - (int64_t)(size % (2 * TOLERANCE + 2));
	enum bw_stripe_sig_result r;

	r = bw_stripe_sig_verify(header, body, blen, S1 "," S2, TOLERANCE, NOW, &t);
	FUZZ_CHECK(r >= BW_SIG_OK && r <= BW_SIG_NO_MATCH);
	FUZZ_CHECK(strcmp(bw_stripe_sig_result_name(r), "signature_unknown") != 0);
	if (r == BW_SIG_MISSING_HEADER || r == BW_SIG_MALFORMED_HEADER)
		FUZZ_CHECK(t == -1);
	else
		FUZZ_CHECK(t >= 0 && strlen(header) <= BW_STRIPE_SIG_MAX_HEADER);
	if (r == BW_SIG_OK || r == BW_SIG_OUTSIDE_TOLERANCE || r == BW_SIG_NO_MATCH)
		FUZZ_CHECK(signed_by_a_secret(header, t, body, blen) == (r != BW_SIG_NO_MATCH));
	if (r == BW_SIG_OK)
		FUZZ_CHECK(t >= NOW - TOLERANCE && t <= NOW + TOLERANCE);
	if (r == BW_SIG_OUTSIDE_TOLERANCE)
		FUZZ_CHECK(t < NOW - TOLERANCE || t > NOW + TOLERANCE);

	/* Round trip: what we sign for this body verifies, and only within the tolerance. */
	FUZZ_CHECK(bw_stripe_sig_sign(S2, strlen(S2), t_signed, body, blen, hex) == 0);
	snprintf(good, sizeof(good), "t=%" PRId64 ",v1=%s", t_signed, hex);
	r = bw_stripe_sig_verify(good, body, blen, S1 "," S2, TOLERANCE, NOW, NULL);
	FUZZ_CHECK(r == (t_signed >= NOW - TOLERANCE ? BW_SIG_OK : BW_SIG_OUTSIDE_TOLERANCE));
	free(header);
	return 0;
}
