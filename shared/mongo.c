/* mongo: see mongo.h. */
#include "mongo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "metrics.h"

struct bw_mongo {
	mongoc_client_pool_t *pool;
	char *db;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void driver_init(void)
{
	mongoc_init();
}

/* Every index the workers need: the unique ones make idempotency hold even across workers. */
static const struct {
	const char *coll, *field, *field2; /* field2: second key of a compound index, or NULL */
	int unique;
} index_table[] = {
	{ BW_COLL_CUSTOMERS, "org_id", NULL, 1 },
	/* The usage worker's conditional update filters on both; MongoDB would use the org_id
	 * index, but the local wire-protocol server only uses a unique index whose fields match
	 * the query's exactly, and scans otherwise (docs/PERFORMANCE.md). Unique because org_id
	 * alone is. */
	{ BW_COLL_CUSTOMERS, "org_id", "balance_version", 1 },
	{ BW_COLL_CUSTOMERS, "stripe_customer_id", NULL, 0 },
	{ BW_COLL_USAGE_RECORDS, "event_id", NULL, 1 },
	{ BW_COLL_USAGE_RECORDS, "org_id", NULL, 0 },
	{ BW_COLL_CREDIT_TX, "checkout_session_id", NULL, 1 },
	{ BW_COLL_CREDIT_TX, "org_id", NULL, 0 },
	{ BW_COLL_STRIPE_EVENTS, "event_id", NULL, 1 },
	{ BW_COLL_STRIPE_EVENTS, "state", NULL, 0 },
	{ BW_COLL_PRICES, "price_id", NULL, 1 },
	{ BW_COLL_PRICES, "tier", NULL, 0 },       /* plan lookups by tier (stripe worker) */
	{ BW_COLL_PRICES, "sync_run", NULL, 0 },   /* the sync's "not listed in this run" sweep */
};

struct bw_mongo *bw_mongo_new(const char *uri_str, const char *db, const char *appname,
			      struct bw_err *err)
{
	bson_error_t error;
	mongoc_uri_t *uri = NULL;
	struct bw_mongo *m = NULL;

	pthread_once(&init_once, driver_init);
	uri = mongoc_uri_new_with_error(uri_str, &error);
	if (!uri) {
		bw_err_set(err, BW_ERR_FATAL, "MONGO_URI: %s", error.message);
		goto fail;
	}
	if (appname)
		mongoc_uri_set_appname(uri, appname);
	m = calloc(1, sizeof(*m));
	if (!m || !(m->db = strdup(db))) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		goto fail;
	}
	/* Offsets are stored only after the database effect is durable (invariant 6): unless the
	 * URI says otherwise, writes are acknowledged by a majority, journaled. */
	if (!mongoc_uri_has_option(uri, MONGOC_URI_W)) {
		mongoc_write_concern_t *wc = mongoc_write_concern_new();
		mongoc_write_concern_set_wmajority(wc, 0);
		mongoc_write_concern_set_journal(wc, true);
		mongoc_uri_set_write_concern(uri, wc);
		mongoc_write_concern_destroy(wc);
	}
	m->pool = mongoc_client_pool_new(uri);
	if (!m->pool) {
		bw_err_set(err, BW_ERR_FATAL, "cannot create MongoDB client pool");
		goto fail;
	}
	mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2);
	mongoc_uri_destroy(uri);
	return m;
fail:
	mongoc_uri_destroy(uri);
	bw_mongo_destroy(m);
	return NULL;
}

void bw_mongo_destroy(struct bw_mongo *m)
{
	if (!m)
		return;
	if (m->pool)
		mongoc_client_pool_destroy(m->pool);
	free(m->db);
	free(m);
}

mongoc_client_t *bw_mongo_pop(struct bw_mongo *m)
{
	return mongoc_client_pool_pop(m->pool);
}

void bw_mongo_push(struct bw_mongo *m, mongoc_client_t *client)
{
	if (client)
		mongoc_client_pool_push(m->pool, client);
}

const char *bw_mongo_db(const struct bw_mongo *m)
{
	return m->db;
}

mongoc_collection_t *bw_mongo_coll(struct bw_mongo *m, mongoc_client_t *client,
				   const char *name)
{
	return mongoc_client_get_collection(client, m->db, name);
}

int bw_mongo_error(const bson_error_t *error, const char *what, struct bw_err *err)
{
	if (error->code == BW_MONGO_DUPLICATE_KEY)
		return bw_err_set(err, BW_ERR_CONFLICT, "%s: duplicate key: %s", what,
				  error->message);
	return bw_err_set(err, BW_ERR_TRANSIENT, "%s: %s (domain %u, code %u)", what,
			  error->message, error->domain, error->code);
}

int bw_mongo_ping(struct bw_mongo *m, struct bw_err *err)
{
	bson_error_t error;
	bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
	mongoc_client_t *client = bw_mongo_pop(m);
	int rc = 0;

	if (!mongoc_client_command_simple(client, "admin", cmd, NULL, NULL, &error))
		rc = bw_mongo_error(&error, "MongoDB ping", err);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	bson_destroy(cmd);
	bw_mongo_push(m, client);
	return rc;
}

int bw_mongo_ensure_indexes(struct bw_mongo *m, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_database_t *database = mongoc_client_get_database(client, m->db);
	int rc = 0;

	for (size_t i = 0; i < sizeof(index_table) / sizeof(index_table[0]) && rc == 0; i++) {
		bson_error_t error;
		char name[96];
		bson_t cmd = BSON_INITIALIZER, indexes, idx, key;

		if (index_table[i].field2)
			snprintf(name, sizeof(name), "%s_1_%s_1", index_table[i].field,
				 index_table[i].field2);
		else
			snprintf(name, sizeof(name), "%s_1", index_table[i].field);
		BSON_APPEND_UTF8(&cmd, "createIndexes", index_table[i].coll);
		BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
		BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &idx);
		BSON_APPEND_DOCUMENT_BEGIN(&idx, "key", &key);
		BSON_APPEND_INT32(&key, index_table[i].field, 1);
		if (index_table[i].field2)
			BSON_APPEND_INT32(&key, index_table[i].field2, 1);
		bson_append_document_end(&idx, &key);
		BSON_APPEND_UTF8(&idx, "name", name);
		if (index_table[i].unique)
			BSON_APPEND_BOOL(&idx, "unique", true);
		bson_append_document_end(&indexes, &idx);
		bson_append_array_end(&cmd, &indexes);
		if (!mongoc_database_write_command_with_opts(database, &cmd, NULL, NULL, &error)) {
			rc = bw_mongo_error(&error, "createIndexes", err);
			bw_err_prefix(err, index_table[i].coll);
		}
		bson_destroy(&cmd);
	}
	mongoc_database_destroy(database);
	bw_mongo_push(m, client);
	return rc;
}

int64_t bw_mongo_now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int bw_mongo_get_int64(const bson_t *doc, const char *key, int64_t *out)
{
	bson_iter_t it;

	*out = 0;
	if (!bson_iter_init_find(&it, doc, key))
		return 0;
	if (BSON_ITER_HOLDS_INT64(&it))
		*out = bson_iter_int64(&it);
	else if (BSON_ITER_HOLDS_INT32(&it))
		*out = bson_iter_int32(&it);
	else if (BSON_ITER_HOLDS_DATE_TIME(&it))
		*out = bson_iter_date_time(&it);
	else if (BSON_ITER_HOLDS_DOUBLE(&it)) {
		/* Integral values only; the bounds keep the cast defined. */
		double d = bson_iter_double(&it);
		if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d)
			return 0;
		*out = (int64_t)d;
	} else
		return 0;
	return 1;
}

int bw_mongo_append_json(bson_t *b, const char *key, const json_t *v)
{
	bson_t child;
	char idx[16];
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *sub;
		BSON_APPEND_DOCUMENT_BEGIN(b, key, &child);
		json_object_foreach((json_t *)v, k, sub)
			if (bw_mongo_append_json(&child, k, sub) != 0)
				rc = -1;
		bson_append_document_end(b, &child);
		return rc;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *sub;
		BSON_APPEND_ARRAY_BEGIN(b, key, &child);
		json_array_foreach(v, i, sub) {
			const char *k;
			bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
			if (bw_mongo_append_json(&child, k, sub) != 0)
				rc = -1;
		}
		bson_append_array_end(b, &child);
		return rc;
	}
	case JSON_STRING:
		return bson_append_utf8(b, key, -1, json_string_value(v),
					(int)json_string_length(v)) ? 0 : -1;
	case JSON_INTEGER:
		return BSON_APPEND_INT64(b, key, json_integer_value(v)) ? 0 : -1;
	case JSON_REAL:
		return BSON_APPEND_DOUBLE(b, key, json_real_value(v)) ? 0 : -1;
	case JSON_TRUE:
	case JSON_FALSE:
		return BSON_APPEND_BOOL(b, key, json_is_true(v)) ? 0 : -1;
	case JSON_NULL:
		return BSON_APPEND_NULL(b, key) ? 0 : -1;
	}
	return -1;
}
