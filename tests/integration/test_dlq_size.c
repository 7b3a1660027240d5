/* Size limits derived from the producer's message.max.bytes (issue 11, defect 3), against the
 * real broker: a message just under the broker's limit, which no DLQ record with the body can
 * carry, is recorded by reference and the partition moves on (before, MSG_SIZE_TOO_LARGE was
 * transient and the batch was rewound forever); one that fits goes with its body; limits on
 * accepted input above what a DLQ record carries stop the worker at start with exit 2. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlq.h"
#include "kafka_producer.h"
#include "usage_kit.h"

static rd_kafka_t *admin_client(void)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	return rk;
}

/* Sets the topic's max.message.bytes (the broker's limit for that topic alone). */
static void set_topic_max_message_bytes(const char *topic, size_t value)
{
	char v[32];
	rd_kafka_t *rk = admin_client();
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	size_t nres;

	snprintf(v, sizeof(v), "%zu", value);
	ck_assert(rd_kafka_ConfigResource_set_config(res, "max.message.bytes", v) == 0);
	rd_kafka_AlterConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
	ck_assert_msg(ev && !rd_kafka_event_error(ev), "AlterConfigs failed");
	const rd_kafka_ConfigResource_t **rs =
		rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &nres);
	ck_assert(nres == 1 && rd_kafka_ConfigResource_error(rs[0]) == 0);
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

/* The topic's max.message.bytes as the broker reports it (what it accepts). */
static size_t topic_max_message_bytes(const char *topic)
{
	rd_kafka_t *rk = admin_client();
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	size_t n = 0;

	rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
	ck_assert_msg(ev && !rd_kafka_event_error(ev), "DescribeConfigs failed");
	size_t nres, ncfg;
	const rd_kafka_ConfigResource_t **rs =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev),
							  &nres);
	ck_assert_uint_eq(nres, 1);
	const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(rs[0], &ncfg);
	for (size_t i = 0; i < ncfg; i++)
		if (strcmp(rd_kafka_ConfigEntry_name(entries[i]), "max.message.bytes") == 0)
			n = (size_t)strtoull(rd_kafka_ConfigEntry_value(entries[i]), NULL, 10);
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	ck_assert_msg(n > 0, "no max.message.bytes for %s", topic);
	return n;
}

/* Produces value (len bytes) under key with a producer allowed to send up to 8 MB, as a
 * producer other than our workers may. */
static void produce_big(const char *topic, const char *key, const char *value, size_t len)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	ck_assert(rd_kafka_conf_set(conf, "message.max.bytes", "8000000", errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	ck_assert(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
				    RD_KAFKA_V_VALUE((void *)value, len),
				    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				    RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
	ck_assert_msg(rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR, "flush timed out");
	rd_kafka_destroy(rk);
}

static char *junk(size_t len)
{
	char *v = malloc(len + 1);
	ck_assert_ptr_nonnull(v);
	memset(v, 'x', len);
	v[len] = '\0';
	return v;
}

static const struct tk_msg *by_offset(const struct tk_msg *msgs, size_t n, const char *offset)
{
	for (size_t i = 0; i < n; i++) {
		char *o = tk_header(&msgs[i], "dlq.source.offset");
		int hit = o && strcmp(o, offset) == 0;
		free(o);
		if (hit)
			return &msgs[i];
	}
	return NULL;
}

START_TEST(a_message_just_under_the_broker_limit_is_recorded_by_reference)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	static const int order[3] = { 0, 1, 2 };
	const char *extra[] = { "IDLE_EXIT_MS=3000", NULL };
	char ev[512];
	struct tk_msg *msgs = NULL;
	size_t n;

	uk_env_init(&env, "dlq_size", 1);
	snprintf(org.id, sizeof(org.id), "org-size");
	uk_seed_org(&env, &org);
	size_t broker_max = topic_max_message_bytes(env.topic);
	/* with the body: the largest value a DLQ record carries under the default limit */
	size_t fits = bw_dlq_max_value(BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
	/* just under the broker's limit: a record batch of one record adds about 80 bytes */
	size_t huge = broker_max - 200;
	char *v1 = junk(fits), *v2 = junk(huge);

	uk_event_json(ev, sizeof(ev), "size-1", org.id, 10);
	tk_produce(env.topic, org.id, ev);                       /* offset 0 */
	produce_big(env.topic, org.id, v1, fits);                /* offset 1 */
	produce_big(env.topic, org.id, v2, huge);                /* offset 2 */
	uk_event_json(ev, sizeof(ev), "size-2", org.id, 20);
	tk_produce(env.topic, org.id, ev);                       /* offset 3 */
	free(v1);
	free(v2);

	pid_t pid = uk_start_worker(&env, extra);
	int status = tk_wait(pid, 90000);
	ck_assert_msg(status == 0, "the worker did not finish (exit %d): partition blocked? see %s",
		      status, env.log);
	uk_ref_charge(&org, 10, order);
	uk_ref_charge(&org, 20, order);
	uk_check_org(&env, &org);

	char dlq[160];
	snprintf(dlq, sizeof(dlq), "%s.dlq", env.topic);
	n = tk_consume(dlq, 2, 30000, &msgs);
	ck_assert_uint_eq(n, 2);
	const struct tk_msg *with_body = by_offset(msgs, n, "1");
	const struct tk_msg *by_ref = by_offset(msgs, n, "2");
	ck_assert_ptr_nonnull(with_body);
	ck_assert_ptr_nonnull(by_ref);
	ck_assert_uint_eq(with_body->len, fits);
	char *body_note = tk_header(with_body, "dlq.body");
	ck_assert_ptr_null(body_note);
	ck_assert_uint_eq(by_ref->len, 0);
	char *note = tk_header(by_ref, "dlq.body"), *size = tk_header(by_ref, "dlq.source.size");
	char *reason = tk_header(by_ref, "dlq.reason");
	char want[32];
	snprintf(want, sizeof(want), "%zu", huge);
	ck_assert_ptr_nonnull(note);
	ck_assert_msg(strncmp(note, "omitted", 7) == 0, "dlq.body %s", note);
	ck_assert_str_eq(size, want);
	ck_assert_ptr_nonnull(reason);
	ck_assert_msg(strstr(reason, "MAX_EVENT_BYTES") || strstr(reason, "bytes"), "reason %s",
		      reason);
	ck_assert_str_eq(by_ref->key, org.id);
	free(note);
	free(size);
	free(reason);
	tk_msgs_free(msgs, n);

	/* every input has its result, the oversized ones rejected */
	n = tk_consume(env.results, 4, 30000, &msgs);
	ck_assert_uint_eq(n, 4);
	int rejected = 0;
	for (size_t i = 0; i < n; i++)
		rejected += strstr(msgs[i].value, "\"rejected\"") != NULL;
	ck_assert_int_eq(rejected, 2);
	tk_msgs_free(msgs, n);
	tk_mongo_drop(env.db);
}
END_TEST

/* The DLQ topic's own limit is below the producer's: the broker refuses the DLQ record in
 * its delivery report (not the producer at send time). The record is sent again by
 * reference and the partition moves on. */
START_TEST(a_dlq_record_the_broker_refuses_is_sent_again_by_reference)
{
	struct uk_env env;
	struct uk_org org = { .cap = { 0, 0, 100 } };
	static const int order[3] = { 0, 1, 2 };
	const char *extra[] = { "IDLE_EXIT_MS=3000", NULL };
	char ev[512], dlq[160];
	struct tk_msg *msgs = NULL;
	size_t n, dlq_max = 100000, len = 300000;
	char *v = junk(len);

	uk_env_init(&env, "dlq_refused", 1);
	snprintf(dlq, sizeof(dlq), "%s.dlq", env.topic);
	set_topic_max_message_bytes(dlq, dlq_max);
	long long deadline = tk_now_ms() + 20000;
	while (topic_max_message_bytes(dlq) != dlq_max && tk_now_ms() < deadline)
		usleep(200000);
	ck_assert_uint_eq(topic_max_message_bytes(dlq), dlq_max);
	snprintf(org.id, sizeof(org.id), "org-refused");
	uk_seed_org(&env, &org);
	produce_big(env.topic, org.id, v, len);                  /* offset 0 */
	uk_event_json(ev, sizeof(ev), "refused-1", org.id, 7);
	tk_produce(env.topic, org.id, ev);                       /* offset 1 */
	free(v);

	int status = tk_wait(uk_start_worker(&env, extra), 90000);
	ck_assert_msg(status == 0, "the worker did not finish (exit %d), see %s", status, env.log);
	uk_ref_charge(&org, 7, order);
	uk_check_org(&env, &org);
	n = tk_consume(dlq, 1, 30000, &msgs);
	ck_assert_uint_eq(n, 1);
	char *note = tk_header(&msgs[0], "dlq.body"), *size = tk_header(&msgs[0], "dlq.source.size");
	char *off = tk_header(&msgs[0], "dlq.source.offset");
	ck_assert_uint_eq(msgs[0].len, 0);
	ck_assert_ptr_nonnull(note);
	ck_assert_msg(strncmp(note, "omitted", 7) == 0, "dlq.body %s", note);
	ck_assert_str_eq(size, "300000");
	ck_assert_str_eq(off, "0");
	free(note);
	free(size);
	free(off);
	tk_msgs_free(msgs, n);
	n = tk_consume(env.results, 2, 30000, &msgs);
	ck_assert_uint_eq(n, 2);
	tk_msgs_free(msgs, n);
	tk_mongo_drop(env.db);
}
END_TEST

/* An input limit above what a DLQ record carries is refused at start, before any connection. */
START_TEST(input_limits_above_the_dlq_capacity_exit_2)
{
	char logp[300];
	const char *usage_env[] = { "MAX_EVENT_BYTES=1000000", NULL };
	const char *stripe_env[] = { "STRIPE_MAX_EVENT_BYTES=1048576", NULL };
	const char *sync_env[] = { "SYNC_MAX_TICK_BYTES=999000", NULL };

	snprintf(logp, sizeof(logp), "%s/it_dlq_size_cfg.log", BW_BINARY_DIR);
	ck_assert_int_eq(tk_wait(tk_spawn(BW_USAGE_WORKER_PATH, usage_env, logp), 10000), 2);
	ck_assert_int_eq(tk_wait(tk_spawn(BW_STRIPE_WORKER_PATH, stripe_env, logp), 10000), 2);
	ck_assert_int_eq(tk_wait(tk_spawn(BW_SYNC_WORKER_PATH, sync_env, logp), 10000), 2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dlq_size");
	TCase *tc = tcase_create("dlq_size");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, a_message_just_under_the_broker_limit_is_recorded_by_reference);
	tcase_add_test(tc, a_dlq_record_the_broker_refuses_is_sent_again_by_reference);
	tcase_add_test(tc, input_limits_above_the_dlq_capacity_exit_2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(suite());
}
