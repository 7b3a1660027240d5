/* stripe_event: reads one Stripe event (the raw webhook body from stripe.events) into the
 * fields the stripe worker acts on, and the small pure decisions around them. No Kafka, no
 * MongoDB: unit tests call these directly with fixture JSON.
 *
 * Flow: stripe.events -> bw_stripe_event_parse() -> stripe_apply (MongoDB) -> billing.results. */
#ifndef BW_STRIPE_EVENT_H
#define BW_STRIPE_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Largest metadata.credits of one purchase; keeps every $inc far from int64 overflow. */
#define BW_STRIPE_MAX_CREDITS INT64_C(1000000000000000)
/* Largest amount (smallest currency unit) we accept: far above Stripe's own limits, and
 * small enough that credits * amount stays exact in 128 bits. */
#define BW_STRIPE_MAX_AMOUNT INT64_C(1000000000000000)
/* Longest Stripe id / string field we accept. */
#define BW_STRIPE_ID_MAX 255

enum bw_stripe_kind {
	BW_SK_UNKNOWN = 0,      /* a type this worker does not handle: ignored */
	BW_SK_CHECKOUT,         /* checkout.session.completed / .async_payment_succeeded /
				 * .async_payment_failed */
	BW_SK_SUB_UPSERT,       /* customer.subscription.created / .updated */
	BW_SK_SUB_DELETED,      /* customer.subscription.deleted */
	BW_SK_INVOICE_PAID,     /* invoice.payment_succeeded / invoice.paid */
	BW_SK_INVOICE_CREATED,  /* invoice.created */
	BW_SK_REFUND,           /* charge.refunded, charge.dispute.created / .closed */
	BW_SK_CUSTOMER,         /* customer.deleted (data.object is the customer) */
	BW_SK_KIND_COUNT
};

/* Every pointer is borrowed from root, which the struct owns (bw_stripe_event_cleanup). */
struct bw_stripe_event {
	json_t *root;
	const char *id, *type;
	int64_t created;              /* event created, unix seconds */
	int livemode, has_livemode;   /* the event's livemode, when it says */
	enum bw_stripe_kind kind;
	const char *object_id;        /* data.object.id */
	const char *customer_id;      /* data.object.customer (id or expanded object's id) */
	const char *meta_org_id;      /* metadata.org_id of the object (or its subscription) */
	/* checkout (amount: amount_total), charge (amount, amount_refunded), dispute (amount) */
	const char *mode, *payment_status;
	const char *payment_intent;   /* data.object.payment_intent (id or expanded object's id) */
	int64_t amount, amount_refunded; /* smallest currency unit, in [0, BW_STRIPE_MAX_AMOUNT] */
	int has_amount;
	int64_t credits;              /* metadata.credits, > 0, when has_credits */
	int has_credits;
	/* subscription */
	const char *sub_status, *price_id, *tier;
	int64_t included_spus;
	int has_included_spus;
	int cancel_at_period_end;     /* data.object.cancel_at_period_end (absent, null: false) */
	int64_t cancel_at;            /* data.object.cancel_at, unix seconds; 0 when none */
	/* subscription and invoice */
	const char *subscription_id;
	int64_t period_start, period_end; /* unix seconds, when has_period */
	int has_period;
	/* invoice */
	const char *billing_reason;
	/* refund (charge.refunded: a charge) and dispute (charge.dispute.*: a dispute) */
	const char *charge_id;        /* the charge's id, or the dispute's `charge` */
	const char *dispute_status;   /* dispute: needs_response, won, lost, ... */
	int is_dispute;
};

/* Parses len bytes (at most max_len) into ev. On -1, err is INVALID with the reason and
 * ev->id / ev->type are set when they could be read (for the result and the DLQ record);
 * the caller runs bw_stripe_event_cleanup() in both cases. */
int bw_stripe_event_parse(const unsigned char *buf, size_t len, size_t max_len,
			  struct bw_stripe_event *ev, struct bw_err *err);

void bw_stripe_event_cleanup(struct bw_stripe_event *ev);

/* The kind of a Stripe event type string. */
enum bw_stripe_kind bw_stripe_kind_of(const char *type);

/* A positive count from Stripe metadata: a JSON integer or a string of decimal digits
 * only (no sign, no spaces, no fraction), in [min, max]. 0, or -1 with err (INVALID) naming
 * field. */
int bw_stripe_parse_count(const json_t *v, const char *field, int64_t min, int64_t max,
			  int64_t *out, struct bw_err *err);

/* Whether a checkout session credits now: mode payment and payment_status paid or
 * no_payment_required (a 100 % promotion code: no payment event ever follows). */
int bw_stripe_checkout_is_paid(const struct bw_stripe_event *ev);

/* Whether the invoice may open a new billing period: billing_reason subscription_cycle,
 * subscription_create, or subscription_update (a change that restarts the billing cycle:
 * it resets only when its own line starts a newer period than the one reset last). */
int bw_stripe_invoice_opens_period(const struct bw_stripe_event *ev);

/* Whether moving a subscription's status from stored to next goes backwards in Stripe's
 * lifecycle (incomplete < trialing < active|past_due|unpaid|paused < canceled|
 * incomplete_expired). Unknown statuses never count as backwards. */
int bw_stripe_status_backwards(const char *stored, const char *next);

/* The sync tick published to sync.ticks (schemas/sync-tick.schema.json), compact JSON.
 * org_id, customer_id and reason may be NULL. Returns a new string (free) or NULL. */
char *bw_stripe_tick_json(const char *tick_id, const char *org_id, const char *customer_id,
			  const char *reason);

#endif
