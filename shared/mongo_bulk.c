/* mongo_bulk: bw_mongo_bulk_check (declared in mongo.h), the one reading of a bulk write's
 * reply: every worker's bulk writes (usage customers and records, stripe event records, sync
 * prices) pass their execute's return, reply and error here, so the error kind is decided once. */
#include <string.h>

#include "mongo.h"

/* One error entry of writeErrors / writeConcernErrors: its code and message (borrowed). */
static void error_entry(const bson_iter_t *entry, int32_t *code, const char **msg)
{
	bson_iter_t sub;

	*code = 0;
	*msg = "";
	if (!BSON_ITER_HOLDS_DOCUMENT(entry) || !bson_iter_recurse(entry, &sub))
		return;
	while (bson_iter_next(&sub)) {
		if (strcmp(bson_iter_key(&sub), "code") == 0 && BSON_ITER_HOLDS_NUMBER(&sub))
			*code = (int32_t)bson_iter_as_int64(&sub);
		else if (strcmp(bson_iter_key(&sub), "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&sub))
			*msg = bson_iter_utf8(&sub, NULL);
	}
}

static int is_duplicate_key(int32_t code)
{
	return code == BW_MONGO_DUPLICATE_KEY || code == 11001; /* 11001: pre-2.6 servers */
}

struct bulk_errors {
	int32_t first_code;              /* of writeErrors, whatever it is */
	int32_t other_code;              /* first non-duplicate write error */
	const char *other_msg;
	int32_t wc_code;
	const char *wc_msg;
};

static void read_errors(const bson_t *reply, struct bw_mongo_bulk_result *res,
			struct bulk_errors *e)
{
	bson_iter_t it, arr;
	int32_t code;
	const char *msg;

	if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &arr))
		while (bson_iter_next(&arr)) {
			error_entry(&arr, &code, &msg);
			if (res->write_errors++ == 0)
				e->first_code = code;
			if (is_duplicate_key(code))
				res->duplicates++;
			else if (res->write_errors - res->duplicates == 1) {
				e->other_code = code;
				e->other_msg = msg;
			}
		}
	/* writeConcernErrors: the driver's merged array; writeConcernError: a single command's
	 * reply, in case a caller passes one. */
	if (bson_iter_init_find(&it, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &arr))
		while (bson_iter_next(&arr)) {
			error_entry(&arr, &code, &msg);
			if (res->wc_errors++ == 0) {
				e->wc_code = code;
				e->wc_msg = msg;
			}
		}
	if (bson_iter_init_find(&it, reply, "writeConcernError")) {
		error_entry(&it, &code, &msg);
		if (res->wc_errors++ == 0) {
			e->wc_code = code;
			e->wc_msg = msg;
		}
	}
}

int bw_mongo_bulk_check(uint32_t ok, const bson_t *reply, const bson_error_t *error,
			enum bw_err_kind dup_kind, size_t nreported, const char *what,
			struct bw_mongo_bulk_result *res, struct bw_err *err)
{
	struct bw_mongo_bulk_result local;
	struct bulk_errors e = { 0, 0, "", 0, "" };

	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (reply) {
		bw_mongo_get_int64(reply, "nInserted", &res->inserted);
		bw_mongo_get_int64(reply, "nMatched", &res->matched);
		bw_mongo_get_int64(reply, "nModified", &res->modified);
		bw_mongo_get_int64(reply, "nUpserted", &res->upserted);
		bw_mongo_get_int64(reply, "nRemoved", &res->removed);
		read_errors(reply, res, &e);
	}
	if (res->write_errors > res->duplicates)
		return bw_err_set(err, BW_ERR_TRANSIENT, "%s: write error code %d: %s", what,
				  (int)e.other_code, e.other_msg);
	if (res->duplicates > 0 && dup_kind != BW_ERR_NONE)
		return bw_err_set(err, dup_kind, "%s: %zu duplicate keys", what, res->duplicates);
	if (res->wc_errors > 0)
		return bw_err_set(err, BW_ERR_TRANSIENT,
				  "%s: write concern error code %d: %s (the write may be rolled "
				  "back)", what, (int)e.wc_code, e.wc_msg);
	/* A failed execute whose error is not its first write error failed on its own: the
	 * connection dropped, no server, ok:0. Its writeErrors may still be an empty array. */
	if (!ok && !(res->write_errors > 0 && error && error->code != 0 &&
		     (int32_t)error->code == e.first_code))
		return bw_err_set(err, BW_ERR_TRANSIENT, "%s: %s (domain %u, code %u)", what,
				  error && error->code ? error->message : "bulk execute failed",
				  error ? error->domain : 0, error ? error->code : 0);
	if (nreported > 0 && (size_t)(res->inserted + res->upserted) + res->write_errors < nreported)
		return bw_err_set(err, BW_ERR_TRANSIENT,
				  "%s: only %lld of %zu operations reported (the execute stopped "
				  "early)", what, (long long)(res->inserted + res->upserted) +
				  (long long)res->write_errors, nreported);
	return 0;
}
