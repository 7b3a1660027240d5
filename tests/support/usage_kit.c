/* usage_kit: see usage_kit.h. */
#include "usage_kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void uk_ref_charge(struct uk_org *org, long long spus, const int order[3])
{
	long long left = spus;

	org->charged_events++;
	if (org->enterprise) {
		org->used[0] += spus;
		return;
	}
	for (int i = 0; i < 3; i++) {
		int b = order[i];
		long long avail = org->cap[b] > org->used[b] ? org->cap[b] - org->used[b] : 0;
		long long take = avail < left ? avail : left;
		org->used[b] += take;
		left -= take;
	}
	org->paid += left;
}

void uk_event_json(char *buf, size_t len, const char *event_id, const char *org_id,
		   long long spus)
{
	snprintf(buf, len,
		 "{\"event_id\":\"%s\",\"org_id\":\"%s\",\"spus\":%lld,\"operation\":\"llm_call\","
		 "\"source\":\"test\",\"timestamp\":\"2026-11-25T12:00:00Z\","
		 "\"llm_model\":\"m\",\"total_tokens\":%lld}",
		 event_id, org_id, spus, spus * 10);
}

void uk_produce_event(const struct uk_env *env, const char *event_id, const char *org,
		      long long spus)
{
	char buf[512];

	uk_event_json(buf, sizeof(buf), event_id, org, spus);
	tk_produce(env->topic, org, buf);
}

void uk_env_init(struct uk_env *env, const char *name, int partitions)
{
	tk_unique(env->topic, sizeof(env->topic), name);
	snprintf(env->results, sizeof(env->results), "%s.results", env->topic);
	snprintf(env->alerts, sizeof(env->alerts), "%s.alerts", env->topic);
	snprintf(env->group, sizeof(env->group), "%s.group", env->topic);
	tk_unique(env->db, sizeof(env->db), "db");
	snprintf(env->log, sizeof(env->log), "%s/%s.log", BW_BINARY_DIR, env->topic);
	tk_create_topic(env->topic, partitions, 1);
	tk_create_topic(env->results, 1, 0);
	tk_create_topic(env->alerts, 1, 0);
}

void uk_seed_org(const struct uk_env *env, const struct uk_org *org)
{
	char doc[1024];

	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"%s\",\"subscription_type\":\"%s\","
		 "\"subscription_spu_allowance\":{\"$numberLong\":\"%lld\"},"
		 "\"subscription_spus_used\":{\"$numberLong\":\"%lld\"},"
		 "\"purchased_credits\":{\"$numberLong\":\"%lld\"},"
		 "\"purchased_credits_used\":{\"$numberLong\":\"%lld\"},"
		 "\"granted_credits\":{\"$numberLong\":\"%lld\"},"
		 "\"granted_credits_used\":{\"$numberLong\":\"%lld\"},"
		 "\"paid_spus_used\":{\"$numberLong\":\"0\"},"
		 "\"opening_balance\":{\"source\":\"none\"},"
		 "\"balance_version\":{\"$numberLong\":\"1\"}}",
		 org->id, org->enterprise ? "enterprise" : "pro", org->cap[0], 0LL, org->cap[1],
		 0LL, org->cap[2], 0LL);
	tk_mongo_insert(env->db, "payments_customers", doc);
}

void uk_seed_orgs(const struct uk_env *env, struct uk_org *orgs, int n, const char *prefix,
		  long long sub, long long purchased, long long granted)
{
	for (int o = 0; o < n; o++) {
		memset(&orgs[o], 0, sizeof(orgs[o]));
		snprintf(orgs[o].id, sizeof(orgs[o].id), "%s-%d", prefix, o);
		orgs[o].cap[0] = sub;
		orgs[o].cap[1] = purchased;
		orgs[o].cap[2] = granted;
		uk_seed_org(env, &orgs[o]);
	}
}

void uk_free_strings(const char **a, const char **b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a)
			free((char *)a[i]);
		if (b)
			free((char *)b[i]);
	}
	free(a);
	free(b);
}

pid_t uk_start_worker(const struct uk_env *env, const char *const *extra)
{
	static char vars[8][320];
	const char *envp[24];
	int n = 0;

	snprintf(vars[0], sizeof(vars[0]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(vars[1], sizeof(vars[1]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(vars[2], sizeof(vars[2]), "MONGO_DB=%s", env->db);
	snprintf(vars[3], sizeof(vars[3]), "USAGE_TOPIC=%s", env->topic);
	snprintf(vars[4], sizeof(vars[4]), "USAGE_GROUP_ID=%s", env->group);
	snprintf(vars[5], sizeof(vars[5]), "RESULTS_TOPIC=%s", env->results);
	snprintf(vars[6], sizeof(vars[6]), "ALERTS_TOPIC=%s", env->alerts);
	for (int i = 0; i < 7; i++)
		envp[n++] = vars[i];
	envp[n++] = "LOG_LEVEL=info";
	for (const char *const *e = extra; e && *e && n < 23; e++)
		envp[n++] = *e;
	envp[n] = NULL;
	return tk_spawn(BW_USAGE_WORKER_PATH, envp, env->log);
}

int uk_run_worker(const struct uk_env *env, const char *const *extra, int idle_ms)
{
	char idle[64];
	const char *vars[16];
	int n = 0;

	snprintf(idle, sizeof(idle), "IDLE_EXIT_MS=%d", idle_ms);
	vars[n++] = idle;
	for (const char *const *e = extra; e && *e && n < 15; e++)
		vars[n++] = *e;
	vars[n] = NULL;
	return tk_wait(uk_start_worker(env, vars), 240000);
}

void uk_check_org(const struct uk_env *env, const struct uk_org *org)
{
	char filter[256];
	json_t *doc, *recs, *r;
	long long sum[4] = { 0, 0, 0, 0 };
	size_t i;

	snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", org->id);
	doc = tk_mongo_find_one(env->db, "payments_customers", filter);
	ck_assert_msg(doc != NULL, "no customer document for %s", org->id);
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), org->used[0]);
	ck_assert_int_eq(tk_int(doc, "purchased_credits_used"), org->used[1]);
	ck_assert_int_eq(tk_int(doc, "granted_credits_used"), org->used[2]);
	ck_assert_int_eq(tk_int(doc, "paid_spus_used"), org->paid);
	/* Never negative: used never exceeds the cap (enterprise has none). */
	if (!org->enterprise) {
		ck_assert_int_le(tk_int(doc, "subscription_spus_used"),
				 tk_int(doc, "subscription_spu_allowance") > org->used[0]
					 ? tk_int(doc, "subscription_spu_allowance")
					 : org->used[0]);
		ck_assert_int_le(tk_int(doc, "purchased_credits_used"),
				 tk_int(doc, "purchased_credits"));
		ck_assert_int_le(tk_int(doc, "granted_credits_used"), tk_int(doc, "granted_credits"));
	}
	recs = tk_mongo_find(env->db, "payments_usage_records", filter);
	ck_assert_int_eq(json_array_size(recs), org->charged_events);
	json_array_foreach(recs, i, r) {
		sum[0] += tk_int(r, "from_subscription");
		sum[1] += tk_int(r, "from_purchased");
		sum[2] += tk_int(r, "from_granted");
		sum[3] += tk_int(r, "from_paid");
	}
	/* Invariant 2: the counters equal the sum of the breakdowns of the records (orgs are
	 * seeded with used counters of 0). */
	ck_assert_int_eq(sum[0], tk_int(doc, "subscription_spus_used"));
	ck_assert_int_eq(sum[1], tk_int(doc, "purchased_credits_used"));
	ck_assert_int_eq(sum[2], tk_int(doc, "granted_credits_used"));
	ck_assert_int_eq(sum[3], tk_int(doc, "paid_spus_used"));
	json_decref(recs);
	json_decref(doc);
}

json_t *uk_results(const struct uk_env *env, size_t want)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(env->results, want, 30000, &msgs);
	json_t *all = json_array();

	ck_assert_msg(n >= want, "got %zu results, want %zu", n, want);
	for (size_t i = 0; i < n; i++) {
		json_error_t jerr;
		json_t *r = json_loads(msgs[i].value, 0, &jerr);
		ck_assert_msg(r != NULL, "result is not JSON: %s", msgs[i].value);
		json_array_append_new(all, r);
	}
	tk_msgs_free(msgs, n);
	return all;
}

json_t *uk_find_result(json_t *all, const char *event_id, const char *status)
{
	size_t i;
	json_t *r;
	json_array_foreach(all, i, r) {
		const char *e = json_string_value(json_object_get(r, "event_id"));
		const char *s = json_string_value(json_object_get(r, "status"));
		if (e && strcmp(e, event_id) == 0 && (!status || strcmp(s, status) == 0))
			return r;
	}
	return NULL;
}

size_t uk_count_results(json_t *all, const char *event_id, const char *status)
{
	size_t i, n = 0;
	json_t *r;
	json_array_foreach(all, i, r) {
		const char *e = json_string_value(json_object_get(r, "event_id"));
		const char *s = json_string_value(json_object_get(r, "status"));
		n += e && strcmp(e, event_id) == 0 && s && strcmp(s, status) == 0;
	}
	return n;
}
