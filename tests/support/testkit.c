/* testkit: see testkit.h. */
#include "testkit.h"

#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tk_brokers(void)
{
	const char *v = getenv("KAFKA_BROKERS");
	return v && *v ? v : "127.0.0.1:9092";
}

const char *tk_mongo_uri(void)
{
	const char *v = getenv("MONGO_URI");
	return v && *v ? v : "mongodb://127.0.0.1:27017";
}

long long tk_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_unique(char *buf, size_t len, const char *prefix)
{
	static unsigned counter;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, len, "%s_%d_%u_%lx", prefix, (int)getpid(), ++counter,
		 (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
}

static rd_kafka_t *new_client(rd_kafka_type_t type)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	if (type == RD_KAFKA_PRODUCER)
		ck_assert(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
					    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	if (type == RD_KAFKA_CONSUMER) {
		/* assign() needs a group id; this reader never commits. */
		char group[96];
		tk_unique(group, sizeof(group), "tk_reader");
		ck_assert(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
			  RD_KAFKA_CONF_OK);
		ck_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
					    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	}
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "rd_kafka_new: %s", errstr);
	return rk;
}

void tk_create_topic(const char *topic, int partitions, int with_dlq)
{
	char errstr[512], dlq[300];
	rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_NewTopic_t *nt[2];
	int n = 0;

	nt[n++] = rd_kafka_NewTopic_new(topic, partitions, 1, errstr, sizeof(errstr));
	if (with_dlq) {
		snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
		nt[n++] = rd_kafka_NewTopic_new(dlq, 1, 1, errstr, sizeof(errstr));
	}
	rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
	ck_assert_msg(ev != NULL, "CreateTopics timed out");
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	ck_assert(res != NULL);
	size_t cnt;
	const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
	for (size_t i = 0; i < cnt; i++) {
		rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
		ck_assert_msg(e == 0 || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
			      "create topic %s: %s", rd_kafka_topic_result_name(tr[i]),
			      rd_kafka_err2str(e));
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void tk_produce_many(const char *topic, const char *const *keys, const char *const *values,
		     size_t n)
{
	rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER);

	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e;
		do {
			e = rd_kafka_producev(
				rk, RD_KAFKA_V_TOPIC(topic),
				RD_KAFKA_V_KEY((void *)(keys ? keys[i] : NULL),
					       keys && keys[i] ? strlen(keys[i]) : 0),
				RD_KAFKA_V_VALUE((void *)values[i], strlen(values[i])),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(rk, 50);
		} while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
		ck_assert_msg(e == 0, "produce: %s", rd_kafka_err2str(e));
	}
	ck_assert_msg(rd_kafka_flush(rk, 30000) == 0, "produce flush timed out");
	rd_kafka_destroy(rk);
}

void tk_produce(const char *topic, const char *key, const char *value)
{
	tk_produce_many(topic, &key, &value, 1);
}

static char *dup_bytes(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	ck_assert(s != NULL);
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

void tk_msg_copy(struct tk_msg *t, const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;

	memset(t, 0, sizeof(*t));
	t->key = m->key ? dup_bytes(m->key, m->key_len) : NULL;
	t->value = dup_bytes(m->payload, m->len);
	t->len = m->len;
	t->partition = m->partition;
	t->offset = m->offset;
	if (rd_kafka_message_headers(m, &h) == 0 && h)
		t->headers = rd_kafka_headers_copy(h);
}

size_t tk_consume(const char *topic, size_t want, int timeout_ms, struct tk_msg **out)
{
	rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER);
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	size_t n = 0, cap = want > 0 ? want : 16;
	struct tk_msg *msgs = calloc(cap, sizeof(*msgs));
	long long deadline = tk_now_ms() + timeout_ms;

	ck_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0);
	ck_assert(md->topic_cnt == 1);
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)
			->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	ck_assert(rd_kafka_assign(rk, parts) == 0);
	rd_kafka_topic_partition_list_destroy(parts);

	while (n < want && tk_now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (!m->err) {
			if (n == cap) {
				cap *= 2;
				msgs = realloc(msgs, cap * sizeof(*msgs));
				ck_assert(msgs != NULL);
			}
			tk_msg_copy(&msgs[n++], m);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	*out = msgs;
	return n;
}

void tk_msgs_free(struct tk_msg *msgs, size_t n)
{
	for (size_t i = 0; msgs && i < n; i++) {
		free(msgs[i].key);
		free(msgs[i].value);
		if (msgs[i].headers)
			rd_kafka_headers_destroy(msgs[i].headers);
	}
	free(msgs);
}

char *tk_header(const struct tk_msg *msg, const char *name)
{
	const void *v;
	size_t n;

	if (!msg->headers || rd_kafka_header_get_last(msg->headers, name, &v, &n) != 0)
		return NULL;
	return dup_bytes(v, n);
}

pid_t tk_spawn(const char *path, const char *const *env, const char *log_path)
{
	pid_t pid = fork();

	ck_assert(pid >= 0);
	if (pid == 0) {
		for (const char *const *e = env; e && *e; e++)
			putenv((char *)*e);
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		/* BW_TEST_VALGRIND=1: every worker process runs under memcheck; a leak or a memory
		 * error makes it exit 99, which fails the test that expected 0. */
		if (getenv("BW_TEST_VALGRIND") && *getenv("BW_TEST_VALGRIND") == '1')
			execlp("valgrind", "valgrind", "-q", "--leak-check=full",
			       "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
			       path, (char *)NULL);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	return pid;
}

int tk_wait(pid_t pid, int timeout_ms)
{
	long long deadline = tk_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (tk_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(20000);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static mongoc_client_t *mongo_client(void)
{
	static int inited;
	if (!inited) {
		mongoc_init();
		inited = 1;
	}
	mongoc_client_t *c = mongoc_client_new(tk_mongo_uri());
	ck_assert(c != NULL);
	return c;
}

json_t *tk_mongo_find(const char *db, const char *coll, const char *filter_json)
{
	bson_error_t error;
	mongoc_client_t *c = mongo_client();
	mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
	bson_t *filter = bson_new_from_json((const uint8_t *)filter_json, -1, &error);
	ck_assert_msg(filter != NULL, "filter: %s", error.message);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, NULL, NULL);
	const bson_t *doc;
	json_t *arr = json_array();

	while (mongoc_cursor_next(cur, &doc)) {
		char *s = bson_as_relaxed_extended_json(doc, NULL);
		json_error_t jerr;
		json_t *j = json_loads(s, 0, &jerr);
		ck_assert_msg(j != NULL, "bson->json: %s", jerr.text);
		json_array_append_new(arr, j);
		bson_free(s);
	}
	ck_assert_msg(!mongoc_cursor_error(cur, &error), "find: %s", error.message);
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
	return arr;
}

json_t *tk_mongo_find_one(const char *db, const char *coll, const char *filter_json)
{
	json_t *arr = tk_mongo_find(db, coll, filter_json);
	json_t *one = json_array_size(arr) ? json_incref(json_array_get(arr, 0)) : NULL;
	json_decref(arr);
	return one;
}

void tk_mongo_insert(const char *db, const char *coll, const char *doc_json)
{
	bson_error_t error;
	mongoc_client_t *c = mongo_client();
	mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
	bson_t *doc = bson_new_from_json((const uint8_t *)doc_json, -1, &error);
	ck_assert_msg(doc != NULL, "doc: %s", error.message);
	ck_assert_msg(mongoc_collection_insert_one(col, doc, NULL, NULL, &error), "insert: %s",
		      error.message);
	bson_destroy(doc);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
}

json_t *tk_mongo_command(const char *db, const char *cmd_json)
{
	bson_error_t error;
	bson_t reply;
	mongoc_client_t *c = mongo_client();
	mongoc_database_t *d = mongoc_client_get_database(c, db);
	bson_t *cmd = bson_new_from_json((const uint8_t *)cmd_json, -1, &error);
	char *text;
	json_t *out;

	ck_assert_msg(cmd != NULL, "command: %s", error.message);
	ck_assert_msg(mongoc_database_write_command_with_opts(d, cmd, NULL, &reply, &error),
		      "%s: %s", cmd_json, error.message);
	text = bson_as_relaxed_extended_json(&reply, NULL);
	out = json_loads(text, 0, NULL);
	bson_free(text);
	bson_destroy(&reply);
	bson_destroy(cmd);
	mongoc_database_destroy(d);
	mongoc_client_destroy(c);
	return out;
}

void tk_mongo_drop(const char *db)
{
	bson_error_t error;
	mongoc_client_t *c = mongo_client();
	mongoc_database_t *d = mongoc_client_get_database(c, db);
	mongoc_database_drop(d, &error);
	mongoc_database_destroy(d);
	mongoc_client_destroy(c);
}

long long tk_int(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_object(v) && json_object_get(v, "$numberLong"))
		return strtoll(json_string_value(json_object_get(v, "$numberLong")), NULL, 10);
	ck_assert_msg(json_is_integer(v), "field %s is not an integer", key);
	return (long long)json_integer_value(v);
}

int tk_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
