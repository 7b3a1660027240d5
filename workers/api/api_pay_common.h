/* api_pay_common: what bw-api's Stripe-backed calls share (api_pay*.c only): the request's
 * parsed body and Stripe client, the answers, Idempotency-Keys derived from the request,
 * form building and the org's Stripe customer. See api_pay.h for the contract. */
#ifndef BW_API_PAY_COMMON_H
#define BW_API_PAY_COMMON_H

#include <jansson.h>

#include "api_pay.h"
#include "err.h"
#include "stripe_api.h"

#define BW_PAY_KEY_MAX 256

/* One call in progress: owns body, api, form and customer. */
struct pay_call {
	const struct bw_api_pay_cfg *cfg;
	const struct bw_api_pay_req *req;
	json_t *body;                 /* the parsed request body ({} when empty) */
	struct bw_stripe_api *api;
	char *form;                   /* application/x-www-form-urlencoded, built by pay_form */
	size_t form_len, form_cap;
	int form_oom;
	char *customer;               /* the org's Stripe customer (pay_customer) */
	struct bw_stripe_error serr;
	struct bw_err err;
};

/* Starts a call: local-only mode (409), body parse (400), the Stripe client. 0 to go on, else
 * the status with *out set (the call is already ended). */
unsigned pay_begin(struct pay_call *c, const struct bw_api_pay_cfg *cfg,
		   const struct bw_api_pay_req *req, const char *call, char **out);
void pay_end(struct pay_call *c);

/* body[key] when an http(s) URL of at most 2048 bytes, else NULL. */
const char *pay_url(const json_t *body, const char *key);

/* Sets *out to {"error": code, "detail": ..., "stripe": serr (when not NULL)}, logs it, and
 * returns status. */
unsigned pay_fail(char **out, unsigned status, const char *code,
		  const struct bw_stripe_error *serr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* The answer of a failed Stripe request (c->err, c->serr): 402/400 stripe_refused or 502. */
unsigned pay_stripe_fail(struct pay_call *c, char **out, const char *what);

/* Sets *out to the dump of ans (stolen; NULL: 503 out of memory) and returns status. */
unsigned pay_answer(char **out, unsigned status, json_t *ans);

/* Appends key=value (both URL-encoded here) to the form; value NULL is skipped. */
void pay_form(struct pay_call *c, const char *key, const char *value);

/* A request without the caller's Idempotency-Key is deduplicated within this window. */
#define BW_PAY_KEY_WINDOW_S 600

/* "bw-api-<call>-<org_id>-<h>", h the first 32 hex digits of SHA-256(who, \n, body), who
 * "c:<the caller's Idempotency-Key>" (a retry of the same request sends the same key and
 * gets Stripe's first answer, whatever happened since), else for a creation (update 0)
 * "t:<unix time / BW_PAY_KEY_WINDOW_S>", else for a subscription update a nonce of this
 * request: setting the same values twice is harmless, and a later identical change (cancel,
 * reactivate, cancel) must not replay the first answer. */
void pay_key(const struct pay_call *c, const char *call, int update, char key[BW_PAY_KEY_MAX]);

/* POSTs the form to path with key; resets the form. The answer (new reference) or NULL. */
json_t *pay_post(struct pay_call *c, const char *path, const char *key);

/* A Checkout Session to create for c's customer (after pay_customer). */
struct pay_checkout {
	const char *call;          /* names its Idempotency-Key (pay_key, a creation) */
	const char *mode;          /* "payment" or "subscription" */
	const char *price_id;      /* the one line item: price_id x quantity */
	const char *quantity;
	const char *success, *cancel;                /* the caller's checked URLs */
	const char *extra_key, *extra_value;         /* one more form field of the call */
};

/* POSTs /v1/checkout/sessions for co with metadata[org_id] of the request. The session (new
 * reference) or NULL (c->err, c->serr: answer with pay_stripe_fail). */
json_t *pay_checkout_session(struct pay_call *c, const struct pay_checkout *co);

/* c->customer: the stored stripe_customer_id, else created and stored. 0, else the failure
 * status with *out set. */
unsigned pay_customer(struct pay_call *c, struct bw_mongo *m, char **out);

#endif
