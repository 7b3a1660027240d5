/* fault_kit: see fault_kit.h. */
#include "fault_kit.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

unsigned fk_rand(unsigned *state)
{
	unsigned x = *state ? *state : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

/* ---- processes ------------------------------------------------------------------------ */

enum { MAX_TRACKED = 64 };
static pid_t tracked[MAX_TRACKED];
static pid_t tracked_by[MAX_TRACKED]; /* the process that started it */

/* At exit, kills what this process started: a Check test child (fork mode) inherits the
 * table and the handler, and must not kill what its parent's fixture started. */
static void kill_tracked(void)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] > 0 && tracked_by[i] == getpid()) {
			kill(tracked[i], SIGKILL);
			waitpid(tracked[i], NULL, 0);
			tracked[i] = 0;
		}
}

void fk_track(pid_t pid)
{
	static int registered;

	if (!registered) {
		atexit(kill_tracked);
		registered = 1;
	}
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] <= 0) {
			tracked[i] = pid;
			tracked_by[i] = getpid();
			return;
		}
	ck_abort_msg("more than %d tracked processes", MAX_TRACKED);
}

static void untrack(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

int fk_stop(pid_t pid, int timeout_ms)
{
	untrack(pid);
	kill(pid, SIGTERM);
	return tk_wait(pid, timeout_ms);
}

int fk_stop_all(const pid_t *pids, int n, int timeout_ms)
{
	int bad = 0;
	for (int i = 0; i < n; i++)
		bad += fk_stop(pids[i], timeout_ms) != 0;
	return bad;
}

void fk_start_usage(const struct uk_env *env, pid_t *pids, int n, const char *const *extra)
{
	for (int i = 0; i < n; i++) {
		pids[i] = uk_start_worker(env, extra);
		fk_track(pids[i]);
	}
}

void fk_kill(pid_t pid)
{
	untrack(pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

pid_t fk_start_sync(const char *topic, const char *results, const char *db,
		    const char *const *extra)
{
	char v[6][320], log[400];
	const char *envp[32];
	int k = 0;

	snprintf(v[0], sizeof(v[0]), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(v[1], sizeof(v[1]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(v[2], sizeof(v[2]), "MONGO_DB=%s", db);
	snprintf(v[3], sizeof(v[3]), "SYNC_TOPIC=%s", topic);
	snprintf(v[4], sizeof(v[4]), "SYNC_GROUP_ID=%s.g", topic);
	snprintf(v[5], sizeof(v[5]), "RESULTS_TOPIC=%s", results);
	snprintf(log, sizeof(log), "%s/%s.log", BW_BINARY_DIR, topic);
	for (int i = 0; i < 6; i++)
		envp[k++] = v[i];
	for (const char *const *e = extra; e && *e && k < 31; e++)
		envp[k++] = *e;
	envp[k] = NULL;
	pid_t pid = tk_spawn(BW_SYNC_WORKER_PATH, envp, log);
	fk_track(pid);
	return pid;
}

long fk_peak_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* ---- producing ----------------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct fk_msg *msg = m->_private;

	(void)rk;
	(void)opaque;
	ck_assert_msg(m->err == 0, "delivery failed: %s", rd_kafka_err2str(m->err));
	msg->out_partition = m->partition;
	msg->out_offset = m->offset;
}

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char errstr[256];
	ck_assert_msg(rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK,
		      "%s: %s", k, errstr);
}

void fk_produce(const char *topic, struct fk_msg *msgs, size_t n, const char *compression)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	conf_set(conf, "bootstrap.servers", tk_brokers());
	conf_set(conf, "enable.idempotence", "true");
	/* Up to the broker's own limit (a test sends messages just under it); batches stay
	 * at batch.size. */
	conf_set(conf, "message.max.bytes", "8000000");
	conf_set(conf, "compression.codec", compression ? compression : "none");
	conf_set(conf, "log_level", "0");
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "rd_kafka_new: %s", errstr);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e;
		msgs[i].out_partition = -1;
		msgs[i].out_offset = -1;
		do {
			e = rd_kafka_producev(
				rk, RD_KAFKA_V_TOPIC(topic),
				RD_KAFKA_V_PARTITION(msgs[i].partition >= 0 ? msgs[i].partition
									    : RD_KAFKA_PARTITION_UA),
				RD_KAFKA_V_KEY((void *)msgs[i].key,
					       msgs[i].key ? strlen(msgs[i].key) : 0),
				RD_KAFKA_V_VALUE((void *)msgs[i].value, msgs[i].len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_OPAQUE(&msgs[i]), RD_KAFKA_V_END);
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(rk, 50);
		} while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
		ck_assert_msg(e == 0, "produce: %s", rd_kafka_err2str(e));
		rd_kafka_poll(rk, 0);
	}
	ck_assert_msg(rd_kafka_flush(rk, 60000) == 0, "produce flush timed out");
	rd_kafka_destroy(rk);
	for (size_t i = 0; i < n; i++)
		ck_assert(msgs[i].out_partition >= 0 && msgs[i].out_offset >= 0);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* A reader assigned to every partition of topic from the beginning; *ends gets each
 * partition's high watermark (new array, *nparts entries). */
static rd_kafka_t *open_reader(const char *topic, int64_t **ends, int *nparts)
{
	char errstr[512], group[96];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;

	tk_unique(group, sizeof(group), "fk_reader");
	conf_set(conf, "bootstrap.servers", tk_brokers());
	conf_set(conf, "group.id", group);
	conf_set(conf, "enable.auto.commit", "false");
	/* The broker may be down on purpose: no connection errors on the test's output. */
	conf_set(conf, "log_level", "0");
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "rd_kafka_new: %s", errstr);
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	/* A topic created a moment ago (on a broker started a moment ago) may not list its
	 * partitions yet: ask again until it does. */
	long long deadline = tk_now_ms() + 30000;
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
		if (e == 0 && md->topic_cnt == 1 && md->topics[0].err == 0 &&
		    md->topics[0].partition_cnt > 0)
			break;
		if (e == 0)
			rd_kafka_metadata_destroy(md);
		md = NULL;
		ck_assert_msg(tk_now_ms() < deadline, "%s: no partitions in the metadata", topic);
		usleep(200000);
	}
	*nparts = md->topics[0].partition_cnt;
	*ends = calloc((size_t)*nparts, sizeof(**ends));
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(*nparts);
	for (int i = 0; i < *nparts; i++) {
		int64_t lo = 0, hi = 0;
		rd_kafka_resp_err_t e;
		while ((e = rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 5000)) != 0 &&
		       tk_now_ms() < deadline)
			usleep(200000);
		ck_assert_msg(e == 0, "%s [%d]: watermarks: %s", topic, i, rd_kafka_err2str(e));
		(*ends)[i] = hi;
		rd_kafka_topic_partition_list_add(parts, topic, i)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	}
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	ck_assert(rd_kafka_assign(rk, parts) == 0);
	rd_kafka_topic_partition_list_destroy(parts);
	return rk;
}

size_t fk_consume_all(const char *topic, int timeout_ms, struct tk_msg **out)
{
	int64_t *ends = NULL, *pos;
	int nparts = 0, done = 0;
	rd_kafka_t *rk = open_reader(topic, &ends, &nparts);
	size_t n = 0, cap = 64;
	struct tk_msg *msgs = calloc(cap, sizeof(*msgs));
	long long deadline = tk_now_ms() + timeout_ms;

	pos = calloc((size_t)nparts, sizeof(*pos));
	for (int i = 0; i < nparts; i++)
		done += ends[i] == 0;
	while (done < nparts && tk_now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (!m->err && m->partition < nparts) {
			if (n == cap) {
				cap *= 2;
				msgs = realloc(msgs, cap * sizeof(*msgs));
				ck_assert(msgs != NULL);
			}
			tk_msg_copy(&msgs[n++], m);
			if (pos[m->partition] < ends[m->partition] &&
			    m->offset + 1 >= ends[m->partition])
				done++;
			pos[m->partition] = m->offset + 1;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(ends);
	free(pos);
	*out = msgs;
	return n;
}

/* ---- results watch ----------------------------------------------------------------------- */

enum { ST_APPLIED = 1, ST_DUPLICATE = 2, ST_REJECTED = 4, ST_CONFLICT = 8, ST_OTHER = 16 };

struct fk_watch {
	rd_kafka_t *rk;
	char input[256];
	int nparts;
	int64_t *part_len;  /* per input partition: highest offset + 1 */
	long **index;       /* [partition][offset] -> input index, or -1 */
	int *count;         /* per input: results seen */
	int *seen;          /* per input: ST_* bits */
	char (*last)[32];   /* per input: last status */
	size_t n, answered, results;
};

struct fk_watch *fk_watch_new(const char *results_topic, const char *input_topic,
			      const struct fk_msg *msgs, size_t n)
{
	struct fk_watch *w = calloc(1, sizeof(*w));
	int64_t *ends = NULL;
	int nparts = 0;

	ck_assert(w != NULL);
	snprintf(w->input, sizeof(w->input), "%s", input_topic);
	w->n = n;
	for (size_t i = 0; i < n; i++)
		if (msgs[i].out_partition + 1 > w->nparts)
			w->nparts = msgs[i].out_partition + 1;
	w->part_len = calloc((size_t)w->nparts + 1, sizeof(*w->part_len));
	w->index = calloc((size_t)w->nparts + 1, sizeof(*w->index));
	for (size_t i = 0; i < n; i++)
		if (msgs[i].out_offset + 1 > w->part_len[msgs[i].out_partition])
			w->part_len[msgs[i].out_partition] = msgs[i].out_offset + 1;
	for (int p = 0; p < w->nparts; p++) {
		w->index[p] = malloc(((size_t)w->part_len[p] + 1) * sizeof(long));
		for (int64_t o = 0; o <= w->part_len[p]; o++)
			w->index[p][o] = -1;
	}
	for (size_t i = 0; i < n; i++)
		w->index[msgs[i].out_partition][msgs[i].out_offset] = (long)i;
	w->count = calloc(n + 1, sizeof(*w->count));
	w->seen = calloc(n + 1, sizeof(*w->seen));
	w->last = calloc(n + 1, sizeof(*w->last));
	w->rk = open_reader(results_topic, &ends, &nparts);
	free(ends);
	return w;
}

void fk_watch_destroy(struct fk_watch *w)
{
	if (!w)
		return;
	rd_kafka_consumer_close(w->rk);
	rd_kafka_destroy(w->rk);
	for (int p = 0; p < w->nparts; p++)
		free(w->index[p]);
	free(w->index);
	free(w->part_len);
	free(w->count);
	free(w->seen);
	free(w->last);
	free(w);
}

static int status_bit(const char *s)
{
	if (!strcmp(s, "applied") || !strcmp(s, "insufficient_credits"))
		return ST_APPLIED;
	if (!strcmp(s, "duplicate"))
		return ST_DUPLICATE;
	if (!strcmp(s, "rejected"))
		return ST_REJECTED;
	if (!strcmp(s, "conflict"))
		return ST_CONFLICT;
	return ST_OTHER;
}

static void take_result(struct fk_watch *w, const rd_kafka_message_t *m)
{
	json_t *r = json_loadb(m->payload, m->len, 0, NULL);
	const char *topic = json_string_value(json_object_get(r, "source_topic"));
	const char *status = json_string_value(json_object_get(r, "status"));
	json_int_t p = json_integer_value(json_object_get(r, "source_partition"));
	json_int_t o = json_integer_value(json_object_get(r, "source_offset"));

	w->results++;
	if (r && topic && status && !strcmp(topic, w->input) && p >= 0 && p < w->nparts &&
	    o >= 0 && o < w->part_len[p] && w->index[p][o] >= 0) {
		long i = w->index[p][o];
		if (w->count[i]++ == 0)
			w->answered++;
		w->seen[i] |= status_bit(status);
		snprintf(w->last[i], sizeof(w->last[i]), "%s", status);
	}
	json_decref(r);
}

size_t fk_watch_poll(struct fk_watch *w, int ms)
{
	long long deadline = tk_now_ms() + ms;

	do {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 50);
		if (!m)
			continue;
		if (!m->err)
			take_result(w, m);
		rd_kafka_message_destroy(m);
	} while (tk_now_ms() < deadline);
	return w->answered;
}

size_t fk_watch_wait_all(struct fk_watch *w, int timeout_ms)
{
	long long deadline = tk_now_ms() + timeout_ms;

	while (w->answered < w->n && tk_now_ms() < deadline)
		fk_watch_poll(w, 200);
	return w->answered;
}

int fk_watch_count(const struct fk_watch *w, size_t i)
{
	return i < w->n ? w->count[i] : 0;
}

const char *fk_watch_status(const struct fk_watch *w, size_t i)
{
	return i < w->n && w->count[i] ? w->last[i] : NULL;
}

size_t fk_watch_results(const struct fk_watch *w)
{
	return w->results;
}

int fk_watch_seen(const struct fk_watch *w, size_t i, const char *status)
{
	return i < w->n && (w->seen[i] & status_bit(status));
}
