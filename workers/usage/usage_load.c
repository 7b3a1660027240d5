/* usage_load: the usage worker's reads (see usage_store.h): the backend's organizations, the
 * customer documents and the usage records of a batch, one query each. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "usage_result.h"
#include "usage_store.h"

static void copy_hash(char dst[65], const bson_iter_t *it)
{
	uint32_t len = 0;
	const char *s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : "";
	if (len > 64)
		len = 64;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* Reads the hash, breakdown and version members at it (a pending entry or a usage record);
 * returns 1 when it read one of them. */
static int read_charge(const bson_iter_t *it, char hash[65], struct bw_breakdown *bd,
		       int64_t *version)
{
	const char *k = bson_iter_key(it);
	int64_t *dst = NULL;

	/* The six names differ in length: one comparison per member, not a chain. */
	switch (bson_iter_key_len(it)) {
	case 4:
		if (strcmp(k, "hash") != 0)
			return 0;
		copy_hash(hash, it);
		return 1;
	case 17:
		dst = strcmp(k, "from_subscription") == 0 ? &bd->from_subscription : NULL;
		break;
	case 14:
		dst = strcmp(k, "from_purchased") == 0 ? &bd->from_purchased : NULL;
		break;
	case 12:
		dst = strcmp(k, "from_granted") == 0 ? &bd->from_granted : NULL;
		break;
	case 9:
		dst = strcmp(k, "from_paid") == 0 ? &bd->from_paid : NULL;
		break;
	case 15:
		dst = strcmp(k, "balance_version") == 0 ? version : NULL;
		break;
	default:
		break;
	}
	if (!dst)
		return 0;
	*dst = bson_iter_as_int64(it);
	return 1;
}

static int cmp_pending(const void *a, const void *b)
{
	const struct bw_pending *x = *(struct bw_pending *const *)a;
	const struct bw_pending *y = *(struct bw_pending *const *)b;
	int c = strcmp(x->event_id, y->event_id);
	return c ? c : (x < y ? -1 : x > y); /* equal ids: array order, as a scan has */
}

/* Indexes org->pending by event_id: a hot org holds hundreds of entries, and every event of
 * the batch for that org looks its id up. */
static int index_pending(struct bw_org *org, struct bw_err *err)
{
	free(org->pending_by_id); /* a second document of the org (no unique index) */
	org->pending_by_id = NULL;
	if (org->npending == 0)
		return 0;
	org->pending_by_id = malloc(org->npending * sizeof(*org->pending_by_id));
	if (!org->pending_by_id)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	for (size_t i = 0; i < org->npending; i++)
		org->pending_by_id[i] = &org->pending[i];
	qsort(org->pending_by_id, org->npending, sizeof(*org->pending_by_id), cmp_pending);
	return 0;
}

static int cmp_pending_key(const void *key, const void *elem)
{
	return strcmp(key, (*(struct bw_pending *const *)elem)->event_id);
}

struct bw_pending *bw_org_find_pending(const struct bw_org *org, const char *event_id)
{
	struct bw_pending **hit;

	if (org->npending == 0)
		return NULL;
	hit = bsearch(event_id, org->pending_by_id, org->npending, sizeof(*hit),
		      cmp_pending_key);
	if (!hit)
		return NULL;
	while (hit > org->pending_by_id && strcmp(hit[-1]->event_id, event_id) == 0)
		hit--;
	return *hit;
}

/* The pending_events member at it (NULL: absent) into org->pending, indexed. */
static int load_pending(const bson_iter_t *it, struct bw_org *org, struct bw_err *err)
{
	bson_iter_t arr;
	size_t cap = 0;

	if (!it || !BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &arr))
		return 0;
	while (bson_iter_next(&arr)) {
		bson_iter_t sub;
		struct bw_pending p;
		if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &sub))
			continue;
		memset(&p, 0, sizeof(p));
		while (bson_iter_next(&sub))
			if (!read_charge(&sub, p.hash, &p.bd, &p.version) &&
			    strcmp(bson_iter_key(&sub), "event_id") == 0 && BSON_ITER_HOLDS_UTF8(&sub))
				p.event_id = strdup(bson_iter_utf8(&sub, NULL));
		if (!p.event_id)
			continue;
		if (org->npending == cap) {
			cap = cap ? cap * 2 : 8;
			struct bw_pending *grown = realloc(org->pending, cap * sizeof(*grown));
			if (!grown) {
				free(p.event_id);
				return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			}
			org->pending = grown;
		}
		org->pending[org->npending++] = p;
	}
	return index_pending(org, err);
}

/* Everything the batch reads of a customer document, found in one pass over it (a pass is
 * ~160 instructions per member in libbson, and the document has dozens). */
static int org_from_doc(const bson_t *doc, struct bw_org *org, int64_t free_grant,
			struct bw_err *err)
{
	static const char *const extra[] = { BW_CUST_ALERTS_FIRED, BW_CUST_ALERT_EXHAUSTED,
					     BW_CUST_PENDING_ALERTS, BW_CUST_PENDING };
	struct bw_mongo_member m[4];
	struct bw_customer *c = &org->cust;
	uint32_t has = bw_customer_read_more(doc, free_grant, c, extra, 4, m);

	org->exists = 1;
	org->version = c->version;
	org->version_missing = !c->has_version;
	org->period_start_ms = c->period_start_ms;
	org->bal.subscription_allowance = c->allowance;
	org->bal.subscription_used = c->sub_used;
	org->bal.purchased = c->purchased;
	org->bal.purchased_used = c->purchased_used;
	org->bal.granted = c->granted;
	org->bal.granted_used = c->granted_used;
	org->bal.paid_used = c->paid_used;
	if (load_pending(has & 8 ? &m[3].it : NULL, org, err) != 0)
		return -1;
	return bw_usage_alerts_load(has & 7, m, org, err);
}

static int cmp_org_ptr(const void *key, const void *elem)
{
	return strcmp(key, (*(struct bw_org *const *)elem)->org_id);
}

static int cmp_org(const void *key, const void *elem)
{
	return strcmp(key, ((const struct bw_org *)elem)->org_id);
}

int bw_usage_store_load_org_types(struct bw_mongo *m, mongoc_client_t *client,
				  struct bw_org *orgs, size_t n, struct bw_err *err)
{
	bson_error_t error;
	bson_t filter = BSON_INITIALIZER, cond, in;
	bson_t *proj = BCON_NEW("_id", BCON_INT32(1));
	mongoc_cursor_t *cur = NULL;
	const bson_t *doc;
	size_t noids = 0;
	char idx[16];
	int rc = -1;

	BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &cond);
	BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &in);
	for (size_t i = 0; i < n; i++) {
		bson_oid_t oid;
		orgs[i].org_enterprise = 0;
		if (!bw_customer_org_oid(orgs[i].org_id, &oid))
			continue;
		const char *key;
		bson_uint32_to_string((uint32_t)noids++, &key, idx, sizeof(idx));
		bson_append_oid(&in, key, -1, &oid);
	}
	bson_append_array_end(&cond, &in);
	bson_append_document_end(&filter, &cond);
	BSON_APPEND_UTF8(&filter, BW_ORG_TYPE, BW_CUST_TYPE_ENTERPRISE);
	if (noids == 0) { /* no org of the batch can be in organizations */
		rc = 0;
		goto done;
	}
	cur = bw_mongo_find_cmd(m, client, BW_COLL_ORGANIZATIONS, &filter, proj, (int32_t)noids,
				&error);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (cur && mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		char hex[25];
		if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
			continue;
		bson_oid_to_string(bson_iter_oid(&it), hex);
		struct bw_org *hit = bsearch(hex, orgs, n, sizeof(*orgs), cmp_org);
		if (hit)
			hit->org_enterprise = 1;
	}
	if (!cur || mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load organizations", err);
		goto done;
	}
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(proj);
	return rc;
}

int bw_usage_store_load_orgs(struct bw_mongo *m, mongoc_client_t *client,
			     struct bw_org *const *orgs, size_t n, int64_t free_grant,
			     struct bw_err *err)
{
	bson_error_t error;
	struct bw_bson_buf fbuf;
	bson_t filter;
	mongoc_cursor_t *cur = NULL;
	const bson_t *doc;
	int rc = -1;

	/* orgs must be sorted by org_id (the batch logic groups them so): lookups below. */
	for (size_t i = 0; i < n; i++) {
		bw_org_reset(orgs[i]);
		bw_customer_init_fresh(&orgs[i]->cust, free_grant);
		orgs[i]->bal.granted = free_grant; /* what a new org starts with */
	}
	bw_bson_buf_init(&fbuf, BW_BSON_BUF_MAX);
	bw_bson_buf_begin_document(&fbuf, BW_CUST_ORG_ID);
	bw_bson_buf_begin_array(&fbuf, "$in");
	for (size_t i = 0; i < n; i++)
		bw_bson_buf_utf8(&fbuf, NULL, orgs[i]->org_id);
	bw_bson_buf_end(&fbuf);
	bw_bson_buf_end(&fbuf);
	if (bw_bson_buf_view(&fbuf, &filter) != 0) {
		bw_err_set(err, BW_ERR_TRANSIENT, "load customers: filter out of memory or larger "
			   "than a document");
		goto done;
	}
	cur = bw_mongo_find_cmd(m, client, BW_COLL_CUSTOMERS, &filter, NULL, (int32_t)n, &error);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (cur && mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		if (!bson_iter_init_find(&it, doc, BW_CUST_ORG_ID) || !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		struct bw_org *const *hit =
			bsearch(bson_iter_utf8(&it, NULL), orgs, n, sizeof(*orgs), cmp_org_ptr);
		if (!hit)
			continue;
		if (org_from_doc(doc, *hit, free_grant, err) != 0)
			goto done;
	}
	if (!cur || mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load customers", err);
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		orgs[i]->bal.enterprise = orgs[i]->cust.enterprise || orgs[i]->org_enterprise;
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bw_bson_buf_cleanup(&fbuf);
	return rc;
}

static int cmp_found(const void *a, const void *b)
{
	const struct bw_found_record *x = a, *y = b;
	int c = strcmp(x->org_id, y->org_id);
	return c ? c : strcmp(x->event_id, y->event_id);
}

/* Reads a usage record found by key; 0 when its _id is not one of ours. */
static int read_record(const bson_t *doc, struct bw_found_record *r)
{
	bson_iter_t it, id;

	memset(r, 0, sizeof(*r));
	if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
	    !bson_iter_recurse(&it, &id))
		return 0;
	while (bson_iter_next(&id)) {
		const char *k = bson_iter_key(&id);
		if (!BSON_ITER_HOLDS_UTF8(&id))
			continue;
		if (strcmp(k, "org_id") == 0 && !r->org_id)
			r->org_id = strdup(bson_iter_utf8(&id, NULL));
		else if (strcmp(k, "event_id") == 0 && !r->event_id)
			r->event_id = strdup(bson_iter_utf8(&id, NULL));
		else if (strcmp(k, BW_CUST_OPENING) == 0 && !r->event_id)
			r->event_id = strdup("");
	}
	if (!bson_iter_init(&it, doc))
		return 0;
	while (bson_iter_next(&it)) {
		const char *k = bson_iter_key(&it);
		if (read_charge(&it, r->hash, &r->bd, &r->version))
			continue;
		if (strcmp(k, "kafka_topic") == 0 && BSON_ITER_HOLDS_UTF8(&it) && !r->kafka_topic)
			r->kafka_topic = strdup(bson_iter_utf8(&it, NULL));
		else if (strcmp(k, "kafka_partition") == 0)
			r->kafka_partition = (int32_t)bson_iter_as_int64(&it);
		else if (strcmp(k, "kafka_offset") == 0)
			r->kafka_offset = bson_iter_as_int64(&it);
	}
	return r->org_id && r->event_id;
}

static void found_record_cleanup(struct bw_found_record *r)
{
	free(r->event_id);
	free(r->org_id);
	free(r->kafka_topic);
}

int bw_usage_store_find_records(struct bw_mongo *m, mongoc_client_t *client,
				const struct bw_record_key *keys, size_t n,
				struct bw_found_record **out, size_t *nout, struct bw_err *err)
{
	bson_error_t error;
	struct bw_bson_buf fbuf;
	bson_t filter;
	bson_t *proj = BCON_NEW("hash", BCON_INT32(1), "from_subscription", BCON_INT32(1),
				"from_purchased", BCON_INT32(1), "from_granted", BCON_INT32(1),
				"from_paid", BCON_INT32(1), "balance_version", BCON_INT32(1),
				"kafka_topic", BCON_INT32(1), "kafka_partition", BCON_INT32(1),
				"kafka_offset", BCON_INT32(1));
	mongoc_cursor_t *cur = NULL;
	struct bw_found_record *recs = NULL;
	size_t count = 0, cap = 0;
	const bson_t *doc;
	int rc = -1;

	*out = NULL;
	*nout = 0;
	bw_bson_buf_init(&fbuf, BW_BSON_BUF_MAX);
	if (n == 0) {
		rc = 0;
		goto done;
	}
	/* The composite _id: unique on every server without an extra index, and looked up
	 * through the _id index by $in on both MongoDB and the local server. */
	bw_bson_buf_begin_document(&fbuf, "_id");
	bw_bson_buf_begin_array(&fbuf, "$in");
	for (size_t i = 0; i < n; i++)
		bw_usage_record_id_buf(&fbuf, NULL, keys[i].org_id, keys[i].event_id);
	bw_bson_buf_end(&fbuf);
	bw_bson_buf_end(&fbuf);
	if (bw_bson_buf_view(&fbuf, &filter) != 0) {
		bw_err_set(err, BW_ERR_TRANSIENT, "find usage records: filter out of memory or "
			   "larger than a document");
		goto done;
	}
	cur = bw_mongo_find_cmd(m, client, BW_COLL_USAGE_RECORDS, &filter, proj, (int32_t)n,
				&error);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (cur && mongoc_cursor_next(cur, &doc)) {
		struct bw_found_record r;
		if (!read_record(doc, &r)) {
			found_record_cleanup(&r);
			continue;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			struct bw_found_record *grown = realloc(recs, cap * sizeof(*grown));
			if (!grown) {
				found_record_cleanup(&r);
				bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
				goto done;
			}
			recs = grown;
		}
		recs[count++] = r;
	}
	if (!cur || mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "find usage records", err);
		goto done;
	}
	if (count)
		qsort(recs, count, sizeof(*recs), cmp_found);
	*out = recs;
	*nout = count;
	recs = NULL;
	count = 0;
	rc = 0;
done:
	bw_found_records_free(recs, count);
	mongoc_cursor_destroy(cur);
	bw_bson_buf_cleanup(&fbuf);
	bson_destroy(proj);
	return rc;
}

void bw_usage_record_id_buf(struct bw_bson_buf *b, const char *key, const char *org_id,
			    const char *event_id)
{
	/* Field order matters: {org_id, event_id} is the key, {event_id, org_id} another. */
	bw_bson_buf_begin_document(b, key);
	bw_bson_buf_utf8(b, "org_id", org_id);
	if (event_id[0])
		bw_bson_buf_utf8(b, "event_id", event_id);
	else
		bw_bson_buf_utf8(b, BW_CUST_OPENING, BW_OPENING_SOURCE);
	bw_bson_buf_end(b);
}

const struct bw_found_record *bw_found_record_lookup(const struct bw_found_record *recs,
						     size_t n, const char *org_id,
						     const char *event_id)
{
	struct bw_found_record key;

	if (n == 0)
		return NULL;
	key.org_id = (char *)org_id;
	key.event_id = (char *)event_id;
	return bsearch(&key, recs, n, sizeof(*recs), cmp_found);
}

void bw_found_records_free(struct bw_found_record *recs, size_t n)
{
	for (size_t i = 0; recs && i < n; i++)
		found_record_cleanup(&recs[i]);
	free(recs);
}
