/* api_report: see api_report.h. */
#include "api_report.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "metrics.h"

#define DAY_MS 86400000LL

enum { V_RECORDS, V_SPUS, V_SUB, V_PURCH, V_GRANT, V_PAID, V_UNATTR, V_PROMPT, V_COMPL,
       V_TOTAL, V_COST_MICRO, NV };

struct row {
	char day[11];
	char op[129];
	int64_t v[NV];
};

struct agg {
	struct row *rows;
	size_t n, cap;
	json_t *index;        /* "day\x1fop" -> row index */
	struct row totals;
	int64_t old_paid;
	int overflow;
};

static unsigned answer(char **out, unsigned status, json_t *ans)
{
	*out = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
	if (!*out) {
		*out = strdup("{\"error\":\"unavailable\",\"detail\":\"out of memory\"}");
		return 503;
	}
	return status;
}

static unsigned fail(char **out, unsigned status, const char *code, const char *detail)
{
	bw_log(BW_LOG_INFO, NULL, "refused %u %s: %s", status, code, detail);
	return answer(out, status, json_pack("{s:s s:s}", "error", code, "detail", detail));
}

/* "YYYY-MM-DD" or RFC 3339 into unix ms. */
static int parse_when(const char *s, int64_t *ms)
{
	char buf[32];

	if (!s)
		return -1;
	if (strlen(s) == 10) {
		snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
		return bw_json_rfc3339_ms(buf, ms);
	}
	return bw_json_rfc3339_ms(s, ms);
}

static void day_of(int64_t ms, char out[11])
{
	time_t t = (time_t)((ms >= 0 ? ms : ms - 999) / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

/* A whole number field (int32, int64, or a double holding a whole number): 0 when absent. */
static int64_t get_i64(const bson_t *doc, const char *key, int *present)
{
	bson_iter_t it;

	if (present)
		*present = 0;
	if (!bson_iter_init_find(&it, doc, key))
		return 0;
	if (present)
		*present = BSON_ITER_HOLDS_NUMBER(&it);
	if (BSON_ITER_HOLDS_INT32(&it))
		return bson_iter_int32(&it);
	if (BSON_ITER_HOLDS_INT64(&it))
		return bson_iter_int64(&it);
	if (BSON_ITER_HOLDS_DOUBLE(&it)) {
		double d = bson_iter_double(&it);
		return (d > -9e15 && d < 9e15) ? (int64_t)llround(d) : 0;
	}
	return 0;
}

static const char *get_str(const bson_t *doc, const char *key)
{
	bson_iter_t it;
	return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
		       ? bson_iter_utf8(&it, NULL) : NULL;
}

static void add(struct agg *a, int64_t *dst, int64_t v)
{
	if (__builtin_add_overflow(*dst, v, dst))
		a->overflow = 1;
}

static struct row *row_for(struct agg *a, const char *day, const char *op)
{
	char key[160];
	json_t *ix;

	snprintf(key, sizeof(key), "%s\x1f%s", day, op);
	ix = json_object_get(a->index, key);
	if (ix)
		return &a->rows[json_integer_value(ix)];
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct row *r = realloc(a->rows, cap * sizeof(*r));
		if (!r)
			return NULL;
		a->rows = r;
		a->cap = cap;
	}
	memset(&a->rows[a->n], 0, sizeof(a->rows[a->n]));
	snprintf(a->rows[a->n].day, sizeof(a->rows[a->n].day), "%s", day);
	snprintf(a->rows[a->n].op, sizeof(a->rows[a->n].op), "%s", op);
	json_object_set_new(a->index, key, json_integer((json_int_t)a->n));
	return &a->rows[a->n++];
}

/* Adds one record when it is in [from, to) and counts; 0, or -1 out of memory. */
static int add_record(struct agg *a, const bson_t *doc, int64_t from, int64_t to,
		      int by_day, int by_op)
{
	const char *status = get_str(doc, "status"), *op = get_str(doc, "operation");
	int64_t ts, v[NV];
	bson_iter_t it;
	int has_bd = 0, p;
	struct row *r;

	if (!bson_iter_init_find(&it, doc, "timestamp"))
		return 0;
	if (BSON_ITER_HOLDS_DATE_TIME(&it))
		ts = bson_iter_date_time(&it);
	else if (!BSON_ITER_HOLDS_UTF8(&it) || bw_json_rfc3339_ms(bson_iter_utf8(&it, NULL), &ts))
		return 0;
	/* insufficient_credits is a charge applied with overage: it counts. */
	if (ts < from || ts >= to ||
	    (status && strcmp(status, "applied") != 0 && strcmp(status, "insufficient_credits") != 0))
		return 0;
	if (!op)
		op = "";
	if (!status && !strcmp(op, "paid_usage")) {
		add(a, &a->old_paid, get_i64(doc, "spus", NULL));
		return 0;
	}
	memset(v, 0, sizeof(v));
	v[V_RECORDS] = 1;
	v[V_SPUS] = get_i64(doc, "spus", NULL);
	v[V_SUB] = get_i64(doc, "from_subscription", &p);
	has_bd |= p;
	v[V_PURCH] = get_i64(doc, "from_purchased", &p);
	has_bd |= p;
	v[V_GRANT] = get_i64(doc, "from_granted", &p);
	has_bd |= p;
	v[V_PAID] = get_i64(doc, "from_paid", &p);
	has_bd |= p;
	if (!has_bd)
		v[V_UNATTR] = v[V_SPUS];
	v[V_PROMPT] = get_i64(doc, "prompt_tokens", NULL);
	v[V_COMPL] = get_i64(doc, "completion_tokens", NULL);
	v[V_TOTAL] = get_i64(doc, "total_tokens", NULL);
	if (bson_iter_init_find(&it, doc, "actual_cost") && BSON_ITER_HOLDS_NUMBER(&it)) {
		double c = bson_iter_as_double(&it) * 1e6;
		v[V_COST_MICRO] = (c > -9e15 && c < 9e15) ? (int64_t)llround(c) : 0;
	}
	char day[11] = "";
	if (by_day)
		day_of(ts, day);
	r = row_for(a, day, by_op ? op : "");
	if (!r)
		return -1;
	for (int i = 0; i < NV; i++) {
		add(a, &r->v[i], v[i]);
		add(a, &a->totals.v[i], v[i]);
	}
	return 0;
}

static json_t *values_json(const int64_t *v)
{
	char cost[40];
	int64_t c = v[V_COST_MICRO];

	snprintf(cost, sizeof(cost), "%s%lld.%06lld", c < 0 ? "-" : "",
		 (long long)(c < 0 ? -(c / 1000000) : c / 1000000),
		 (long long)(c < 0 ? -(c % 1000000) : c % 1000000));
	return json_pack("{s:I s:I s:{s:I s:I s:I s:I s:I} s:{s:I s:I s:I} s:s}", "records",
			 (json_int_t)v[V_RECORDS], "spus", (json_int_t)v[V_SPUS], "breakdown",
			 "from_subscription", (json_int_t)v[V_SUB], "from_purchased",
			 (json_int_t)v[V_PURCH], "from_granted", (json_int_t)v[V_GRANT],
			 "from_paid", (json_int_t)v[V_PAID], "unattributed",
			 (json_int_t)v[V_UNATTR], "tokens", "prompt", (json_int_t)v[V_PROMPT],
			 "completion", (json_int_t)v[V_COMPL], "total", (json_int_t)v[V_TOTAL],
			 "cost", cost);
}

static int row_cmp(const void *x, const void *y)
{
	const struct row *a = x, *b = y;
	int c = strcmp(a->day, b->day);
	return c ? c : strcmp(a->op, b->op);
}

/* The find: the org's records whose timestamp is a date in [from, to), or a string whose
 * date part is within a day of it (offsets), filtered exactly by add_record. */
static int scan(struct bw_mongo *m, const struct bw_api_report_req *req, int64_t from,
		int64_t to, int by_day, int by_op, struct agg *a, char *why, size_t whylen)
{
	char lo[11], hi[11];
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_USAGE_RECORDS);
	bson_t *filter, *opts;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t error;
	int64_t seen = 0;
	int rc = -1;

	day_of(from - DAY_MS, lo);
	day_of(to + 2 * DAY_MS, hi);
	filter = BCON_NEW("org_id", BCON_UTF8(req->org_id), "$or", "[",
			  "{", "timestamp", "{", "$gte", BCON_DATE_TIME(from), "$lt",
			  BCON_DATE_TIME(to), "}", "}",
			  "{", "timestamp", "{", "$gte", BCON_UTF8(lo), "$lt", BCON_UTF8(hi), "}",
			  "}", "]");
	opts = BCON_NEW("limit", BCON_INT64(req->max_records + 1), "projection", "{",
			"timestamp", BCON_INT32(1), "status", BCON_INT32(1), "operation",
			BCON_INT32(1), "spus", BCON_INT32(1), "from_subscription", BCON_INT32(1),
			"from_purchased", BCON_INT32(1), "from_granted", BCON_INT32(1),
			"from_paid", BCON_INT32(1), "prompt_tokens", BCON_INT32(1),
			"completion_tokens", BCON_INT32(1), "total_tokens", BCON_INT32(1),
			"actual_cost", BCON_INT32(1), "}");
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	while (mongoc_cursor_next(cur, &doc)) {
		if (++seen > req->max_records) {
			snprintf(why, whylen, "more than %lld usage records in the range: narrow it",
				 (long long)req->max_records);
			rc = 1;
			goto done;
		}
		if (add_record(a, doc, from, to, by_day, by_op) != 0) {
			snprintf(why, whylen, "out of memory");
			goto done;
		}
	}
	if (mongoc_cursor_error(cur, &error)) {
		snprintf(why, whylen, "usage records: %.150s", error.message);
		goto done;
	}
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	bw_mongo_push(m, client);
	return rc;
}

unsigned bw_api_usage_report(struct bw_mongo *m, const struct bw_api_report_req *req,
			     char **out)
{
	const char *group = req->group ? req->group : "day,operation";
	int by_day, by_op, rc;
	int64_t from, to;
	struct agg a;
	char why[200];
	json_t *rows, *ans, *g;
	unsigned status;

	by_day = !strcmp(group, "day,operation") || !strcmp(group, "operation,day") ||
		 !strcmp(group, "day");
	by_op = !strcmp(group, "day,operation") || !strcmp(group, "operation,day") ||
		!strcmp(group, "operation");
	if (!by_day && !by_op && *group)
		return fail(out, 400, "invalid_group",
			    "group must be day,operation (default), day, operation or empty");
	if (parse_when(req->from, &from) || parse_when(req->to, &to))
		return fail(out, 400, "invalid_range",
			    "from and to are required: YYYY-MM-DD or RFC 3339 date-times");
	if (to <= from || (to - from) > req->max_days * DAY_MS) {
		snprintf(why, sizeof(why), "to must be after from, at most %lld days later",
			 (long long)req->max_days);
		return fail(out, 400, "invalid_range", why);
	}
	memset(&a, 0, sizeof(a));
	a.index = json_object();
	rc = scan(m, req, from, to, by_day, by_op, &a, why, sizeof(why));
	if (rc != 0) {
		status = rc > 0 ? fail(out, 400, "range_too_large", why)
				: fail(out, 503, "unavailable", why);
		goto done;
	}
	if (a.overflow) {
		status = fail(out, 400, "range_too_large", "a sum over the range overflows int64");
		goto done;
	}
	if (a.n > 1)
		qsort(a.rows, a.n, sizeof(*a.rows), row_cmp);
	rows = json_array();
	for (size_t i = 0; i < a.n; i++) {
		json_t *r = values_json(a.rows[i].v);
		if (by_day)
			json_object_set_new(r, "day", json_string(a.rows[i].day));
		if (by_op)
			json_object_set_new(r, "operation", json_string(a.rows[i].op));
		json_array_append_new(rows, r);
	}
	g = json_array();
	if (by_day)
		json_array_append_new(g, json_string("day"));
	if (by_op)
		json_array_append_new(g, json_string("operation"));
	ans = json_pack("{s:s s:s s:s s:o s:o s:o s:I}", "org_id", req->org_id, "from", req->from,
			"to", req->to, "group", g, "rows", rows, "totals", values_json(a.totals.v),
			"old_paid_usage_spus", (json_int_t)a.old_paid);
	status = answer(out, 200, ans);
done:
	free(a.rows);
	json_decref(a.index);
	return status;
}
