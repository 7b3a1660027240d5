/* bw-api's GET /v1/orgs/{org_id}/usage (issue 14) against the real local MongoDB: usage
 * records of this project (RFC 3339 string timestamps, some with offsets) and of the original
 * integration (UTC datetimes, its paid_usage rows) that cross a UTC day, with several
 * operations; the answer is checked against sums computed here. bw-api runs local-only (the
 * report needs no Stripe). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_kit.h"
#include "testkit.h"
#include "usage_kit.h"

struct pay_env {
	struct uk_env env;
	struct ak_api api;
};

static void pay_start(struct pay_env *pe, const char *name)
{
	uk_env_init(&pe->env, name, 1);
	ak_start(&pe->api, tk_brokers(), pe->env.topic, pe->env.db, NULL);
}

static void pay_stop(struct pay_env *pe)
{
	ak_stop(&pe->api);
	tk_mongo_drop(pe->env.db);
}

/* One record of the usage test: its instant, how it is stored, and whether it counts. */
struct urec {
	long long ts_ms;
	const char *ts_text;  /* ours: the event's string (NULL: old record, a UTC datetime) */
	const char *op;
	long long spus;
	int counts;           /* 1: in the range and counted */
};

/* What a report row (or the totals) must hold, summed here over the records. */
struct sums {
	long long records, spus, prompt, completion, total, cost_micro;
};

/* The tokens and cost of record i: prompt 10 per SPU, completion 3 per SPU + 1, total their
 * sum, cost 1370 micro-units per SPU + i. Old records with i % 4 == 3 have no tokens and no
 * cost (the old code wrote them only for LLM calls): they read 0. */
static void rec_sums(const struct urec *r, size_t i, struct sums *s)
{
	int bare = !r->ts_text && i % 4 == 3;

	memset(s, 0, sizeof(*s));
	s->records = 1;
	s->spus = r->spus;
	s->prompt = bare ? 0 : r->spus * 10;
	s->completion = bare ? 0 : r->spus * 3 + 1;
	s->total = s->prompt + s->completion;
	s->cost_micro = bare ? 0 : r->spus * 1370 + (long long)i;
}

static void sums_add(struct sums *dst, const struct sums *s)
{
	dst->records += s->records;
	dst->spus += s->spus;
	dst->prompt += s->prompt;
	dst->completion += s->completion;
	dst->total += s->total;
	dst->cost_micro += s->cost_micro;
}

/* The token and cost members of a record's document ("" for a bare old record). */
static void sums_fields(const struct sums *s, char *out, size_t len)
{
	if (!s->total)
		out[0] = '\0';
	else
		snprintf(out, len,
			 ",\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
			 "\"actual_cost\":%lld.%06lld",
			 s->prompt, s->completion, s->total, s->cost_micro / 1000000,
			 s->cost_micro % 1000000);
}

/* Asserts a row's (or the totals') counters and cost against s. */
static void expect_sums(const json_t *row, const struct sums *s)
{
	const json_t *tok = json_object_get(row, "tokens");
	char cost[40];

	ck_assert_int_eq(tk_int(row, "records"), s->records);
	ck_assert_int_eq(tk_int(row, "spus"), s->spus);
	ck_assert_int_eq(tk_int(tok, "prompt"), s->prompt);
	ck_assert_int_eq(tk_int(tok, "completion"), s->completion);
	ck_assert_int_eq(tk_int(tok, "total"), s->total);
	snprintf(cost, sizeof(cost), "%lld.%06lld", s->cost_micro / 1000000,
		 s->cost_micro % 1000000);
	ck_assert_str_eq(ak_str(row, "cost"), cost);
}

static void iso_utc(long long ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The old code's overage row sits beside every third counted old charge. */
static int has_paid_row(const struct urec *r, size_t i)
{
	return r->counts && !r->ts_text && i % 3 == 0;
}

/* The sums of the counted records in [from_ms, to_ms); *paid: their paid_usage rows. */
static void range_sums(const struct urec *recs, size_t n, long long from_ms, long long to_ms,
		       struct sums *out, long long *paid)
{
	struct sums rs;

	memset(out, 0, sizeof(*out));
	*paid = 0;
	for (size_t i = 0; i < n; i++) {
		if (!recs[i].counts || recs[i].ts_ms < from_ms || recs[i].ts_ms >= to_ms)
			continue;
		rec_sums(&recs[i], i, &rs);
		sums_add(out, &rs);
		*paid += has_paid_row(&recs[i], i) ? 3 : 0;
	}
}

START_TEST(test_usage_report)
{
	struct pay_env pe;
	static const char *ops[] = { "parse", "extract", "classify" };
	const long long base = 1772359200000LL; /* 2026-03-01T10:00:00Z */
	const long long day2 = 1772409600000LL; /* 2026-03-02T00:00:00Z */
	struct urec recs[48];
	size_t n = 0;
	char doc[1024], ts[40], fields[256], cap[64], detail[64];
	struct sums exp[2][3], days[2], tot, rs;
	long long exp_sub = 0, exp_un = 0, paid = 0, bare = 0;
	json_t *j, *row;
	size_t i;

	memset(exp, 0, sizeof(exp));
	memset(days, 0, sizeof(days));
	memset(&tot, 0, sizeof(tot));
	pay_start(&pe, "it_api_pay_usage");
	/* 40 charges every 50 minutes from 2026-03-01T10:00Z (they cross into 03-02), the even
	 * ones ours (string timestamps, some with an offset), the odd ones the old code's. */
	for (int k = 0; k < 40; k++) {
		struct urec *r = &recs[n++];
		r->ts_ms = base + (long long)k * 50 * 60000;
		r->op = ops[k % 3];
		r->spus = k + 1;
		r->counts = 1;
		r->ts_text = NULL;
		if (k % 2 == 0) {
			static char texts[40][40];
			if (k % 4 == 2) { /* the same instant written at -05:00 */
				time_t t = (time_t)(r->ts_ms / 1000 - 5 * 3600);
				struct tm tm;
				gmtime_r(&t, &tm);
				strftime(texts[k], sizeof(texts[k]), "%Y-%m-%dT%H:%M:%S-05:00", &tm);
			} else {
				iso_utc(r->ts_ms, texts[k], sizeof(texts[k]));
			}
			r->ts_text = texts[k];
		}
	}
	/* Edges: 2026-03-03T00:30+01:00 is 03-02T23:30Z (in); 2026-03-02T23:30-01:00 is
	 * 03-03T00:30Z (out); an old record one second before the range (out). */
	recs[n++] = (struct urec){ 1772494200000LL, "2026-03-03T00:30:00+01:00", "parse", 7, 1 };
	recs[n++] = (struct urec){ 1772497800000LL, "2026-03-02T23:30:00-01:00", "parse", 1000, 0 };
	recs[n++] = (struct urec){ 1772323199000LL, NULL, "parse", 1000, 0 };
	for (i = 0; i < n; i++) {
		struct urec *r = &recs[i];
		rec_sums(r, i, &rs);
		sums_fields(&rs, fields, sizeof(fields));
		if (r->ts_text)
			snprintf(doc, sizeof(doc),
				 "{\"_id\":{\"org_id\":\"org-u\",\"event_id\":\"e%zu\"},\"org_id\":"
				 "\"org-u\",\"event_id\":\"e%zu\",\"spus\":%lld,\"operation\":\"%s\","
				 "\"source\":\"t\",\"timestamp\":\"%s\",\"status\":\"%s\","
				 "\"from_subscription\":{\"$numberLong\":\"%lld\"},\"from_granted\":"
				 "{\"$numberLong\":\"%lld\"},\"from_purchased\":0,\"from_paid\":0%s}",
				 i, i, r->spus, r->op, r->ts_text,
				 /* a charge applied with overage counts too */
				 i % 8 == 4 ? "insufficient_credits" : "applied", r->spus / 2,
				 r->spus - r->spus / 2, fields);
		else {
			iso_utc(r->ts_ms, ts, sizeof(ts));
			snprintf(doc, sizeof(doc),
				 "{\"org_id\":\"org-u\",\"spus\":%lld,\"operation\":\"%s\",\"source\":"
				 "\"t\",\"timestamp\":{\"$date\":\"%s\"}%s}",
				 r->spus, r->op, ts, fields);
		}
		tk_mongo_insert(pe.env.db, "payments_usage_records", doc);
		if (!r->counts)
			continue;
		int day = r->ts_ms >= day2;
		int op = !strcmp(r->op, "parse") ? 0 : !strcmp(r->op, "extract") ? 1 : 2;
		sums_add(&exp[day][op], &rs);
		sums_add(&days[day], &rs);
		sums_add(&tot, &rs);
		bare += rs.total == 0;
		if (r->ts_text)
			exp_sub += r->spus / 2;
		else
			exp_un += r->spus;
		/* The old code's overage row: not extra usage. */
		if (has_paid_row(r, i)) {
			iso_utc(r->ts_ms, ts, sizeof(ts));
			snprintf(doc, sizeof(doc),
				 "{\"org_id\":\"org-u\",\"spus\":3,\"operation\":\"paid_usage\","
				 "\"source\":\"t\",\"timestamp\":{\"$date\":\"%s\"},"
				 "\"actual_cost\":0.5,\"prompt_tokens\":99}", ts);
			tk_mongo_insert(pe.env.db, "payments_usage_records", doc);
			paid += 3;
		}
	}
	ck_assert_msg(paid > 0 && bare > 0 && tot.cost_micro > 0, "%lld %lld %lld", paid, bare,
		      tot.cost_micro);
	/* Not usage: another org, a rejected event, the opening balance record. */
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-other\",\"spus\":50,\"operation\":\"parse\","
			"\"timestamp\":{\"$date\":\"2026-03-01T12:00:00Z\"},\"actual_cost\":9.5}");
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-u\",\"spus\":50,\"operation\":\"parse\",\"status\":"
			"\"rejected\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"total_tokens\":70}");
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-u\",\"operation\":\"opening_balance\",\"status\":"
			"\"opening_balance\",\"from_granted\":5}");

	j = ak_call(&pe.api, "GET",
		    "/v1/orgs/org-u/usage?from=2026-03-01&to=2026-03-03&group=day,operation", NULL,
		    NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 6);
	json_array_foreach(json_object_get(j, "rows"), i, row) {
		int day = !strcmp(ak_str(row, "day"), "2026-03-02");
		const char *o = ak_str(row, "operation");
		int op = !strcmp(o, "parse") ? 0 : !strcmp(o, "extract") ? 1 : 2;
		ck_assert_msg(day || !strcmp(ak_str(row, "day"), "2026-03-01"), "%s", ak_str(row, "day"));
		expect_sums(row, &exp[day][op]);
	}
	json_t *t = json_object_get(j, "totals");
	expect_sums(t, &tot);
	ck_assert_int_eq(tk_int(json_object_get(t, "breakdown"), "from_subscription"), exp_sub);
	ck_assert_int_eq(tk_int(json_object_get(t, "breakdown"), "unattributed"), exp_un);
	ck_assert_int_eq(tk_int(j, "old_paid_usage_spus"), paid);
	json_decref(j);
	/* By day only: two rows, each the sum of its day. */
	j = ak_call(&pe.api, "GET",
		    "/v1/orgs/org-u/usage?from=2026-03-01T00:00:00Z&to=2026-03-03&group=day", NULL,
		    NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 2);
	expect_sums(json_array_get(json_object_get(j, "rows"), 0), &days[0]);
	expect_sums(json_array_get(json_object_get(j, "rows"), 1), &days[1]);
	expect_sums(json_object_get(j, "totals"), &tot);
	json_decref(j);
	/* Bounded ranges. */
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-u/usage?from=2026-03-01&to=2027-03-03", NULL,
		    NULL, 400);
	ck_assert_str_eq(ak_str(j, "error"), "invalid_range");
	json_decref(j);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-u/usage?from=2026-03-03&to=2026-03-01", NULL, NULL, 400);
	json_decref(j);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-u/usage?to=2026-03-01", NULL, NULL, 400);
	json_decref(j);
	/* The record cap: one less than the records counted refuses the range, a narrower one
	 * (the second afternoon) is still answered, with its own sums. */
	ak_stop(&pe.api);
	snprintf(cap, sizeof(cap), "API_USAGE_MAX_RECORDS=%lld", tot.records - 1);
	const char *const extra[] = { cap, NULL };
	ak_start(&pe.api, tk_brokers(), pe.env.topic, pe.env.db, extra);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-u/usage?from=2026-03-01&to=2026-03-03", NULL,
		    NULL, 400);
	ck_assert_str_eq(ak_str(j, "error"), "range_too_large");
	snprintf(detail, sizeof(detail), "more than %lld usage records", tot.records - 1);
	ck_assert_msg(strstr(ak_str(j, "detail"), detail) != NULL, "%s", ak_str(j, "detail"));
	json_decref(j);
	j = ak_call(&pe.api, "GET",
		    "/v1/orgs/org-u/usage?from=2026-03-02T12:00:00Z&to=2026-03-03&group=", NULL,
		    NULL, 200);
	range_sums(recs, n, day2 + 12 * 3600000LL, day2 + 24 * 3600000LL, &rs, &paid);
	ck_assert(rs.records > 0 && paid > 0);
	expect_sums(json_object_get(j, "totals"), &rs);
	ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 1);
	expect_sums(json_array_get(json_object_get(j, "rows"), 0), &rs);
	ck_assert_int_eq(tk_int(j, "old_paid_usage_spus"), paid);
	json_decref(j);
	pay_stop(&pe);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api_usage_report");
	TCase *tc = tcase_create("report");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_usage_report);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
