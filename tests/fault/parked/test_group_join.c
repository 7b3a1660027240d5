/* Group membership changes under the project's consumer loop (shared/kafka_consumer.c), on
 * the real local broker (issue 11): static membership (KIP-345) is the real group
 * coordinator's behaviour, not something to take from librdkafka's mock cluster. Two members
 * run in threads of this process, each its own bw_consumer.
 *
 *  join_mid_batch: 4,000 messages trickle in (about one per ms) while member A fills batches
 *    (up to 2,000 for up to 1 s). B joins, handles a batch and leaves, until one of A's
 *    revokes caught a batch in hand (the loop's log "settling M buffered", M > 0; at most 6
 *    rounds). A settles what it holds and commits in the revoke; every message is handled,
 *    none twice, and the group's committed offsets end at the partitions' end offsets.
 *  static_restart: A and B with group.instance.id (RDKAFKA_GROUP_INSTANCE_ID, as a worker
 *    sets it) and session.timeout.ms=10000. A is closed and restarted with the same instance
 *    id within the session timeout: it gets its partitions back with no rebalance of the
 *    group (one revoke and one assign in all: A's own; B keeps its partitions); the messages
 *    produced after are all handled once, each by the member that owned its partition
 *    before. The same restart without instance ids is measured for contrast (B revoked too).
 * Each case prints a FIGURES line. */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_kit.h"
#include "kafka_consumer.h"
#include "metrics.h"
#include "testkit.h"

#define PARTS 4
#define MAX_MSGS 4000

struct shared {
	pthread_mutex_t lock;
	int handled[MAX_MSGS];
	int total;
};

struct member {
	struct shared *sh;
	struct bw_consumer *c;
	pthread_t thread;
	int delay_ms;
	int batches;
	unsigned parts_seen;  /* bit per partition handled since the last reset */
	int rc;
	struct bw_err err;
	volatile sig_atomic_t stop;
};

static int handler(void *opaque, rd_kafka_message_t *const *msgs, size_t n, struct bw_err *err)
{
	struct member *m = opaque;

	(void)err;
	nanosleep(&(struct timespec){ m->delay_ms / 1000, (long)(m->delay_ms % 1000) * 1000000L },
		  NULL);
	pthread_mutex_lock(&m->sh->lock);
	for (size_t i = 0; i < n; i++) {
		int v = atoi((const char *)msgs[i]->payload + 1); /* "v<i>" */
		if (v >= 0 && v < MAX_MSGS)
			m->sh->handled[v]++;
		m->parts_seen |= 1u << msgs[i]->partition;
	}
	m->sh->total += (int)n;
	m->batches++;
	pthread_mutex_unlock(&m->sh->lock);
	return 0;
}

static void *member_main(void *arg)
{
	struct member *m = arg;
	bw_err_clear(&m->err);
	m->rc = bw_consumer_run(m->c, handler, m, &m->stop, &m->err);
	return NULL;
}

static void member_start(struct member *m, struct shared *sh, const char *group,
			 const char *topic, const char *instance, int delay_ms, int batch_max,
			 int batch_wait_ms)
{
	static const char *const props[] = { "session.timeout.ms=10000",
					     "heartbeat.interval.ms=1000", NULL };
	struct bw_consumer_conf cc = {
		.brokers = tk_brokers(), .group_id = group, .topic = topic, .batch_max = batch_max,
		.batch_wait_ms = batch_wait_ms, .idle_exit_ms = 0, .backoff_max_ms = 1000,
		.extra_props = props,
	};

	memset(m, 0, sizeof(*m));
	m->sh = sh;
	m->delay_ms = delay_ms;
	if (instance)
		setenv("RDKAFKA_GROUP_INSTANCE_ID", instance, 1);
	m->c = bw_consumer_new(&cc, &m->err);
	unsetenv("RDKAFKA_GROUP_INSTANCE_ID");
	ck_assert_msg(m->c != NULL, "%s", m->err.msg);
	ck_assert_int_eq(pthread_create(&m->thread, NULL, member_main, m), 0);
}

/* Stops the members, joins and destroys them (final commit). */
static void members_stop(struct member *const *ms, int n)
{
	for (int i = 0; i < n; i++)
		ms[i]->stop = 1;
	for (int i = 0; i < n; i++) {
		pthread_join(ms[i]->thread, NULL);
		ck_assert_msg(ms[i]->rc == 0, "member %d: %s", i, ms[i]->err.msg);
		bw_consumer_destroy(ms[i]->c);
		ms[i]->c = NULL;
	}
}

static int total(struct shared *sh)
{
	pthread_mutex_lock(&sh->lock);
	int t = sh->total;
	pthread_mutex_unlock(&sh->lock);
	return t;
}

static int wait_total(struct shared *sh, int want, int timeout_ms)
{
	long long end = tk_now_ms() + timeout_ms;
	while (total(sh) < want && tk_now_ms() < end)
		nanosleep(&(struct timespec){ 0, 50000000L }, NULL);
	return total(sh) >= want;
}

static void produce(const char *topic, int from, int n)
{
	char **vals = calloc((size_t)n, sizeof(*vals));
	char **keys = calloc((size_t)n, sizeof(*keys));

	for (int i = 0; i < n; i++) {
		ck_assert_int_gt(asprintf(&vals[i], "v%d", from + i), 0);
		ck_assert_int_gt(asprintf(&keys[i], "k%d", from + i), 0);
	}
	tk_produce_many(topic, (const char *const *)keys, (const char *const *)vals, (size_t)n);
	for (int i = 0; i < n; i++) {
		free(vals[i]);
		free(keys[i]);
	}
	free(vals);
	free(keys);
}

/* Partitions whose committed offset (read from outside the group) equals the end offset. */
static int committed_to_end(const char *group, const char *topic)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int ok = 0;

	rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
	for (int p = 0; p < PARTS; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	ck_assert_int_eq(rd_kafka_committed(rk, l, 10000), 0);
	for (int p = 0; p < PARTS; p++) {
		int64_t lo, hi;
		ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
		ok += l->elems[p].offset == hi;
	}
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return ok;
}

static void count(const struct shared *sh, int n, int *lost, int *dup)
{
	*lost = *dup = 0;
	for (int i = 0; i < n; i++) {
		*lost += sh->handled[i] == 0;
		*dup += sh->handled[i] > 1;
	}
}

/* Produces "v<from>".."v<from+n-1>" one by one, about one per millisecond, so a consumer's
 * local queue never runs dry and its batches fill for batch_wait_ms. */
struct trickle {
	const char *topic;
	int from, n;
	pthread_t thread;
};

static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	char errstr[256], val[32], key[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
		return NULL;
	for (int i = t->from; i < t->from + t->n; i++) {
		int vl = snprintf(val, sizeof(val), "v%d", i);
		int kl = snprintf(key, sizeof(key), "k%d", i);
		rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(t->topic), RD_KAFKA_V_KEY(key, (size_t)kl),
				  RD_KAFKA_V_VALUE(val, (size_t)vl),
				  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		rd_kafka_poll(rk, 0);
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
	}
	rd_kafka_flush(rk, 30000);
	rd_kafka_destroy(rk);
	return NULL;
}

/* The loop logs "revoking N partitions; settling M buffered" (kafka_consumer.c): the largest
 * M of the log at path, with the number of revokes. */
static int settled_buffered(const char *path, int *revokes)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	int max = 0;

	*revokes = 0;
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "; settling ");
		if (!p)
			continue;
		(*revokes)++;
		int m = atoi(p + strlen("; settling "));
		if (m > max)
			max = m;
	}
	fclose(f);
	return max;
}

START_TEST(join_mid_batch)
{
	static struct shared sh = { .lock = PTHREAD_MUTEX_INITIALIZER };
	static struct member a, b;
	struct trickle tr;
	char topic[96], group[96], fig[640], logpath[256];
	int lost, dups, n = MAX_MSGS, revokes = 0;
	long long t0 = tk_now_ms();

	tk_unique(topic, sizeof(topic), "grp.join");
	tk_unique(group, sizeof(group), "grp-join");
	tk_create_topic(topic, PARTS, 0);
	snprintf(logpath, sizeof(logpath), "%s/group-join-%d.log", BW_BINARY_DIR, (int)getpid());
	/* The loop's log goes to stderr; keep it to read the revokes' "settling M buffered". */
	fflush(stderr);
	int saved = dup(2), fd = open(logpath, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	ck_assert(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);

	/* A fills batches (up to 2,000 for up to 1 s) from a steady trickle, so most of its time
	 * is spent with messages in hand. Once A has handled 500 messages, B joins (A revokes
	 * all and gets half back), handles a batch and leaves (A revokes again and gets all),
	 * until one of A's revokes caught a batch in hand (at most 6 rounds; one round does in
	 * 4 of 5 runs). */
	tr = (struct trickle){ .topic = topic, .from = 0, .n = n };
	ck_assert_int_eq(pthread_create(&tr.thread, NULL, trickle_main, &tr), 0);
	member_start(&a, &sh, group, topic, NULL, 0, 2000, 1000);
	int ok = wait_total(&sh, 500, 60000);
	int joined_at = total(&sh), rounds = 0, b_batches = 0, b_parts = 0;
	while (ok && rounds < 6 && settled_buffered(logpath, &revokes) == 0) {
		member_start(&b, &sh, group, topic, NULL, 0, 2000, 1000);
		long long end = tk_now_ms() + 20000;
		while (b.batches == 0 && tk_now_ms() < end)
			nanosleep(&(struct timespec){ 0, 20000000L }, NULL);
		members_stop((struct member *const[]){ &b }, 1);
		b_batches += b.batches;
		b_parts |= (int)b.parts_seen;
		rounds++;
		/* A is assigned everything again before the next round. */
		nanosleep(&(struct timespec){ 0, 500000000L }, NULL);
	}
	pthread_join(tr.thread, NULL);
	ok = ok && wait_total(&sh, n, 120000);
	nanosleep(&(struct timespec){ 1, 500000000L }, NULL); /* redeliveries would show now */
	members_stop((struct member *const[]){ &a }, 1);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ck_assert_msg(ok, "handled %d of %d", total(&sh), n);
	int settled = settled_buffered(logpath, &revokes);
	count(&sh, n, &lost, &dups);
	int at_end = committed_to_end(group, topic);

	snprintf(fig, sizeof(fig),
		 "FIGURES group_join_mid_batch sent=%d applied=%d duplicates=%d dlq=0 lost=%d "
		 "double_applied=%d; B joined at %d handled, %d join+leave rounds, batches A=%d "
		 "B=%d, partitions A=%#x B=%#x, largest batch settled in a revoke %d (of %d "
		 "revokes), committed to the "
		 "end %d/%d, %.1f s (log %s)",
		 n, sh.total, dups, lost, dups, joined_at, rounds, a.batches, b_batches,
		 a.parts_seen, b_parts, settled, revokes, at_end, PARTS, (tk_now_ms() - t0) / 1000.0,
		 logpath);
	fk_figures_line(fig);
	ck_assert_int_eq(lost, 0);
	ck_assert_int_eq(dups, 0);
	ck_assert_int_gt(b_batches, 0); /* B really took partitions over */
	ck_assert_int_gt(settled, 0);   /* a revoke really caught a batch in hand */
	ck_assert_int_eq(at_end, PARTS);
}
END_TEST

/* Rebalance callbacks of this process so far: revokes and assigns (bw_metrics). */
static void rebalances(long long *revoke, long long *assign)
{
	char *t = bw_metrics_render();
	const char *r = strstr(t, "type=\"revoke\"} ");
	const char *a = strstr(t, "type=\"assign\"} ");

	ck_assert(r && a);
	*revoke = atoll(r + strlen("type=\"revoke\"} "));
	*assign = atoll(a + strlen("type=\"assign\"} "));
	free(t);
}

struct restart_figures {
	long long revokes, assigns; /* during A's restart, both members */
	unsigned a_before, b_before, a_after, b_after;
	int lost, dup;
	double restart_s;
};

/* A and B (instance ids ia/ib, or none), 200 messages; A restarted; 200 more. */
static void restart_case(const char *ia, const char *ib, struct restart_figures *f)
{
	static struct shared sh;
	static struct member a, b;
	char topic[96], group[96];
	long long r0, a0, r1, a1;

	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.lock, NULL);
	tk_unique(topic, sizeof(topic), "grp.static");
	tk_unique(group, sizeof(group), "grp-static");
	tk_create_topic(topic, PARTS, 0);

	member_start(&a, &sh, group, topic, ia, 0, 50, 200);
	member_start(&b, &sh, group, topic, ib, 0, 50, 200);
	produce(topic, 0, 200);
	ck_assert_msg(wait_total(&sh, 200, 60000), "phase 1: %d of 200", total(&sh));
	/* Both members settled (the second join may still rebalance): wait for a quiet group. */
	nanosleep(&(struct timespec){ 4, 0 }, NULL);
	pthread_mutex_lock(&sh.lock);
	a.parts_seen = b.parts_seen = 0;
	pthread_mutex_unlock(&sh.lock);
	produce(topic, 200, 200);
	ck_assert_msg(wait_total(&sh, 400, 60000), "phase 2: %d of 400", total(&sh));
	f->a_before = a.parts_seen;
	f->b_before = b.parts_seen;

	/* Restart A: close (no LeaveGroup for a static member), and at once the new A. */
	rebalances(&r0, &a0);
	long long t = tk_now_ms();
	members_stop((struct member *const[]){ &a }, 1);
	pthread_mutex_lock(&sh.lock);
	b.parts_seen = 0;
	pthread_mutex_unlock(&sh.lock);
	member_start(&a, &sh, group, topic, ia, 0, 50, 200);
	produce(topic, 400, 200);
	ck_assert_msg(wait_total(&sh, 600, 60000), "phase 3: %d of 600", total(&sh));
	f->restart_s = (tk_now_ms() - t) / 1000.0;
	nanosleep(&(struct timespec){ 2, 0 }, NULL);
	rebalances(&r1, &a1);
	f->revokes = r1 - r0;
	f->assigns = a1 - a0;
	f->a_after = a.parts_seen;
	f->b_after = b.parts_seen;
	members_stop((struct member *const[]){ &a, &b }, 2);
	count(&sh, 600, &f->lost, &f->dup);
}

START_TEST(static_restart)
{
	struct restart_figures st, dyn;
	char fig[640], ia[64], ib[64];
	long long t0 = tk_now_ms();

	tk_unique(ia, sizeof(ia), "inst-a");
	tk_unique(ib, sizeof(ib), "inst-b");
	restart_case(ia, ib, &st);
	restart_case(NULL, NULL, &dyn);

	snprintf(fig, sizeof(fig),
		 "FIGURES group_static_restart sent=600 applied=600 duplicates=%d dlq=0 lost=%d "
		 "double_applied=%d; static: A's restart caused %lld revokes + %lld assigns "
		 "(A %#x -> %#x, B %#x -> %#x), all handled %.1f s after the close; without "
		 "instance ids: %lld revokes + %lld assigns, duplicates=%d lost=%d; %.1f s",
		 st.dup, st.lost, st.dup, st.revokes, st.assigns, st.a_before, st.a_after,
		 st.b_before, st.b_after, st.restart_s, dyn.revokes, dyn.assigns, dyn.dup,
		 dyn.lost, (tk_now_ms() - t0) / 1000.0);
	fk_figures_line(fig);
	ck_assert_int_eq(st.lost, 0);
	ck_assert_int_eq(st.dup, 0);
	ck_assert_int_eq(dyn.lost, 0);
	/* Static: only A's own close and its return, B untouched, same partitions. */
	ck_assert_int_eq(st.revokes, 1);
	ck_assert_int_eq(st.assigns, 1);
	ck_assert_uint_eq(st.a_after & ~st.a_before, 0);
	ck_assert_uint_eq(st.b_after & ~st.b_before, 0);
	/* Dynamic: B is revoked and reassigned (the storm static membership avoids). */
	ck_assert_int_ge(dyn.revokes, 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("group_join");
	TCase *tc = tcase_create("group");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, join_mid_batch);
	tcase_add_test(tc, static_restart);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
