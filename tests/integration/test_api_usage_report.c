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

static void iso_utc(long long ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

START_TEST(test_usage_report)
{
	struct pay_env pe;
	static const char *ops[] = { "parse", "extract", "classify" };
	const long long base = 1772359200000LL; /* 2026-03-01T10:00:00Z */
	struct urec recs[48];
	size_t n = 0;
	char doc[1024], ts[40], path[256];
	long long exp_spus[2][3] = { { 0 } }, exp_n[2][3] = { { 0 } }, exp_sub = 0, exp_un = 0;
	long long exp_prompt = 0, total = 0, paid = 0;
	json_t *j, *row;
	size_t i;

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
		if (r->ts_text)
			snprintf(doc, sizeof(doc),
				 "{\"_id\":{\"org_id\":\"org-u\",\"event_id\":\"e%zu\"},\"org_id\":"
				 "\"org-u\",\"event_id\":\"e%zu\",\"spus\":%lld,\"operation\":\"%s\","
				 "\"source\":\"t\",\"timestamp\":\"%s\",\"status\":\"%s\","
				 "\"from_subscription\":{\"$numberLong\":\"%lld\"},\"from_granted\":"
				 "{\"$numberLong\":\"%lld\"},\"from_purchased\":0,\"from_paid\":0,"
				 "\"prompt_tokens\":%lld}",
				 i, i, r->spus, r->op, r->ts_text,
				 /* a charge applied with overage counts too */
				 i % 8 == 4 ? "insufficient_credits" : "applied", r->spus / 2,
				 r->spus - r->spus / 2,
				 r->spus * 10);
		else {
			iso_utc(r->ts_ms, ts, sizeof(ts));
			snprintf(doc, sizeof(doc),
				 "{\"org_id\":\"org-u\",\"spus\":%lld,\"operation\":\"%s\",\"source\":"
				 "\"t\",\"timestamp\":{\"$date\":\"%s\"},\"prompt_tokens\":%lld}",
				 r->spus, r->op, ts, r->spus * 10);
		}
		tk_mongo_insert(pe.env.db, "payments_usage_records", doc);
		if (!r->counts)
			continue;
		int day = r->ts_ms >= 1772409600000LL; /* 2026-03-02T00:00Z */
		int op = !strcmp(r->op, "parse") ? 0 : !strcmp(r->op, "extract") ? 1 : 2;
		exp_spus[day][op] += r->spus;
		exp_n[day][op]++;
		total += r->spus;
		exp_prompt += r->spus * 10;
		if (r->ts_text)
			exp_sub += r->spus / 2;
		else
			exp_un += r->spus;
		/* The old code's overage row beside every third old charge: not extra usage. */
		if (!r->ts_text && i % 3 == 0) {
			iso_utc(r->ts_ms, ts, sizeof(ts));
			snprintf(doc, sizeof(doc),
				 "{\"org_id\":\"org-u\",\"spus\":3,\"operation\":\"paid_usage\","
				 "\"source\":\"t\",\"timestamp\":{\"$date\":\"%s\"}}", ts);
			tk_mongo_insert(pe.env.db, "payments_usage_records", doc);
			paid += 3;
		}
	}
	/* Not usage: another org, a rejected event, the opening balance record. */
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-other\",\"spus\":50,\"operation\":\"parse\","
			"\"timestamp\":{\"$date\":\"2026-03-01T12:00:00Z\"}}");
	tk_mongo_insert(pe.env.db, "payments_usage_records",
			"{\"org_id\":\"org-u\",\"spus\":50,\"operation\":\"parse\",\"status\":"
			"\"rejected\",\"timestamp\":\"2026-03-01T12:00:00Z\"}");
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
		ck_assert_int_eq(tk_int(row, "spus"), exp_spus[day][op]);
		ck_assert_int_eq(tk_int(row, "records"), exp_n[day][op]);
	}
	json_t *t = json_object_get(j, "totals");
	ck_assert_int_eq(tk_int(t, "spus"), total);
	ck_assert_int_eq(tk_int(json_object_get(t, "breakdown"), "from_subscription"), exp_sub);
	ck_assert_int_eq(tk_int(json_object_get(t, "breakdown"), "unattributed"), exp_un);
	ck_assert_int_eq(tk_int(json_object_get(t, "tokens"), "prompt"), exp_prompt);
	ck_assert_int_eq(tk_int(j, "old_paid_usage_spus"), paid);
	ck_assert(paid > 0);
	json_decref(j);
	/* By day only: two rows whose sum is the total. */
	j = ak_call(&pe.api, "GET",
		    "/v1/orgs/org-u/usage?from=2026-03-01T00:00:00Z&to=2026-03-03&group=day", NULL,
		    NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 2);
	ck_assert_int_eq(tk_int(json_array_get(json_object_get(j, "rows"), 0), "spus") +
				 tk_int(json_array_get(json_object_get(j, "rows"), 1), "spus"),
			 total);
	json_decref(j);
	/* Bounded ranges. */
	snprintf(path, sizeof(path), "/v1/orgs/org-u/usage?from=2026-03-01&to=2027-03-03");
	j = ak_call(&pe.api, "GET", path, NULL, NULL, 400);
	ck_assert_str_eq(ak_str(j, "error"), "invalid_range");
	json_decref(j);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-u/usage?from=2026-03-03&to=2026-03-01", NULL, NULL, 400);
	json_decref(j);
	j = ak_call(&pe.api, "GET", "/v1/orgs/org-u/usage?to=2026-03-01", NULL, NULL, 400);
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
