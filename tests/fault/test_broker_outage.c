/* Fault suite: the Kafka broker dies under load. On a PRIVATE broker (the shared MongoDB-wire
 * server is used as is), two usage workers charge a load and the webhook ingress takes
 * signed webhooks while the broker is killed with SIGKILL and restarted. The workers must
 * recover by themselves (results and offsets of batches in flight are published/stored only
 * after the broker is back: nothing lost, nothing charged twice), and the ingress must answer
 * 503 while the broker is down (Stripe retries) and 2xx once it is back.
 * Prints one line of figures; checks every input answered, every distinct event recorded
 * once, every org's counters equal the reference and the sum of its records. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_kit.h"
#include "ingress_kit.h"

static struct fk_stack stack;

enum { NORGS = 100 };

START_TEST(broker_killed_and_restarted_mid_load)
{
	struct uk_env env;
	struct uk_org orgs[NORGS];
	struct fk_load load;
	struct fk_figures fig;
	struct ik ing;
	pid_t pids[2];
	const char *extra[] = { "BATCH_MAX=50", "RDKAFKA_SESSION_TIMEOUT_MS=6000", NULL };
	const char *ik_extra[] = { "INGRESS_PUBLISH_TIMEOUT_MS=1500",
				   "INGRESS_READY_TIMEOUT_MS=500", NULL };
	char body[512], id[64], note[400];
	long ms, status, max_ms_up = 0;
	int n503 = 0, ndown = 0, acked_after = 0, tries_after = 0;
	long long t0 = tk_now_ms(), down_ms, back_ms;

	struct fk_watch *w =
		fk_usage_case_begin(&env, "f_brokerkill", orgs, NORGS, "brk", &load, 4000, 31);
	ik_start(&ing, "f_brokerkill_hooks", ik_extra);
	ik_event(body, sizeof(body), "evt_before");
	ck_assert_int_eq(ik_post_signed(&ing, body, 10000, NULL), 200);
	fk_start_usage(&env, pids, 2, extra);

	long long deadline = tk_now_ms() + 120000;
	while (fk_watch_poll(w, 100) < load.n * 3 / 10 && tk_now_ms() < deadline)
		;
	down_ms = tk_now_ms();
	fk_stack_signal(&stack, "kafka", SIGKILL);
	/* While it is down: every signed webhook is refused with 503, readiness says 503. */
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "evt_down_%d", i);
		ik_event(body, sizeof(body), id);
		status = ik_post_signed(&ing, body, 10000, &ms);
		ndown++;
		n503 += status == 503;
	}
	long ready_down = ik_get(&ing, "/readyz", 5000);
	fk_stack_restart(&stack, "kafka");
	back_ms = tk_now_ms();
	/* Back: the first 2xx within 60 s, then every request acknowledged. */
	for (status = 0; status != 200 && tk_now_ms() < back_ms + 60000; tries_after++) {
		snprintf(id, sizeof(id), "evt_back_%d", tries_after);
		ik_event(body, sizeof(body), id);
		status = ik_post_signed(&ing, body, 10000, &ms);
		if (status != 200)
			usleep(250000);
	}
	long long first_2xx_ms = tk_now_ms() - back_ms;
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "evt_after_%d", i);
		ik_event(body, sizeof(body), id);
		acked_after += ik_post_signed(&ing, body, 10000, &ms) == 200;
		if (ms > max_ms_up)
			max_ms_up = ms;
	}
	fk_watch_wait_all(w, 180000);
	int bad_exit = fk_stop_all(pids, 2, 30000) + (ik_stop(&ing) != 0);
	snprintf(note, sizeof(note),
		 "broker_down_ms=%lld ingress_503=%d/%d readyz_down=%ld first_2xx_after_restart_ms=%lld "
		 "acked_after=%d/5 max_ack_ms_after=%ld bad_exits=%d wall_ms=%lld",
		 back_ms - down_ms, n503, ndown, ready_down, first_2xx_ms, acked_after, max_ms_up,
		 bad_exit, tk_now_ms() - t0);
	fk_usage_account("broker_sigkill_restart", &env, &load, w, orgs, NORGS, note, &fig);
	ck_assert_int_eq(n503, ndown);
	ck_assert_int_eq(ready_down, 503);
	ck_assert_int_eq(acked_after, 5);
	ck_assert_int_eq(bad_exit, 0);
	fk_usage_case_end(&env, &load, w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broker_outage");
	TCase *tc = tcase_create("broker");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, broker_killed_and_restarted_mid_load);
	suite_add_tcase(s, tc);
	return fk_run_with_stack(s, &stack, "broker_outage", 1, 0);
}
