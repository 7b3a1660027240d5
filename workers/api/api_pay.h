/* api_pay: bw-api's Stripe-backed payment calls (issue 14). Each takes the request (org id,
 * JSON body, the caller's optional Idempotency-Key header) and answers an HTTP status with a
 * JSON body (new string, caller free()):
 *   POST /v1/orgs/{org_id}/checkout/credits  {credits, success_url, cancel_url}
 *   POST /v1/orgs/{org_id}/checkout/plan     {tier, success_url, cancel_url}: no live
 *        subscription: a subscription-mode Checkout Session; one: the plan change (base item
 *        swapped, proration_behavior create_prorations, cancel_at_period_end false)
 *   DELETE /v1/orgs/{org_id}/subscription    cancel_at_period_end true
 *   POST /v1/orgs/{org_id}/subscription/reactivate  cancel_at_period_end false
 *   POST /v1/orgs/{org_id}/portal            {return_url}: a billing portal session
 * "Live": the stored subscription (payments_customers) is active, trialing, past_due, unpaid
 * or incomplete, and Stripe's copy (GET /v1/subscriptions/<id>) still is.
 * After a subscription update (plan change, cancel, reactivate) Stripe has answered, the org's
 * subscription state is re-read and stored with the customer sync's own code
 * (bw_sync_customer: GET /v1/customers/<id>, GET /v1/subscriptions?customer=), whose ordering
 * marker is Stripe's clock at that read: a webhook event created before it is stale for the
 * stripe worker, so one created before the change but delivered after it cannot undo it.
 * When that read fails, the answer's cancel_at_period_end / cancel_at are stored directly
 * (the change's own webhook then brings the rest).
 * Stripe requests (shared/stripe_api: retries on network errors, 408/409/429/5xx):
 *   - the org's Stripe customer: the stored stripe_customer_id, else created with the sync
 *     worker's own call (bw_sync_create_customer: metadata org_id and product, Idempotency-Key
 *     "bw-sync-customer-<org_id>") and stored at once, as the sync does;
 *   - every other POST carries Idempotency-Key "bw-api-<call>-<org_id>-<h>" derived from the
 *     request (api_pay_common.h pay_key: the caller's Idempotency-Key header, else the
 *     10-minute window for a creation, a nonce for a subscription update; the raw body): a
 *     retried request gets Stripe's first answer, one session and not two. Callers send one
 *     Idempotency-Key per user action (the window alone merges identical requests within it).
 * Answers when it fails: 400 invalid_request (body, bounds: the bounds in the detail),
 * 409 local_only (no STRIPE_SECRET_KEY), 404 no_price (the sync stored no such price),
 * 402/400 stripe_refused (Stripe answered 4xx: its status when 402, else 400) and
 * 502 stripe_unavailable (no answer or 5xx/429 after the retries), each with
 * "stripe": {http_status, type, code, message}; 503 unavailable (MongoDB). Never a bare 500. */
#ifndef BW_API_PAY_H
#define BW_API_PAY_H

#include <stddef.h>
#include <stdint.h>

#include "mongo.h"
#include "stripe_api.h"
#include "sub_policy.h"

struct bw_api_pay_cfg {
	struct bw_stripe_api_conf stripe; /* secret_key NULL or "": local-only mode */
	const char *product_tag;          /* STRIPE_PRODUCT_TAG */
	int64_t free_grant;               /* a customer document created here starts with it */
	struct bw_sub_policy policy;      /* as the stripe and sync workers (the re-read below) */
};

struct bw_api_pay_req {
	const char *org_id;
	const unsigned char *body;
	size_t len;
	const char *client_key;           /* the caller's Idempotency-Key header, may be NULL */
};

unsigned bw_api_pay_credits(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			    const struct bw_api_pay_req *req, char **out);

unsigned bw_api_pay_plan(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			 const struct bw_api_pay_req *req, char **out);

/* cancel 1: DELETE .../subscription; 0: POST .../subscription/reactivate. */
unsigned bw_api_pay_cancel(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			   const struct bw_api_pay_req *req, int cancel, char **out);

unsigned bw_api_pay_portal(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			   const struct bw_api_pay_req *req, char **out);

#endif
