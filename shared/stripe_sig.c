/* stripe_sig: see stripe_sig.h. Used by the webhook ingress before anything is published. */
#include "stripe_sig.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

/* More v1 values than this in one header is not something Stripe sends: malformed. */
#define MAX_V1 32
/* 12 digits reach the year 33658; more is garbage, and keeps the int64 far from overflow. */
#define MAX_T_DIGITS 12
#define MAX_SECRET 512

struct parsed_header {
	int64_t t;
	int nv1;
	const char *v1[MAX_V1];
	size_t v1_len[MAX_V1];
};

/* Splits header into items "k=v" separated by ','. Only printable ASCII without spaces is
 * accepted; an item without '=' or with an empty key, a missing, repeated or non-decimal t,
 * or too many v1 values make the header malformed. Unknown keys (v0, future schemes) are
 * ignored, as in Stripe's libraries. */
static enum bw_stripe_sig_result parse_header(const char *header, struct parsed_header *ph)
{
	size_t hlen = strnlen(header, BW_STRIPE_SIG_MAX_HEADER + 1);
	int have_t = 0;
	size_t i = 0;

	ph->t = -1;
	ph->nv1 = 0;
	if (hlen > BW_STRIPE_SIG_MAX_HEADER)
		return BW_SIG_MALFORMED_HEADER;
	for (size_t k = 0; k < hlen; k++) {
		unsigned char c = (unsigned char)header[k];
		if (c < 0x21 || c > 0x7e)
			return BW_SIG_MALFORMED_HEADER;
	}
	while (i <= hlen) {
		const char *item = header + i;
		const char *end = memchr(item, ',', hlen - i);
		size_t ilen = end ? (size_t)(end - item) : hlen - i;
		const char *eq = memchr(item, '=', ilen);

		if (!eq || eq == item)
			return BW_SIG_MALFORMED_HEADER;
		size_t klen = (size_t)(eq - item);
		const char *val = eq + 1;
		size_t vlen = ilen - klen - 1;

		if (klen == 1 && item[0] == 't') {
			int64_t t = 0;
			if (have_t || vlen == 0 || vlen > MAX_T_DIGITS)
				return BW_SIG_MALFORMED_HEADER;
			for (size_t d = 0; d < vlen; d++) {
				if (val[d] < '0' || val[d] > '9')
					return BW_SIG_MALFORMED_HEADER;
				t = t * 10 + (val[d] - '0');
			}
			ph->t = t;
			have_t = 1;
		} else if (klen == 2 && item[0] == 'v' && item[1] == '1') {
			if (ph->nv1 == MAX_V1)
				return BW_SIG_MALFORMED_HEADER;
			ph->v1[ph->nv1] = val;
			ph->v1_len[ph->nv1] = vlen;
			ph->nv1++;
		}
		i += ilen + 1;
	}
	if (!have_t)
		return BW_SIG_MALFORMED_HEADER;
	return BW_SIG_OK;
}

int bw_stripe_sig_sign(const char *secret, size_t secret_len, int64_t t,
		       const unsigned char *body, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	char prefix[32];
	unsigned char mac[32];
	size_t mac_len = 0;
	int plen = snprintf(prefix, sizeof(prefix), "%lld.", (long long)t);
	EVP_MAC *alg = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int rc = -1;

	hex[0] = '\0';
	if (plen <= 0 || (size_t)plen >= sizeof(prefix))
		goto done;
	alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
	if (!ctx)
		goto done;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	/* Streamed so the (up to 1 MiB) body is never copied behind the "<t>." prefix. */
	if (!EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) ||
	    (len > 0 && !EVP_MAC_update(ctx, body, len)) ||
	    !EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) || mac_len != sizeof(mac))
		goto done;
	for (size_t k = 0; k < sizeof(mac); k++) {
		hex[2 * k] = digits[mac[k] >> 4];
		hex[2 * k + 1] = digits[mac[k] & 0x0f];
	}
	hex[64] = '\0';
	rc = 0;
done:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(alg);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

/* 1 when any v1 value equals the signature under this one secret. Every v1 is compared
 * (CRYPTO_memcmp) so the time taken does not depend on where a match is. */
static int matches_secret(const struct parsed_header *ph, const char *secret, size_t slen,
			  const unsigned char *body, size_t len)
{
	char expected[65];
	int match = 0;

	if (bw_stripe_sig_sign(secret, slen, ph->t, body, len, expected) != 0)
		return 0;
	for (int k = 0; k < ph->nv1; k++)
		if (ph->v1_len[k] == 64 && CRYPTO_memcmp(expected, ph->v1[k], 64) == 0)
			match = 1;
	OPENSSL_cleanse(expected, sizeof(expected));
	return match;
}

enum bw_stripe_sig_result bw_stripe_sig_verify(const char *header, const unsigned char *body,
					       size_t len, const char *secrets,
					       int64_t tolerance_s, int64_t now, int64_t *t_out)
{
	struct parsed_header ph;
	enum bw_stripe_sig_result r;
	int match = 0;

	if (t_out)
		*t_out = -1;
	if (!header || header[0] == '\0')
		return BW_SIG_MISSING_HEADER;
	r = parse_header(header, &ph);
	if (r != BW_SIG_OK)
		return r;
	if (t_out)
		*t_out = ph.t;
	if (ph.nv1 == 0)
		return BW_SIG_NO_V1;
	for (const char *s = secrets ? secrets : ""; *s;) {
		const char *comma = strchr(s, ',');
		size_t slen = comma ? (size_t)(comma - s) : strlen(s);
		if (slen > 0 && slen <= MAX_SECRET && matches_secret(&ph, s, slen, body, len))
			match = 1;
		s += slen + (comma ? 1 : 0);
	}
	if (!match)
		return BW_SIG_NO_MATCH;
	if (tolerance_s < 0)
		tolerance_s = 0;
	if (ph.t < now - tolerance_s || ph.t > now + tolerance_s)
		return BW_SIG_OUTSIDE_TOLERANCE;
	return BW_SIG_OK;
}

const char *bw_stripe_sig_result_name(enum bw_stripe_sig_result r)
{
	switch (r) {
	case BW_SIG_OK:
		return "ok";
	case BW_SIG_MISSING_HEADER:
		return "signature_missing";
	case BW_SIG_MALFORMED_HEADER:
		return "signature_malformed";
	case BW_SIG_NO_V1:
		return "signature_no_v1";
	case BW_SIG_OUTSIDE_TOLERANCE:
		return "timestamp_outside_tolerance";
	case BW_SIG_NO_MATCH:
		return "signature_mismatch";
	}
	return "signature_unknown";
}
