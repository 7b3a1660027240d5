/* stripe_decide: the stripe worker's decisions as pure functions over a parsed event and
 * the stored state of the org's customer document: does the event need the org, is it
 * already settled (replayed, stale, same second, not ours to apply), and which billing
 * period an invoice may reset. No Kafka, no MongoDB: the handlers read the state, call
 * these, and write only when they say so; unit tests call them directly. */
#ifndef BW_STRIPE_DECIDE_H
#define BW_STRIPE_DECIDE_H

#include <stdint.h>

#include "stripe_event.h"
#include "stripe_outcome.h"
#include "sub_policy.h"

#define BW_STRIPE_ID_LEN (BW_STRIPE_ID_MAX + 1)

/* What the stripe worker reads of a payments_customers document. */
struct bw_stripe_cust {
	int found;
	char org_id[BW_STRIPE_ID_LEN], customer_id[BW_STRIPE_ID_LEN];
	char sub_id[BW_STRIPE_ID_LEN], sub_status[64], sub_event_id[BW_STRIPE_ID_LEN];
	char sub_type[64];               /* subscription_type */
	int enterprise;                  /* subscription_type "enterprise", or (set by the
					  * subscription handlers) the organizations document */
	int64_t sub_created;             /* stripe_subscription_event_created */
	int has_sub_created;
	char reset_event_id[BW_STRIPE_ID_LEN]; /* subscription_spus_reset_event_id */
	int64_t reset_ms;                /* subscription_spus_reset_period_start */
	int has_reset;
	int64_t period_ms;               /* stripe_current_billing_period_start */
	int has_period;
	int64_t purchased_credits, balance_version;
	int fresh;  /* read by this event (not a batch cache copy: identity fields only) */
};

/* STRIPE_LIVEMODE: which mode's events this worker applies. */
enum bw_stripe_mode { BW_STRIPE_MODE_ANY = 0, BW_STRIPE_MODE_TEST, BW_STRIPE_MODE_LIVE };

/* An event of the other mode (a test-mode secret configured beside a live one): 1 with
 * out = ignored (the event is recorded, nothing applied), else 0. */
int bw_stripe_mode_decide(const struct bw_stripe_event *ev, enum bw_stripe_mode mode,
			  struct bw_stripe_outcome *out);

/* What a customer.subscription.* event does to the org under the shared policy
 * (sub_policy): the plan of its base item, none (the status says why), or nothing for an
 * enterprise org (c->enterprise). */
void bw_stripe_sub_verdict(const struct bw_sub_policy *p, const struct bw_stripe_cust *c,
			   const struct bw_stripe_event *ev, struct bw_sub_verdict *v);

/* Whether the event needs the org (and its customer document) to be applied. 0: settled
 * without it, out has the outcome (ignored, deferred, rejected, payment_failed). A
 * subscription-mode checkout with metadata.org_id and a customer needs it: resolving the
 * org links the customer. */
int bw_stripe_needs_org(const struct bw_stripe_event *ev, struct bw_stripe_outcome *out);

/* A subscription event against the stored state, before any write: 1 when the outcome is
 * settled and nothing is written (our own earlier write, a newer or same-second state
 * stored, the deletion of a subscription that is not the current one, a status that would
 * go backwards: the last two ask for a sync tick), 0 when the write should go ahead. */
int bw_stripe_sub_decide(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			 struct bw_stripe_outcome *out);

/* The guarded subscription write matched nothing; c is the state read after it. Sets the
 * outcome: applied (ours), stale or deferred. */
void bw_stripe_sub_missed(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			  struct bw_stripe_outcome *out);

/* A paid invoice that opens a period, before the reset: 1 when settled (this event's own
 * reset is stored: applied; the invoice's subscription is not the org's: deferred with a
 * sync tick), 0 when the reset should be tried. */
int bw_stripe_invoice_decide(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			     struct bw_stripe_outcome *out);

/* The guarded reset matched nothing; c is the state read after it. Which period wins:
 * applied (our reset), stale (a newer period is stored) or duplicate (this period was
 * reset by another event). */
void bw_stripe_invoice_missed(const struct bw_stripe_cust *c, const struct bw_stripe_event *ev,
			      struct bw_stripe_outcome *out);

/* The clawback state of a credit purchase (its ledger row): credits given, what was paid,
 * and the credits taken back so far by refunds and by a dispute. */
struct bw_stripe_claw {
	int64_t credits;      /* credited by the purchase, >= 0 */
	int64_t amount_total; /* paid, smallest currency unit (0: free or unknown) */
	int64_t refunded;     /* credits of the refunded share (cumulative) */
	int64_t disputed;     /* credits of the disputed share (0 after a won dispute) */
	int64_t taken;        /* taken back from purchased_credits: min(credits, sum) */
	int dispute_closed;   /* a charge.dispute.closed was applied: later .created are old */
};

/* floor(credits * part / whole), exact; part is clamped to [0, whole]; 0 when whole <= 0. */
int64_t bw_stripe_share(int64_t credits, int64_t part, int64_t whole);

/* What a charge.refunded / charge.dispute.created / .closed event (ev) does to the purchase
 * row. Shares are cumulative, so a re-sent, an older or a second partial refund only
 * moves the difference: refunded = max(stored, floor(credits * amount_refunded /
 * amount)); a dispute takes floor(credits * dispute amount / amount_total); a dispute
 * closed `won` (or `warning_closed`) gives its share back, `lost` keeps it. Fills *next and
 * *delta = next->taken - row->taken (> 0: take back, < 0: give back). Returns 0 when there
 * is something to write, 1 when nothing changes (out: duplicate), -1 when the event cannot
 * apply to the purchase (out: ignored). */
int bw_stripe_clawback_plan(const struct bw_stripe_event *ev, const struct bw_stripe_claw *row,
			    struct bw_stripe_claw *next, int64_t *delta,
			    struct bw_stripe_outcome *out);

#endif
