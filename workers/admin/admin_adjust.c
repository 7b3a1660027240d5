/* admin_adjust: `bw-admin adjust ORG --bucket B --spus N --reason TEXT --key KEY` (and
 * `grant ORG ...`, its shorthand for --bucket granted): an operator's correction of one
 * bucket, applied once per (org, key), with an audit row in payments_adjustments.
 *
 * What a bucket adjustment changes: N SPUs more (or, negative, fewer) left in the bucket:
 *   granted       granted_credits   += N   (free credits)
 *   purchased     purchased_credits += N
 *   subscription  subscription_spus_used -= N  (the allowance belongs to the Stripe plan; a
 *                 correction gives back, or takes, usage of the current period)
 * The value after must be >= 0 and fit int64.
 *
 * Crash safety, the usage worker's pending_events pattern:
 *   1. read the customer document, then the adjustment row of (org, key);
 *   2. one conditional update (filter balance_version as read) sets the bucket's field,
 *      bumps balance_version (so the usage worker's next conditional write misses and reloads
 *      instead of overwriting it) and pushes the entry {key, before, after, who, why, when}
 *      to pending_adjustments — the change and "key applied" are one atomic write;
 *   3. insert the row (unique _id {org_id, key}; a duplicate is "already recorded");
 *   4. pull the entry.
 * A crash after 2 leaves the entry: the next run with the same key finds it and does 3-4.
 * The row is written only after the entry exists, and the entry is pulled only after the
 * row exists, so at every moment one of them says the key was applied (read in that order,
 * document first). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "customer_doc.h"

#define COLL_ADJUSTMENTS "payments_adjustments"
#define PENDING_ADJ "pending_adjustments"
#define MAX_ATTEMPTS 50

struct adj {
	const char *org, *bucket, *field, *reason, *key;
	int64_t spus;
	int sign;               /* +1: the field grows by spus; -1: it shrinks (subscription) */
	/* the applied change (from this run or as found) */
	int64_t before, after, version, period_start_ms, at_ms;
	char who[129];
	char found_bucket[16];
	int64_t found_spus;
};

static int parse(struct bw_admin *a, int grant, struct adj *x)
{
	const struct bw_admin_args *g = &a->args;

	memset(x, 0, sizeof(*x));
	x->org = g->npos > 1 ? g->pos[1] : NULL;
	x->bucket = grant ? "granted" : g->bucket;
	x->reason = g->reason;
	x->key = g->key;
	if (!x->org || g->npos > 2)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "%s needs one ORG",
					  grant ? "grant" : "adjust");
	if (grant && g->bucket && strcmp(g->bucket, "granted") != 0)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "grant is --bucket granted; use adjust for %s", g->bucket);
	if (!x->bucket)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--bucket granted|purchased|subscription is required");
	if (strcmp(x->bucket, "granted") == 0) {
		x->field = BW_CUST_GRANTED;
		x->sign = 1;
	} else if (strcmp(x->bucket, "purchased") == 0) {
		x->field = BW_CUST_PURCHASED;
		x->sign = 1;
	} else if (strcmp(x->bucket, "subscription") == 0) {
		x->field = BW_CUST_SUB_USED;
		x->sign = -1;
	} else {
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--bucket %s: expected granted, purchased or subscription",
					  x->bucket);
	}
	if (!g->spus || bw_parse_int64(g->spus, -INT64_MAX, INT64_MAX, &x->spus) != 0 ||
	    x->spus == 0)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--spus must be a non-zero integer");
	/* Refused (not a usage slip): an adjustment without a why is not audit-able. */
	if (!x->reason || strspn(x->reason, " \t\r\n") == strlen(x->reason))
		return bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_INVALID,
					  "refused: --reason TEXT is required (it is audited)");
	if (strlen(x->reason) > 1000)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--reason is longer than 1000 bytes");
	if (!x->key || !x->key[0] || strlen(x->key) > 200)
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "--key KEY (1-200 bytes) is required: the adjustment is "
					  "applied once per key");
	snprintf(x->who, sizeof(x->who), "%s", a->cfg.user);
	return BW_ADMIN_OK;
}

static void append_entry(bson_t *b, const struct adj *x)
{
	BSON_APPEND_UTF8(b, "key", x->key);
	BSON_APPEND_UTF8(b, "bucket", x->bucket);
	BSON_APPEND_UTF8(b, "field", x->field);
	BSON_APPEND_INT64(b, "spus", x->spus);
	BSON_APPEND_INT64(b, "before", x->before);
	BSON_APPEND_INT64(b, "after", x->after);
	BSON_APPEND_UTF8(b, "reason", x->reason);
	BSON_APPEND_UTF8(b, "who", x->who);
	BSON_APPEND_DATE_TIME(b, "at", x->at_ms);
	BSON_APPEND_INT64(b, BW_CUST_VERSION, x->version);
	if (x->period_start_ms > 0)
		BSON_APPEND_DATE_TIME(b, "period_start", x->period_start_ms);
}

static void copy_str(const bson_t *doc, const char *key, char *buf, size_t len)
{
	bson_iter_t it;

	buf[0] = '\0';
	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
		snprintf(buf, len, "%s", bson_iter_utf8(&it, NULL));
}

/* Reads an entry or a row of this key into x (the applied change as stored). */
static void read_entry(const bson_t *e, struct adj *x)
{
	bw_mongo_get_int64(e, "before", &x->before);
	bw_mongo_get_int64(e, "after", &x->after);
	bw_mongo_get_int64(e, BW_CUST_VERSION, &x->version);
	bw_mongo_get_int64(e, "period_start", &x->period_start_ms);
	bw_mongo_get_int64(e, "at", &x->at_ms);
	bw_mongo_get_int64(e, "spus", &x->found_spus);
	copy_str(e, "bucket", x->found_bucket, sizeof(x->found_bucket));
	copy_str(e, "who", x->who, sizeof(x->who));
}

/* The pending entry of x->key on doc, read into x. 1 found, 0 not. */
static int find_pending(const bson_t *doc, struct adj *x)
{
	bson_iter_t it, arr;

	if (!bson_iter_init_find(&it, doc, PENDING_ADJ) || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr))
		return 0;
	while (bson_iter_next(&arr)) {
		const uint8_t *data;
		uint32_t len;
		bson_t e;
		char key[256];
		if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
			continue;
		bson_iter_document(&arr, &len, &data);
		if (!bson_init_static(&e, data, len))
			continue;
		copy_str(&e, "key", key, sizeof(key));
		if (strcmp(key, x->key) == 0) {
			read_entry(&e, x);
			return 1;
		}
	}
	return 0;
}

static void append_row_id(bson_t *b, const struct adj *x)
{
	bson_t id;

	BSON_APPEND_DOCUMENT_BEGIN(b, "_id", &id);
	BSON_APPEND_UTF8(&id, "org_id", x->org);
	BSON_APPEND_UTF8(&id, "key", x->key);
	bson_append_document_end(b, &id);
}

/* The customer document of x->org (new bson or NULL when none), creating a fresh one first
 * when create is set (grant: credits for an org before its first event). */
static int load_doc(struct bw_mongo *m, mongoc_client_t *client, const struct adj *x,
		    int64_t free_grant, int create, bson_t **doc, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(x->org));
	bson_t update = BSON_INITIALIZER, soi;
	bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
	mongoc_cursor_t *cur = NULL;
	const bson_t *found;
	bson_error_t error;
	int rc = -1;

	*doc = NULL;
	for (int pass = 0; pass < 1 + !!create && !*doc; pass++) {
		if (pass == 1) {
			/* An org never seen: its document as any worker would create it. */
			BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
			bw_customer_append_fresh(&soi, free_grant, bw_mongo_now_ms());
			BSON_APPEND_INT64(&soi, BW_CUST_VERSION, 1);
			bson_append_document_end(&update, &soi);
			if (!mongoc_collection_update_one(coll, filter, &update, opts, NULL, &error) &&
			    error.code != BW_MONGO_DUPLICATE_KEY) {
				bw_mongo_error(&error, "create customer", err);
				goto done;
			}
		}
		cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
		if (mongoc_cursor_next(cur, &found))
			*doc = bson_copy(found);
		if (mongoc_cursor_error(cur, &error)) {
			bw_mongo_error(&error, "load customer", err);
			goto done;
		}
		mongoc_cursor_destroy(cur);
		cur = NULL;
	}
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(&update);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	return rc;
}

/* The adjustment row of (org, key), read into x. 1 found, 0 not, -1 error. */
static int load_row(struct bw_mongo *m, mongoc_client_t *client, struct adj *x,
		    struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, COLL_ADJUSTMENTS);
	bson_t filter = BSON_INITIALIZER;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t error;
	int rc = 0;

	append_row_id(&filter, x);
	cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
	if (mongoc_cursor_next(cur, &doc)) {
		read_entry(doc, x);
		rc = 1;
	}
	if (mongoc_cursor_error(cur, &error))
		rc = bw_mongo_error(&error, "load adjustment", err);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	return rc;
}

/* Steps 3 and 4: the row, then the entry goes. */
static int record(struct bw_mongo *m, mongoc_client_t *client, const struct adj *x,
		  struct bw_err *err)
{
	mongoc_collection_t *rows = bw_mongo_coll(m, client, COLL_ADJUSTMENTS);
	mongoc_collection_t *custs = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	bson_t row = BSON_INITIALIZER;
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(x->org));
	bson_t *pull = BCON_NEW("$pull", "{", PENDING_ADJ, "{", "key", BCON_UTF8(x->key), "}",
				"}");
	bson_error_t error;
	int rc = -1;

	append_row_id(&row, x);
	BSON_APPEND_UTF8(&row, "org_id", x->org);
	append_entry(&row, x);
	if (!mongoc_collection_insert_one(rows, &row, NULL, NULL, &error) &&
	    error.code != BW_MONGO_DUPLICATE_KEY) {
		bw_mongo_error(&error, "insert adjustment", err);
		goto done;
	}
	if (!mongoc_collection_update_one(custs, filter, pull, NULL, NULL, &error)) {
		bw_mongo_error(&error, "pull pending adjustment", err);
		goto done;
	}
	rc = 0;
done:
	bson_destroy(pull);
	bson_destroy(filter);
	bson_destroy(&row);
	mongoc_collection_destroy(custs);
	mongoc_collection_destroy(rows);
	return rc;
}

/* Step 2. 1 applied, 0 missed (another writer changed the document), -1 error. */
static int apply(struct bw_mongo *m, mongoc_client_t *client, const struct bw_customer *c,
		 struct adj *x, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, inc, push, entry;
	bson_t reply;
	bson_error_t error;
	int rc = -1;

	BSON_APPEND_UTF8(&filter, BW_CUST_ORG_ID, x->org);
	if (c->has_version)
		BSON_APPEND_INT64(&filter, BW_CUST_VERSION, c->version);
	else
		BCON_APPEND(&filter, BW_CUST_VERSION, "{", "$exists", BCON_BOOL(false), "}");
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_INT64(&set, x->field, x->after);
	BSON_APPEND_DATE_TIME(&set, BW_CUST_UPDATED_AT, x->at_ms);
	bson_append_document_end(&update, &set);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
	bw_customer_append_version_bump(&inc);
	bson_append_document_end(&update, &inc);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &push);
	BSON_APPEND_DOCUMENT_BEGIN(&push, PENDING_ADJ, &entry);
	append_entry(&entry, x);
	bson_append_document_end(&push, &entry);
	bson_append_document_end(&update, &push);
	if (!mongoc_collection_update_one(coll, &filter, &update, NULL, &reply, &error)) {
		bw_mongo_error(&error, "adjust customer", err);
	} else {
		int64_t matched = 0;
		bw_mongo_get_int64(&reply, "matchedCount", &matched);
		rc = matched > 0;
	}
	bson_destroy(&reply);
	bson_destroy(&update);
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	return rc;
}

/* The same key again: fine when it names the same change, refused otherwise. */
static int same_change(struct bw_admin *a, const struct adj *x)
{
	if (strcmp(x->found_bucket, x->bucket) == 0 && x->found_spus == x->spus)
		return BW_ADMIN_OK;
	return bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_CONFLICT,
				  "refused: key %s was already used for --bucket %s --spus %" PRId64,
				  x->key, x->found_bucket, x->found_spus);
}

static void answer(struct bw_admin *a, const struct adj *x, const char *status)
{
	char at[40];

	bw_admin_format_ms(x->at_ms, at, sizeof(at));
	json_object_set_new(a->out, "status", json_string(status));
	json_object_set_new(a->out, "org_id", json_string(x->org));
	json_object_set_new(a->out, "key", json_string(x->key));
	json_object_set_new(a->out, "bucket", json_string(x->bucket));
	json_object_set_new(a->out, "field", json_string(x->field));
	json_object_set_new(a->out, "spus", json_integer(x->spus));
	json_object_set_new(a->out, "before", json_integer(x->before));
	json_object_set_new(a->out, "after", json_integer(x->after));
	json_object_set_new(a->out, "balance_version", json_integer(x->version));
	json_object_set_new(a->out, "who", json_string(x->who));
	json_object_set_new(a->out, "at", json_string(at));
}

int bw_admin_adjust(struct bw_admin *a, int grant)
{
	struct adj x;
	struct bw_mongo *m;
	mongoc_client_t *client = NULL;
	bson_t *doc = NULL;
	const char *status = "applied";
	int code = parse(a, grant, &x), attempt;

	if (code != BW_ADMIN_OK)
		return code;
	if (!(m = bw_admin_mongo(a)))
		return bw_admin_fail(a);
	client = bw_mongo_pop(m);
	for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
		struct bw_customer c;
		int64_t delta, cur, r;

		bson_destroy(doc);
		if (load_doc(m, client, &x, a->common.free_grant, grant, &doc, &a->err) != 0)
			goto failed;
		if (!doc) {
			/* adjust never creates an org: a mistyped id must not become a customer. */
			code = bw_admin_fail_with(a, BW_ADMIN_NOT_FOUND, BW_ERR_INVALID,
						  "org %s has no customer document%s", x.org,
						  grant ? "" : " (grant creates one)");
			goto done;
		}
		/* Document first, then the row: see the file comment. */
		if (find_pending(doc, &x)) {
			if ((code = same_change(a, &x)) != BW_ADMIN_OK)
				goto done;
			status = "applied"; /* by an earlier run that stopped before its row */
			break;
		}
		if ((r = load_row(m, client, &x, &a->err)) < 0)
			goto failed;
		if (r == 1) {
			if ((code = same_change(a, &x)) == BW_ADMIN_OK) {
				answer(a, &x, "already_applied");
			}
			goto done;
		}
		bw_customer_read(doc, a->common.free_grant, &c);
		if (x.sign < 0 && !c.has_opening) {
			code = bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_INVALID,
				"refused: org %s's opening balance is not recorded yet (the original "
				"integration's counters); the usage worker records it at the org's "
				"next event", x.org);
			goto done;
		}
		if (x.sign < 0)
			cur = c.sub_used;
		else
			cur = strcmp(x.field, BW_CUST_GRANTED) == 0 ? c.granted : c.purchased;
		delta = x.sign > 0 ? x.spus : -x.spus;
		if (__builtin_add_overflow(cur, delta, &x.after)) {
			code = bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_INVALID,
						  "refused: %s %" PRId64 " %+" PRId64
						  " overflows int64", x.field, cur, delta);
			goto done;
		}
		if (x.after < 0) {
			code = bw_admin_fail_with(a, BW_ADMIN_REFUSED, BW_ERR_INVALID,
						  "refused: %s would be %" PRId64 " (below 0)", x.field,
						  x.after);
			goto done;
		}
		x.before = cur;
		x.version = c.version + 1;
		x.period_start_ms = c.period_start_ms;
		x.at_ms = bw_mongo_now_ms();
		r = apply(m, client, &c, &x, &a->err);
		if (r < 0)
			goto failed;
		if (r == 1)
			break;
	}
	if (attempt == MAX_ATTEMPTS) {
		code = bw_admin_fail_with(a, BW_ADMIN_UNAVAILABLE, BW_ERR_TRANSIENT,
					  "org %s changed %d times while adjusting; retry", x.org,
					  MAX_ATTEMPTS);
		goto done;
	}
	if (record(m, client, &x, &a->err) != 0)
		goto failed;
	answer(a, &x, status);
	code = BW_ADMIN_OK;
	goto done;
failed:
	code = bw_admin_fail(a);
done:
	bson_destroy(doc);
	bw_mongo_push(m, client);
	return code;
}
