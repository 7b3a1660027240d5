/* bw-api against the real local stack: the binary is started as a process on a free port and
 * called with libcurl; what reached Kafka is read back with tk_consume, balances are compared
 * with the usage workers' own results. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_kit.h"
#include "testkit.h"
#include "usage_kit.h"

#define EV_FMT                                                                              \
	"{\"event_id\":\"%s\",\"org_id\":\"%s\",\"spus\":%lld,\"operation\":\"parse\","     \
	"\"source\":\"api-it\",\"timestamp\":\"2026-03-01T10:00:00Z\"}"

static json_t *get_balance(const struct ak_api *api, const char *org, long long spus)
{
	char path[256];
	struct ak_resp r;
	json_t *j;

	if (spus > 0)
		snprintf(path, sizeof(path), "/v1/orgs/%s/balance?spus=%lld", org, spus);
	else
		snprintf(path, sizeof(path), "/v1/orgs/%s/balance", org);
	ak_http(api, "GET", path, AK_KEY, NULL, &r);
	ck_assert_msg(r.status == 200 && r.json, "GET %s: %ld %s", path, r.status, r.body);
	j = json_incref(r.json);
	ak_resp_free(&r);
	return j;
}

static void expect_precheck(const struct ak_api *api, const char *org, long long spus,
			    int allowed, long long available, long long shortfall)
{
	json_t *b = get_balance(api, org, spus);

	ck_assert_msg(json_is_true(json_object_get(b, "allowed")) == allowed,
		      "%s spus=%lld: allowed is not %d", org, spus, allowed);
	if (available < 0)
		ck_assert(json_is_null(json_object_get(b, "available")));
	else
		ck_assert_int_eq(tk_int(b, "available"), available);
	ck_assert_int_eq(tk_int(b, "shortfall"), shortfall);
	ck_assert_int_eq(tk_int(b, "spus"), spus);
	json_decref(b);
}

START_TEST(test_unauthorized)
{
	struct uk_env env;
	struct ak_api api;
	struct ak_resp r;
	char ev[512], sentinel[512];
	struct tk_msg *msgs = NULL;
	size_t n;

	uk_env_init(&env, "it_api_auth", 1);
	ak_start(&api, tk_brokers(), env.topic, env.db, NULL);
	snprintf(ev, sizeof(ev), EV_FMT, "auth-1", "org-a", 5LL);
	const char *keys[] = { NULL, "wrong-key-0123456789abcdef", AK_KEY "x", "" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		ak_http(&api, "GET", "/v1/orgs/org-a/balance", keys[i], NULL, &r);
		ck_assert_int_eq(r.status, 401);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")),
				 "unauthorized");
		ak_resp_free(&r);
		ak_http(&api, "POST", "/v1/usage", keys[i], ev, &r);
		ck_assert_int_eq(r.status, 401);
		ak_resp_free(&r);
	}
	/* Both keys of the rotation list are accepted. */
	ak_http(&api, "GET", "/v1/orgs/org-a/balance", AK_KEY2, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ak_resp_free(&r);
	snprintf(sentinel, sizeof(sentinel), EV_FMT, "auth-sentinel", "org-a", 1LL);
	ak_http(&api, "POST", "/v1/usage", AK_KEY, sentinel, &r);
	ck_assert_int_eq(r.status, 202);
	ak_resp_free(&r);
	/* Only the sentinel reached the topic: no refused request published anything. */
	n = tk_consume(env.topic, 2, 3000, &msgs);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(msgs[0].key, "org-a");
	ck_assert(strstr(msgs[0].value, "auth-sentinel") != NULL);
	tk_msgs_free(msgs, n);
	ak_stop(&api);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(test_precheck_boundary)
{
	struct uk_env env;
	struct ak_api api;
	struct uk_org pro, ent;
	struct ak_resp r;
	json_t *b;
	const char *oid = "65f1a2b3c4d5e6f708192a3b";
	char doc[512];

	uk_env_init(&env, "it_api_pre", 1);
	memset(&pro, 0, sizeof(pro));
	memset(&ent, 0, sizeof(ent));
	snprintf(pro.id, sizeof(pro.id), "org-pro");
	pro.cap[0] = 3, pro.cap[1] = 4, pro.cap[2] = 5;
	uk_seed_org(&env, &pro);
	snprintf(ent.id, sizeof(ent.id), "org-ent");
	ent.enterprise = 1;
	uk_seed_org(&env, &ent);
	/* Overdrawn purchased bucket (the original code's races): reads 0, not negative. */
	tk_mongo_insert(env.db, "payments_customers",
			"{\"org_id\":\"org-over\",\"subscription_type\":\"none\","
			"\"purchased_credits\":10,\"purchased_credits_used\":25,"
			"\"granted_credits\":7,\"granted_credits_used\":2,\"balance_version\":4}");
	/* Enterprise by the backend's organizations flag only. */
	snprintf(doc, sizeof(doc), "{\"_id\":{\"$oid\":\"%s\"},\"type\":\"enterprise\"}", oid);
	tk_mongo_insert(env.db, "organizations", doc);
	ak_start(&api, tk_brokers(), env.topic, env.db, (const char *const[]){ "FREE_GRANT_SPUS=100", NULL });

	/* available = 3 + 4 + 5 = 12: N allowed, N + 1 short by one. */
	expect_precheck(&api, "org-pro", 12, 1, 12, 0);
	expect_precheck(&api, "org-pro", 13, 0, 12, 1);
	expect_precheck(&api, "org-pro", 1, 1, 12, 0);
	b = get_balance(&api, "org-pro", 0);
	ck_assert(json_object_get(b, "allowed") == NULL);
	ck_assert(json_is_true(json_object_get(b, "known")));
	ck_assert(json_is_false(json_object_get(b, "enterprise")));
	ck_assert_int_eq(tk_int(b, "balance_version"), 1);
	ck_assert_int_eq(tk_int(json_object_get(b, "balances"), "subscription_remaining"), 3);
	ck_assert_int_eq(tk_int(json_object_get(b, "balances"), "purchased_remaining"), 4);
	ck_assert_int_eq(tk_int(json_object_get(b, "balances"), "granted_remaining"), 5);
	ck_assert_int_eq(tk_int(json_object_get(b, "balances"), "total_remaining"), 12);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "subscription"),
							   "subscription_type")),
			 "pro");
	json_decref(b);
	/* Enterprise: always allowed, no finite "available". */
	expect_precheck(&api, "org-ent", 1000000000LL, 1, -1, 0);
	expect_precheck(&api, oid, 1000000000LL, 1, -1, 0);
	/* An org never seen has the free grant. */
	expect_precheck(&api, "org-new", 100, 1, 100, 0);
	expect_precheck(&api, "org-new", 101, 0, 100, 1);
	b = get_balance(&api, "org-new", 0);
	ck_assert(json_is_false(json_object_get(b, "known")));
	ck_assert_int_eq(tk_int(b, "balance_version"), 0);
	json_decref(b);
	/* Overdrawn bucket clamps to 0: available = 0 + 5. */
	expect_precheck(&api, "org-over", 5, 1, 5, 0);
	expect_precheck(&api, "org-over", 6, 0, 5, 1);
	/* Balance reads keep the connection alive (the throughput of the pre-check rests on it). */
	ck_assert_int_eq(
		ak_new_connections_on_reuse(&api, "/v1/orgs/org-pro/balance?spus=3", AK_KEY), 0);
	/* Bad input. */
	const char *bad[] = { "/v1/orgs/org-pro/balance?spus=0", "/v1/orgs/org-pro/balance?spus=-1",
			      "/v1/orgs/org-pro/balance?spus=1.5",
			      "/v1/orgs/org-pro/balance?spus=99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ak_http(&api, "GET", bad[i], AK_KEY, NULL, &r);
		ck_assert_msg(r.status == 400, "%s: %ld", bad[i], r.status);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")),
				 "invalid_spus");
		ak_resp_free(&r);
	}
	ak_http(&api, "GET", "/v1/orgs/a/b/balance", AK_KEY, NULL, &r);
	ck_assert_int_eq(r.status, 404);
	ak_resp_free(&r);
	ak_http(&api, "POST", "/v1/orgs/org-pro/balance", AK_KEY, "{}", &r);
	ck_assert_int_eq(r.status, 405);
	ak_resp_free(&r);
	ak_stop(&api);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(test_usage_invalid_mix)
{
	struct uk_env env;
	struct ak_api api;
	struct ak_resp r;
	char body[4096], ok1[512], ok2[512];
	struct tk_msg *msgs = NULL;
	json_t *invalid;
	size_t n;

	uk_env_init(&env, "it_api_mix", 2);
	ak_start(&api, tk_brokers(), env.topic, env.db,
		 (const char *const[]){ "API_MAX_EVENTS=5", NULL });
	snprintf(ok1, sizeof(ok1), EV_FMT, "mix-1", "org-m", 2LL);
	snprintf(ok2, sizeof(ok2), EV_FMT, "mix-3", "org-m", 3LL);
	snprintf(body, sizeof(body),
		 "[%s,{\"event_id\":\"mix-2\",\"org_id\":\"org-m\",\"operation\":\"parse\","
		 "\"source\":\"s\",\"timestamp\":\"2026-03-01T10:00:00Z\"},%s,"
		 "{\"event_id\":\"mix-4\",\"org_id\":\"org-m\",\"spus\":1,\"operation\":\"p\","
		 "\"source\":\"s\",\"timestamp\":\"yesterday\"},\"text\"]",
		 ok1, ok2);
	ak_http(&api, "POST", "/v1/usage", AK_KEY, body, &r);
	ck_assert_msg(r.status == 400, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "invalid_events");
	invalid = json_object_get(r.json, "invalid");
	ck_assert_int_eq(json_array_size(invalid), 3);
	ck_assert_int_eq(tk_int(json_array_get(invalid, 0), "index"), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(invalid, 0), "event_id")),
			 "mix-2");
	ck_assert(strstr(json_string_value(json_object_get(json_array_get(invalid, 0), "reason")),
			 "spus") != NULL);
	ck_assert_int_eq(tk_int(json_array_get(invalid, 1), "index"), 3);
	ck_assert(strstr(json_string_value(json_object_get(json_array_get(invalid, 1), "reason")),
			 "timestamp") != NULL);
	ck_assert_int_eq(tk_int(json_array_get(invalid, 2), "index"), 4);
	ck_assert(json_is_null(json_object_get(json_array_get(invalid, 2), "event_id")));
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "event_ids")), 5);
	ak_resp_free(&r);
	/* Whole-body refusals. */
	ak_http(&api, "POST", "/v1/usage", AK_KEY, "[", &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "invalid_json");
	ak_resp_free(&r);
	ak_http(&api, "POST", "/v1/usage", AK_KEY, "[]", &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "empty_batch");
	ak_resp_free(&r);
	snprintf(body, sizeof(body), "[%s,%s,%s,%s,%s,%s]", ok1, ok1, ok1, ok1, ok1, ok1);
	ak_http(&api, "POST", "/v1/usage", AK_KEY, body, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "too_many_events");
	ak_resp_free(&r);
	ak_http(&api, "GET", "/v1/usage", AK_KEY, NULL, &r);
	ck_assert_int_eq(r.status, 405);
	ak_resp_free(&r);
	/* A valid pair: 202 with both ids, after which the topic holds exactly these two. */
	snprintf(body, sizeof(body), "[%s,%s]", ok1, ok2);
	ak_http(&api, "POST", "/v1/usage", AK_KEY, body, &r);
	ck_assert_msg(r.status == 202, "%ld %s", r.status, r.body);
	ck_assert_int_eq(tk_int(r.json, "accepted"), 2);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "event_ids"), 1)),
			 "mix-3");
	ak_resp_free(&r);
	n = tk_consume(env.topic, 3, 3000, &msgs);
	ck_assert_int_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(msgs[i].key, "org-m");
		ck_assert(strstr(msgs[i].value, "\"mix-2\"") == NULL);
	}
	tk_msgs_free(msgs, n);
	ak_stop(&api);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(test_usage_broker_down)
{
	struct uk_env env;
	struct ak_api api;
	struct ak_resp r;
	char body[1200], ev1[512], ev2[512];
	struct tk_msg *msgs = NULL;
	size_t n;

	uk_env_init(&env, "it_api_down", 1);
	/* Nothing listens on port 1: the broker is unreachable for this instance only. */
	ak_start(&api, "127.0.0.1:1", env.topic, env.db,
		 (const char *const[]){ "API_PUBLISH_TIMEOUT_MS=1000", NULL });
	snprintf(ev1, sizeof(ev1), EV_FMT, "down-1", "org-d", 2LL);
	snprintf(ev2, sizeof(ev2), EV_FMT, "down-2", "org-e", 2LL);
	snprintf(body, sizeof(body), "[%s,%s]", ev1, ev2);
	ak_http(&api, "POST", "/v1/usage", AK_KEY, body, &r);
	ck_assert_msg(r.status == 503, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "unavailable");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "event_ids"), 0)),
			 "down-1");
	ak_resp_free(&r);
	/* Balances still answer: MongoDB is up. */
	ak_http(&api, "GET", "/v1/orgs/org-d/balance", AK_KEY, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ak_resp_free(&r);
	ak_stop(&api);
	n = tk_consume(env.topic, 1, 2000, &msgs);
	ck_assert_int_eq(n, 0);
	tk_msgs_free(msgs, n);
	tk_mongo_drop(env.db);
}
END_TEST

#define LOAD_ORGS 16
#define LOAD_EVENTS 480

/* Random load through the API, two usage workers; then for every org bw-api's balances equal
 * the usage workers' last result (highest balance_version) for it, remaining per bucket and all
 * (and its balance_version is at least that result's). */
START_TEST(test_balance_matches_results)
{
	struct uk_env env;
	struct ak_api api;
	struct uk_org orgs[LOAD_ORGS];
	char ids[LOAD_ORGS + 2][64];
	struct ak_resp r;
	const char *extra[] = { "IDLE_EXIT_MS=4000", "BATCH_MAX=50", NULL };
	size_t sent = 0, bodycap = 200 * 512;
	char *body = malloc(bodycap);
	json_t *results;
	unsigned seed = (unsigned)tk_now_ms();
	pid_t w1, w2;

	fprintf(stderr, "test_balance_matches_results seed %u\n", seed);
	srand(seed);
	uk_env_init(&env, "it_api_load", 4);
	uk_seed_orgs(&env, orgs, LOAD_ORGS, "load", 40, 30, 20);
	for (int o = 0; o < LOAD_ORGS; o++)
		memcpy(ids[o], orgs[o].id, sizeof(ids[o]));
	snprintf(ids[LOAD_ORGS], sizeof(ids[0]), "load-unseen-1"); /* free grant, no document */
	snprintf(ids[LOAD_ORGS + 1], sizeof(ids[0]), "load-unseen-2");
	ak_start(&api, tk_brokers(), env.topic, env.db, NULL);
	while (sent < LOAD_EVENTS) {
		size_t batch = 1 + (size_t)(rand() % 120), len = 0;
		if (batch > LOAD_EVENTS - sent)
			batch = LOAD_EVENTS - sent;
		len += (size_t)snprintf(body + len, bodycap - len, "[");
		for (size_t i = 0; i < batch; i++) {
			char eid[64];
			snprintf(eid, sizeof(eid), "load-%zu", sent + i);
			len += (size_t)snprintf(body + len, bodycap - len, i ? "," EV_FMT : EV_FMT, eid,
						ids[rand() % (LOAD_ORGS + 2)],
						(long long)(1 + rand() % 9));
		}
		snprintf(body + len, bodycap - len, "]");
		ak_http(&api, "POST", "/v1/usage", AK_KEY, body, &r);
		ck_assert_msg(r.status == 202, "%ld %s", r.status, r.body);
		ck_assert_int_eq(tk_int(r.json, "accepted"), (long long)batch);
		ak_resp_free(&r);
		sent += batch;
	}
	free(body);
	w1 = uk_start_worker(&env, extra);
	w2 = uk_start_worker(&env, extra);
	ck_assert_int_eq(tk_wait(w1, 120000), 0);
	ck_assert_int_eq(tk_wait(w2, 120000), 0);
	results = uk_results(&env, LOAD_EVENTS);
	for (int o = 0; o < LOAD_ORGS + 2; o++) {
		json_t *last = NULL, *res, *bal;
		size_t i;
		json_array_foreach(results, i, res) {
			const char *org = json_string_value(json_object_get(res, "org_id"));
			if (!org || strcmp(org, ids[o]) || !json_object_get(res, "balance_version"))
				continue;
			if (!last || tk_int(res, "balance_version") > tk_int(last, "balance_version"))
				last = res;
		}
		ck_assert_msg(last != NULL, "no result for %s", ids[o]);
		bal = get_balance(&api, ids[o], 0);
		ck_assert_msg(json_equal(json_object_get(bal, "balances"),
					 json_object_get(last, "balances")),
			      "%s: api %s vs result %s", ids[o],
			      json_dumps(json_object_get(bal, "balances"), JSON_COMPACT),
			      json_dumps(json_object_get(last, "balances"), JSON_COMPACT));
		/* Clearing a published low-balance alert bumps the version without a result. */
		ck_assert_int_ge(tk_int(bal, "balance_version"), tk_int(last, "balance_version"));
		json_decref(bal);
	}
	json_decref(results);
	ak_stop(&api);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("api");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_unauthorized);
	tcase_add_test(tc, test_precheck_boundary);
	tcase_add_test(tc, test_usage_invalid_mix);
	tcase_add_test(tc, test_usage_broker_down);
	tcase_add_test(tc, test_balance_matches_results);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
