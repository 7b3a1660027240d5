/* Fault suite: poison input on every input topic (usage.events, stripe.events, sync.ticks),
 * on the shared stack. Each topic gets the same kinds of bad message on one partition: not
 * JSON, empty, wrong shapes and types, NUL inside an id (escaped and raw), invalid UTF-8 and
 * a lone surrogate, duplicate keys, nesting of 10,000 levels, a million-element array (sent
 * compressed: 2 MB of JSON in a small batch) and a message just under the broker's limit;
 * then one valid message. Every bad message must get a `rejected` result and a DLQ record
 * with its reason and source offset, and the valid message after them must be processed:
 * the partition moves on (invariant 5). One line of figures per topic. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_kit.h"
#include "stripe_kit.h"

enum { MAXP = 24, NEAR_LIMIT = 1048400 };

struct poison {
	const char *name;
	char *bytes;
	size_t len;
	const char *codec;
};

struct bad_set {
	struct poison p[MAXP];
	int n;
};

static void add(struct bad_set *s, const char *name, const void *bytes, size_t len,
		const char *codec)
{
	ck_assert(s->n < MAXP);
	s->p[s->n].name = name;
	s->p[s->n].bytes = malloc(len + 1);
	memcpy(s->p[s->n].bytes, bytes, len);
	s->p[s->n].bytes[len] = '\0';
	s->p[s->n].len = len;
	s->p[s->n].codec = codec;
	s->n++;
}

static void add_str(struct bad_set *s, const char *name, const char *text)
{
	add(s, name, text, strlen(text), NULL);
}

/* The bad messages for a topic whose valid message is `valid` and whose id field is `id`
 * (its value replaced to make the mistyped, NUL and UTF-8 variants). */
static void build(struct bad_set *s, const char *id_field, const char *rest)
{
	char buf[1024];
	size_t n;

	memset(s, 0, sizeof(*s));
	add_str(s, "not_json", "this is not json {");
	add_str(s, "empty", "");
	add_str(s, "array", "[1,2,3]");
	add_str(s, "string", "\"just a string\"");
	add_str(s, "null", "null");
	add_str(s, "empty_object", "{}");
	snprintf(buf, sizeof(buf), "{\"%s\":12345,%s}", id_field, rest);
	add(s, "id_number", buf, strlen(buf), NULL);
	snprintf(buf, sizeof(buf), "{\"%s\":[\"a\"],%s}", id_field, rest);
	add(s, "id_array", buf, strlen(buf), NULL);
	snprintf(buf, sizeof(buf), "{\"%s\":\"ab\\u0000cd\",%s}", id_field, rest);
	add(s, "nul_escaped_in_id", buf, strlen(buf), NULL);
	n = (size_t)snprintf(buf, sizeof(buf), "{\"%s\":\"abXcd\",%s}", id_field, rest);
	*strchr(buf, 'X') = '\0';
	add(s, "nul_raw_in_id", buf, n, NULL);
	snprintf(buf, sizeof(buf), "{\"%s\":\"ab\xC3\x28\xFF\",%s}", id_field, rest);
	add(s, "invalid_utf8", buf, strlen(buf), NULL);
	snprintf(buf, sizeof(buf), "{\"%s\":\"ab\\ud800cd\",%s}", id_field, rest);
	add(s, "lone_surrogate", buf, strlen(buf), NULL);
	snprintf(buf, sizeof(buf), "{\"%s\":\"dup-a\",\"%s\":\"dup-b\",%s}", id_field, id_field,
		 rest);
	add(s, "duplicate_keys", buf, strlen(buf), NULL);

	enum { DEPTH = 10000 };
	char *deep = malloc(2 * DEPTH + 64);
	size_t k = (size_t)sprintf(deep, "{\"%s\":", id_field);
	memset(deep + k, '[', DEPTH);
	memset(deep + k + DEPTH, ']', DEPTH);
	k += 2 * DEPTH;
	deep[k++] = '}';
	add(s, "nesting_10000", deep, k, NULL);
	free(deep);

	enum { ELEMS = 1000000 };
	char *arr = malloc(2 * ELEMS + 64);
	k = (size_t)sprintf(arr, "{\"%s\":[", id_field);
	for (int i = 0; i < ELEMS; i++) {
		arr[k++] = '0';
		arr[k++] = ',';
	}
	arr[k - 1] = ']';
	arr[k++] = '}';
	add(s, "million_element_array", arr, k, "lz4");
	free(arr);

	char *big = malloc(NEAR_LIMIT + 1);
	k = (size_t)sprintf(big, "{\"%s\":\"big\",\"pad\":\"", id_field);
	memset(big + k, 'x', NEAR_LIMIT - k - 2);
	big[NEAR_LIMIT - 2] = '"';
	big[NEAR_LIMIT - 1] = '}';
	add(s, "just_under_broker_limit", big, NEAR_LIMIT, NULL);
	free(big);
}

static void free_set(struct bad_set *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->p[i].bytes);
}

/* Produces the set then valid (in order, one partition) into msgs[0..n]. */
static size_t produce_all(const char *topic, struct bad_set *s, const char *valid,
			  const char *valid_key, struct fk_msg *msgs)
{
	for (int i = 0; i <= s->n; i++) {
		int last = i == s->n;
		msgs[i] = (struct fk_msg){ .key = last ? valid_key : "poison",
					   .value = last ? valid : s->p[i].bytes,
					   .len = last ? strlen(valid) : s->p[i].len,
					   .partition = 0 };
		fk_produce(topic, &msgs[i], 1, last ? NULL : s->p[i].codec);
	}
	return (size_t)s->n + 1;
}

/* After the worker ran: every bad message rejected with a DLQ record (reason, source
 * offset), the valid one answered with an accepted status. Prints the figures. */
static void check(const char *case_name, const char *topic, const char *results,
		  struct bad_set *s, struct fk_msg *msgs, size_t n, int exit_status,
		  const char *const *ok_statuses)
{
	char dlq_topic[300], line[2048], missing[1024] = "";
	struct tk_msg *dlq = NULL;
	struct fk_watch *w = fk_watch_new(results, topic, msgs, n);
	size_t ndlq, lost = 0, no_reason = 0, valid_ok = 0;
	size_t ml = 0;

	fk_watch_wait_all(w, 5000);
	snprintf(dlq_topic, sizeof(dlq_topic), "%s.dlq", topic);
	ndlq = fk_consume_all(dlq_topic, 15000, &dlq);
	for (int i = 0; i < s->n; i++) {
		int has_dlq = 0;
		for (size_t d = 0; d < ndlq; d++) {
			char *off = tk_header(&dlq[d], "dlq.source.offset");
			char *reason = tk_header(&dlq[d], "dlq.reason");
			if (off && strtoll(off, NULL, 10) == msgs[i].out_offset) {
				has_dlq = 1;
				no_reason += !reason || !*reason;
			}
			free(off);
			free(reason);
		}
		const char *st = fk_watch_status(w, (size_t)i);
		if (!has_dlq || !st || strcmp(st, "rejected") != 0) {
			lost++;
			ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "%s%s(%s%s)",
					       ml ? "," : "", s->p[i].name, st ? st : "no result",
					       has_dlq ? "" : ",no dlq");
			if (ml >= sizeof(missing))
				ml = sizeof(missing) - 1;
		}
	}
	const char *vst = fk_watch_status(w, n - 1);
	for (const char *const *o = ok_statuses; vst && *o; o++)
		valid_ok += strcmp(vst, *o) == 0;
	snprintf(line, sizeof(line),
		 "FIGURES %s sent=%zu applied=%zu duplicates=0 dlq=%zu lost=%zu double_applied=0 "
		 "| bad=%d valid_after=%s worker_exit=%d dlq_without_reason=%zu%s%s",
		 case_name, n, valid_ok, ndlq, lost, s->n, vst ? vst : "none (partition blocked)",
		 exit_status, no_reason, lost ? " failed=" : "", missing);
	fk_figures_line(line);
	tk_msgs_free(dlq, ndlq);
	fk_watch_destroy(w);
	ck_assert_msg(lost == 0, "bad messages not rejected to the DLQ: %s", missing);
	ck_assert_int_eq(no_reason, 0);
	ck_assert_msg(valid_ok == 1, "the valid message after the bad ones: %s",
		      vst ? vst : "no result (partition blocked)");
	ck_assert_int_eq(exit_status, 0);
}

START_TEST(poison_usage_events)
{
	struct uk_env env;
	struct bad_set s;
	static struct fk_msg msgs[MAXP + 1];
	char valid[512];
	const char *ok[] = { "applied", "insufficient_credits", NULL };
	const char *extra[] = { "IDLE_EXIT_MS=4000", NULL };

	uk_env_init(&env, "f_poison_usage", 1);
	build(&s, "event_id",
	      "\"org_id\":\"po-1\",\"spus\":3,\"operation\":\"llm_call\",\"source\":\"api\","
	      "\"timestamp\":\"2026-11-25T12:00:00Z\"");
	uk_event_json(valid, sizeof(valid), "ok-1", "po-1", 3);
	size_t n = produce_all(env.topic, &s, valid, "po-1", msgs);
	pid_t pid = uk_start_worker(&env, extra);
	fk_track(pid);
	int rc = tk_wait(pid, 30000);
	check("poison_usage_events", env.topic, env.results, &s, msgs, n, rc, ok);
	free_set(&s);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(poison_stripe_events)
{
	struct sk_env env;
	struct bad_set s;
	static struct fk_msg msgs[MAXP + 1];
	const char *ok[] = { "ignored", "applied", NULL };

	sk_env_init(&env, "f_poison_stripe", BW_STRIPE_WORKER_PATH);
	build(&s, "id",
	      "\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":1718000000,"
	      "\"data\":{\"object\":{\"id\":\"cs_p\",\"object\":\"checkout.session\","
	      "\"mode\":\"payment\",\"payment_status\":\"paid\","
	      "\"metadata\":{\"org_id\":\"po-2\",\"credits\":\"5\"}}}");
	json_t *ev = sk_fixture("unknown_type.json");
	char *valid = json_dumps(ev, JSON_COMPACT);
	size_t n = produce_all(env.topic, &s, valid, "valid", msgs);
	pid_t pid = sk_start_worker(&env, NULL, 4000);
	fk_track(pid);
	int rc = tk_wait(pid, 30000);
	check("poison_stripe_events", env.topic, env.results, &s, msgs, n, rc, ok);
	free(valid);
	json_decref(ev);
	free_set(&s);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(poison_sync_ticks)
{
	char topic[96], results[128], db[96];
	struct bad_set s;
	static struct fk_msg msgs[MAXP + 1];
	const char *ok[] = { "skipped", NULL };
	/* local-only: no STRIPE_SECRET_KEY */
	const char *extra[] = { "IDLE_EXIT_MS=4000", "SYNC_PRICES_AT_START=false", NULL };

	tk_unique(topic, sizeof(topic), "f_poison_ticks");
	snprintf(results, sizeof(results), "%s.results", topic);
	tk_unique(db, sizeof(db), "db");
	tk_create_topic(topic, 1, 1);
	tk_create_topic(results, 1, 0);
	build(&s, "tick_id", "\"scope\":\"customer\",\"org_id\":\"po-3\"");
	size_t n = produce_all(topic, &s, "{\"tick_id\":\"t-ok\",\"scope\":\"prices\"}", "t-ok",
			       msgs);
	pid_t pid = fk_start_sync(topic, results, db, extra);
	int rc = tk_wait(pid, 30000);
	check("poison_sync_ticks", topic, results, &s, msgs, n, rc, ok);
	free_set(&s);
	tk_mongo_drop(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("poison");
	TCase *tc = tcase_create("poison");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, poison_usage_events);
	tcase_add_test(tc, poison_stripe_events);
	tcase_add_test(tc, poison_sync_ticks);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
