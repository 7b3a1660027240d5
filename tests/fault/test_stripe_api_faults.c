/* Fault suite: the Stripe API misbehaves under the sync worker (the shared stack and the
 * Stripe API stub, tests/stub/stripe_stub.py). One worker runs throughout; each phase sets a
 * fault on the price listing, sends a `prices` tick and waits for its one result: timeouts,
 * 429 storms, 5xx, connection resets, a truncated body and malformed JSON, each once as a
 * burst that clears within the worker's retries (the tick must be `applied`) and once for
 * good (the tick must be answered `failed`, never block the partition or crash the worker).
 * A last clean tick must store the prices exactly as Stripe has them (nothing half-written by
 * a bad answer). Prints one line of figures. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stub/stripe_stub.h"
#include "fault_kit.h"

struct phase {
	const char *name;
	const char *fault; /* JSON array of stub faults */
	const char *want;  /* expected status */
};

static const struct phase phases[] = {
	{ "timeout_burst", "[{\"path\":\"/v1/prices\",\"delay_ms\":1600,\"status\":200,"
			   "\"times\":1}]", "applied" },
	{ "timeout_forever", "[{\"path\":\"/v1/prices\",\"delay_ms\":1600,\"status\":200,"
			     "\"times\":-1}]", "failed" },
	{ "429_burst", "[{\"path\":\"/v1/prices\",\"status\":429,\"headers\":{\"Retry-After\":"
		       "\"0\"},\"times\":2}]", "applied" },
	{ "429_storm", "[{\"path\":\"/v1/prices\",\"status\":429,\"headers\":{\"Retry-After\":"
		       "\"0\"},\"times\":-1}]", "failed" },
	{ "5xx_burst", "[{\"path\":\"/v1/prices\",\"status\":500,\"times\":1},"
		       "{\"path\":\"/v1/prices\",\"status\":502,\"times\":1}]", "applied" },
	{ "503_forever", "[{\"path\":\"/v1/prices\",\"status\":503,\"times\":-1}]", "failed" },
	{ "reset_burst", "[{\"path\":\"/v1/prices\",\"reset\":true,\"times\":2}]", "applied" },
	{ "reset_forever", "[{\"path\":\"/v1/prices\",\"reset\":true,\"times\":-1}]", "failed" },
	{ "truncated_body", "[{\"path\":\"/v1/prices\",\"status\":200,\"times\":-1,"
			    "\"raw\":\"{\\\"object\\\":\\\"list\\\",\\\"data\\\":[{\\\"id\\\":"
			    "\\\"price_team\\\"}]}\",\"truncate\":18}]", "failed" },
	{ "malformed_json", "[{\"path\":\"/v1/prices\",\"status\":200,\"times\":-1,"
			    "\"raw\":\"{\\\"object\\\":\\\"list\\\",\\\"data\\\":[{\\\"id\\\":}\"}]",
	  "failed" },
	{ "wrong_shape_json", "[{\"path\":\"/v1/prices\",\"status\":200,\"times\":-1,"
			      "\"raw\":\"{\\\"object\\\":\\\"list\\\",\\\"data\\\":7,"
			      "\\\"has_more\\\":\\\"yes\\\"}\"}]", "failed" },
	{ "clean", "[]", "applied" },
};

/* The result of tick_id (waits up to timeout_ms), as a new JSON object or NULL. */
static json_t *result_of(const char *results, const char *tick_id, size_t want, int timeout_ms)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(results, want, timeout_ms, &msgs);
	json_t *found = NULL;

	for (size_t i = 0; i < n; i++) {
		json_t *r = json_loads(msgs[i].value, 0, NULL);
		const char *id = json_string_value(json_object_get(r, "tick_id"));
		if (id && !strcmp(id, tick_id)) {
			json_decref(found);
			found = r;
		} else {
			json_decref(r);
		}
	}
	tk_msgs_free(msgs, n);
	return found;
}

START_TEST(sync_worker_through_stripe_api_faults)
{
	struct stub stub;
	char topic[96], results[128], db[96], line[2048], got[1024] = "", api[128];
	int applied = 0, failed = 0, lost = 0, wrong = 0;
	size_t gl = 0, nph = sizeof(phases) / sizeof(phases[0]);
	long long t0 = tk_now_ms();
	json_t *state = stub_fixture();

	stub_start(&stub, state);
	tk_unique(topic, sizeof(topic), "f_apifaults");
	snprintf(results, sizeof(results), "%s.results", topic);
	tk_unique(db, sizeof(db), "db");
	tk_create_topic(topic, 1, 1);
	tk_create_topic(results, 1, 0);
	snprintf(api, sizeof(api), "STRIPE_API_BASE=%s", stub.url);
	/* Short timeouts and backoffs so that a fault for good is given up on in seconds. */
	const char *fixed[] = { api, "STRIPE_SECRET_KEY=sk_test_fault", "SYNC_PRICES_AT_START=false",
				"STRIPE_TIMEOUT_MS=1000", "STRIPE_CONNECT_TIMEOUT_MS=1000",
				"STRIPE_MAX_RETRIES=2", "STRIPE_RETRY_BASE_MS=50",
				"STRIPE_RETRY_MAX_MS=200", "SYNC_MAX_TICK_ATTEMPTS=2",
				"SYNC_BACKOFF_MAX_MS=200", NULL };
	pid_t pid = fk_start_sync(topic, results, db, fixed);

	for (size_t p = 0; p < nph; p++) {
		char tick[128], tick_id[64];
		json_error_t jerr;
		json_t *faults = json_loads(phases[p].fault, 0, &jerr);
		ck_assert_msg(faults != NULL, "%s: %s", phases[p].name, jerr.text);
		json_object_set_new(state, "faults", faults);
		stub_set_state(&stub, state);
		snprintf(tick_id, sizeof(tick_id), "t-%s", phases[p].name);
		snprintf(tick, sizeof(tick), "{\"tick_id\":\"%s\",\"scope\":\"prices\"}", tick_id);
		tk_produce(topic, "prices", tick);
		json_t *r = result_of(results, tick_id, p + 1, 60000);
		const char *st = r ? json_string_value(json_object_get(r, "status")) : NULL;
		if (!st)
			lost++;
		else if (!strcmp(st, "applied"))
			applied++;
		else if (!strcmp(st, "failed"))
			failed++;
		if (!st || strcmp(st, phases[p].want) != 0)
			wrong++;
		gl += (size_t)snprintf(got + gl, sizeof(got) - gl, "%s%s=%s", gl ? "," : "",
				       phases[p].name, st ? st : "none");
		if (gl >= sizeof(got))
			gl = sizeof(got) - 1;
		json_decref(r);
	}
	int requests = stub_count(&stub, "GET", "/v1/prices");
	int rc = fk_stop(pid, 30000);
	json_t *prices = tk_mongo_find(db, "payments_prices", "{}");
	size_t stored = json_array_size(prices);
	json_decref(prices);
	json_t *team = tk_mongo_find_one(db, "payments_prices", "{\"price_id\":\"price_team\"}");
	long long team_spus = team ? tk_int(team, "included_spus") : -1;
	json_decref(team);
	struct tk_msg *dlq = NULL;
	char dlq_topic[200];
	snprintf(dlq_topic, sizeof(dlq_topic), "%s.dlq", topic);
	size_t ndlq = fk_consume_all(dlq_topic, 10000, &dlq);
	tk_msgs_free(dlq, ndlq);
	snprintf(line, sizeof(line),
		 "FIGURES stripe_api_faults sent=%zu applied=%d duplicates=0 dlq=%zu lost=%d "
		 "double_applied=0 | failed=%d unexpected=%d api_requests=%d prices_stored=%zu "
		 "team_included_spus=%lld exit=%d wall_ms=%lld phases=%s",
		 nph, applied, ndlq, lost, failed, wrong, requests, stored, team_spus, rc,
		 tk_now_ms() - t0, got);
	fk_figures_line(line);
	stub_stop(&stub);
	json_decref(state);
	tk_mongo_drop(db);
	ck_assert_msg(wrong == 0, "unexpected outcomes: %s", got);
	ck_assert_int_eq(stored, 5);
	ck_assert_int_eq(team_spus, 5000);
	ck_assert_int_eq(rc, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_api_faults");
	TCase *tc = tcase_create("api");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, sync_worker_through_stripe_api_faults);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
