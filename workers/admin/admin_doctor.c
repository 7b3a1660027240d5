/* admin_doctor: `bw-admin doctor`: what would stop or slow the workers, each finding with
 * its fix. Read-only.
 *   error  duplicate customer documents of one org (every worker exits 2 at start);
 *          a missing topic (a worker's consumer or producer waits on it)
 *   warn   a missing index (conditional updates and dedupe scan the collection until a
 *          worker's start creates it); an obsolete index still present (refuses the same
 *          event id in two orgs until a worker's start drops it); customer documents
 *          without balance_version (the original integration's shape: converted by their
 *          next write)
 *   info   orgs whose opening balance is not recorded yet (recorded at their next event);
 *          the original integration's usage records (ObjectId _id: never matched, count 0)
 * Exit 1 when there is an error or a warning. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "customer_doc.h"

static void finding(json_t *list, const char *severity, const char *what, const char *fix)
{
	json_t *f = json_object();

	json_object_set_new(f, "severity", json_string(severity));
	json_object_set_new(f, "problem", json_string(what));
	json_object_set_new(f, "fix", json_string(fix));
	json_array_append_new(list, f);
}

static int count(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		 bson_t *filter, int64_t *n, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	bson_error_t error;

	*n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &error);
	mongoc_collection_destroy(coll);
	bson_destroy(filter);
	if (*n < 0)
		return bw_mongo_error(&error, coll_name, err);
	return 0;
}

/* 1 when coll has an index named name, 0 not, -1 error. */
static int has_index(struct bw_mongo *m, mongoc_client_t *client, const char *coll_name,
		     const char *name, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(coll, NULL);
	const bson_t *doc;
	bson_error_t error;
	int found = 0;

	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
		    strcmp(bson_iter_utf8(&it, NULL), name) == 0)
			found = 1;
	}
	/* A collection that does not exist yet has no indexes (code 26, NamespaceNotFound). */
	if (mongoc_cursor_error(cur, &error) && error.code != 26)
		found = bw_mongo_error(&error, "listIndexes", err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	return found;
}

static int check_database(struct bw_admin *a, struct bw_mongo *m, json_t *list)
{
	mongoc_client_t *client = bw_mongo_pop(m);
	char keys[1024], detail[2048], what[3072], fix[512], name[96];
	const char *coll, *oname, *why;
	int64_t n;
	int rc = -1, dups;

	dups = bw_mongo_find_duplicates(m, BW_COLL_CUSTOMERS, BW_CUST_ORG_ID, keys, sizeof(keys),
					detail, sizeof(detail), &a->err);
	if (dups < 0)
		goto done;
	if (dups > 0) {
		snprintf(what, sizeof(what), "%d org(s) with more than one customer document "
			 "(every worker exits 2 at start): %s", dups, detail);
		finding(list, "error", what, "merge each org's documents into one (README: Taking "
			"over the original integration's database), then run doctor again");
	}
	for (size_t i = 0; bw_mongo_index_at(i, &coll, name, sizeof(name)) == 0; i++) {
		int r = has_index(m, client, coll, name, &a->err);
		if (r < 0)
			goto done;
		if (r == 0) {
			snprintf(what, sizeof(what), "index %s.%s is missing", coll, name);
			snprintf(fix, sizeof(fix), "start any worker (it creates every index, online)"
				 "%s", dups > 0 ? " after merging the duplicates above" : "");
			finding(list, "warn", what, fix);
		}
	}
	for (size_t i = 0; bw_mongo_obsolete_index_at(i, &coll, &oname, &why) == 0; i++) {
		int r = has_index(m, client, coll, oname, &a->err);
		if (r < 0)
			goto done;
		if (r == 1) {
			snprintf(what, sizeof(what), "obsolete index %s.%s: %s", coll, oname, why);
			snprintf(fix, sizeof(fix), "start any worker (it drops it), or "
				 "db.%s.dropIndex(\"%s\")", coll, oname);
			finding(list, "warn", what, fix);
		}
	}
	if (count(m, client, BW_COLL_CUSTOMERS,
		  BCON_NEW(BW_CUST_VERSION, "{", "$exists", BCON_BOOL(false), "}"), &n,
		  &a->err) != 0)
		goto done;
	if (n > 0) {
		snprintf(what, sizeof(what), "%" PRId64 " customer document(s) in the original "
			 "integration's shape (no balance_version)", n);
		finding(list, "warn", what, "nothing to do by hand: a document's next write by a "
			"worker (or bw-admin adjust) adds balance_version; doctor reports it until then");
	}
	if (count(m, client, BW_COLL_CUSTOMERS,
		  BCON_NEW(BW_CUST_OPENING, "{", "$exists", BCON_BOOL(false), "}"), &n,
		  &a->err) != 0)
		goto done;
	if (n > 0) {
		snprintf(what, sizeof(what), "%" PRId64 " org(s) without a recorded opening balance "
			 "(audit skips them)", n);
		finding(list, "info", what, "recorded by the usage worker at the org's next event");
	}
	if (count(m, client, BW_COLL_USAGE_RECORDS,
		  BCON_NEW("_id", "{", "$type", BCON_UTF8("objectId"), "}"), &n, &a->err) != 0)
		goto done;
	if (n > 0) {
		snprintf(what, sizeof(what), "%" PRId64 " usage record(s) of the original "
			 "integration (ObjectId _id, no breakdown)", n);
		finding(list, "info", what, "none: kept for the backend's usage pages, counted 0 "
			"by the ledger");
	}
	rc = 0;
done:
	bw_mongo_push(m, client);
	return rc;
}

static int check_topics(struct bw_admin *a, json_t *list)
{
	const char *base[] = { a->cfg.usage_topic, a->cfg.stripe_topic, a->cfg.ticks_topic,
			       a->common.results_topic };
	struct bw_producer *p = bw_admin_producer(a);
	const struct rd_kafka_metadata *md = NULL;
	char what[512];
	int rc = -1;

	if (!p)
		return -1;
	if (rd_kafka_metadata(bw_producer_handle(p), 1, NULL, &md, 10000) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR) {
		bw_err_set(&a->err, BW_ERR_TRANSIENT, "no metadata from %s", a->common.kafka_brokers);
		goto done;
	}
	for (size_t i = 0; i < 8; i++) {
		char name[300];
		int found = 0;
		if (i % 2 == 1 && i / 2 == 3)
			continue; /* billing.results has no DLQ */
		snprintf(name, sizeof(name), "%s%s", base[i / 2], i % 2 ? ".dlq" : "");
		for (int t = 0; t < md->topic_cnt; t++)
			if (strcmp(md->topics[t].topic, name) == 0 && !md->topics[t].err)
				found = 1;
		if (!found) {
			snprintf(what, sizeof(what), "topic %s is missing", name);
			finding(list, "error", what, "create it with the partitions and retention of "
				"deploy/topics.conf (deploy/local/stack topics; compose: the topics "
				"service; kafka-topics.sh --create)");
		}
	}
	rc = 0;
done:
	if (md)
		rd_kafka_metadata_destroy(md);
	return rc;
}

int bw_admin_doctor(struct bw_admin *a)
{
	json_t *list = json_array();
	struct bw_mongo *m = bw_admin_mongo(a);
	size_t i, bad = 0;
	json_t *f;
	int code = BW_ADMIN_OK;

	if (!m || check_database(a, m, list) != 0 || check_topics(a, list) != 0)
		code = bw_admin_fail(a);
	json_array_foreach(list, i, f)
		bad += strcmp(json_string_value(json_object_get(f, "severity")), "info") != 0;
	json_object_set_new(a->out, "problems", json_integer((json_int_t)bad));
	json_object_set_new(a->out, "findings", list);
	if (code == BW_ADMIN_OK && bad > 0) {
		code = BW_ADMIN_FOUND;
		bw_err_set(&a->err, BW_ERR_INVALID, "%zu problem(s) found", bad);
	}
	return code;
}
