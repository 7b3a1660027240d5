/* stripe_kit: see stripe_kit.h. */
#include "stripe_kit.h"

#include <check.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sk_env_init(struct sk_env *env, const char *name, const char *worker_path)
{
	tk_unique(env->topic, sizeof(env->topic), name);
	snprintf(env->results, sizeof(env->results), "%s.results", env->topic);
	snprintf(env->ticks, sizeof(env->ticks), "%s.ticks", env->topic);
	snprintf(env->dlq, sizeof(env->dlq), "%s.dlq", env->topic);
	snprintf(env->group, sizeof(env->group), "%s.group", env->topic);
	tk_unique(env->db, sizeof(env->db), "db");
	snprintf(env->log, sizeof(env->log), "%s/%s.log", BW_BINARY_DIR, env->topic);
	env->worker = worker_path;
	tk_create_topic(env->topic, 1, 1);
	tk_create_topic(env->results, 1, 0);
	tk_create_topic(env->ticks, 1, 0);
}

json_t *sk_fixture(const char *name)
{
	char path[512];
	json_error_t jerr;
	json_t *j;

	snprintf(path, sizeof(path), "%s/stripe/%s", BW_TEST_FIXTURES_DIR, name);
	j = json_load_file(path, 0, &jerr);
	ck_assert_msg(json_is_object(j), "fixture %s: %s", path, jerr.text);
	return j;
}

void sk_set(json_t *root, const char *path, json_t *v)
{
	char buf[256];
	char *seg, *next;
	json_t *cur = root;

	snprintf(buf, sizeof(buf), "%s", path);
	seg = buf;
	for (;;) {
		next = strchr(seg, '.');
		if (next)
			*next = '\0';
		if (json_is_array(cur)) {
			size_t i = (size_t)strtoul(seg, NULL, 10);
			if (!next) {
				ck_assert_int_eq(json_array_set_new(cur, i, v), 0);
				return;
			}
			cur = json_array_get(cur, i);
			ck_assert_msg(cur != NULL, "path %s: no index %s", path, seg);
		} else {
			ck_assert_msg(json_is_object(cur), "path %s: %s is not an object", path, seg);
			if (!next) {
				json_object_set_new(cur, seg, v);
				return;
			}
			json_t *child = json_object_get(cur, seg);
			if (!child || json_is_null(child)) {
				child = json_object();
				json_object_set_new(cur, seg, child);
			}
			cur = child;
		}
		seg = next + 1;
	}
}

void sk_set_str(json_t *root, const char *path, const char *s)
{
	sk_set(root, path, s ? json_string(s) : json_null());
}

void sk_set_int(json_t *root, const char *path, long long n)
{
	sk_set(root, path, json_integer(n));
}

void sk_produce(const struct sk_env *env, const json_t *ev)
{
	char *text = json_dumps(ev, JSON_COMPACT);
	const json_t *obj = json_object_get(json_object_get(ev, "data"), "object");
	const char *key = json_string_value(json_object_get(obj, "customer"));

	if (!key)
		key = json_string_value(json_object_get(ev, "id"));
	tk_produce(env->topic, key, text);
	free(text);
}

pid_t sk_start_worker(const struct sk_env *env, const char *const *extra, int idle_ms)
{
	char vars[9][320];
	const char *envp[32];
	int n = 0;

	snprintf(vars[0], sizeof(vars[0]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(vars[1], sizeof(vars[1]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(vars[2], sizeof(vars[2]), "MONGO_DB=%s", env->db);
	snprintf(vars[3], sizeof(vars[3]), "STRIPE_EVENTS_TOPIC=%s", env->topic);
	snprintf(vars[4], sizeof(vars[4]), "STRIPE_GROUP_ID=%s", env->group);
	snprintf(vars[5], sizeof(vars[5]), "RESULTS_TOPIC=%s", env->results);
	snprintf(vars[6], sizeof(vars[6]), "SYNC_TICKS_TOPIC=%s", env->ticks);
	snprintf(vars[7], sizeof(vars[7]), "IDLE_EXIT_MS=%d", idle_ms);
	snprintf(vars[8], sizeof(vars[8]), "LOG_LEVEL=info");
	for (int i = 0; i < 9; i++)
		envp[n++] = vars[i];
	for (const char *const *e = extra; e && *e && n < 31; e++)
		envp[n++] = *e;
	envp[n] = NULL;
	ck_assert_msg(env->worker != NULL, "bw-stripe-worker not built");
	return tk_spawn(env->worker, envp, env->log);
}

void sk_produce_free(const struct sk_env *env, json_t *ev)
{
	sk_produce(env, ev);
	json_decref(ev);
}

json_t *sk_checkout(const char *id, const char *session, const char *customer,
		    const char *org, const char *credits)
{
	json_t *ev = sk_fixture("checkout_session_completed.json");

	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.id", session);
	sk_set_str(ev, "data.object.customer", customer);
	sk_set_str(ev, "data.object.metadata.org_id", org);
	sk_set_str(ev, "data.object.metadata.credits", credits);
	return ev;
}

void sk_crash_and_restart(const struct sk_env *env, const char *step)
{
	char fault[96];
	const char *crash[] = { fault, "FREE_GRANT_SPUS=0", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	int rc;

	snprintf(fault, sizeof(fault), "BW_FAULT_AT=%s", step);
	rc = sk_run_worker(env, crash, 2500);
	ck_assert_msg(rc >= 128, "%s: worker should have crashed, exit %d", step, rc);
	rc = sk_run_worker(env, crash + 1, 9000);
	ck_assert_msg(rc == 0, "%s: restarted worker exit %d", step, rc);
}

int sk_run_worker(const struct sk_env *env, const char *const *extra, int idle_ms)
{
	return tk_wait(sk_start_worker(env, extra, idle_ms), 120000);
}

json_t *sk_read_json(const char *topic, size_t want)
{
	struct tk_msg *msgs = NULL;
	size_t n = tk_consume(topic, want, 20000, &msgs);
	json_t *all = json_array();

	ck_assert_msg(n >= want, "%s: got %zu messages, want %zu", topic, n, want);
	for (size_t i = 0; i < n; i++) {
		json_error_t jerr;
		json_t *r = json_loads(msgs[i].value, 0, &jerr);
		ck_assert_msg(r != NULL, "%s: not JSON: %s", topic, msgs[i].value);
		json_array_append_new(all, r);
	}
	tk_msgs_free(msgs, n);
	return all;
}

json_t *sk_result(json_t *all, const char *event_id, int nth)
{
	size_t i;
	json_t *r;

	json_array_foreach(all, i, r) {
		const char *e = json_string_value(json_object_get(r, "event_id"));
		if (e && strcmp(e, event_id) == 0 && nth-- == 0)
			return r;
	}
	return NULL;
}

const char *sk_status(const json_t *result)
{
	const char *s = json_string_value(json_object_get(result, "status"));
	ck_assert_msg(s != NULL, "result without status");
	return s;
}

json_t *sk_expect_status(json_t *all, const char *event_id, int nth, const char *status)
{
	json_t *r = sk_result(all, event_id, nth);
	const char *reason;

	ck_assert_msg(r != NULL, "no result %d for %s", nth, event_id);
	reason = json_string_value(json_object_get(r, "reason"));
	ck_assert_msg(strcmp(sk_status(r), status) == 0, "%s: status %s, want %s (%s)", event_id,
		      sk_status(r), status, reason ? reason : "");
	return r;
}

/* The one document of coll whose field equals value (new reference), failing when none. */
static json_t *find_required(const struct sk_env *env, const char *coll, const char *field,
			     const char *value)
{
	char filter[300];
	json_t *doc;

	snprintf(filter, sizeof(filter), "{\"%s\":\"%s\"}", field, value);
	doc = tk_mongo_find_one(env->db, coll, filter);
	ck_assert_msg(doc != NULL, "no %s document with %s %s", coll, field, value);
	return doc;
}

json_t *sk_ledger(const struct sk_env *env, const char *sid)
{
	return find_required(env, "payments_credit_transactions", "session_id", sid);
}

json_t *sk_customer(const struct sk_env *env, const char *org)
{
	return find_required(env, "payments_customers", "org_id", org);
}

void sk_seed_customer(const struct sk_env *env, const char *org, const char *cus,
		      long long purchased, long long used)
{
	char doc[1024];

	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"%s\",\"stripe_customer_id\":\"%s\",\"subscription_type\":\"none\","
		 "\"subscription_spu_allowance\":0,\"subscription_spus_used\":%lld,"
		 "\"purchased_credits\":%lld,\"purchased_credits_used\":0,"
		 "\"granted_credits\":100,\"granted_credits_used\":0,\"paid_spus_used\":0,"
		 "\"balance_version\":1,\"opening_balance\":{\"source\":\"none\"}}", org, cus, used,
		 purchased);
	tk_mongo_insert(env->db, "payments_customers", doc);
}

void sk_set_customer_int(const struct sk_env *env, const char *org, const char *field,
			 long long v)
{
	bson_error_t error;
	mongoc_client_t *c = mongoc_client_new(tk_mongo_uri());
	mongoc_collection_t *col = mongoc_client_get_collection(c, env->db, "payments_customers");
	bson_t *filter = BCON_NEW("org_id", BCON_UTF8(org));
	bson_t *update = BCON_NEW("$set", "{", field, BCON_INT64(v), "}");
	bool ok = mongoc_collection_update_one(col, filter, update, NULL, NULL, &error);

	ck_assert_msg(ok, "update: %s", error.message);
	bson_destroy(filter);
	bson_destroy(update);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
}

void sk_delete(const struct sk_env *env, const char *coll, const char *filter_json)
{
	bson_error_t error;
	mongoc_client_t *c = mongoc_client_new(tk_mongo_uri());
	mongoc_collection_t *col = mongoc_client_get_collection(c, env->db, coll);
	bson_t *filter = bson_new_from_json((const uint8_t *)filter_json, -1, &error);
	bool ok;

	ck_assert_msg(filter != NULL, "filter %s: %s", filter_json, error.message);
	ok = mongoc_collection_delete_many(col, filter, NULL, NULL, &error);
	ck_assert_msg(ok, "delete: %s", error.message);
	bson_destroy(filter);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
}

long long sk_date_ms(const json_t *v)
{
	const json_t *d = json_object_get(v, "$date");
	const char *s = json_string_value(d);
	struct tm tm;
	static const int at[6] = { 0, 5, 8, 11, 14, 17 }, width[6] = { 4, 2, 2, 2, 2, 2 };
	int part[6];

	if (json_is_integer(d))
		return json_integer_value(d);
	if (json_is_object(d))
		return strtoll(json_string_value(json_object_get(d, "$numberLong")), NULL, 10);
	ck_assert_msg(s != NULL, "not a date");
	ck_assert_msg(strlen(s) >= 19, "bad date %s", s);
	for (int i = 0; i < 6; i++) {
		part[i] = 0;
		for (int j = 0; j < width[i]; j++) {
			char c = s[at[i] + j];
			ck_assert_msg(c >= '0' && c <= '9', "bad date %s", s);
			part[i] = part[i] * 10 + (c - '0');
		}
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = part[0] - 1900;
	tm.tm_mon = part[1] - 1;
	tm.tm_mday = part[2];
	tm.tm_hour = part[3];
	tm.tm_min = part[4];
	tm.tm_sec = part[5];
	return (long long)timegm(&tm) * 1000;
}
