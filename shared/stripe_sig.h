/* stripe_sig: verifies the `Stripe-Signature` header of a webhook request the way Stripe's
 * own libraries do, so the ingress only forwards events Stripe really sent.
 *
 * Header: `t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>...]` (other schemes ignored).
 * Expected signature: lowercase hex of HMAC-SHA256(secret, "<t>.<raw body>"), where the key is
 * the whole secret string as Stripe shows it, `whsec_` prefix included. It is compared in
 * constant time with every v1 value; any match with any configured secret is enough (secret
 * rotation). The timestamp must lie within tolerance seconds of now, in the past or in the
 * future. Pure functions: `now` is a parameter, nothing is allocated, thread-safe. */
#ifndef BW_STRIPE_SIG_H
#define BW_STRIPE_SIG_H

#include <stddef.h>
#include <stdint.h>

/* Longest header accepted; anything longer is BW_SIG_MALFORMED_HEADER. */
#define BW_STRIPE_SIG_MAX_HEADER 8192

enum bw_stripe_sig_result {
	BW_SIG_OK = 0,
	BW_SIG_MISSING_HEADER,   /* no header, or an empty one */
	BW_SIG_MALFORMED_HEADER, /* not t=..,k=v,..: bad item, bad/missing/repeated t, too long */
	BW_SIG_NO_V1,            /* well-formed but no v1 signature (e.g. v0 only) */
	BW_SIG_OUTSIDE_TOLERANCE,/* signature matched, timestamp too old or too far ahead */
	BW_SIG_NO_MATCH,         /* no v1 value equals the HMAC under any configured secret */
};

/* Verifies header (NUL-terminated, NULL when the request had none) against body[0..len)
 * with the comma-separated secrets list (empty items skipped; a list without any secret
 * never matches). tolerance_s < 0 counts as 0. Checks the signature before the timestamp,
 * like Stripe, so a stale forgery reports NO_MATCH and a stale genuine request reports
 * OUTSIDE_TOLERANCE. *t_out (may be NULL) receives the parsed timestamp, or -1. */
enum bw_stripe_sig_result bw_stripe_sig_verify(const char *header, const unsigned char *body,
					       size_t len, const char *secrets,
					       int64_t tolerance_s, int64_t now, int64_t *t_out);

/* Short stable name of a result ("ok", "signature_missing", ...), used as the HTTP error
 * code and in logs. Static string. */
const char *bw_stripe_sig_result_name(enum bw_stripe_sig_result r);

/* Computes the v1 signature of body at timestamp t under one secret (the whole string, its
 * length secret_len) as 64 lowercase hex chars + NUL. For tests and load generators.
 * Returns 0, or -1 on an OpenSSL failure. */
int bw_stripe_sig_sign(const char *secret, size_t secret_len, int64_t t,
		       const unsigned char *body, size_t len, char hex[65]);

#endif
