/* stripe_checkout: a paid Checkout session (mode payment, metadata.credits) credits the
 * org's purchased_credits once per session, through a ledger row in
 * payments_credit_transactions and a guarded $inc on the customer document. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "customer_doc.h"
#include "metrics.h"
#include "stripe_handlers.h"
#include "stripe_opening.h"
#include "stripe_store.h"

/* The credit step's filter: the session is not in the org's window of credited sessions,
 * and adding credits cannot overflow int64 (MongoDB's $inc would fail on every retry and
 * hold the partition; mongo-java-server even wraps silently). */
static bson_t *credit_filter(const char *org_id, const char *sid, int64_t credits)
{
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id), "applied_sessions", "{", "$ne",
				  BCON_UTF8(sid), "}");

	bw_stripe_append_or_missing(filter, "purchased_credits", "$lte", INT64_MAX - credits);
	return filter;
}

/* The credit update: $inc purchased_credits and balance_version, and $push the session id
 * onto applied_sessions keeping only the last `keep` ids.
 *
 * Why a bounded window is safe: the ledger row (payments_credit_transactions, _id
 * "checkout:<session>") is the durable "credited once" record, and apply_checkout checks its
 * state `applied` before it ever reaches this update. applied_sessions only guards the gap
 * between this update and marking the ledger row applied, i.e. a crash in between; the
 * redelivery after such a crash comes within seconds (session timeout plus backoff), long
 * before `keep` (STRIPE_APPLIED_SESSIONS_KEEP, default 1000) newer sessions of the same org
 * have been credited and pushed the id out. Unbounded, the array grows with every purchase
 * in a document every worker reads and rewrites. */
static bson_t *credit_update(const char *sid, int64_t credits, int64_t keep, int64_t now)
{
	return BCON_NEW("$inc", "{", BW_CUST_PURCHASED, BCON_INT64(credits), BW_CUST_VERSION,
			BCON_INT64(1), "}", "$push", "{", "applied_sessions", "{", "$each", "[",
			BCON_UTF8(sid), "]", "$slice", BCON_INT64(-keep), "}", "}", "$set", "{",
			"updated_at", BCON_DATE_TIME(now), "}");
}

/* The credit update missed: tells "already credited" (the session is in applied_sessions:
 * a crash between the credit and the ledger mark) from "would overflow" or a balance that is
 * not an integer (INVALID: the purchase can never be applied). 0 with *credited set, or -1
 * with err (INVALID, or TRANSIENT when the document changed under us: retry). */
static int credit_missed(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			 const char *sid, int64_t credits, int *credited, struct bw_err *err)
{
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org_id));
	bson_t *doc = NULL;
	bson_iter_t it, arr;
	int64_t have = 0;
	int rc = -1;

	*credited = 0;
	if (bw_stripe_find_one(m, client, BW_COLL_CUSTOMERS, filter, NULL, &doc, err) != 0)
		goto done;
	if (!doc) {
		bw_err_set(err, BW_ERR_TRANSIENT, "customer %s vanished during the credit", org_id);
		goto done;
	}
	if (bson_iter_init_find(&it, doc, "applied_sessions") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &arr))
		while (!*credited && bson_iter_next(&arr))
			*credited = BSON_ITER_HOLDS_UTF8(&arr) &&
				    strcmp(bson_iter_utf8(&arr, NULL), sid) == 0;
	if (*credited) {
		rc = 0;
		goto done;
	}
	if (!bw_mongo_get_int64(doc, "purchased_credits", &have)) {
		bw_err_set(err, BW_ERR_INVALID, "purchased_credits of org %s is not an integer",
			   org_id);
		goto done;
	}
	if (have > INT64_MAX - credits) {
		bw_err_set(err, BW_ERR_INVALID, "purchased_credits %" PRId64 " + %" PRId64
			   " credits of session %s would overflow int64", have, credits, sid);
		goto done;
	}
	bw_err_set(err, BW_ERR_TRANSIENT, "credit of session %s missed; retrying", sid);
done:
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* The ledger row of a new credit: the original integration's fields ({session_id, org_id,
 * credits, created_at}) plus ours. A new document (bson_destroy). */
static bson_t *ledger_row(const struct bw_stripe_event *ev, const char *key, const char *org_id,
			  int64_t now)
{
	bson_t *row = BCON_NEW("_id", BCON_UTF8(key), "session_id", BCON_UTF8(ev->object_id),
			       "org_id", BCON_UTF8(org_id), "credits", BCON_INT64(ev->credits),
			       "created_at", BCON_DATE_TIME(now), "event_id", BCON_UTF8(ev->id),
			       "state", BCON_UTF8("pending"));

	if (ev->customer_id)
		BSON_APPEND_UTF8(row, "stripe_customer_id", ev->customer_id);
	if (ev->payment_intent)
		BSON_APPEND_UTF8(row, "payment_intent", ev->payment_intent);
	if (ev->has_amount)
		BSON_APPEND_INT64(row, "amount_total", ev->amount);
	return row;
}

/* Whether the original integration credited the session: a ledger row keyed session_id
 * whose _id is not ours. The batch cache read that for every checkout of the batch; an
 * event it did not see is looked up here. 0 with *old set (row = its _id), or -1. */
static int old_credit(struct bw_stripe_apply_ctx *ax, const char *key, int *old, char *row,
		      size_t len)
{
	bson_t *filter = NULL, *doc = NULL;
	bson_iter_t it;
	int rc;

	*old = bw_stripe_cache_old_credit(ax->cache, ax->ev->object_id, row, len);
	if (*old >= 0)
		return 0;
	filter = BCON_NEW("session_id", BCON_UTF8(ax->ev->object_id), "_id", "{", "$ne",
			  BCON_UTF8(key), "}");
	rc = bw_stripe_find_one(ax->m, ax->client, BW_COLL_CREDIT_TX, filter, NULL, &doc,
				ax->err);
	*old = rc == 0 && doc;
	if (*old && bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it))
		bson_oid_to_string(bson_iter_oid(&it), row);
	else if (*old)
		snprintf(row, len, "(not an ObjectId)");
	bson_destroy(doc);
	bson_destroy(filter);
	return rc;
}

/* Credits a paid checkout session once per session id:
 *   0. a session the original integration credited (its ledger row keyed session_id, which
 *      its double credits may have written twice: no unique index can hold there) is a
 *      duplicate, nothing is written;
 *   1. ledger row {_id "checkout:<session>" (unique everywhere), session_id, org_id,
 *      credits, event_id, payment_intent, state pending} (a duplicate key means another
 *      event of the session got there: its row rules);
 *   2. customer $inc purchased_credits, guarded by applied_sessions $ne sid and the
 *      overflow bound, and $push sid (credit_update: a bounded window);
 *   3. ledger row state applied.
 * A crash after 1 redoes 2 (guarded); after 2 the guard misses and 3 is redone; after 3
 * nothing is redone. Two workers at once: one insert wins, both run 2, one matches. A
 * credit that would overflow is rejected (DLQ) and its ledger row marked `rejected`. */
/* A subscription-mode checkout: resolving the org (bw_stripe_resolve_org) linked the
 * customer id to metadata.org_id when the org had none; an org linked to another customer
 * keeps it (the sync worker owns that mapping). */
static int link_only(struct bw_stripe_apply_ctx *ax)
{
	const char *stored = ax->cust.customer_id;

	bw_stripe_detail_str(ax->out, "stripe_customer_id", stored[0] ? stored : NULL);
	if (strcmp(stored, ax->ev->customer_id) == 0)
		bw_stripe_outcome_set(ax->out, BW_SS_APPLIED, NULL);
	else
		bw_stripe_outcome_set(ax->out, BW_SS_IGNORED, "org is linked to another Stripe "
				      "customer (%s)", stored[0] ? stored : "none");
	return 0;
}

int bw_stripe_checkout_apply(struct bw_stripe_apply_ctx *ax)
{
	struct bw_mongo *m = ax->m;
	mongoc_client_t *client = ax->client;
	const struct bw_stripe_event *ev = ax->ev;
	struct bw_stripe_outcome *out = ax->out;
	struct bw_err *err = ax->err;
	const char *sid = ev->object_id;
	int64_t now = bw_mongo_now_ms(), matched = 0, credits = ev->credits;
	char key[sizeof(BW_STRIPE_LEDGER_ID_PREFIX) + BW_STRIPE_ID_LEN];
	bson_t *row = NULL, *by_sid = NULL, *filter = NULL, *update = NULL, *doc = NULL;
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CREDIT_TX);
	bson_error_t error;
	char row_org[BW_STRIPE_ID_LEN], row_event[BW_STRIPE_ID_LEN], row_state[16];
	int rc = -1, credited = 0, other_org, old = 0;

	if (ev->mode && strcmp(ev->mode, "subscription") == 0) {
		rc = link_only(ax);
		goto done;
	}
	snprintf(key, sizeof(key), "%s%s", BW_STRIPE_LEDGER_ID_PREFIX, sid);
	bw_stripe_detail_str(out, "checkout_session_id", sid);
	if (old_credit(ax, key, &old, row_org, sizeof(row_org)) != 0)
		goto done;
	if (old) {
		bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "checkout session already credited by "
				      "the previous integration (ledger row %s)", row_org);
		bw_stripe_detail_str(out, "original_status", "previous_integration");
		rc = 0;
		goto done;
	}
	row = ledger_row(ev, key, out->org_id, now);
	by_sid = BCON_NEW("_id", BCON_UTF8(key));
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_collection_insert_one(coll, row, NULL, NULL, &error)) {
		/* Inserted: the row is ours, as written (no read back). */
		snprintf(row_org, sizeof(row_org), "%s", out->org_id);
		snprintf(row_event, sizeof(row_event), "%s", ev->id);
		snprintf(row_state, sizeof(row_state), "pending");
	} else if (error.code != BW_MONGO_DUPLICATE_KEY) {
		bw_mongo_error(&error, "insert credit transaction", err);
		goto done;
	} else {
		if (bw_stripe_find_one(m, client, BW_COLL_CREDIT_TX, by_sid, NULL, &doc, err) != 0)
			goto done;
		if (!doc) {
			bw_err_set(err, BW_ERR_TRANSIENT, "credit transaction %s vanished", sid);
			goto done;
		}
		/* The stored row is authoritative: the first event of the session decided it. */
		bw_stripe_copy_utf8(doc, "org_id", row_org, sizeof(row_org));
		bw_stripe_copy_utf8(doc, "event_id", row_event, sizeof(row_event));
		bw_stripe_copy_utf8(doc, "state", row_state, sizeof(row_state));
		bw_mongo_get_int64(doc, "credits", &credits);
	}
	bw_fault_point("checkout_after_ledger");
	other_org = strcmp(row_org, out->org_id) != 0;
	snprintf(out->org_id, sizeof(out->org_id), "%s", row_org);
	bw_stripe_detail_int(out, "credits", credits);
	if (strcmp(row_state, "applied") != 0) {
		if (other_org && bw_stripe_cust_ensure(m, client, ax->cfg->free_grant, row_org,
						       NULL, NULL, err) != 0)
			goto done;
		/* an old org's overdraft is its opening balance, not repaid by the credit */
		if (bw_stripe_open_old_org(m, client, row_org, ax->cfg->free_grant, err) != 0)
			goto done;
		filter = credit_filter(row_org, sid, credits);
		update = credit_update(sid, credits, ax->cfg->applied_sessions_keep, now);
		if (bw_stripe_update_one(m, client, BW_COLL_CUSTOMERS, filter, update, 0, &matched,
					 err) != 0)
			goto done;
		if (matched == 0 && credit_missed(m, client, row_org, sid, credits, &credited,
						  err) != 0) {
			if (err->kind != BW_ERR_INVALID)
				goto done;
			bw_stripe_outcome_set(out, BW_SS_REJECTED, "%s", err->msg);
			bw_err_clear(err);
			bson_destroy(update);
			update = BCON_NEW("$set", "{", "state", BCON_UTF8("rejected"), "reason",
					  BCON_UTF8(out->reason), "}");
			if (bw_stripe_update_one(m, client, BW_COLL_CREDIT_TX, by_sid, update, 0,
						 &matched, err) != 0)
				goto done;
			rc = 0;
			goto done;
		}
		bw_fault_point("checkout_after_credit");
		bson_destroy(update);
		update = BCON_NEW("$set", "{", "state", BCON_UTF8("applied"), "applied_at",
				  BCON_DATE_TIME(now), "}");
		if (bw_stripe_update_one(m, client, BW_COLL_CREDIT_TX, by_sid, update, 0, &matched,
					 err) != 0)
			goto done;
		bw_fault_point("checkout_after_ledger_applied");
	}
	if (strcmp(row_event, ev->id) == 0)
		bw_stripe_outcome_set(out, BW_SS_APPLIED, NULL);
	else {
		bw_stripe_outcome_set(out, BW_SS_DUPLICATE, "checkout session already credited by "
				      "event %s", row_event);
		bw_stripe_detail_str(out, "credited_by_event_id", row_event);
	}
	rc = 0;
done:
	mongoc_collection_destroy(coll);
	bson_destroy(row);
	bson_destroy(by_sid);
	bson_destroy(filter);
	bson_destroy(update);
	bson_destroy(doc);
	return rc;
}

