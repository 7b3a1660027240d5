/* Low-balance alerts of the usage worker against the real local stack: one message per
 * crossing of ALERT_THRESHOLDS and one "exhausted" when overage starts, never one per event;
 * exactly once when the worker crashes after the customer write and the batch is redelivered,
 * and with two workers charging the same org; the same alert (same id and bytes) at most
 * re-published after a crash between its publish and its clearing; re-armed by a grant
 * (bw-admin) that raised the balance above the threshold; never for an enterprise org. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usage_kit.h"

static const int default_order[3] = { 0, 1, 2 };

/* Produces n events of spus each to org (ids "<prefix>-<i>"), keyed by event id so that one
 * org's events land on every partition; updates the reference. */
static void produce_events(const struct uk_env *env, struct uk_org *org, const char *prefix,
			   int n, long long spus)
{
	const char **values = calloc((size_t)n, sizeof(*values));
	const char **keys = calloc((size_t)n, sizeof(*keys));
	for (int i = 0; i < n; i++) {
		char buf[512], id[64];
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		uk_event_json(buf, sizeof(buf), id, org->id, spus);
		uk_ref_charge(org, spus, default_order);
		values[i] = strdup(buf);
		keys[i] = strdup(id);
	}
	tk_produce_many(env->topic, keys, values, (size_t)n);
	uk_free_strings(values, keys, (size_t)n);
}

/* Reads the alerts topic (at least `want` messages); checks that every copy of an alert_id is
 * byte-identical and returns the distinct alerts as a new JSON array; *total gets the count of
 * messages. */
static json_t *read_alerts(const struct uk_env *env, size_t want, size_t *total)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(env->alerts, want, want ? 15000 : 2000, &msgs);
	json_t *seen = json_object(), *distinct = json_array();

	ck_assert_int_ge(n, want);
	for (size_t i = 0; i < n; i++) {
		json_error_t jerr;
		json_t *a = json_loads(msgs[i].value, 0, &jerr);
		ck_assert_msg(a != NULL, "alert is not JSON: %s", msgs[i].value);
		const char *id = json_string_value(json_object_get(a, "alert_id"));
		ck_assert_ptr_nonnull(id);
		ck_assert_str_eq(msgs[i].key, json_string_value(json_object_get(a, "org_id")));
		json_t *first = json_object_get(seen, id);
		if (first) {
			ck_assert_str_eq(json_string_value(first), msgs[i].value);
			json_decref(a);
			continue;
		}
		json_object_set_new(seen, id, json_string(msgs[i].value));
		json_array_append_new(distinct, a);
	}
	tk_msgs_free(msgs, n);
	json_decref(seen);
	*total = n;
	return distinct;
}

/* The alert of org with type and threshold (0: exhausted), borrowed, or NULL. */
static json_t *find_alert(json_t *alerts, const char *org_id, long long threshold)
{
	size_t i;
	json_t *a;
	json_array_foreach(alerts, i, a) {
		const char *type = json_string_value(json_object_get(a, "type"));
		json_t *t = json_object_get(a, "threshold_spus");
		if (strcmp(json_string_value(json_object_get(a, "org_id")), org_id) != 0)
			continue;
		if (threshold == 0 && strcmp(type, "exhausted") == 0)
			return a;
		if (threshold > 0 && t && json_integer_value(t) == threshold)
			return a;
	}
	return NULL;
}

static size_t count_org(json_t *alerts, const char *org_id)
{
	size_t i, n = 0;
	json_t *a;
	json_array_foreach(alerts, i, a)
		n += strcmp(json_string_value(json_object_get(a, "org_id")), org_id) == 0;
	return n;
}

/* The alert is the crossing's: its event, the remaining after that event's charge, and a
 * balance_version equal to that event's usage record's. */
static void check_alert(const struct uk_env *env, json_t *a, const char *event_id,
			long long remaining)
{
	char filter[256];
	ck_assert_msg(a != NULL, "missing alert for %s", event_id);
	ck_assert_str_eq(json_string_value(json_object_get(a, "event_id")), event_id);
	ck_assert_int_eq(tk_int(a, "remaining_spus"), remaining);
	snprintf(filter, sizeof(filter), "{\"_id.event_id\":\"%s\"}", event_id);
	json_t *rec = tk_mongo_find_one(env->db, "payments_usage_records", filter);
	ck_assert_ptr_nonnull(rec);
	ck_assert_int_eq(tk_int(a, "balance_version"), tk_int(rec, "balance_version"));
	json_decref(rec);
}

/* No pending alert is left on the org's document once every publish was acknowledged. */
static void check_cleared(const struct uk_env *env, const char *org_id)
{
	char filter[256];
	snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", org_id);
	json_t *doc = tk_mongo_find_one(env->db, "payments_customers", filter);
	json_t *p = json_object_get(doc, "pending_alerts");
	ck_assert_msg(p == NULL || json_array_size(p) == 0, "pending alerts left on %s", org_id);
	json_decref(doc);
}

/* A grant by bw-admin (its own audited writer, which bumps balance_version). */
static void grant(const struct uk_env *env, const char *org_id, long long spus)
{
	char vars[3][320], amount[32], key[64];
	pid_t pid;

	snprintf(vars[0], sizeof(vars[0]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(vars[1], sizeof(vars[1]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(vars[2], sizeof(vars[2]), "MONGO_DB=%s", env->db);
	snprintf(amount, sizeof(amount), "%lld", spus);
	snprintf(key, sizeof(key), "alerts-test-%lld", spus);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 3; i++)
			putenv(vars[i]);
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 1);
		execl(BW_ADMIN_PATH, BW_ADMIN_PATH, "--json", "grant", org_id, "--spus", amount,
		      "--key", key, "--reason", "alerts test: top-up", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(tk_wait(pid, 30000), 0);
}

static struct uk_org seed(const struct uk_env *env, const char *id, int enterprise,
			  long long sub, long long purchased, long long granted)
{
	struct uk_org o;
	memset(&o, 0, sizeof(o));
	snprintf(o.id, sizeof(o.id), "%s", id);
	o.enterprise = enterprise;
	o.cap[0] = sub;
	o.cap[1] = purchased;
	o.cap[2] = granted;
	uk_seed_org(env, &o);
	return o;
}

/* Org A: granted 100, thresholds 50 and 20, 12 events of 10 SPUs: 50 crosses at the 5th
 * event, 20 at the 8th, overage starts at the 11th. The worker crashes after the customer
 * write of its second batch (alerts written, not published), then runs to the end: every
 * alert exactly once. Then a grant of 100 re-arms everything (remaining 100); 5 more events
 * cross 50 again at the 5th (remaining 50); the worker crashes after the results (alerts
 * published, not cleared) and restarts: a re-publish, if any, is the same message. */
START_TEST(once_per_crossing_under_redelivery_and_rearm)
{
	struct uk_env env;
	const char *crash[] = { "ALERT_THRESHOLDS=50,20", "BATCH_MAX=3", "BATCH_WAIT_MS=50",
				"KAFKA_SESSION_TIMEOUT_MS=6000", "BW_FAULT_AT=after_db_write:2",
				NULL };
	const char *calm[] = { "ALERT_THRESHOLDS=50,20", "BATCH_MAX=3",
			       "KAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	size_t total;

	uk_env_init(&env, "usage_alerts", 1);
	struct uk_org a = seed(&env, "alert-a", 0, 0, 0, 100);
	struct uk_org e = seed(&env, "alert-ent", 1, 0, 0, 0);
	produce_events(&env, &a, "a1", 12, 10);
	produce_events(&env, &e, "e1", 4, 10);
	ck_assert_int_eq(uk_run_worker(&env, crash, 4000), 128 + SIGABRT);
	ck_assert_int_eq(uk_run_worker(&env, calm, 3000), 0);
	uk_check_org(&env, &a);
	uk_check_org(&env, &e);

	json_t *alerts = read_alerts(&env, 3, &total);
	ck_assert_int_eq(total, 3); /* exactly once: no repeat, none per event */
	ck_assert_int_eq(json_array_size(alerts), 3);
	check_alert(&env, find_alert(alerts, a.id, 50), "a1-4", 50);
	check_alert(&env, find_alert(alerts, a.id, 20), "a1-7", 20);
	check_alert(&env, find_alert(alerts, a.id, 0), "a1-10", 0);
	ck_assert_int_eq(count_org(alerts, e.id), 0);
	check_cleared(&env, a.id);
	json_decref(alerts);

	/* Re-arm: a grant lifts remaining from 0 to 100 (the 20 of overage stays overage). */
	grant(&env, a.id, 100);
	a.cap[2] += 100;
	produce_events(&env, &a, "a2", 5, 10);
	crash[4] = "BW_FAULT_AT=after_results:1";
	ck_assert_int_eq(uk_run_worker(&env, crash, 4000), 128 + SIGABRT);
	ck_assert_int_eq(uk_run_worker(&env, calm, 3000), 0);
	uk_check_org(&env, &a);
	alerts = read_alerts(&env, 4, &total);
	ck_assert_int_eq(json_array_size(alerts), 4);
	ck_assert_int_le(total, 5); /* at most the one batch's alert again, identical */
	json_t *again = NULL, *x;
	size_t i;
	json_array_foreach(alerts, i, x)
		if (strcmp(json_string_value(json_object_get(x, "event_id")), "a2-4") == 0)
			again = x;
	check_alert(&env, again, "a2-4", 50);
	ck_assert_int_eq(tk_int(again, "threshold_spus"), 50);
	check_cleared(&env, a.id);
	json_decref(alerts);
	tk_mongo_drop(env.db);
}
END_TEST

/* Two workers on two partitions charge the same orgs at once (keys spread each org's events
 * over both): org B (granted 1000, purchased 200) crosses 500 and 100 and starts overage
 * once each; the enterprise org never alerts. */
START_TEST(two_workers_same_org)
{
	struct uk_env env;
	const char *vars[] = { "ALERT_THRESHOLDS=500,100", "BATCH_MAX=7", "IDLE_EXIT_MS=4000",
			       NULL };
	size_t total;

	uk_env_init(&env, "usage_alerts2", 2);
	struct uk_org b = seed(&env, "alert-b", 0, 0, 200, 1000);
	struct uk_org e = seed(&env, "alert-ent2", 1, 0, 0, 0);
	produce_events(&env, &b, "b", 130, 10); /* 1200 available, 1300 charged */
	produce_events(&env, &e, "e", 20, 10);
	pid_t w1 = uk_start_worker(&env, vars), w2 = uk_start_worker(&env, vars);
	ck_assert_int_eq(tk_wait(w1, 120000), 0);
	ck_assert_int_eq(tk_wait(w2, 120000), 0);
	uk_check_org(&env, &b);
	uk_check_org(&env, &e);

	json_t *alerts = read_alerts(&env, 3, &total);
	ck_assert_int_eq(total, 3);
	ck_assert_ptr_nonnull(find_alert(alerts, b.id, 500));
	ck_assert_ptr_nonnull(find_alert(alerts, b.id, 100));
	json_t *ex = find_alert(alerts, b.id, 0);
	ck_assert_ptr_nonnull(ex);
	ck_assert_int_eq(tk_int(ex, "remaining_spus"), 0);
	ck_assert_int_eq(tk_int(find_alert(alerts, b.id, 500), "remaining_spus"), 500);
	ck_assert_int_eq(tk_int(find_alert(alerts, b.id, 100), "remaining_spus"), 100);
	ck_assert_int_eq(count_org(alerts, e.id), 0);
	check_cleared(&env, b.id);
	json_decref(alerts);
	tk_mongo_drop(env.db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_alerts");
	TCase *tc = tcase_create("alerts");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, once_per_crossing_under_redelivery_and_rearm);
	tcase_add_test(tc, two_workers_same_org);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
