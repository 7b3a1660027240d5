/* Database faults under the usage worker's bulk writes (issue 11, defects 1 and 2), on the real
 * MongoDB-wire server behind a fault-injecting proxy (tests/support/mongo_proxy): a dropped
 * connection, an ok:0 command error and a write concern error on the customer bulk update and
 * on the usage-record bulk insert. The driver produces its real replies to these faults.
 *   - the store calls answer TRANSIENT (before the fix the record insert answered success);
 *   - the worker publishes nothing and stores no offset while a write fails, and once the
 *     database behaves every balance and every usage record is exact. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongo.h"
#include "mongo_proxy.h"
#include "usage_kit.h"
#include "usage_result.h"
#include "usage_store.h"

static const int default_order[3] = { 0, 1, 2 };

struct store_env {
	struct mp_proxy *proxy;
	struct bw_mongo *m;
	mongoc_client_t *client;
	char db[96];
};

static void store_open(struct store_env *s, const char *name)
{
	char uri[256];
	struct bw_err err;

	tk_unique(s->db, sizeof(s->db), name);
	s->proxy = mp_start();
	mp_uri(s->proxy, uri, sizeof(uri));
	s->m = bw_mongo_new(uri, s->db, "test-db-faults", &err);
	ck_assert_msg(s->m != NULL, "%s", err.msg);
	ck_assert_msg(bw_mongo_ensure_indexes(s->m, &err) == 0, "%s", err.msg);
	s->client = bw_mongo_pop(s->m);
	/* the retry of a batch whose write lacked write concern must not read that write back */
	const mongoc_read_concern_t *rc = mongoc_client_get_read_concern(s->client);
	ck_assert_str_eq(mongoc_read_concern_get_level(rc), MONGOC_READ_CONCERN_LEVEL_MAJORITY);
}

static void store_close(struct store_env *s)
{
	bw_mongo_push(s->m, s->client);
	bw_mongo_destroy(s->m);
	mp_stop(s->proxy);
	tk_mongo_drop(s->db);
}

/* A usage record as the worker keys it (_id {org_id, event_id}: duplicates collide). */
static bson_t *record(const char *event_id, int64_t spus)
{
	bson_t *doc = bson_new();

	bw_usage_record_id_append(doc, "_id", "org-f", event_id);
	BSON_APPEND_UTF8(doc, "event_id", event_id);
	BSON_APPEND_UTF8(doc, "org_id", "org-f");
	BSON_APPEND_INT64(doc, "spus", spus);
	return doc;
}

static int insert_two(struct store_env *s, struct bw_err *err)
{
	bson_t *docs[2] = { record("f-1", 1), record("f-2", 2) };
	bw_err_clear(err);
	int rc = bw_usage_store_insert_records(s->m, s->client, docs, 2, err);
	bson_destroy(docs[0]);
	bson_destroy(docs[1]);
	return rc;
}

static void expect_transient(struct store_env *s, int rc, const struct bw_err *err,
			     const char *fault)
{
	ck_assert_msg(mp_fired(s->proxy) == 1, "%s: the proxy did not act", fault);
	ck_assert_msg(rc == -1, "%s: the write answered success", fault);
	ck_assert_msg(err->kind == BW_ERR_TRANSIENT, "%s: kind %s (%s)", fault,
		      bw_err_kind_name(err->kind), err->msg);
}

/* Defect 1 (and 2 for the records): every failed execute of the record insert is transient;
 * duplicates alone are "already recorded". */
START_TEST(record_insert_faults_are_transient)
{
	struct store_env s;
	struct bw_err err;
	int rc;

	store_open(&s, "dbf_records");
	mp_rule(s.proxy, "insert", BW_COLL_USAGE_RECORDS, MP_DROP, 1);
	rc = insert_two(&s, &err);
	expect_transient(&s, rc, &err, "dropped connection");
	json_t *recs = tk_mongo_find(s.db, BW_COLL_USAGE_RECORDS, "{}");
	ck_assert_uint_eq(json_array_size(recs), 0);
	json_decref(recs);

	mp_rule(s.proxy, "insert", BW_COLL_USAGE_RECORDS, MP_COMMAND_ERROR, 1);
	rc = insert_two(&s, &err);
	expect_transient(&s, rc, &err, "ok:0 command error");

	mp_rule(s.proxy, "insert", BW_COLL_USAGE_RECORDS, MP_WRITE_CONCERN_ERROR, 1);
	rc = insert_two(&s, &err);
	expect_transient(&s, rc, &err, "write concern error");

	mp_rule(s.proxy, "insert", BW_COLL_USAGE_RECORDS, MP_PASS, 0);
	ck_assert_msg(insert_two(&s, &err) == 0, "duplicates: %s", err.msg);
	recs = tk_mongo_find(s.db, BW_COLL_USAGE_RECORDS, "{}");
	ck_assert_uint_eq(json_array_size(recs), 2);
	json_decref(recs);
	store_close(&s);
}
END_TEST

static int write_one_org(struct store_env *s, struct bw_org *org, struct bw_err *err)
{
	struct bw_org *orgs[1] = { org };

	bw_err_clear(err);
	org->dirty = 1;
	org->confirmed = 0;
	org->new_bal.granted_used = 5;
	org->new_version = org->version + 1;
	return bw_usage_store_write_orgs(s->m, s->client, orgs, 1, 100, err);
}

/* Defects 1 and 2 on the balance update: a dropped connection and a write concern error are
 * transient, not "missed" (reload) or "landed". */
START_TEST(customer_update_faults_are_transient)
{
	struct store_env s;
	struct bw_org org;
	struct bw_err err;
	int rc;

	store_open(&s, "dbf_customers");
	memset(&org, 0, sizeof(org));
	org.org_id = "org-f";
	mp_rule(s.proxy, "update", BW_COLL_CUSTOMERS, MP_DROP, 1);
	rc = write_one_org(&s, &org, &err);
	expect_transient(&s, rc, &err, "dropped connection");

	mp_rule(s.proxy, "update", BW_COLL_CUSTOMERS, MP_WRITE_CONCERN_ERROR, 1);
	rc = write_one_org(&s, &org, &err);
	expect_transient(&s, rc, &err, "write concern error");
	ck_assert_int_eq(org.confirmed, 0);

	/* The write had landed (only its durability was in doubt): the next conditional write
	 * from the same read misses and the org is reloaded. */
	mp_rule(s.proxy, "update", BW_COLL_CUSTOMERS, MP_PASS, 0);
	ck_assert_int_eq(write_one_org(&s, &org, &err), 0);
	ck_assert_int_eq(org.confirmed, 0);
	store_close(&s);
}
END_TEST

/* 1 when the worker's log has a failed-batch line that mentions what. */
static int log_has_failed_batch(const struct uk_env *env, const char *what)
{
	char line[2048];
	FILE *f = fopen(env->log, "r");
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, "failed (transient") && strstr(line, what);
	if (f)
		fclose(f);
	return found;
}

/* Every pending entry left on a customer document has its usage record (a pending entry is
 * dropped by the org's next write; it must never stand for a record that is missing). */
static void check_pending_recorded(const struct uk_env *env)
{
	json_t *docs = tk_mongo_find(env->db, BW_COLL_CUSTOMERS, "{}"), *doc, *p;
	size_t i, j;

	json_array_foreach(docs, i, doc) {
		json_array_foreach(json_object_get(doc, "pending_events"), j, p) {
			char filter[256];
			const char *id = json_string_value(json_object_get(p, "event_id"));
			ck_assert_ptr_nonnull(id);
			snprintf(filter, sizeof(filter), "{\"event_id\": \"%s\"}", id);
			json_t *rec = tk_mongo_find_one(env->db, BW_COLL_USAGE_RECORDS, filter);
			ck_assert_msg(rec != NULL, "pending %s has no usage record", id);
			json_decref(rec);
		}
	}
	json_decref(docs);
}

/* Runs the worker through the proxy with the fault active on every matching write until the
 * worker met it, and checks that the batch was not answered: a dropped write publishes
 * nothing while it lasts (every retry meets it again); a write concern error fails the batch
 * (logged, rewound). Then lets the database behave and checks every org exactly. */
static void worker_under_fault(const char *name, const char *command, const char *coll,
			       enum mp_action action)
{
	struct uk_env env;
	struct uk_org orgs[4];
	struct mp_proxy *proxy = mp_start();
	char uri[256], uri_var[300];
	const char *extra[] = { "IDLE_EXIT_MS=4000", uri_var, NULL };
	struct tk_msg *msgs = NULL;
	size_t n;

	mp_uri(proxy, uri, sizeof(uri));
	snprintf(uri_var, sizeof(uri_var), "MONGO_URI=%s", uri);
	uk_env_init(&env, name, 2);
	uk_seed_orgs(&env, orgs, 4, "dbf-org", 10, 10, 10);
	mp_rule(proxy, command, coll, action, -1);
	pid_t pid = uk_start_worker(&env, extra);
	for (int i = 0; i < 24; i++) {
		char buf[512], id[32];
		struct uk_org *o = &orgs[i % 4];
		snprintf(id, sizeof(id), "dbf-%d", i);
		uk_event_json(buf, sizeof(buf), id, o->id, 3);
		uk_ref_charge(o, 3, default_order);
		tk_produce(env.topic, o->id, buf);
	}
	long long deadline = tk_now_ms() + 60000;
	while (mp_fired(proxy) < 1 && tk_now_ms() < deadline)
		usleep(50000);
	ck_assert_msg(mp_fired(proxy) >= 1, "the worker never reached the faulty write");
	if (action == MP_DROP) {
		n = tk_consume(env.results, 1, 2000, &msgs);
		tk_msgs_free(msgs, n);
		ck_assert_msg(n == 0, "%s: %zu results published while the write failed", name, n);
		/* the batch is retried (rewound, backed off), not given up */
		while (mp_fired(proxy) < 2 && tk_now_ms() < deadline)
			usleep(50000);
		ck_assert_msg(mp_fired(proxy) >= 2, "the failed batch was not retried");
	} else {
		/* The retry may answer at once: the local single-node server ignores read concern
		 * and returns what the unacknowledged write left; MongoDB, with the workers' read
		 * concern majority, would not until it is majority-committed. */
		while (!log_has_failed_batch(&env, "write concern error") && tk_now_ms() < deadline)
			usleep(50000);
		ck_assert_msg(log_has_failed_batch(&env, "write concern error"),
			      "%s: the batch whose write had a write concern error was answered",
			      name);
	}
	mp_rule(proxy, command, coll, MP_PASS, 0);
	ck_assert_int_eq(tk_wait(pid, 120000), 0);
	n = tk_consume(env.results, 24, 30000, &msgs);
	tk_msgs_free(msgs, n);
	ck_assert_uint_ge(n, 24);
	for (int o = 0; o < 4; o++)
		uk_check_org(&env, &orgs[o]);
	check_pending_recorded(&env);
	mp_stop(proxy);
	tk_mongo_drop(env.db);
}

START_TEST(worker_answers_nothing_while_record_inserts_drop)
{
	worker_under_fault("dbf_drop", "insert", BW_COLL_USAGE_RECORDS, MP_DROP);
}
END_TEST

START_TEST(worker_retries_a_batch_whose_record_insert_lacks_write_concern)
{
	worker_under_fault("dbf_wce_rec", "insert", BW_COLL_USAGE_RECORDS, MP_WRITE_CONCERN_ERROR);
}
END_TEST

START_TEST(worker_retries_a_batch_whose_balance_update_lacks_write_concern)
{
	worker_under_fault("dbf_wce_bal", "update", BW_COLL_CUSTOMERS, MP_WRITE_CONCERN_ERROR);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("usage_db_faults");
	TCase *store = tcase_create("store");
	TCase *worker = tcase_create("worker");

	tcase_set_timeout(store, 60);
	tcase_add_test(store, record_insert_faults_are_transient);
	tcase_add_test(store, customer_update_faults_are_transient);
	tcase_set_timeout(worker, 200);
	tcase_add_test(worker, worker_answers_nothing_while_record_inserts_drop);
	tcase_add_test(worker, worker_retries_a_batch_whose_record_insert_lacks_write_concern);
	tcase_add_test(worker, worker_retries_a_batch_whose_balance_update_lacks_write_concern);
	suite_add_tcase(s, store);
	suite_add_tcase(s, worker);
	return s;
}

int main(void)
{
	return tk_run_suite(suite());
}
