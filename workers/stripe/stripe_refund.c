/* stripe_refund: refunds and disputes of credit purchases (charge.refunded,
 * charge.dispute.created / .closed). The purchase is found by the payment_intent its ledger
 * row kept (payments_credit_transactions); bw_stripe_clawback_plan decides the cumulative
 * share; the credits are taken from (or given back to) purchased_credits once per event.
 *
 * Crash safety without transactions, three guarded single-document steps:
 *   1. mark: the row gets clawback_pending {event_id, delta, next shares}, guarded by
 *      clawback_version (one pending clawback per purchase; a concurrent one misses and
 *      the batch is retried, when it completes the other's first);
 *   2. take back: customer $inc purchased_credits -delta, balance_version +1, $push the
 *      event id onto applied_clawbacks (a bounded window, like applied_sessions), guarded
 *      by applied_clawbacks $ne event id and the int64 bounds;
 *   3. finish: the row's shares := next, clawback_pending removed, a history entry.
 * A crash after 1 or 2 leaves the pending clawback, which the next event of the purchase
 * (this one redelivered, or any other) completes first: step 2 matches at most once.
 * After 3 the plan of a redelivered event changes nothing: duplicate (or applied when it
 * is the row's last clawback). Credits already spent: purchased_credits goes down anyway;
 * purchased_credits_used > purchased_credits is the debt, shown in the result. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "customer_doc.h"
#include "fault.h"
#include "stripe_handlers.h"
#include "stripe_opening.h"
#include "stripe_store.h"

/* Clawback entries kept in a ledger row's history. */
#define HISTORY_KEEP 100

/* The purchase's ledger row as this path reads it. */
struct row {
	char key[BW_STRIPE_ID_LEN + 16]; /* _id */
	char org_id[BW_STRIPE_ID_LEN], session_id[BW_STRIPE_ID_LEN], state[16];
	char last_event[BW_STRIPE_ID_LEN];
	int64_t last_delta;              /* credits of the last clawback */
	struct bw_stripe_claw claw;
	int64_t version;                 /* clawback_version */
	int has_pending;
	char pending_event[BW_STRIPE_ID_LEN], pending_type[64];
	struct bw_stripe_claw pending;   /* the shares once the pending clawback is done */
	int64_t pending_delta;
};

static int get_bool(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_BOOL(&it) &&
	       bson_iter_bool(&it);
}

/* Reads the shares (named by the three keys) and the closed flag of doc into c. */
static void claw_from(const bson_t *doc, const char *refunded, const char *disputed,
		      const char *taken, struct bw_stripe_claw *c)
{
	bw_mongo_get_int64(doc, refunded, &c->refunded);
	bw_mongo_get_int64(doc, disputed, &c->disputed);
	bw_mongo_get_int64(doc, taken, &c->taken);
	c->dispute_closed = get_bool(doc, "dispute_closed");
}

static void row_from_doc(const bson_t *doc, struct row *r)
{
	bson_iter_t it;
	const uint8_t *data = NULL;
	uint32_t len = 0;
	bson_t sub;

	memset(r, 0, sizeof(*r));
	bw_stripe_copy_utf8(doc, "_id", r->key, sizeof(r->key));
	bw_stripe_copy_utf8(doc, "org_id", r->org_id, sizeof(r->org_id));
	bw_stripe_copy_utf8(doc, "session_id", r->session_id, sizeof(r->session_id));
	bw_stripe_copy_utf8(doc, "state", r->state, sizeof(r->state));
	bw_stripe_copy_utf8(doc, "last_clawback_event_id", r->last_event, sizeof(r->last_event));
	bw_mongo_get_int64(doc, "last_clawback_credits", &r->last_delta);
	bw_mongo_get_int64(doc, "credits", &r->claw.credits);
	bw_mongo_get_int64(doc, "amount_total", &r->claw.amount_total);
	bw_mongo_get_int64(doc, "clawback_version", &r->version);
	claw_from(doc, "refunded_credits", "disputed_credits", "clawed_back_credits", &r->claw);
	if (!bson_iter_init_find(&it, doc, "clawback_pending") || !BSON_ITER_HOLDS_DOCUMENT(&it))
		return;
	bson_iter_document(&it, &len, &data);
	if (!bson_init_static(&sub, data, len))
		return;
	r->has_pending = 1;
	r->pending = r->claw;
	bw_stripe_copy_utf8(&sub, "event_id", r->pending_event, sizeof(r->pending_event));
	bw_stripe_copy_utf8(&sub, "event_type", r->pending_type, sizeof(r->pending_type));
	bw_mongo_get_int64(&sub, "delta", &r->pending_delta);
	claw_from(&sub, "refunded_credits", "disputed_credits", "clawed_back_credits",
		  &r->pending);
}

/* The org's balances after the clawback (read as shared/customer_doc reads them), into the
 * result; a debt also into the reason. */
static void balances(const struct bw_stripe_apply_ctx *ax, const bson_t *cust,
		     struct bw_stripe_outcome *out)
{
	struct bw_customer c;
	int64_t credits, used;

	bw_customer_read(cust, ax->cfg->free_grant, &c);
	credits = c.purchased;
	used = c.purchased_used;
	bw_stripe_detail_int(out, "purchased_credits", credits);
	bw_stripe_detail_int(out, "purchased_credits_used", used);
	bw_stripe_detail_int(out, "purchased_remaining", bw_customer_remaining(credits, used));
	/* The debt used - credits, when it fits int64 (credits may be negative). */
	if (used > credits && (credits >= 0 || used <= INT64_MAX + credits)) {
		bw_stripe_detail_int(out, "debt", used - credits);
		bw_stripe_outcome_set(out, BW_SS_APPLIED, "credits already spent: the org owes %"
				      PRId64 " credits (purchased_credits_used > purchased_credits)",
				      used - credits);
	}
}

/* Step 1: the row gets the pending clawback of ev, guarded by clawback_version. */
static int mark(struct bw_stripe_apply_ctx *ax, const struct row *r,
		const struct bw_stripe_claw *next, int64_t delta)
{
	bson_t *filter = BCON_NEW("_id", BCON_UTF8(r->key), "clawback_pending", "{", "$exists",
				  BCON_BOOL(false), "}");
	bson_t *update = BCON_NEW(
		"$set", "{", "clawback_pending", "{", "event_id", BCON_UTF8(ax->ev->id),
		"event_type", BCON_UTF8(ax->ev->type), "delta", BCON_INT64(delta),
		"refunded_credits", BCON_INT64(next->refunded), "disputed_credits",
		BCON_INT64(next->disputed), "clawed_back_credits", BCON_INT64(next->taken),
		"dispute_closed", BCON_BOOL(next->dispute_closed), "}", "}", "$inc", "{",
		"clawback_version", BCON_INT64(1), "}");
	int64_t matched = 0;
	int rc;

	if (r->version == 0)
		bw_stripe_append_or_missing(filter, "clawback_version", "$eq", 0);
	else
		BSON_APPEND_INT64(filter, "clawback_version", r->version);
	rc = bw_stripe_update_one(ax->m, ax->client, BW_COLL_CREDIT_TX, filter, update, 0,
				  &matched, ax->err);
	if (rc == 0 && matched != 1)
		rc = bw_err_set(ax->err, BW_ERR_TRANSIENT, "clawback of %s changed concurrently; "
				"retrying", r->key);
	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}

/* Whether adj is in the customer's applied_clawbacks. */
static int has_clawback(const bson_t *cust, const char *adj)
{
	bson_iter_t it, arr;

	if (!bson_iter_init_find(&it, cust, "applied_clawbacks") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr))
		return 0;
	while (bson_iter_next(&arr))
		if (BSON_ITER_HOLDS_UTF8(&arr) && strcmp(bson_iter_utf8(&arr, NULL), adj) == 0)
			return 1;
	return 0;
}

/* Step 2: purchased_credits -= delta once per adjustment adj (an event id). *cust is the
 * customer document afterwards (a new copy). 0, or -1 with err (INVALID: it would leave
 * int64; TRANSIENT). */
static int take_back(struct bw_stripe_apply_ctx *ax, const char *org_id, const char *adj,
		     int64_t delta, bson_t **cust)
{
	int64_t now = bw_mongo_now_ms(), have = 0;
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id));
	bson_t *update = NULL;
	int rc = -1;

	*cust = NULL;
	if (delta != 0) {
		/* an old org's overdraft is its opening balance, before the clawback */
		if (bw_stripe_open_old_org(ax->m, ax->client, org_id, ax->cfg->free_grant,
					   ax->err) != 0)
			goto done;
		BCON_APPEND(filter, "applied_clawbacks", "{", "$ne", BCON_UTF8(adj), "}");
		/* The result stays inside int64 (mongo-java-server would wrap silently). */
		if (delta > 0)
			bw_stripe_append_or_missing(filter, "purchased_credits", "$gte",
						    INT64_MIN + delta);
		else
			bw_stripe_append_or_missing(filter, "purchased_credits", "$lte",
						    INT64_MAX + delta);
		update = BCON_NEW("$inc", "{", BW_CUST_PURCHASED, BCON_INT64(-delta),
				  BW_CUST_VERSION, BCON_INT64(1), "}", "$push", "{",
				  "applied_clawbacks", "{", "$each", "[", BCON_UTF8(adj), "]",
				  "$slice", BCON_INT64(-ax->cfg->applied_sessions_keep), "}", "}",
				  "$set", "{", "updated_at", BCON_DATE_TIME(now), "}");
		if (bw_stripe_find_and_modify(ax->m, ax->client, BW_COLL_CUSTOMERS, filter, update,
					      BW_STRIPE_NO_SESSIONS, cust, ax->err) != 0)
			goto done;
		if (*cust) {
			rc = 0;
			goto done;
		}
		bson_destroy(filter);
		filter = BCON_NEW("org_id", BCON_UTF8(org_id));
	}
	/* Nothing to take, or the guard missed: taken before a crash, or out of bounds. */
	if (bw_stripe_find_one(ax->m, ax->client, BW_COLL_CUSTOMERS, filter,
			       BW_STRIPE_NO_SESSIONS, cust, ax->err) != 0)
		goto done;
	if (!*cust) {
		bw_err_set(ax->err, BW_ERR_TRANSIENT, "customer %s vanished during a clawback",
			   org_id);
		goto done;
	}
	if (delta == 0 || has_clawback(*cust, adj)) {
		rc = 0;
		goto done;
	}
	bw_mongo_get_int64(*cust, "purchased_credits", &have);
	if ((delta > 0 && have < INT64_MIN + delta) || (delta < 0 && have > INT64_MAX + delta))
		bw_err_set(ax->err, BW_ERR_INVALID, "purchased_credits %" PRId64 " - %" PRId64
			   " would leave int64", have, delta);
	else
		bw_err_set(ax->err, BW_ERR_TRANSIENT, "clawback %s of org %s missed; retrying",
			   adj, org_id);
	bson_destroy(*cust);
	*cust = NULL;
done:
	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}

/* Step 3: the row takes the shares of the pending clawback adj and forgets it. */
static int finish(struct bw_stripe_apply_ctx *ax, const struct row *r, const char *adj,
		  const char *type, const struct bw_stripe_claw *next, int64_t delta)
{
	int64_t now = bw_mongo_now_ms(), matched = 0;
	bson_t *filter = BCON_NEW("_id", BCON_UTF8(r->key), "clawback_pending.event_id",
				  BCON_UTF8(adj));
	bson_t *update = BCON_NEW(
		"$set", "{", "refunded_credits", BCON_INT64(next->refunded), "disputed_credits",
		BCON_INT64(next->disputed), "clawed_back_credits", BCON_INT64(next->taken),
		"dispute_closed", BCON_BOOL(next->dispute_closed), "last_clawback_event_id",
		BCON_UTF8(adj), "last_clawback_credits", BCON_INT64(delta), "updated_at",
		BCON_DATE_TIME(now), "}", "$unset", "{",
		"clawback_pending", BCON_UTF8(""), "}", "$push", "{", "clawbacks", "{", "$each", "[",
		"{", "event_id", BCON_UTF8(adj), "event_type", BCON_UTF8(type), "credits",
		BCON_INT64(delta), "at", BCON_DATE_TIME(now), "}", "]", "$slice",
		BCON_INT64(-HISTORY_KEEP), "}", "}");
	/* matched 0: another worker finished it first; the outcome is the same. */
	int rc = bw_stripe_update_one(ax->m, ax->client, BW_COLL_CREDIT_TX, filter, update, 0,
				      &matched, ax->err);

	bson_destroy(filter);
	bson_destroy(update);
	return rc;
}

/* Steps 2 and 3 of a marked clawback. *cust: the customer afterwards (bson_destroy). A
 * clawback that would leave int64 can never apply: the outcome is rejected (DLQ), 0 is
 * returned with *cust NULL, and the pending mark stays for an operator. */
static int complete(struct bw_stripe_apply_ctx *ax, const struct row *r, const char *adj,
		    const char *type, const struct bw_stripe_claw *next, int64_t delta,
		    bson_t **cust)
{
	if (take_back(ax, r->org_id, adj, delta, cust) != 0) {
		if (ax->err->kind != BW_ERR_INVALID)
			return -1;
		bw_stripe_outcome_set(ax->out, BW_SS_REJECTED, "%s", ax->err->msg);
		bw_err_clear(ax->err);
		return 0;
	}
	bw_fault_point("refund_after_clawback");
	if (finish(ax, r, adj, type, next, delta) != 0)
		return -1;
	bw_fault_point("refund_after_row");
	return 0;
}

/* Reads the purchase of ev into *r: 1 found, 0 not a credit purchase (out: ignored). */
static int load_row(struct bw_stripe_apply_ctx *ax, struct row *r)
{
	bson_t *filter = BCON_NEW("payment_intent", BCON_UTF8(ax->ev->payment_intent));
	bson_t *doc = NULL;
	int rc = bw_stripe_find_one(ax->m, ax->client, BW_COLL_CREDIT_TX, filter, NULL, &doc,
				    ax->err);

	if (rc == 0 && doc) {
		row_from_doc(doc, r);
		rc = 1;
	} else if (rc == 0) {
		bw_stripe_outcome_set(ax->out, BW_SS_IGNORED, "payment %s is no credit purchase",
				      ax->ev->payment_intent);
	}
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

int bw_stripe_refund_apply(struct bw_stripe_apply_ctx *ax)
{
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_outcome *out = ax->out;
	struct bw_stripe_claw next;
	struct row r;
	bson_t *cust = NULL;
	int64_t delta = 0;
	int rc = -1, found, plan;

	bw_stripe_detail_str(out, "payment_intent", ev->payment_intent);
	bw_stripe_detail_str(out, "charge_id", ev->charge_id);
	if (ev->is_dispute)
		bw_stripe_detail_str(out, "dispute_id", ev->object_id);
	if (!ev->payment_intent) {
		bw_stripe_outcome_set(out, BW_SS_IGNORED, "no payment_intent: not a credit purchase");
		return 0;
	}
	found = load_row(ax, &r);
	if (found <= 0)
		return found;
	snprintf(out->org_id, sizeof(out->org_id), "%s", r.org_id);
	bw_stripe_detail_str(out, "checkout_session_id", r.session_id[0] ? r.session_id : NULL);
	if (strcmp(r.state, "pending") == 0) /* its checkout crashed mid-way and is redone */
		return bw_err_set(ax->err, BW_ERR_TRANSIENT, "credit purchase %s is still being "
				  "credited; retrying", r.key);
	if (strcmp(r.state, "applied") != 0) {
		bw_stripe_outcome_set(out, BW_SS_IGNORED, "credit purchase %s was not credited "
				      "(state %s)", r.key, r.state[0] ? r.state : "none");
		return 0;
	}
	if (r.has_pending) {
		/* A clawback marked before a crash (this event's or another's): finish it. */
		if (complete(ax, &r, r.pending_event, r.pending_type, &r.pending, r.pending_delta,
			     &cust) != 0)
			goto done;
		if (!cust) { /* rejected */
			rc = 0;
			goto done;
		}
		r.claw = r.pending;
		snprintf(r.last_event, sizeof(r.last_event), "%s", r.pending_event);
		r.last_delta = r.pending_delta;
		r.has_pending = 0;
	}
	plan = bw_stripe_clawback_plan(ev, &r.claw, &next, &delta, out);
	if (plan > 0 && strcmp(r.last_event, ev->id) == 0) {
		/* This event's own clawback, done before a crash lost its record. */
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
		bw_stripe_detail_int(out, "credits_taken_back", r.last_delta);
		delta = r.last_delta;
		next = r.claw;
		if (!cust && take_back(ax, r.org_id, ev->id, 0, &cust) != 0)
			goto done;
	} else if (plan != 0) {
		bw_stripe_detail_int(out, "clawed_back_credits", r.claw.taken);
		rc = 0;
		goto done;
	} else {
		if (mark(ax, &r, &next, delta) != 0)
			goto done;
		bw_fault_point("refund_after_mark");
		bson_destroy(cust);
		cust = NULL;
		if (complete(ax, &r, ev->id, ev->type, &next, delta, &cust) != 0)
			goto done;
		if (!cust) { /* rejected */
			rc = 0;
			goto done;
		}
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
	}
	bw_stripe_detail_int(out, "credits_taken_back", delta);
	bw_stripe_detail_int(out, "clawed_back_credits", next.taken);
	balances(ax, cust, out);
	rc = 0;
done:
	bson_destroy(cust);
	return rc;
}
