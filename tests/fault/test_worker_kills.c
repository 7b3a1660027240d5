/* Fault suite: usage workers killed with SIGKILL at random moments under load (the shared
 * stack: only our own worker processes are killed). 20,000 distinct events over 200 orgs on
 * 12 partitions, 5 % of them re-sent a little later with the same content. Three workers
 * start; at random points of the load a random worker is killed and replaced, a fourth one
 * joins, and one is killed for good. The survivors must finish everything: every input
 * answered, every event charged once (re-sends answered duplicate), every org's counters
 * equal to the reference and to the sum of its records. The seed is printed with the figures. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_kit.h"

enum { NORGS = 200, EVENTS = 20000, MAXW = 16 };

struct crew {
	pid_t pid[MAXW];
	int n;
};

static void add_worker(struct crew *c, const struct uk_env *env, const char *const *extra)
{
	ck_assert(c->n < MAXW);
	c->pid[c->n] = uk_start_worker(env, extra);
	fk_track(c->pid[c->n]);
	c->n++;
}

static void kill_one(struct crew *c, unsigned *rs)
{
	int i = (int)(fk_rand(rs) % (unsigned)c->n);
	fk_kill(c->pid[i]);
	c->pid[i] = c->pid[--c->n];
}

START_TEST(usage_workers_killed_at_random_moments)
{
	struct uk_env env;
	static struct uk_org orgs[NORGS];
	struct fk_load load;
	struct fk_figures fig;
	struct crew crew = { .n = 0 };
	const char *extra[] = { "BATCH_MAX=50", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	/* What happens at which share of the inputs answered (in per mille): k = kill and
	 * replace, a = add one, x = kill without replacement. */
	const struct { int at; char what; } plan[] = { { 80, 'k' }, { 220, 'a' }, { 350, 'k' },
						       { 480, 'x' }, { 600, 'k' }, { 750, 'k' } };
	unsigned seed = 20261202, rs = seed;
	int kills = 0, added = 0;
	char note[256];
	long long t0 = tk_now_ms();

	struct fk_watch *w =
		fk_usage_case_begin(&env, "f_workerkill", orgs, NORGS, "wk", &load, EVENTS, seed);
	for (int i = 0; i < 3; i++)
		add_worker(&crew, &env, extra);

	for (size_t p = 0; p < sizeof(plan) / sizeof(plan[0]); p++) {
		size_t at = load.n * (size_t)plan[p].at / 1000;
		long long deadline = tk_now_ms() + 120000;
		while (fk_watch_poll(w, 50) < at && tk_now_ms() < deadline)
			;
		usleep((useconds_t)(fk_rand(&rs) % 400) * 1000); /* a random moment of a batch */
		if (plan[p].what == 'a') {
			add_worker(&crew, &env, extra);
			added++;
			continue;
		}
		kill_one(&crew, &rs);
		kills++;
		if (plan[p].what == 'k')
			add_worker(&crew, &env, extra);
	}
	fk_watch_wait_all(w, 240000);
	int live = crew.n, bad_exit = fk_stop_all(crew.pid, crew.n, 30000);
	snprintf(note, sizeof(note),
		 "seed=%u sigkills=%d added=%d live_at_end=%d bad_exits=%d wall_ms=%lld", seed,
		 kills, added, live, bad_exit, tk_now_ms() - t0);
	fk_usage_account("usage_workers_sigkill", &env, &load, w, orgs, NORGS, note, &fig);
	ck_assert_int_eq(bad_exit, 0);
	fk_usage_case_end(&env, &load, w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_kills");
	TCase *tc = tcase_create("kills");

	tcase_set_timeout(tc, 360);
	tcase_add_test(tc, usage_workers_killed_at_random_moments);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
