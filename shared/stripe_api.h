/* stripe_api: the Stripe REST API client the sync worker talks to Stripe with (libcurl).
 *
 * One client owns one curl easy handle, reused for every request so the TLS connection is
 * kept alive. Every request carries `Authorization: Bearer <secret key>` and a pinned
 * `Stripe-Version`; POSTs carry an `Idempotency-Key` that stays the same across retries.
 * Responses are read into a buffer with a hard maximum.
 *
 * Retries (this module decides the error kind, callers act on it):
 *   network error, timeout, 408,      retried with exponential backoff and full jitter; a
 *   409, 429, 5xx                     `Retry-After: <seconds>` is honoured (capped); 409 is
 *                                     an Idempotency-Key still in use by a concurrent
 *                                     request, retried as Stripe's own libraries do;
 *                                     after max_retries: BW_ERR_TRANSIENT
 *   `Stripe-Should-Retry: false`      not retried (the answer's kind still applies)
 *   other 4xx                         never retried: BW_ERR_INVALID
 *   2xx with malformed JSON           not retried here: BW_ERR_TRANSIENT (a proxy's page or
 *                                     a cut body; the caller's own retry bound applies)
 *   body above max_body               BW_ERR_INVALID
 * Stripe's error object ({"error": {"type", "code", "message"}}) is parsed into
 * struct bw_stripe_error and into the error message.
 *
 * Pacing: with rate_limit_rps > 0, requests (retries included) are spaced at least
 * 1/rate_limit_rps apart. Not thread-safe: one client per thread. */
#ifndef BW_STRIPE_API_H
#define BW_STRIPE_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The Stripe API version this code is written against (overridable, see README). */
#define BW_STRIPE_API_VERSION_DEFAULT "2024-06-20"

struct bw_stripe_api_conf {
	const char *base_url;       /* e.g. "https://api.stripe.com" (no trailing slash needed) */
	const char *secret_key;     /* sk_... ; never logged */
	const char *api_version;    /* Stripe-Version header */
	long connect_timeout_ms;
	long timeout_ms;            /* whole request, per attempt */
	size_t max_body;            /* hard maximum of a response body */
	int max_retries;            /* retries after the first attempt */
	int retry_base_ms;          /* first backoff; doubles per retry */
	int retry_max_ms;           /* cap of one backoff and of an honoured Retry-After */
	int rate_limit_rps;         /* 0: no pacing */
};

/* What Stripe said about a failed request (empty strings when it did not say). */
struct bw_stripe_error {
	long http_status;           /* 0: no HTTP answer (network error, timeout) */
	char type[64];
	char code[64];
	char message[256];
};

/* Counters since the client was created. */
struct bw_stripe_api_stats {
	uint64_t requests;          /* HTTP attempts, retries included */
	uint64_t retries;
};

struct bw_stripe_api;

/* New client; conf strings are copied. NULL with err (FATAL) on bad config or no memory. */
struct bw_stripe_api *bw_stripe_api_new(const struct bw_stripe_api_conf *conf,
					struct bw_err *err);

/* Frees the client. NULL-safe. */
void bw_stripe_api_destroy(struct bw_stripe_api *api);

/* GET base_url + path_query (path_query starts with "/v1/", already URL-encoded).
 * Returns the parsed JSON object (new reference, caller json_decref), or NULL with err and,
 * when serr is not NULL, what Stripe said. */
json_t *bw_stripe_api_get(struct bw_stripe_api *api, const char *path_query,
			  struct bw_stripe_error *serr, struct bw_err *err);

/* POST form (application/x-www-form-urlencoded, already encoded; may be "") to path with
 * idempotency_key (required, sent unchanged on every retry). As bw_stripe_api_get. */
json_t *bw_stripe_api_post(struct bw_stripe_api *api, const char *path, const char *form,
			   const char *idempotency_key, struct bw_stripe_error *serr,
			   struct bw_err *err);

/* Called for each element of a list page's "data" (borrowed). Non-zero stops the listing
 * with that value returned (the callback fills err). */
typedef int (*bw_stripe_item_fn)(void *opaque, json_t *item, struct bw_err *err);

/* Lists every page of a list endpoint: GET path?query&limit=<limit>[&starting_after=<last>]
 * while has_more. query may be "" and must be URL-encoded. *pages (may be NULL) gets the
 * number of pages read. Returns 0, or -1 with err/serr. */
int bw_stripe_api_list(struct bw_stripe_api *api, const char *path, const char *query,
		       int limit, bw_stripe_item_fn fn, void *opaque, int *pages,
		       struct bw_stripe_error *serr, struct bw_err *err);

/* URL-encodes s into a new string (caller free()), or NULL on no memory. */
char *bw_stripe_api_escape(struct bw_stripe_api *api, const char *s);

/* Stripe's clock: the Date header (unix seconds) of the last HTTP answer received, or -1
 * when it had none. The sync compares Stripe's times with Stripe's times only (event
 * `created` against this), never with the local clock. */
int64_t bw_stripe_api_last_date(const struct bw_stripe_api *api);

/* Parses an HTTP Date ("Sun, 06 Nov 1994 08:49:37 GMT") into unix seconds, or -1. */
int64_t bw_stripe_api_parse_date(const char *value);

void bw_stripe_api_get_stats(const struct bw_stripe_api *api, struct bw_stripe_api_stats *out);

/* Parses a Retry-After value in whole seconds ("2"); HTTP dates are not used by Stripe.
 * Returns the delay in ms, or -1 when absent/unparsable. Exposed for unit tests. */
long bw_stripe_api_retry_after_ms(const char *value);

/* The backoff of retry number attempt (1-based): with d = min(max_ms, base_ms *
 * 2^(attempt-1)), a uniform random delay in [d/2, d] ("equal jitter": grows, yet spreads
 * clients apart), at least 1 ms. Exposed for unit tests. */
long bw_stripe_api_backoff_ms(int attempt, int base_ms, int max_ms);

#endif
