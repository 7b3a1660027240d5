/* Integration tests of bw-admin against the real broker and MongoDB-wire server, with the
 * real usage and stripe worker binaries: audit names a corrupted counter, an adjustment
 * applies once per key and survives the usage worker's next write, a DLQ replay of a usage
 * event and of a Stripe event is processed exactly once (a second replay is refused), a DLQ
 * record sent by reference (no value) is refused and skipped by --all, the
 * balance is the results' balances object, tick publishes a schema-shaped tick, doctor names
 * duplicate org documents and a missing topic. */
#include <check.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stripe_kit.h"
#include "usage_kit.h"

#ifndef BW_ADMIN_PATH
#define BW_ADMIN_PATH NULL
#endif
#ifndef BW_STRIPE_WORKER_PATH
#define BW_STRIPE_WORKER_PATH NULL
#endif

static const long long max64 = 9223372036854775807LL;

/* Where bw-admin points: database and topics of the test's environment. */
struct target {
	const char *db, *usage_topic, *stripe_topic, *ticks_topic;
};

/* Runs `bw-admin --json <args...>` (NULL-terminated) with t's configuration; *out gets its
 * JSON answer (new reference). Returns the exit code. */
static int admin(const struct target *t, json_t **out, ...)
{
	char *argv[24], vars[6][320], buf[65536];
	const char *arg;
	int pipefd[2], status = 0, argc = 0;
	size_t len = 0;
	ssize_t got;
	va_list ap;
	pid_t pid;

	ck_assert_ptr_nonnull(BW_ADMIN_PATH);
	argv[argc++] = (char *)BW_ADMIN_PATH;
	argv[argc++] = (char *)"--json";
	va_start(ap, out);
	while ((arg = va_arg(ap, const char *)) != NULL && argc < 23)
		argv[argc++] = (char *)arg;
	va_end(ap);
	argv[argc] = NULL;
	snprintf(vars[0], sizeof(vars[0]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(vars[1], sizeof(vars[1]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(vars[2], sizeof(vars[2]), "MONGO_DB=%s", t->db);
	snprintf(vars[3], sizeof(vars[3]), "USAGE_TOPIC=%s", t->usage_topic ? t->usage_topic : "usage.events");
	snprintf(vars[4], sizeof(vars[4]), "STRIPE_EVENTS_TOPIC=%s",
		 t->stripe_topic ? t->stripe_topic : "stripe.events");
	snprintf(vars[5], sizeof(vars[5]), "SYNC_TICKS_TOPIC=%s",
		 t->ticks_topic ? t->ticks_topic : "sync.ticks");
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		for (int i = 0; i < 6; i++)
			putenv(vars[i]);
		putenv((char *)"BW_ADMIN_USER=test-operator");
		putenv((char *)"LOG_LEVEL=warn");
		execv(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	while ((got = read(pipefd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)got;
	close(pipefd[0]);
	buf[len] = '\0';
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	*out = json_loads(buf, 0, NULL);
	ck_assert_msg(*out != NULL, "bw-admin %s printed no JSON: %s", argv[2], buf);
	return WEXITSTATUS(status);
}

static json_t *customer(const char *db, const char *org)
{
	char filter[256];
	json_t *doc;

	snprintf(filter, sizeof(filter), "{\"org_id\":\"%s\"}", org);
	doc = tk_mongo_find_one(db, "payments_customers", filter);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

/* An operator's (or a bug's) hand edit of one counter, without a balance_version bump. */
static void corrupt(const char *db, const char *org, const char *field, long long v)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "{\"update\":\"payments_customers\",\"updates\":[{\"q\":{\"org_id\":\"%s\"},"
		 "\"u\":{\"$set\":{\"%s\":{\"$numberLong\":\"%lld\"}}}}]}", org, field, v);
	json_decref(tk_mongo_command(db, cmd));
}

START_TEST(audit_names_a_corrupted_counter)
{
	struct uk_env env;
	struct uk_org a = { .cap = { 10, 20, 5 } }, b = { .cap = { 0, 0, 50 } };
	struct target t;
	json_t *out, *d;

	uk_env_init(&env, "admin_audit", 1);
	t = (struct target){ env.db, env.topic, NULL, NULL };
	snprintf(a.id, sizeof(a.id), "org-audit-a");
	snprintf(b.id, sizeof(b.id), "org-audit-b");
	uk_seed_org(&env, &a);
	uk_seed_org(&env, &b);
	uk_produce_event(&env, "a1", a.id, 15);  /* 10 sub + 5 purchased */
	uk_produce_event(&env, "a2", a.id, 25);  /* 15 purchased + 5 granted + 5 paid */
	uk_produce_event(&env, "b1", b.id, 7);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 2000), 0);

	ck_assert_int_eq(admin(&t, &out, "audit", NULL), 0);
	ck_assert_int_eq(tk_int(out, "orgs_checked"), 2);
	ck_assert_int_eq(json_array_size(json_object_get(out, "drifts")), 0);
	json_decref(out);

	corrupt(env.db, b.id, "granted_credits_used", 3);  /* stored 3, ledger 7 */
	ck_assert_int_eq(admin(&t, &out, "audit", NULL), 1);
	ck_assert_int_eq(json_array_size(json_object_get(out, "drifts")), 1);
	d = json_array_get(json_object_get(out, "drifts"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "org_id")), b.id);
	ck_assert_str_eq(json_string_value(json_object_get(d, "field")), "granted_credits_used");
	ck_assert_int_eq(tk_int(d, "stored"), 3);
	ck_assert_int_eq(tk_int(d, "expected"), 7);
	json_decref(out);

	corrupt(env.db, a.id, "subscription_spus_used", 0); /* a lost period usage */
	ck_assert_int_eq(admin(&t, &out, "audit", "--org", a.id, NULL), 1);
	d = json_array_get(json_object_get(out, "drifts"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "field")), "subscription_spus_used");
	ck_assert_int_eq(tk_int(d, "expected"), 10);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "audit", "--org", "org-nobody", NULL), 4);
	json_decref(out);
	tk_mongo_drop(env.db);
}
END_TEST

/* The subscription counter within its period: records of the period before the last reset do
 * not count; records of the reset's own period may predate the reset (the stripe worker moves
 * the period on customer.subscription.updated and resets on the invoice), so they bound it. */
START_TEST(audit_subscription_counter_within_its_period)
{
	char db[96], doc[1024];
	struct target t;
	json_t *out, *d;
	static const char *const recs[] = {
		"{\"_id\":{\"org_id\":\"org-p\",\"event_id\":\"old\"},\"org_id\":\"org-p\","
		"\"from_subscription\":10,\"from_purchased\":0,\"from_granted\":0,\"from_paid\":0,"
		"\"period_start\":{\"$date\":\"2026-10-01T00:00:00Z\"}}",
		"{\"_id\":{\"org_id\":\"org-p\",\"event_id\":\"before-reset\"},\"org_id\":\"org-p\","
		"\"from_subscription\":4,\"from_purchased\":0,\"from_granted\":0,\"from_paid\":0,"
		"\"period_start\":{\"$date\":\"2026-11-01T00:00:00Z\"}}",
		"{\"_id\":{\"org_id\":\"org-p\",\"event_id\":\"after-reset\"},\"org_id\":\"org-p\","
		"\"from_subscription\":3,\"from_purchased\":0,\"from_granted\":0,\"from_paid\":0,"
		"\"period_start\":{\"$date\":\"2026-11-01T00:00:00Z\"}}",
	};

	tk_unique(db, sizeof(db), "db");
	t = (struct target){ db, NULL, NULL, NULL };
	for (size_t i = 0; i < 3; i++)
		tk_mongo_insert(db, "payments_usage_records", recs[i]);
	snprintf(doc, sizeof(doc),
		 "{\"org_id\":\"org-p\",\"subscription_type\":\"pro\",\"subscription_spu_allowance\":100,"
		 "\"subscription_spus_used\":3,\"purchased_credits\":0,\"purchased_credits_used\":0,"
		 "\"granted_credits\":0,\"granted_credits_used\":0,\"paid_spus_used\":0,"
		 "\"opening_balance\":{\"source\":\"none\"},\"balance_version\":9,"
		 "\"stripe_current_billing_period_start\":{\"$date\":\"2026-11-01T00:00:00Z\"},"
		 "\"subscription_spus_reset_period_start\":{\"$date\":\"2026-11-01T00:00:00Z\"}}");
	tk_mongo_insert(db, "payments_customers", doc);
	ck_assert_int_eq(admin(&t, &out, "audit", NULL), 0);
	json_decref(out);
	corrupt(db, "org-p", "subscription_spus_used", 9); /* more than the period charged */
	ck_assert_int_eq(admin(&t, &out, "audit", NULL), 1);
	d = json_array_get(json_object_get(out, "drifts"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "field")), "subscription_spus_used");
	ck_assert_int_eq(tk_int(d, "expected_max"), 7);
	ck_assert_int_eq(tk_int(d, "difference"), 2);
	json_decref(out);
	tk_mongo_drop(db);
}
END_TEST

START_TEST(adjustment_applies_once_per_key_and_survives_the_usage_worker)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 20, 0, 10 } };
	struct target t;
	json_t *out, *doc, *row, *all, *r, *bal;

	uk_env_init(&env, "admin_adjust", 1);
	t = (struct target){ env.db, env.topic, NULL, NULL };
	snprintf(org.id, sizeof(org.id), "org-adj");
	uk_seed_org(&env, &org);
	uk_produce_event(&env, "j1", org.id, 28); /* 20 sub + 8 granted */
	ck_assert_int_eq(uk_run_worker(&env, NULL, 2000), 0);

	/* Refused without a reason, nothing changes. */
	ck_assert_int_eq(admin(&t, &out, "grant", org.id, "--spus", "40", "--key", "k1", NULL), 3);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "grant", org.id, "--spus", "40", "--key", "k1",
			       "--reason", "goodwill: outage 2026-11-30", NULL), 0);
	ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "applied");
	ck_assert_int_eq(tk_int(out, "before"), 10);
	ck_assert_int_eq(tk_int(out, "after"), 50);
	json_decref(out);
	/* Same key again: once. The same key for another change: refused. */
	ck_assert_int_eq(admin(&t, &out, "grant", org.id, "--spus", "40", "--key", "k1",
			       "--reason", "goodwill: outage 2026-11-30", NULL), 0);
	ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "already_applied");
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "adjust", org.id, "--bucket", "purchased", "--spus", "5",
			       "--key", "k1", "--reason", "typo", NULL), 3);
	json_decref(out);
	/* Give back 6 SPUs of this period's subscription usage. */
	ck_assert_int_eq(admin(&t, &out, "adjust", org.id, "--bucket", "subscription", "--spus",
			       "6", "--key", "k2", "--reason", "double-billed job", NULL), 0);
	ck_assert_int_eq(tk_int(out, "after"), 14);
	json_decref(out);
	/* Overflow and below zero are refused. */
	ck_assert_int_eq(admin(&t, &out, "grant", org.id, "--spus", "9223372036854775807",
			       "--key", "k3", "--reason", "x", NULL), 3);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "adjust", org.id, "--bucket", "subscription", "--spus",
			       "15", "--key", "k4", "--reason", "x", NULL), 3);
	json_decref(out);
	/* adjust never creates an org (a typo); grant does, on top of the free grant. */
	ck_assert_int_eq(admin(&t, &out, "adjust", "org-typo", "--bucket", "purchased", "--spus",
			       "5", "--key", "k5", "--reason", "x", NULL), 4);
	json_decref(out);
	ck_assert_ptr_null(tk_mongo_find_one(env.db, "payments_customers",
					     "{\"org_id\":\"org-typo\"}"));
	ck_assert_int_eq(admin(&t, &out, "grant", "org-new", "--spus", "10", "--key", "k6",
			       "--reason", "trial extension", NULL), 0);
	ck_assert_int_eq(tk_int(out, "after"), 110);
	json_decref(out);

	doc = customer(env.db, org.id);
	ck_assert_int_eq(tk_int(doc, "granted_credits"), 50);
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 14);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 4); /* seed 1, j1, k1, k2 */
	ck_assert_int_eq(json_array_size(json_object_get(doc, "pending_adjustments")), 0);
	json_decref(doc);
	row = tk_mongo_find_one(env.db, "payments_adjustments",
				"{\"_id\":{\"org_id\":\"org-adj\",\"key\":\"k1\"}}");
	ck_assert_ptr_nonnull(row);
	ck_assert_str_eq(json_string_value(json_object_get(row, "who")), "test-operator");
	ck_assert_str_eq(json_string_value(json_object_get(row, "reason")),
			 "goodwill: outage 2026-11-30");
	ck_assert_int_eq(tk_int(row, "before"), 10);
	ck_assert_int_eq(tk_int(row, "after"), 50);
	ck_assert_ptr_nonnull(json_object_get(row, "at"));
	json_decref(row);

	/* The usage worker's next write sees the adjustments: 6 sub left, then granted 42. */
	uk_produce_event(&env, "j2", org.id, 30);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 2000), 0);
	all = uk_results(&env, 2);
	r = uk_find_result(all, "j2", "applied");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(tk_int(json_object_get(r, "breakdown"), "from_subscription"), 6);
	ck_assert_int_eq(tk_int(json_object_get(r, "breakdown"), "from_granted"), 24);
	bal = json_object_get(r, "balances");
	doc = customer(env.db, org.id);
	ck_assert_int_eq(tk_int(doc, "granted_credits"), 50);
	ck_assert_int_eq(tk_int(doc, "granted_credits_used"), 32);
	ck_assert_int_eq(tk_int(doc, "subscription_spus_used"), 20);
	json_decref(doc);
	/* balance prints the results' balances object; audit counts the adjustments. */
	ck_assert_int_eq(admin(&t, &out, "balance", org.id, NULL), 0);
	ck_assert_msg(json_equal(json_object_get(out, "balances"), bal), "balance differs");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(out, "last_usage"),
							   "event_id")), "j2");
	json_decref(out);
	json_decref(all);
	ck_assert_int_eq(admin(&t, &out, "audit", NULL), 0);
	json_decref(out);
	tk_mongo_drop(env.db);
}
END_TEST

/* An adjustment interrupted after its customer update (the entry is on the document, no
 * row): the next run with the same key records it and does not apply it again. */
START_TEST(adjustment_interrupted_before_its_row_is_recorded_once)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 10 } };
	struct target t;
	json_t *out, *doc;
	char cmd[1024];

	uk_env_init(&env, "admin_adjcrash", 1);
	t = (struct target){ env.db, env.topic, NULL, NULL };
	snprintf(org.id, sizeof(org.id), "org-adjc");
	uk_seed_org(&env, &org);
	/* What step 2 of a run that stopped there leaves behind. */
	snprintf(cmd, sizeof(cmd),
		 "{\"update\":\"payments_customers\",\"updates\":[{\"q\":{\"org_id\":\"%s\"},"
		 "\"u\":{\"$set\":{\"granted_credits\":{\"$numberLong\":\"35\"}},"
		 "\"$inc\":{\"balance_version\":1},\"$push\":{\"pending_adjustments\":{\"key\":"
		 "\"kc\",\"bucket\":\"granted\",\"field\":\"granted_credits\",\"spus\":"
		 "{\"$numberLong\":\"25\"},\"before\":{\"$numberLong\":\"10\"},\"after\":"
		 "{\"$numberLong\":\"35\"},\"reason\":\"r\",\"who\":\"crashed-operator\","
		 "\"balance_version\":{\"$numberLong\":\"2\"}}}}}]}", org.id);
	json_decref(tk_mongo_command(env.db, cmd));
	ck_assert_int_eq(admin(&t, &out, "grant", org.id, "--spus", "25", "--key", "kc",
			       "--reason", "r", NULL), 0);
	ck_assert_int_eq(tk_int(out, "after"), 35);
	json_decref(out);
	doc = customer(env.db, org.id);
	ck_assert_int_eq(tk_int(doc, "granted_credits"), 35);
	ck_assert_int_eq(tk_int(doc, "balance_version"), 2);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "pending_adjustments")), 0);
	json_decref(doc);
	doc = tk_mongo_find_one(env.db, "payments_adjustments",
				"{\"_id\":{\"org_id\":\"org-adjc\",\"key\":\"kc\"}}");
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "who")), "crashed-operator");
	json_decref(doc);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(usage_dlq_replay_is_processed_once)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 0 } };
	struct target t;
	json_t *out, *rec, *all, *doc;
	char cmd[512];

	uk_env_init(&env, "admin_dlq_usage", 1);
	t = (struct target){ env.db, env.topic, NULL, NULL };
	snprintf(org.id, sizeof(org.id), "org-dlq");
	uk_seed_org(&env, &org);
	corrupt(env.db, org.id, "paid_spus_used", max64 - 5); /* the event would overflow it */
	uk_produce_event(&env, "d1", org.id, 100);
	ck_assert_int_eq(uk_run_worker(&env, NULL, 2000), 0);

	ck_assert_int_eq(admin(&t, &out, "dlq", "ls", env.topic, NULL), 0);
	ck_assert_int_eq(json_array_size(json_object_get(out, "records")), 1);
	rec = json_array_get(json_object_get(out, "records"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "source_topic")), env.topic);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(rec, "reason")), "overflow"));
	ck_assert(json_is_null(json_object_get(rec, "replay")));
	json_decref(out);

	/* The operator repairs the counter (with the version bump), then replays twice. */
	snprintf(cmd, sizeof(cmd),
		 "{\"update\":\"payments_customers\",\"updates\":[{\"q\":{\"org_id\":\"%s\"},"
		 "\"u\":{\"$set\":{\"paid_spus_used\":{\"$numberLong\":\"0\"}},"
		 "\"$inc\":{\"balance_version\":1}}}]}", org.id);
	json_decref(tk_mongo_command(env.db, cmd));
	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.topic, "--offset", "0", NULL), 0);
	ck_assert_int_eq(json_array_size(json_object_get(out, "replayed")), 1);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.topic, "--offset", "0", NULL), 3);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.topic, "--all", NULL), 0);
	ck_assert_int_eq(json_array_size(json_object_get(out, "replayed")), 0);
	ck_assert_int_eq(tk_int(out, "already_replayed"), 1);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "dlq", "show", env.topic, "--offset", "0", NULL), 0);
	rec = json_object_get(out, "record");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rec, "replay"),
							   "state")), "sent");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(rec, "value")), "\"d1\""));
	json_decref(out);

	ck_assert_int_eq(uk_run_worker(&env, NULL, 2000), 0);
	all = uk_results(&env, 2);
	ck_assert_uint_eq(json_array_size(all), 2); /* rejected, then one charge */
	ck_assert_uint_eq(uk_count_results(all, "d1", "rejected"), 1);
	ck_assert_uint_eq(uk_count_results(all, "d1", "insufficient_credits"), 1);
	json_decref(all);
	doc = customer(env.db, org.id);
	ck_assert_int_eq(tk_int(doc, "paid_spus_used"), 100);
	json_decref(doc);
	ck_assert_int_eq(admin(&t, &out, "dlq", "show", env.topic, "--offset", "1", NULL), 4);
	json_decref(out);
	tk_mongo_drop(env.db);
}
END_TEST

/* Produces to dlq_topic a DLQ record of src_topic as shared/dlq.c writes one: by reference
 * (empty value, headers dlq.body and dlq.source.size) when by_ref, else with value. */
static void produce_dlq_record(const char *dlq_topic, const char *src_topic, int by_ref,
			       const char *value)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
	rd_kafka_t *rk;

	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "rd_kafka_new: %s", errstr);
	rd_kafka_header_add(hdrs, "dlq.reason", -1, "test", -1);
	rd_kafka_header_add(hdrs, "dlq.source.topic", -1, src_topic, -1);
	if (by_ref) {
		rd_kafka_header_add(hdrs, "dlq.body", -1, "omitted: 2000000 bytes", -1);
		rd_kafka_header_add(hdrs, "dlq.source.size", -1, "2000000", -1);
	}
	ck_assert(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(dlq_topic), RD_KAFKA_V_KEY("k", 1),
				    RD_KAFKA_V_VALUE(by_ref ? NULL : (void *)value,
						     by_ref ? 0 : strlen(value)),
				    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END) ==
		  RD_KAFKA_RESP_ERR_NO_ERROR);
	ck_assert_int_eq(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(rk);
}

START_TEST(dlq_replay_refuses_a_record_sent_by_reference)
{
	struct uk_env env;
	struct target t;
	struct tk_msg *msgs = NULL;
	json_t *out, *markers;
	char dlq[300];

	uk_env_init(&env, "admin_dlq_byref", 1);
	t = (struct target){ env.db, env.topic, NULL, NULL };
	snprintf(dlq, sizeof(dlq), "%s.dlq", env.topic);
	produce_dlq_record(dlq, env.topic, 1, NULL);           /* offset 0: by reference */
	produce_dlq_record(dlq, env.topic, 0, "{\"v\":1}"); /* offset 1: with its bytes */

	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.topic, "--offset", "0", NULL), 3);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(out, "error")),
				     "by reference"));
	ck_assert_int_eq(json_array_size(json_object_get(out, "replayed")), 0);
	json_decref(out);
	/* --all sends the other one, lists the skipped one, and still says it refused one. */
	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.topic, "--all", NULL), 3);
	ck_assert_int_eq(json_array_size(json_object_get(out, "replayed")), 1);
	ck_assert_int_eq(json_array_size(json_object_get(out, "skipped_by_reference")), 1);
	ck_assert_int_eq(tk_int(json_array_get(json_object_get(out, "skipped_by_reference"), 0),
				"offset"), 0);
	json_decref(out);
	ck_assert_uint_eq(tk_consume(env.topic, 2, 3000, &msgs), 1); /* only the one with bytes */
	ck_assert_str_eq(msgs[0].value, "{\"v\":1}");
	tk_msgs_free(msgs, 1);
	markers = tk_mongo_find(env.db, "payments_dlq_replays", "{}");
	ck_assert_uint_eq(json_array_size(markers), 1);
	json_decref(markers);
	tk_mongo_drop(env.db);
}
END_TEST

static json_t *checkout(const char *id, const char *org, const char *cus, const char *sid,
			const char *credits)
{
	json_t *ev = sk_fixture("checkout_session_completed.json");
	sk_set_str(ev, "id", id);
	sk_set_str(ev, "data.object.id", sid);
	sk_set_str(ev, "data.object.customer", cus);
	sk_set_str(ev, "data.object.metadata.org_id", org);
	sk_set_str(ev, "data.object.metadata.credits", credits);
	return ev;
}

/* Without clearing the event's record, the replayed event would be answered `duplicate`. */
START_TEST(stripe_dlq_replay_is_processed_once)
{
	struct sk_env env;
	struct target t;
	json_t *ev, *out, *all, *r, *doc;
	char spus[32];
	long long cleared;

	sk_env_init(&env, "admin_dlq_stripe", BW_STRIPE_WORKER_PATH);
	t = (struct target){ env.db, NULL, env.topic, env.ticks };
	sk_seed_customer(&env, "org-s", "cus_s", max64 - 10, 0);
	ev = checkout("evt_s1", "org-s", "cus_s", "cs_S1", "50");
	sk_produce(&env, ev);
	json_decref(ev);
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2000), 0);
	all = sk_read_json(env.results, 1);
	ck_assert_str_eq(sk_status(sk_result(all, "evt_s1", 0)), "rejected");
	json_decref(all);

	/* The operator makes room (an audited adjustment), then replays the DLQ record. */
	snprintf(spus, sizeof(spus), "%lld", -(max64 - 1010));
	ck_assert_int_eq(admin(&t, &out, "adjust", "org-s", "--bucket", "purchased", "--spus",
			       spus, "--key", "fix-overflow", "--reason", "corrupt import", NULL), 0);
	ck_assert_int_eq(tk_int(out, "after"), 1000);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.dlq, "--offset", "0", NULL), 0);
	r = json_array_get(json_object_get(out, "replayed"), 0);
	cleared = tk_int(r, "stripe_records_cleared");
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "dlq", "replay", env.dlq, "--offset", "0", NULL), 3);
	json_decref(out);
	ck_assert_int_eq(sk_run_worker(&env, NULL, 2000), 0);

	all = sk_read_json(env.results, 2);
	ck_assert_uint_eq(json_array_size(all), 2);
	ck_assert_str_eq(sk_status(sk_result(all, "evt_s1", 1)), "applied");
	json_decref(all);
	ck_assert_int_eq(cleared, 1);
	doc = sk_customer(&env, "org-s");
	ck_assert_int_eq(tk_int(doc, "purchased_credits"), 1050);
	json_decref(doc);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(tick_and_doctor)
{
	char db[96], ticks[96], missing[128];
	struct target t;
	json_t *out, *tick, *f;
	struct tk_msg *msgs = NULL;
	size_t i;
	int dup_found = 0, topic_found = 0;

	tk_unique(db, sizeof(db), "db");
	tk_unique(ticks, sizeof(ticks), "admin_ticks");
	tk_create_topic(ticks, 1, 1);
	t = (struct target){ db, NULL, NULL, ticks };
	ck_assert_int_eq(admin(&t, &out, "tick", "customer", "org-t", NULL), 0);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "tick", "prices", NULL), 0);
	json_decref(out);
	ck_assert_int_eq(admin(&t, &out, "tick", "sideways", NULL), 2);
	json_decref(out);
	ck_assert_uint_eq(tk_consume(ticks, 2, 20000, &msgs), 2);
	ck_assert_str_eq(msgs[0].key, "org-t");
	tick = json_loads(msgs[0].value, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(tick, "scope")), "customer");
	ck_assert_str_eq(json_string_value(json_object_get(tick, "org_id")), "org-t");
	ck_assert_ptr_nonnull(json_string_value(json_object_get(tick, "tick_id")));
	json_decref(tick);
	tk_msgs_free(msgs, 2);

	/* Two documents of one org (the original integration's race) and a missing topic. */
	tk_mongo_insert(db, "payments_customers", "{\"org_id\":\"org-twice\"}");
	tk_mongo_insert(db, "payments_customers", "{\"org_id\":\"org-twice\"}");
	snprintf(missing, sizeof(missing), "%s_nope", ticks);
	t.ticks_topic = missing;
	ck_assert_int_eq(admin(&t, &out, "doctor", NULL), 1);
	json_array_foreach(json_object_get(out, "findings"), i, f) {
		const char *p = json_string_value(json_object_get(f, "problem"));
		const char *sev = json_string_value(json_object_get(f, "severity"));
		ck_assert_ptr_nonnull(json_string_value(json_object_get(f, "fix")));
		if (strstr(p, "org-twice") && strcmp(sev, "error") == 0)
			dup_found = 1;
		if (strstr(p, missing) && strcmp(sev, "error") == 0)
			topic_found = 1;
	}
	ck_assert_msg(dup_found && topic_found, "doctor findings: %s",
		      json_dumps(json_object_get(out, "findings"), 0));
	json_decref(out);
	tk_mongo_drop(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("bw-admin");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, audit_names_a_corrupted_counter);
	tcase_add_test(tc, audit_subscription_counter_within_its_period);
	tcase_add_test(tc, adjustment_applies_once_per_key_and_survives_the_usage_worker);
	tcase_add_test(tc, adjustment_interrupted_before_its_row_is_recorded_once);
	tcase_add_test(tc, usage_dlq_replay_is_processed_once);
	tcase_add_test(tc, stripe_dlq_replay_is_processed_once);
	tcase_add_test(tc, dlq_replay_refuses_a_record_sent_by_reference);
	tcase_add_test(tc, tick_and_doctor);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
