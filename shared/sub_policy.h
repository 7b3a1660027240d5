/* sub_policy: what a Stripe subscription means for an org's plan allowance. The one policy
 * both the stripe worker (webhook events) and the sync worker (API reads) apply, so the two
 * give the same answer for the same facts. Pure functions: no I/O, no allocation.
 *
 * | Stripe status                                  | allowance                          |
 * |------------------------------------------------|------------------------------------|
 * | active, trialing                               | included_spus of the base item     |
 * | past_due                                       | kept while Stripe retries (config) |
 * | incomplete, incomplete_expired, unpaid,        | none: type "none", allowance 0,    |
 * | paused, canceled, deleted, any other           | the stored status says why         |
 * Enterprise orgs are never changed by Stripe subscription events (answered `ignored`).
 * A subscription that has ended (deleted, canceled, incomplete_expired: bw_sub_policy_ended)
 * has no pending cancellation any more (shared/customer_doc.h: bw_customer_append_cancel).
 * A plan change takes the new tier's allowance at once; subscription_spus_used carries over
 * (neither caller writes it on a subscription change; only a new paid period resets it).
 *
 * The base item: the first of items.data whose price.metadata.price_type is "base"; only
 * when no item is marked base, the first item without any price_type (an add-on item may
 * come first, and is never the plan). */
#ifndef BW_SUB_POLICY_H
#define BW_SUB_POLICY_H

#include <jansson.h>

struct bw_sub_policy {
	int past_due_keeps_allowance;  /* STRIPE_PAST_DUE_KEEPS_ALLOWANCE, default 1 */
};

/* The config variable both workers read into struct bw_sub_policy. */
#define BW_SUB_POLICY_PAST_DUE_VAR "STRIPE_PAST_DUE_KEEPS_ALLOWANCE"

enum bw_sub_effect {
	BW_SUB_PLAN = 0,   /* subscription_type = the base item's tier, allowance its included_spus */
	BW_SUB_NONE,       /* subscription_type "none", allowance 0, status stored */
	BW_SUB_UNCHANGED,  /* enterprise org: nothing written, answered ignored with the reason */
};

/* The facts one decision looks at. */
struct bw_sub_facts {
	const char *status;   /* Stripe's subscription status; NULL when unknown */
	int deleted;          /* customer.subscription.deleted, or the customer was deleted */
	int org_enterprise;   /* stored subscription_type "enterprise", or the backend's
			       * organizations document has type "enterprise" */
};

struct bw_sub_verdict {
	enum bw_sub_effect effect;
	const char *stored_status;  /* what stripe_subscription_status becomes (borrowed from
				     * facts->status, or static "canceled" for a deletion) */
	const char *reason;         /* static text: why (results, logs) */
};

/* Decides what the subscription described by facts does to the org. Always fills v. */
void bw_sub_policy_decide(const struct bw_sub_policy *p, const struct bw_sub_facts *facts,
			  struct bw_sub_verdict *v);

/* 1 when a subscription in status grants the base item's allowance under p. */
int bw_sub_policy_grants(const struct bw_sub_policy *p, const char *status);

/* The base item of a Stripe subscription object (borrowed), or NULL when it has no items. */
const json_t *bw_sub_policy_base_item(const json_t *subscription);

/* 1 when a subscription in status is over for good (canceled, incomplete_expired): no
 * cancellation is pending any more (both workers then store cancel_at_period_end false and
 * cancel_at null, shared/customer_doc.h). NULL-safe. */
int bw_sub_policy_ended(const char *status);

/* 1 when subscription_type names an enterprise plan. NULL-safe. */
int bw_sub_policy_is_enterprise_type(const char *subscription_type);

#endif
