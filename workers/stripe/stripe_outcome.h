/* stripe_outcome: what applying one Stripe event did (the billing.results status, reason,
 * details, DLQ flag and the customer sync tick it asks for), and the small setters every
 * handler uses to fill it. No I/O. */
#ifndef BW_STRIPE_OUTCOME_H
#define BW_STRIPE_OUTCOME_H

#include <jansson.h>
#include <stdint.h>

#include "dlq.h"
#include "stripe_event.h"

/* Outcome statuses, as written in billing.results. */
enum bw_stripe_status {
	BW_SS_APPLIED = 0,
	BW_SS_DUPLICATE,
	BW_SS_IGNORED,
	BW_SS_STALE,
	BW_SS_DEFERRED,
	BW_SS_REJECTED,
	BW_SS_PAYMENT_FAILED, /* checkout.session.async_payment_failed: nothing credited */
	BW_SS_COUNT
};

struct bw_stripe_outcome {
	enum bw_stripe_status status;
	char org_id[BW_STRIPE_ID_MAX + 1];   /* "" when unknown */
	json_t *details;                     /* owned object (bw_stripe_outcome_cleanup) */
	char reason[BW_DLQ_REASON_MAX];      /* why: rejected / stale / deferred / ignored */
	int to_dlq;                          /* rejected: publish the input to the DLQ */
	int waiting;                         /* customer unknown: retry the batch later */
	char tick_reason[64];                /* "" or why a customer sync tick is published */
	char tick_id[2 * BW_STRIPE_ID_MAX];  /* id of that tick */
};

/* "applied", "duplicate", ... (static). */
const char *bw_stripe_status_name(enum bw_stripe_status st);

/* The status named s: 0, or -1 when s names none. */
int bw_stripe_status_parse(const char *s, enum bw_stripe_status *out);

/* Sets the status and the reason (printf format, NULL: none); rejected also sets to_dlq. */
void bw_stripe_outcome_set(struct bw_stripe_outcome *out, enum bw_stripe_status st,
			   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* details[key] = v (a copy); nothing when v is NULL. */
void bw_stripe_detail_str(struct bw_stripe_outcome *out, const char *key, const char *v);
void bw_stripe_detail_int(struct bw_stripe_outcome *out, const char *key, int64_t v);

/* Asks for a customer sync tick with this reason; its id is "<event id>:<reason>" (plus
 * ":<attempt>" when attempt > 0), also written into details.sync_tick_id. */
void bw_stripe_want_tick(struct bw_stripe_outcome *out, const struct bw_stripe_event *ev,
			 const char *reason, int64_t attempt);

void bw_stripe_outcome_cleanup(struct bw_stripe_outcome *out);

#endif
