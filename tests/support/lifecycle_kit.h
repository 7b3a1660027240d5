/* lifecycle_kit: what the Stripe lifecycle integration tests share (test_stripe_lifecycle,
 * test_sync_lifecycle): one environment for the stripe and the sync worker binaries (the
 * stripe worker's ticks topic is the sync's input, one results topic, one database, the
 * Stripe API stub), running them, reading results, and Stripe payloads as Stripe sends them
 * in the 2025 API shapes (items with current_period_*, invoice parent.subscription_details,
 * lines with parent.subscription_item_details and proration) and the older ones. */
#ifndef BW_LIFECYCLE_KIT_H
#define BW_LIFECYCLE_KIT_H

#include <jansson.h>
#include <sys/types.h>

#include "../stub/stripe_stub.h"
#include "stripe_kit.h"

/* Billing periods of the sequences (unix seconds, 30 days apart). */
#define P0 1760000000LL
#define P1 (P0 + 2592000LL)
#define P2 (P1 + 2592000LL)

struct lc {
	struct sk_env sk;     /* topics (the stripe worker's ticks are the sync's input), db */
	struct stub stub;
	int has_stub;
	char sync_group[160], sync_log[512];
};

/* A fresh environment named after name; state (stolen; NULL: no stub) is what the Stripe
 * API stub serves. lc_done() stops the stub, drops the database, removes the logs. */
void lc_init(struct lc *e, const char *name, json_t *state);
void lc_done(struct lc *e);

/* Runs the sync worker (over the ticks topic) / the stripe worker until idle; extra is a
 * NULL-terminated "K=V" list (may be NULL). Both must exit 0. */
void lc_run_sync(struct lc *e, const char *const *extra);
void lc_run_stripe(struct lc *e, const char *const *extra);

/* Starts the stripe worker without waiting (tk_wait the pid). */
pid_t lc_spawn_stripe(struct lc *e, const char *const *extra);

/* The last result of id (an event id or a tick id) among all (borrowed), failing when
 * missing; lc_expect fails unless its status is status. */
json_t *lc_last_result(json_t *all, const char *id);
void lc_expect(json_t *all, const char *id, const char *status);

/* doc[key] as a string, "(none)" when missing (borrowed). */
const char *lc_str(const json_t *doc, const char *key);

/* Produces a customer tick for org (or, with org NULL, for the Stripe customer cus). */
void lc_tick(const struct lc *e, const char *id, const char *org, const char *cus);

/* Inserts a customer document on plan type with allowance, used, subscription
 * "sub_<org>" active, period and reset marker at period_s, and balance_version version. */
void lc_seed_period(const struct lc *e, const char *org, const char *cus, const char *type,
		    long long allowance, long long used, long long period_s, long long version);

/* Asserts the org's plan type, allowance, used, status (NULL: not checked) and version. */
void lc_expect_doc(const struct lc *e, const char *org, const char *type, long long allowance,
		   long long used, const char *status, long long version);

/* Produces ev (stolen) to the stripe events topic. */
void lc_send(const struct lc *e, json_t *ev);

/* Every message of topic so far, parsed (new array). */
json_t *lc_read_all(const char *topic);

/* The tick id of the last sync result in all (borrowed). */
const char *lc_last_tick_id(json_t *all);

/* ---- Stripe API objects for the stub (new references) ---- */

/* A subscription (2025 shape: the period on the items), an add-on item first. */
json_t *lc_api_sub(const char *id, const char *cus, const char *status, long long created,
		   const char *base_price, long long start, const char *latest_invoice);

/* An invoice of sub (2025 shape): a proration line first (the upgrade), then the
 * subscription item's own line of the period starting at start. */
json_t *lc_api_invoice(const char *id, const char *sub, const char *status, long long start);

/* Adds the add-on price (price_type addon) to a stub state's prices. */
void lc_add_addon_price(json_t *st);

/* ---- webhook events (new references) ---- */

/* customer.subscription.* (2025 shape): the period on the items, an add-on item first, the
 * base item (tier, included_spus) second. org NULL: no metadata.org_id. */
json_t *lc_sub_event(const char *id, const char *type, long long created, const char *sub,
		     const char *cus, const char *org, const char *status, const char *tier,
		     long long spus, long long start);

/* invoice.paid (2025 shape: parent.subscription_details; lines with
 * parent.subscription_item_details): a proration line first, inside the old period, then
 * the subscription item's own line of the period starting at start. */
json_t *lc_invoice_2025(const char *id, long long created, const char *cus, const char *org,
			const char *sub, const char *reason, long long start);

/* invoice.paid (older shape: invoice.subscription; invoiceitem proration lines first, then
 * the type "subscription" line), no org metadata: the org comes from the customer. */
json_t *lc_invoice_old(const char *id, long long created, const char *cus, const char *sub,
		       const char *reason, long long start);

#endif
