/* Fault suite: the webhook ingress under abuse (the shared Kafka broker).
 *  - forged and replayed signatures (wrong secret, body changed under a valid signature,
 *    timestamps outside the tolerance both ways, garbage and missing headers): every one 400,
 *    none published;
 *  - slow clients that trickle header bytes (slowloris) and idle connections, 800 held at once
 *    (under INGRESS_MAX_CONNECTIONS), while real signed webhooks, sequential and from parallel
 *    threads, must each be acknowledged (200) within 1 s;
 * The ingress's peak RSS is reported. Prints one line of figures. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fault_kit.h"
#include "ingress_kit.h"

enum { SLOW = 400, IDLE = 400, SEQ = 30, THREADS = 6, PER_THREAD = 20 };

struct trickle {
	int *fds;
	int n;
	volatile int stop;
};

/* Every 500 ms one more header line on every slow connection: never a complete request. */
static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	int round = 0;

	while (!t->stop) {
		char h[64];
		int len = snprintf(h, sizeof(h), "X-Slow-%d: %d\r\n", round, round);
		for (int i = 0; i < t->n; i++)
			if (t->fds[i] >= 0 && send(t->fds[i], h, (size_t)len, MSG_NOSIGNAL) < 0) {
				close(t->fds[i]);
				t->fds[i] = -1;
			}
		round++;
		usleep(500000);
	}
	return NULL;
}

struct sender {
	const struct ik *ing;
	int id, ok, slow;
	long max_ms;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char body[512], id[64];
		long ms = 0;
		snprintf(id, sizeof(id), "evt_par_%d_%d", s->id, i);
		ik_event(body, sizeof(body), id);
		s->ok += ik_post_signed(s->ing, body, 5000, &ms) == 200;
		s->slow += ms >= 1000;
		if (ms > s->max_ms)
			s->max_ms = ms;
	}
	return NULL;
}

START_TEST(forged_replayed_slowloris_and_many_connections)
{
	struct ik ing;
	char body[512], other[512], sig[200], line[1024];
	long now = (long)time(NULL);
	int refused = 0, forged = 0;
	static int fds_slow[SLOW], fds_idle[IDLE];
	struct trickle tr = { .fds = fds_slow, .n = SLOW, .stop = 0 };
	pthread_t trt, th[THREADS];
	struct sender snd[THREADS];
	long max_ms = 0, ms;
	int seq_ok = 0, seq_slow = 0, held = 0;

	ik_start(&ing, "f_abuse", NULL);

	/* Forged and replayed. */
	ik_event(body, sizeof(body), "evt_forged");
	ik_event(other, sizeof(other), "evt_forged_other");
	char wrong[200];
	snprintf(wrong, sizeof(wrong), "t=%ld,v1=%064d", now, 0);
	const char *bad_sigs[] = { wrong, "garbage", "t=,v1=", "v1=abc", "", NULL };
	for (const char *const *b = bad_sigs; *b; b++) {
		forged++;
		refused += ik_post(&ing, *b, body, 5000, NULL) == 400;
	}
	forged++;
	refused += ik_post(&ing, NULL, body, 5000, NULL) == 400; /* no header */
	ik_sign(sig, sizeof(sig), now, other);                   /* body swapped */
	forged++;
	refused += ik_post(&ing, sig, body, 5000, NULL) == 400;
	ik_sign(sig, sizeof(sig), now - 400, body);              /* replayed: too old */
	forged++;
	refused += ik_post(&ing, sig, body, 5000, NULL) == 400;
	ik_sign(sig, sizeof(sig), now + 400, body);              /* from the future */
	forged++;
	refused += ik_post(&ing, sig, body, 5000, NULL) == 400;

	/* Slow and idle connections held. */
	for (int i = 0; i < SLOW; i++) {
		fds_slow[i] = fk_connect_local(ing.port);
		if (fds_slow[i] >= 0) {
			const char *start = "POST " IK_PATH " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
			held += send(fds_slow[i], start, strlen(start), MSG_NOSIGNAL) > 0;
		}
	}
	for (int i = 0; i < IDLE; i++) {
		fds_idle[i] = fk_connect_local(ing.port);
		held += fds_idle[i] >= 0;
	}
	ck_assert_int_eq(pthread_create(&trt, NULL, trickle_main, &tr), 0);
	usleep(300000);

	/* Real webhooks meanwhile: sequential, then from parallel threads. */
	for (int i = 0; i < SEQ; i++) {
		char id[64];
		snprintf(id, sizeof(id), "evt_seq_%d", i);
		ik_event(body, sizeof(body), id);
		seq_ok += ik_post_signed(&ing, body, 5000, &ms) == 200;
		seq_slow += ms >= 1000;
		if (ms > max_ms)
			max_ms = ms;
	}
	for (int t = 0; t < THREADS; t++) {
		snd[t] = (struct sender){ .ing = &ing, .id = t };
		ck_assert_int_eq(pthread_create(&th[t], NULL, sender_main, &snd[t]), 0);
	}
	int par_ok = 0, par_slow = 0;
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		par_ok += snd[t].ok;
		par_slow += snd[t].slow;
		if (snd[t].max_ms > max_ms)
			max_ms = snd[t].max_ms;
	}
	long health = ik_get(&ing, "/healthz", 2000);
	tr.stop = 1;
	pthread_join(trt, NULL);
	int slow_alive = 0;
	for (int i = 0; i < SLOW; i++)
		if (fds_slow[i] >= 0) {
			slow_alive++;
			close(fds_slow[i]);
		}
	for (int i = 0; i < IDLE; i++)
		if (fds_idle[i] >= 0)
			close(fds_idle[i]);
	long rss = fk_peak_rss_kb(ing.pid);

	/* Published: exactly the real webhooks, none of the forged ones. */
	struct tk_msg *msgs = NULL;
	size_t n = fk_consume_all(ing.topic, 20000, &msgs), forged_published = 0;
	for (size_t i = 0; i < n; i++)
		forged_published += strstr(msgs[i].value, "evt_forged") != NULL;
	tk_msgs_free(msgs, n);
	int rc = ik_stop(&ing);
	snprintf(line, sizeof(line),
		 "FIGURES webhook_abuse sent=%d applied=%d duplicates=0 dlq=n/a lost=%d "
		 "double_applied=0 | forged_refused=%d/%d forged_published=%zu held_connections=%d "
		 "slow_still_open=%d real_ok=%d/%d real_over_1s=%d max_ack_ms=%ld published=%zu "
		 "healthz=%ld peak_rss_kb=%ld exit=%d",
		 forged + SEQ + THREADS * PER_THREAD, seq_ok + par_ok,
		 SEQ + THREADS * PER_THREAD - seq_ok - par_ok, refused, forged, forged_published,
		 held, slow_alive, seq_ok + par_ok, SEQ + THREADS * PER_THREAD, seq_slow + par_slow,
		 max_ms, n, health, rss, rc);
	fk_figures_line(line);
	ck_assert_int_eq(refused, forged);
	ck_assert_int_eq(forged_published, 0);
	ck_assert_int_eq(held, SLOW + IDLE);
	ck_assert_int_eq(seq_ok + par_ok, SEQ + THREADS * PER_THREAD);
	ck_assert_int_eq(seq_slow + par_slow, 0);
	ck_assert_int_eq(n, (size_t)(SEQ + THREADS * PER_THREAD));
	ck_assert_int_eq(health, 200);
	ck_assert_int_eq(rc, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("webhook_abuse");
	TCase *tc = tcase_create("abuse");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, forged_replayed_slowloris_and_many_connections);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
