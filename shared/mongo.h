/* mongo: the MongoDB connection pool, the indexes every collection needs, and error
 * classification (the one place that decides a database error's kind).
 *
 * Only plain MongoDB features are used (single-document atomic updates, unique indexes,
 * bulk writes), so the same code runs on MongoDB 7 and on the local wire-protocol server. */
#ifndef BW_MONGO_H
#define BW_MONGO_H

#include <jansson.h>
#include <mongoc/mongoc.h>

#include "err.h"

#define BW_COLL_CUSTOMERS "payments_customers"
#define BW_COLL_USAGE_RECORDS "payments_usage_records"
#define BW_COLL_CREDIT_TX "payments_credit_transactions"
#define BW_COLL_STRIPE_EVENTS "payments_stripe_events"
#define BW_COLL_PRICES "payments_prices"
/* Stripe customers of another product on a shared Stripe account, by _id = customer id:
 * written by the sync worker, read by the stripe worker (their events are ignored). */
#define BW_COLL_FOREIGN_CUSTOMERS "payments_foreign_customers"
/* The original integration's audit log of the Stripe events it handled (read only). */
#define BW_COLL_OLD_STRIPE_EVENTS "stripe_events"

/* MongoDB's duplicate key error code. */
#define BW_MONGO_DUPLICATE_KEY 11000

struct bw_mongo;

/* Opens a pool on uri and uses database db (both copied). Writes use write concern
 * w:majority, j:true unless the URI sets w; reads use read concern majority unless the URI
 * sets readConcernLevel. NULL with err (FATAL for a bad URI). Does not
 * contact the server: call bw_mongo_ping(). */
struct bw_mongo *bw_mongo_new(const char *uri, const char *db, const char *appname,
			      struct bw_err *err);

/* Frees the pool. NULL-safe. */
void bw_mongo_destroy(struct bw_mongo *m);

/* Borrows a client from the pool (blocks until one is free); give it back with
 * bw_mongo_push(). */
mongoc_client_t *bw_mongo_pop(struct bw_mongo *m);
void bw_mongo_push(struct bw_mongo *m, mongoc_client_t *client);

/* The database name (borrowed). */
const char *bw_mongo_db(const struct bw_mongo *m);

/* New collection handle of client (caller mongoc_collection_destroy()). */
mongoc_collection_t *bw_mongo_coll(struct bw_mongo *m, mongoc_client_t *client,
				   const char *name);

/* Round trip to the server. 0, or -1 with err (TRANSIENT). */
int bw_mongo_ping(struct bw_mongo *m, struct bw_err *err);

/* Creates every index the workers rely on (idempotent, online: never drops an index of the
 * backend's), over documents the original integration wrote: drops this project's obsolete
 * indexes by name; a unique index that duplicates stored before it make impossible either
 * stops the start with err FATAL (customers: the message names the org ids and how to merge;
 * main exits 2) or is logged and skipped, as its table entry says; harmless old duplicates
 * (two ledger rows of one Checkout session) are logged. 0, or -1 with err. */
int bw_mongo_ensure_indexes(struct bw_mongo *m, struct bw_err *err);

/* The i-th index bw_mongo_ensure_indexes() creates: its collection (static) and name (into
 * name). 0, or -1 past the last one. For bw-admin doctor. */
int bw_mongo_index_at(size_t i, const char **coll, char *name, size_t name_len);

/* The i-th obsolete index bw_mongo_ensure_indexes() drops: collection, name and why (all
 * static). 0, or -1 past the last one. */
int bw_mongo_obsolete_index_at(size_t i, const char **coll, const char **name,
			       const char **why);

/* Values of field stored in more than one document of coll (up to 50), by one aggregation:
 * keys gets "v1, v2", detail "v1: _id a, b; v2: ..." (both truncated to fit). Returns how
 * many values, or -1 with err. */
int bw_mongo_find_duplicates(struct bw_mongo *m, const char *coll, const char *field,
			     char *keys, size_t keys_len, char *detail, size_t detail_len,
			     struct bw_err *err);

/* Fills err from a driver error with context `what`: duplicate key -> CONFLICT,
 * everything else (network, server selection, server errors) -> TRANSIENT. Returns -1. */
int bw_mongo_error(const bson_error_t *error, const char *what, struct bw_err *err);

/* What the reply of one bulk write says (bw_mongo_bulk_check). */
struct bw_mongo_bulk_result {
	int64_t inserted, matched, modified, upserted, removed;
	size_t write_errors;      /* entries of writeErrors */
	size_t duplicates;        /* of which duplicate-key errors */
	size_t wc_errors;         /* entries of writeConcernErrors */
};

/* The one place that decides what a bulk write's outcome means. ok, reply and error are what
 * mongoc_bulk_operation_execute() returned and filled (reply may be empty: the driver failed
 * before any command). mongoc 1.23 always puts a writeErrors array in the reply, empty after a
 * dropped connection, an ok:0 command error or a write concern error, so the return value,
 * the array and the error are all read:
 *   - a write error other than a duplicate key: TRANSIENT (the documents were built here from
 *     validated input, so it is a server condition; the batch is retried);
 *   - a duplicate key: dup_kind (BW_ERR_NONE: expected, "already written" or a lost upsert
 *     race the caller reads from the counts; BW_ERR_CONFLICT or BW_ERR_TRANSIENT otherwise);
 *   - a write concern error: TRANSIENT (the write may be rolled back by a failover);
 *   - the execute failed and its error is not the first write error (network, server
 *     selection, ok:0): TRANSIENT;
 *   - nreported > 0 (unordered inserts: every op is either inserted or a write error) and
 *     fewer ops were reported: TRANSIENT (the driver stopped after a failed sub-batch).
 * res (may be NULL) gets the counts. Returns 0, or -1 with err; `what` names the write.
 * Defined in mongo_bulk.c. */
int bw_mongo_bulk_check(uint32_t ok, const bson_t *reply, const bson_error_t *error,
			enum bw_err_kind dup_kind, size_t nreported, const char *what,
			struct bw_mongo_bulk_result *res, struct bw_err *err);

/* find on coll_name of the database, sent as a find command: the driver's
 * mongoc_collection_find_with_opts() validates the whole filter first (bson_validate: about
 * 2,000 instructions per member of a large $in, built here from checked values), the
 * command path sends it as built. projection may be NULL; batch_size (> 0) asks for that
 * many documents in the first reply (a $in of n ids matches at most n). Returns the cursor
 * over the reply (later batches by getMore on the same server), or NULL with *error. One
 * difference from the driver's find: no automatic retry of the read on a network error;
 * the caller's batch is retried instead. */
mongoc_cursor_t *bw_mongo_find_cmd(struct bw_mongo *m, mongoc_client_t *client,
				   const char *coll_name, const bson_t *filter,
				   const bson_t *projection, int32_t batch_size,
				   bson_error_t *error);

/* Milliseconds since the epoch, for timestamps stored in documents. */
int64_t bw_mongo_now_ms(void);

/* Reads doc's top-level member key as an integer: int32, int64, a date (milliseconds since
 * the epoch), or a double that holds an integral value in int64 range (written by a tool that
 * stores numbers as doubles). Returns 1 and sets *out when present and usable; otherwise
 * returns 0 and sets *out to 0 (absent, null, another type, a fractional double). */
int bw_mongo_get_int64(const bson_t *doc, const char *key, int64_t *out);
/* The same reading of the member at it. */
int bw_mongo_iter_int64(const bson_iter_t *it, int64_t *out);

/* A member found by bw_mongo_find_keys() (bson_iter_t is over-aligned for a plain array). */
struct bw_mongo_member {
	bson_iter_t it;
};

/* One pass over doc's top-level members for keys[0..n) (n <= 32): out[i].it is positioned at
 * the first member named keys[i], as bson_iter_init_find() would; returns the mask of the
 * keys found (bit i for keys[i]). Each bson_iter_init_find() is a scan of its own: a reader
 * of many members does one pass instead. */
uint32_t bw_mongo_find_keys(const bson_t *doc, const char *const *keys, size_t n,
			    struct bw_mongo_member *out);

/* Appends a jansson value to b under key: objects and arrays recursively, integers as int64,
 * reals as double. Returns 0, or -1 when a value cannot be converted. */
int bw_mongo_append_json(bson_t *b, const char *key, const json_t *v);

#endif
