/* testkit: what integration and fault tests share: the real services' addresses, unique
 * topic and database names, topic creation, producing and reading topics, starting worker
 * processes, and reading MongoDB documents as jansson objects.
 * Failures inside these helpers fail the calling Check test (ck_assert). */
#ifndef BW_TESTKIT_H
#define BW_TESTKIT_H

#include <check.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <sys/types.h>

/* KAFKA_BROKERS / MONGO_URI from the environment, else the local stack's defaults. */
const char *tk_brokers(void);
const char *tk_mongo_uri(void);

/* Writes "<prefix>_<pid>_<counter>_<random>" into buf: unique per test run. */
void tk_unique(char *buf, size_t len, const char *prefix);

/* Creates topic with partitions (and "<topic>.dlq" with 1 when with_dlq). Fails the test
 * if the broker refuses. */
void tk_create_topic(const char *topic, int partitions, int with_dlq);

/* Produces one message and waits until the broker acknowledged it. */
void tk_produce(const char *topic, const char *key, const char *value);

/* Produces n values (keys[i] may be NULL), waiting for all acks. */
void tk_produce_many(const char *topic, const char *const *keys, const char *const *values,
		     size_t n);

struct tk_msg {
	char *key;     /* NUL-terminated copy, or NULL */
	char *value;   /* NUL-terminated copy */
	size_t len;
	int32_t partition;
	int64_t offset;
	rd_kafka_headers_t *headers; /* owned copy, or NULL */
};

/* Reads every partition of topic from the beginning until `want` messages arrived or
 * timeout_ms passed. Returns the count; *out is a new array (tk_msgs_free). */
size_t tk_consume(const char *topic, size_t want, int timeout_ms, struct tk_msg **out);
void tk_msgs_free(struct tk_msg *msgs, size_t n);

/* Fills t with copies of m's key, value, partition, offset and headers (free with
 * tk_msgs_free). */
void tk_msg_copy(struct tk_msg *t, const rd_kafka_message_t *m);

/* The value of header name of msg as a new string, or NULL. */
char *tk_header(const struct tk_msg *msg, const char *name);

/* Starts path with the current environment plus env (NULL-terminated "K=V" list); stdout
 * and stderr go to log_path (appended) when not NULL. With BW_TEST_VALGRIND=1 in the
 * environment the process runs under valgrind memcheck (exit 99 on leaks or errors). */
pid_t tk_spawn(const char *path, const char *const *env, const char *log_path);

/* Waits up to timeout_ms for pid. Returns its exit status (0-255), 128+signal when killed
 * by a signal, or -1 after killing it on timeout. */
int tk_wait(pid_t pid, int timeout_ms);

/* MongoDB: documents of coll in db matching the JSON filter, as a new JSON array of
 * relaxed extended JSON objects (caller json_decref). */
json_t *tk_mongo_find(const char *db, const char *coll, const char *filter_json);

/* One document or NULL (new reference). */
json_t *tk_mongo_find_one(const char *db, const char *coll, const char *filter_json);

/* Inserts one document given as JSON (numbers become int64). */
void tk_mongo_insert(const char *db, const char *coll, const char *doc_json);

/* Runs a database command given as (extended) JSON, failing the test when it fails; the
 * reply as a new JSON object (caller json_decref). */
json_t *tk_mongo_command(const char *db, const char *cmd_json);

/* Drops the database (end of a test). */
void tk_mongo_drop(const char *db);

/* Integer member of a JSON object, failing the test if absent or not an integer. */
long long tk_int(const json_t *obj, const char *key);

/* Monotonic milliseconds. */
long long tk_now_ms(void);

/* Runs every test of s (taken over and freed) with CK_NORMAL output in Check's default fork
 * mode (CK_FORK=no in the environment turns it off, e.g. under valgrind). Returns the test
 * program's exit code: EXIT_SUCCESS when every test passed, else EXIT_FAILURE. */
int tk_run_suite(Suite *s);

#endif
