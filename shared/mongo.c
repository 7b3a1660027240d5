/* mongo: see mongo.h. */
#include "mongo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
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

/* What a unique index does when documents already stored (by the original integration, which
 * had no unique indexes) make it impossible to build. */
enum on_dup {
	DUP_NONE = 0,   /* not unique, or cannot fail over old documents */
	DUP_REFUSE,     /* stop the worker (exit 2), naming the duplicates and how to merge them */
	DUP_LOG,        /* log the duplicates, run without this index */
};

/* Every index the workers need: the unique ones make idempotency hold even across workers.
 * Each must build over documents the original integration wrote (DESIGN.md: the local
 * server ignores partialFilterExpression, a sparse compound index still indexes a document
 * with any one of its keys): unique keys are fields old documents never carry, a single-field
 * sparse index, or the composite _id of usage records ({org_id, event_id}: no index here). */
#define BW_MERGE_HINT                                                                        \
	"merge each org's documents into one (README: Taking over the original integration's " \
	"database), then restart"

static const struct {
	const char *coll, *field, *field2; /* field2: second key of a compound index, or NULL */
	int unique, sparse;
	enum on_dup on_dup;
	const char *merge_hint;            /* DUP_REFUSE: what the operator does */
} index_table[] = {
	{ BW_COLL_CUSTOMERS, "org_id", NULL, 1, 0, DUP_REFUSE,
	  BW_MERGE_HINT },
	/* The usage worker's conditional update filters on both; MongoDB would use the org_id
	 * index, but the local wire-protocol server only uses a unique index whose fields match
	 * the query's exactly, and scans otherwise (docs/PERFORMANCE.md). Unique because org_id
	 * alone is. */
	{ BW_COLL_CUSTOMERS, "org_id", "balance_version", 1, 0, DUP_REFUSE,
	  BW_MERGE_HINT },
	{ BW_COLL_CUSTOMERS, "stripe_customer_id", NULL, 0, 0, DUP_NONE, NULL },
	{ BW_COLL_USAGE_RECORDS, "org_id", NULL, 0, 0, DUP_NONE, NULL },
	/* Not unique: the original integration's double credits left two rows for one
	 * session_id (logged at start, startup_checks). Once per session holds on a key its
	 * rows never carry: our rows' _id "checkout:<session>" (stripe_checkout.c). */
	{ BW_COLL_CREDIT_TX, "session_id", NULL, 0, 0, DUP_NONE, NULL },
	{ BW_COLL_CREDIT_TX, "payment_intent", NULL, 0, 0, DUP_NONE, NULL }, /* refunds */
	{ BW_COLL_CREDIT_TX, "org_id", NULL, 0, 0, DUP_NONE, NULL },
	{ BW_COLL_STRIPE_EVENTS, "event_id", NULL, 1, 0, DUP_NONE, NULL },
	{ BW_COLL_STRIPE_EVENTS, "state", NULL, 0, 0, DUP_NONE, NULL },
	/* Events the original integration handled are never applied again (stripe_cache.c). */
	{ BW_COLL_OLD_STRIPE_EVENTS, "stripe_event_id", NULL, 0, 0, DUP_NONE, NULL },
	{ BW_COLL_PRICES, "price_id", NULL, 1, 0, DUP_NONE, NULL },
	{ BW_COLL_PRICES, "tier", NULL, 0, 0, DUP_NONE, NULL },       /* plan lookups by tier */
	{ BW_COLL_PRICES, "sync_run", NULL, 0, 0, DUP_NONE, NULL },   /* "not listed in this run" */
};

/* Indexes an earlier version of these workers created and this one must not keep, dropped
 * by name (never an index of the backend's, such as usage records' {org_id, timestamp}). */
static const struct {
	const char *coll, *name, *why;
} obsolete_indexes[] = {
	{ BW_COLL_USAGE_RECORDS, "event_id_1",
	  "unique event_id alone: the same event_id in two orgs is two events (the key is the "
	  "composite _id {org_id, event_id})" },
	{ BW_COLL_CREDIT_TX, "checkout_session_id_1",
	  "ledger rows are keyed session_id as the original integration wrote them; ours have "
	  "the _id checkout:<session> and no checkout_session_id" },
};

/* Duplicates that do no harm going forward but are worth an operator's look: logged at
 * start (warn), never fatal. */
static const struct {
	const char *coll, *field, *what;
} startup_checks[] = {
	{ BW_COLL_CREDIT_TX, "session_id",
	  "Checkout sessions with more than one ledger row (the original integration's double "
	  "credit; credits are not taken back automatically)" },
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
	/* A write that got a write concern error fails its batch, but it may stay on the primary
	 * until a failover rolls it back. The retry must not read it back as done (an applied
	 * pending event, an existing usage record) and store the offset: reads see only
	 * majority-committed data unless the URI sets readConcernLevel. */
	if (!mongoc_uri_has_option(uri, MONGOC_URI_READCONCERNLEVEL)) {
		mongoc_read_concern_t *rc = mongoc_read_concern_new();
		mongoc_read_concern_set_level(rc, MONGOC_READ_CONCERN_LEVEL_MAJORITY);
		mongoc_uri_set_read_concern(uri, rc);
		mongoc_read_concern_destroy(rc);
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

mongoc_cursor_t *bw_mongo_find_cmd(struct bw_mongo *m, mongoc_client_t *client,
				   const char *coll_name, const bson_t *filter,
				   const bson_t *projection, int32_t batch_size,
				   bson_error_t *error)
{
	mongoc_server_description_t *sd = NULL;
	mongoc_collection_t *coll = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t cmd = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;

	/* the server is chosen first so that getMore goes where the cursor lives */
	sd = mongoc_client_select_server(client, false, NULL, error);
	if (!sd)
		goto done;
	BSON_APPEND_INT32(&opts, "serverId", (int32_t)mongoc_server_description_id(sd));
	BSON_APPEND_UTF8(&cmd, "find", coll_name);
	BSON_APPEND_DOCUMENT(&cmd, "filter", filter);
	if (projection)
		BSON_APPEND_DOCUMENT(&cmd, "projection", projection);
	if (batch_size > 0)
		BSON_APPEND_INT32(&cmd, "batchSize", batch_size);
	coll = bw_mongo_coll(m, client, coll_name);
	if (!mongoc_collection_read_command_with_opts(coll, &cmd, NULL, &opts, &reply, error)) {
		bson_destroy(&reply);
		goto done;
	}
	cur = mongoc_cursor_new_from_command_reply_with_opts(client, &reply, &opts); /* steals */
	if (mongoc_cursor_error(cur, error)) {
		mongoc_cursor_destroy(cur);
		cur = NULL;
	}
done:
	mongoc_collection_destroy(coll);
	mongoc_server_description_destroy(sd);
	bson_destroy(&cmd);
	bson_destroy(&opts);
	return cur;
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

/* Appends a short text of the value at it (an _id or a key) to buf. */
static void append_value(char *buf, size_t len, const bson_iter_t *it)
{
	size_t used = strlen(buf);
	char oid[25];

	if (used + 1 >= len)
		return;
	if (BSON_ITER_HOLDS_OID(it)) {
		bson_oid_to_string(bson_iter_oid(it), oid);
		snprintf(buf + used, len - used, "%s", oid);
	} else if (BSON_ITER_HOLDS_UTF8(it)) {
		snprintf(buf + used, len - used, "%s", bson_iter_utf8(it, NULL));
	} else if (BSON_ITER_HOLDS_NULL(it)) {
		snprintf(buf + used, len - used, "(missing)");
	} else {
		bson_t tmp = BSON_INITIALIZER;
		char *json;
		bson_append_iter(&tmp, "v", 1, it);
		json = bson_as_relaxed_extended_json(&tmp, NULL);
		snprintf(buf + used, len - used, "%s", json ? json : "?");
		bson_free(json);
		bson_destroy(&tmp);
	}
}

int bw_mongo_find_duplicates(struct bw_mongo *m, const char *coll_name, const char *field,
			     char *keys, size_t keys_len, char *detail, size_t detail_len,
			     struct bw_err *err)
{
	char group_key[128];
	bson_error_t error;
	bson_t *pipeline = NULL;
	const bson_t *doc;
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_collection_t *coll = bw_mongo_coll(m, client, coll_name);
	mongoc_cursor_t *cur = NULL;
	int count = -1;

	keys[0] = detail[0] = '\0';
	snprintf(group_key, sizeof(group_key), "$%s", field);
	pipeline = BCON_NEW("pipeline", "[",
			    "{", "$group", "{", "_id", BCON_UTF8(group_key), "n", "{", "$sum",
			    BCON_INT32(1), "}", "ids", "{", "$push", "$_id", "}", "}", "}",
			    "{", "$match", "{", "n", "{", "$gt", BCON_INT32(1), "}", "}", "}",
			    "{", "$limit", BCON_INT32(50), "}", "]");
	cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	count = 0;
	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it, ids;
		if (count > 0) {
			strncat(keys, ", ", keys_len - strlen(keys) - 1);
			strncat(detail, "; ", detail_len - strlen(detail) - 1);
		}
		if (bson_iter_init_find(&it, doc, "_id")) {
			append_value(keys, keys_len, &it);
			append_value(detail, detail_len, &it);
		}
		strncat(detail, ": _id ", detail_len - strlen(detail) - 1);
		if (bson_iter_init_find(&it, doc, "ids") && bson_iter_recurse(&it, &ids)) {
			int first = 1;
			while (bson_iter_next(&ids)) {
				if (!first)
					strncat(detail, ", ", detail_len - strlen(detail) - 1);
				append_value(detail, detail_len, &ids);
				first = 0;
			}
		}
		count++;
	}
	if (mongoc_cursor_error(cur, &error))
		count = bw_mongo_error(&error, "find duplicates", err);
	mongoc_cursor_destroy(cur);
	bson_destroy(pipeline);
	mongoc_collection_destroy(coll);
	bw_mongo_push(m, client);
	return count;
}

/* A unique index could not be built over the stored documents: name the duplicates and apply
 * the table's policy. Returns 0 (DUP_LOG: go on without it) or -1 with err. */
static int on_duplicates(struct bw_mongo *m, size_t i, struct bw_err *err)
{
	char keys[512], detail[2048];
	int n = bw_mongo_find_duplicates(m, index_table[i].coll, index_table[i].field, keys,
					 sizeof(keys), detail, sizeof(detail), err);

	if (n < 0)
		return -1;
	if (index_table[i].on_dup == DUP_LOG) {
		bw_log(BW_LOG_WARN, NULL,
		       "%s: unique index on %s not built: %d values are stored more than once "
		       "(%s); running without it", index_table[i].coll, index_table[i].field, n,
		       detail);
		return 0;
	}
	bw_log(BW_LOG_ERROR, NULL, "%s: more than one document for %s %s (%s): %s",
	       index_table[i].coll, index_table[i].field, keys, detail, index_table[i].merge_hint);
	/* the hint first: a long list of ids is cut at the message's end (the log has it all) */
	return bw_err_set(err, BW_ERR_FATAL, "%s: more than one document per %s: %s; %s: %s",
			  index_table[i].coll, index_table[i].field, index_table[i].merge_hint,
			  index_table[i].field, keys);
}

static int drop_obsolete(mongoc_database_t *database, struct bw_err *err)
{
	for (size_t i = 0; i < sizeof(obsolete_indexes) / sizeof(obsolete_indexes[0]); i++) {
		bson_error_t error;
		bson_t *cmd = BCON_NEW("dropIndexes", BCON_UTF8(obsolete_indexes[i].coll), "index",
				       BCON_UTF8(obsolete_indexes[i].name));
		bool ok = mongoc_database_write_command_with_opts(database, cmd, NULL, NULL, &error);
		bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
		bson_destroy(cmd);
		if (ok) {
			bw_log(BW_LOG_INFO, NULL, "%s: dropped our old index %s (%s)",
			       obsolete_indexes[i].coll, obsolete_indexes[i].name,
			       obsolete_indexes[i].why);
		} else if (error.code != 27 /* IndexNotFound */ &&
			   error.code != 26 /* NamespaceNotFound */) {
			bw_mongo_error(&error, "dropIndexes", err);
			bw_err_prefix(err, obsolete_indexes[i].coll);
			return -1;
		}
	}
	return 0;
}

static int run_startup_checks(struct bw_mongo *m, struct bw_err *err)
{
	for (size_t i = 0; i < sizeof(startup_checks) / sizeof(startup_checks[0]); i++) {
		char keys[512], detail[2048];
		int n = bw_mongo_find_duplicates(m, startup_checks[i].coll, startup_checks[i].field,
						 keys, sizeof(keys), detail, sizeof(detail), err);
		if (n < 0)
			return -1;
		if (n > 0)
			bw_log(BW_LOG_WARN, NULL, "%s: %d %s: %s %s (%s)", startup_checks[i].coll, n,
			       startup_checks[i].what, startup_checks[i].field, keys, detail);
	}
	return 0;
}

/* The name MongoDB gives index_table[i] ("<field>_1[_<field2>_1]"). */
static void index_name(size_t i, char *name, size_t len)
{
	if (index_table[i].field2)
		snprintf(name, len, "%s_1_%s_1", index_table[i].field, index_table[i].field2);
	else
		snprintf(name, len, "%s_1", index_table[i].field);
}

int bw_mongo_index_at(size_t i, const char **coll, char *name, size_t name_len)
{
	if (i >= sizeof(index_table) / sizeof(index_table[0]))
		return -1;
	*coll = index_table[i].coll;
	index_name(i, name, name_len);
	return 0;
}

int bw_mongo_obsolete_index_at(size_t i, const char **coll, const char **name,
			       const char **why)
{
	if (i >= sizeof(obsolete_indexes) / sizeof(obsolete_indexes[0]))
		return -1;
	*coll = obsolete_indexes[i].coll;
	*name = obsolete_indexes[i].name;
	*why = obsolete_indexes[i].why;
	return 0;
}

int bw_mongo_ensure_indexes(struct bw_mongo *m, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_database_t *database = mongoc_client_get_database(client, m->db);
	int rc = drop_obsolete(database, err);

	for (size_t i = 0; i < sizeof(index_table) / sizeof(index_table[0]) && rc == 0; i++) {
		bson_error_t error;
		char name[96];
		bson_t cmd = BSON_INITIALIZER, indexes, idx, key;

		index_name(i, name, sizeof(name));
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
		if (index_table[i].sparse)
			BSON_APPEND_BOOL(&idx, "sparse", true);
		bson_append_document_end(&indexes, &idx);
		bson_append_array_end(&cmd, &indexes);
		if (!mongoc_database_write_command_with_opts(database, &cmd, NULL, NULL, &error)) {
			if (error.code == BW_MONGO_DUPLICATE_KEY && index_table[i].on_dup != DUP_NONE) {
				rc = on_duplicates(m, i, err);
			} else {
				rc = bw_mongo_error(&error, "createIndexes", err);
				bw_err_prefix(err, index_table[i].coll);
			}
		}
		bson_destroy(&cmd);
	}
	mongoc_database_destroy(database);
	bw_mongo_push(m, client);
	if (rc == 0)
		rc = run_startup_checks(m, err);
	return rc;
}

int64_t bw_mongo_now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int bw_mongo_iter_int64(const bson_iter_t *it, int64_t *out)
{
	*out = 0;
	if (BSON_ITER_HOLDS_INT64(it))
		*out = bson_iter_int64(it);
	else if (BSON_ITER_HOLDS_INT32(it))
		*out = bson_iter_int32(it);
	else if (BSON_ITER_HOLDS_DATE_TIME(it))
		*out = bson_iter_date_time(it);
	else if (BSON_ITER_HOLDS_DOUBLE(it)) {
		/* Integral values only; the bounds keep the cast defined. */
		double d = bson_iter_double(it);
		if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d)
			return 0;
		*out = (int64_t)d;
	} else
		return 0;
	return 1;
}

int bw_mongo_get_int64(const bson_t *doc, const char *key, int64_t *out)
{
	bson_iter_t it;

	*out = 0;
	if (!bson_iter_init_find(&it, doc, key))
		return 0;
	return bw_mongo_iter_int64(&it, out);
}

uint32_t bw_mongo_find_keys(const bson_t *doc, const char *const *keys, size_t n,
			    struct bw_mongo_member *out)
{
	bson_iter_t it;
	uint32_t found = 0, all;
	size_t lens[32];

	if (n > 32)
		n = 32;
	all = n == 32 ? UINT32_MAX : ((uint32_t)1 << n) - 1;
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(keys[i]);
	if (!bson_iter_init(&it, doc))
		return 0;
	while (found != all && bson_iter_next(&it)) {
		const char *k = bson_iter_key(&it);
		size_t len = bson_iter_key_len(&it);
		for (size_t i = 0; i < n; i++) {
			if ((found >> i & 1) || lens[i] != len || memcmp(k, keys[i], len) != 0)
				continue;
			out[i].it = it;
			found |= (uint32_t)1 << i; /* no break: a key may be listed twice */
		}
	}
	return found;
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
