/* stripe_stub.h: starts and drives tests/stub/stripe_stub.py (the Stripe API stub) from a
 * Check test. Header-only (static functions): a test includes it as "../stub/stripe_stub.h".
 *
 * stub_start() copies a state (fixture JSON) into a fresh temp dir, starts the stub on a free
 * 127.0.0.1 port and waits for it; stub_set_state() replaces what it serves (atomic rename);
 * stub_requests() returns what it received; stub_stop() ends it and removes the dir. */
#ifndef BW_TEST_STRIPE_STUB_H
#define BW_TEST_STRIPE_STUB_H

#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BW_STUB_PYTHON
#define BW_STUB_PYTHON "/usr/bin/python3"
#endif
#define BW_STUB_SCRIPT BW_SOURCE_DIR "/tests/stub/stripe_stub.py"
#define BW_STUB_FIXTURE BW_TEST_FIXTURES_DIR "/stripe_api/state.json"

struct stub {
	pid_t pid;
	char dir[256];
	char url[64];
};

/* The fixture state as a new JSON object. */
static inline json_t *stub_fixture(void)
{
	json_error_t jerr;
	json_t *st = json_load_file(BW_STUB_FIXTURE, 0, &jerr);
	ck_assert_msg(st != NULL, "fixture %s: %s", BW_STUB_FIXTURE, jerr.text);
	return st;
}

static inline void stub_path(const struct stub *s, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", s->dir, name);
}

/* Replaces the served state (state borrowed). */
static inline void stub_set_state(const struct stub *s, const json_t *state)
{
	char tmp[300], dst[300];
	stub_path(s, "state.json.tmp", tmp, sizeof(tmp));
	stub_path(s, "state.json", dst, sizeof(dst));
	ck_assert_int_eq(json_dump_file(state, tmp, JSON_COMPACT), 0);
	ck_assert_int_eq(rename(tmp, dst), 0);
}

/* Adds a fault to state's "faults" (state modified in place). */
static inline void stub_add_fault(json_t *state, const char *method, const char *path, int status,
			   int times, int delay_ms, const char *retry_after, const char *raw)
{
	json_t *f = json_pack("{sssssisisi}", "method", method, "path", path, "status", status,
			      "times", times, "delay_ms", delay_ms);
	if (retry_after)
		json_object_set_new(f, "headers", json_pack("{ss}", "Retry-After", retry_after));
	if (raw)
		json_object_set_new(f, "raw", json_string(raw));
	json_array_append_new(json_object_get(state, "faults"), f);
}

static inline void stub_start(struct stub *s, const json_t *state)
{
	char port_path[300], buf[16] = "";
	FILE *f = NULL;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/bw_stripe_stub_XXXXXX");
	ck_assert(mkdtemp(s->dir) != NULL);
	stub_set_state(s, state);
	s->pid = fork();
	ck_assert(s->pid >= 0);
	if (s->pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 1);
		execl(BW_STUB_PYTHON, BW_STUB_PYTHON, BW_STUB_SCRIPT, "--dir", s->dir, (char *)NULL);
		_exit(127);
	}
	stub_path(s, "port", port_path, sizeof(port_path));
	for (int i = 0; i < 200 && !(f = fopen(port_path, "r")); i++)
		usleep(25000);
	ck_assert_msg(f != NULL, "the Stripe stub did not start");
	ck_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%s", buf);
}

/* Every request the stub received, as a new JSON array of objects. */
static inline json_t *stub_requests(const struct stub *s)
{
	char path[300], line[65536];
	json_t *arr = json_array();
	FILE *f;

	stub_path(s, "requests.jsonl", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return arr;
	while (fgets(line, sizeof(line), f)) {
		json_t *r = json_loads(line, 0, NULL);
		if (r)
			json_array_append_new(arr, r);
	}
	fclose(f);
	return arr;
}

/* Requests of method whose path starts with prefix. */
static inline int stub_count(const struct stub *s, const char *method, const char *prefix)
{
	json_t *reqs = stub_requests(s), *r;
	size_t i;
	int n = 0;

	json_array_foreach(reqs, i, r) {
		const char *m = json_string_value(json_object_get(r, "method"));
		const char *p = json_string_value(json_object_get(r, "path"));
		if (m && p && strcmp(m, method) == 0 && strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	}
	json_decref(reqs);
	return n;
}

/* Forgets the recorded requests. */
static inline void stub_clear_requests(const struct stub *s)
{
	char path[300];
	stub_path(s, "requests.jsonl", path, sizeof(path));
	unlink(path);
}

static inline void stub_stop(struct stub *s)
{
	char path[300];
	const char *names[] = { "state.json", "state.json.tmp", "requests.jsonl", "port" };

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		stub_path(s, names[i], path, sizeof(path));
		unlink(path);
	}
	rmdir(s->dir);
}

#endif
