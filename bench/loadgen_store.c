/* loadgen_store: the `store` mode of bw-bench-loadgen (loadgen.h): the store ceiling, the
 * event stream cut into batches written as the usage worker writes them (one unordered bulk
 * of conditional updates per batch, optionally its usage records), without Kafka. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "loadgen.h"
#include "mongo.h"

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* --records 1: a usage record per new event of [start, end), shaped like the worker's
 * since issue 15 (the event's fields once, at the top level; hash, breakdown, Kafka position),
 * inserted with one unordered bulk. Returns the number inserted, or -1. */
static long insert_records(mongoc_collection_t *coll, const struct plan *p, long start, long end)
{
	bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
	mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, opts);
	bson_t reply;
	bson_error_t error;
	long n = 0;

	for (long i = start; i < end; i++) {
		long u = p->msg_uniq[i];
		char id[48], org[32];
		if (p->first_msg[u] != i)
			continue;   /* a re-send: the worker answers it from the existing record */
		snprintf(id, sizeof(id), "ev-%ld", u);
		lg_org_name(p, org, sizeof(org), p->uniq_org[u]);
		bson_t *ev = BCON_NEW(
			"event_id", BCON_UTF8(id), "org_id", BCON_UTF8(org), "spus",
			BCON_INT64(p->uniq_spus[u]), "operation", BCON_UTF8("llm_call"), "source",
			BCON_UTF8("bench"), "timestamp", BCON_UTF8("2026-11-25T12:00:00Z"),
			"llm_provider", BCON_UTF8("openai"), "llm_model", BCON_UTF8("gpt-4o-mini"),
			"prompt_tokens", BCON_INT64(900), "completion_tokens", BCON_INT64(100),
			"total_tokens", BCON_INT64(1000), "bench_ts_us", BCON_INT64(i));
		bson_t *doc = bson_new();
		bson_concat(doc, ev);   /* the event's fields at the top level (no "event" copy) */
		BCON_APPEND(doc, "hash",
			    BCON_UTF8("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
			    "status", BCON_UTF8("applied"), "from_subscription", BCON_INT64(0),
			    "from_purchased", BCON_INT64(0), "from_granted", BCON_INT64(p->uniq_spus[u]),
			    "from_paid", BCON_INT64(0), "balance_version", BCON_INT64(1), "processed_at",
			    BCON_DATE_TIME(bw_mongo_now_ms()), "kafka_topic", BCON_UTF8("usage.events"),
			    "kafka_partition", BCON_INT32(0), "kafka_offset", BCON_INT64(i));
		bson_destroy(ev);
		mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, &error);
		bson_destroy(doc);
		n++;
	}
	if (n > 0 && !mongoc_bulk_operation_execute(bulk, &reply, &error)) {
		fprintf(stderr, "loadgen: record insert: %s\n", error.message);
		n = -1;
	}
	if (n != 0)
		bson_destroy(&reply);
	mongoc_bulk_operation_destroy(bulk);
	bson_destroy(opts);
	return n;
}

int lg_mode_store(const struct opts *o)
{
	const char *uri = getenv("MONGO_URI");
	struct bw_err err;
	struct bw_mongo *m = NULL;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL, *rcoll = NULL;
	struct plan p;
	int64_t *version = calloc((size_t)o->orgs, sizeof(*version));
	long *orgs = calloc((size_t)o->batch, sizeof(*orgs));
	long updates = 0, bulks = 0, misses = 0, records = 0;
	int64_t t0, t1;
	int rc = 1;

	bw_err_clear(&err);
	memset(&p, 0, sizeof(p));
	if (!version || !orgs || lg_plan_build(&p, o) != 0)
		goto done;
	m = bw_mongo_new(uri ? uri : "mongodb://127.0.0.1:27017", o->db, "bw-bench-store", &err);
	if (!m || bw_mongo_ensure_indexes(m, &err) != 0) {
		fprintf(stderr, "loadgen: mongo: %s\n", err.msg);
		goto done;
	}
	client = bw_mongo_pop(m);
	coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	rcoll = bw_mongo_coll(m, client, BW_COLL_USAGE_RECORDS);
	if (o->compound_index) {
		/* mongo-java-server answers a filter from an index only when the filter's fields
		 * are exactly the index's: without this, {org_id, balance_version} scans. */
		bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(BW_COLL_CUSTOMERS), "indexes", "[",
				       "{", "key", "{", "org_id", BCON_INT32(1), "balance_version",
				       BCON_INT32(1), "}", "name", BCON_UTF8("org_id_1_balance_version_1"),
				       "unique", BCON_BOOL(true), "}", "]");
		bson_error_t ierr;
		int iok = (int)mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL,
									 &ierr);
		bson_destroy(cmd);
		if (!iok) {
			fprintf(stderr, "loadgen: create index: %s\n", ierr.message);
			goto done;
		}
	}
	t0 = lg_now_us();
	for (long start = 0; start < p.n; start += o->batch) {
		long end = start + o->batch < p.n ? start + o->batch : p.n, norgs = 0;
		bson_t *bopts = BCON_NEW("ordered", BCON_BOOL(false));
		bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
		mongoc_bulk_operation_t *bulk =
			mongoc_collection_create_bulk_operation_with_opts(coll, bopts);
		bson_t reply;
		bson_error_t error;

		for (long i = start; i < end; i++)
			orgs[norgs++] = p.uniq_org[p.msg_uniq[i]];
		qsort(orgs, (size_t)norgs, sizeof(*orgs), cmp_long);
		for (long i = 0; i < norgs; i++) {
			char id[32];
			if (i > 0 && orgs[i] == orgs[i - 1])
				continue;
			lg_org_name(&p, id, sizeof(id), orgs[i]);
			int64_t v = version[orgs[i]];
			bson_t *f = BCON_NEW("org_id", BCON_UTF8(id), "balance_version",
					     BCON_INT64(v));
			bson_t *u = BCON_NEW("$inc", "{", "granted_credits_used", BCON_INT64(1),
					     "}", "$set", "{", "balance_version", BCON_INT64(v + 1),
					     "}");
			mongoc_bulk_operation_update_one_with_opts(bulk, f, u, v ? NULL : upsert,
								   &error);
			bson_destroy(f);
			bson_destroy(u);
			version[orgs[i]] = v + 1;
			updates++;
		}
		int ok = (int)mongoc_bulk_operation_execute(bulk, &reply, &error);
		bson_iter_t it;
		if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it)) {
			uint32_t alen = 0;
			const uint8_t *data = NULL;
			bson_iter_array(&it, &alen, &data);
			bson_t arr;
			if (bson_init_static(&arr, data, alen))
				misses += bson_count_keys(&arr);
		} else if (!ok) {
			fprintf(stderr, "loadgen: bulk: %s\n", error.message);
			bson_destroy(&reply);
			mongoc_bulk_operation_destroy(bulk);
			bson_destroy(bopts);
			bson_destroy(upsert);
			goto done;
		}
		bulks++;
		bson_destroy(&reply);
		if (o->records) {
			long k = insert_records(rcoll, &p, start, end);
			if (k < 0) {
				mongoc_bulk_operation_destroy(bulk);
				bson_destroy(bopts);
				bson_destroy(upsert);
				goto done;
			}
			records += k;
		}
		mongoc_bulk_operation_destroy(bulk);
		bson_destroy(bopts);
		bson_destroy(upsert);
	}
	t1 = lg_now_us();
	{
		double secs = (double)(t1 - t0) / 1e6;
		printf("{\"mode\":\"store\",\"events\":%ld,\"bulks\":%ld,\"updates\":%ld,"
		       "\"records\":%ld,\"misses\":%ld,\"seconds\":%.3f,\"events_per_s\":%.1f,"
		       "\"updates_per_s\":%.1f}\n",
		       p.n, bulks, updates, records, misses, secs,
		       secs > 0 ? (double)p.n / secs : 0,
		       secs > 0 ? (double)updates / secs : 0);
	}
	rc = misses == 0 ? 0 : 3;
done:
	if (coll)
		mongoc_collection_destroy(coll);
	if (rcoll)
		mongoc_collection_destroy(rcoll);
	if (client)
		bw_mongo_push(m, client);
	bw_mongo_destroy(m);
	lg_plan_free(&p);
	free(version);
	free(orgs);
	return rc;
}

