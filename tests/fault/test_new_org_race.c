/* Fault suite: two usage workers and the stripe worker creating the same new orgs at once
 * (the shared stack). No org exists beforehand; every org gets usage events on two topics
 * (two usage workers in two groups, so both charge the org concurrently from their first
 * batch) and a paid credit purchase (the stripe worker, through metadata.org_id). All three
 * start together. Each org must end with exactly one customer document, the free grant once,
 * the purchase once, every event charged once (no rejection from a lost creation race) and
 * its counters equal to the sum of its records' breakdowns. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_kit.h"
#include "stripe_kit.h"

enum { ORGS = 60, PER_ORG = 6, CREDITS = 30 };

static void usage_events(struct fk_msg *msgs, char **vals, int side, long long *charged)
{
	for (int o = 0; o < ORGS; o++)
		for (int k = 0; k < PER_ORG; k++) {
			char buf[512], id[48], org[32];
			int i = o * PER_ORG + k;
			long long spus = 5 + (o + k + side) % 30;
			snprintf(id, sizeof(id), "n%d-%d-%d", side, o, k);
			snprintf(org, sizeof(org), "nw-%d", o);
			uk_event_json(buf, sizeof(buf), id, org, spus);
			vals[i] = strdup(buf);
			msgs[i] = (struct fk_msg){ .value = vals[i], .len = strlen(vals[i]),
						   .partition = 0 };
			charged[o] += spus;
		}
}

START_TEST(two_usage_workers_and_the_stripe_worker_create_one_org)
{
	enum { N = ORGS * PER_ORG };
	struct uk_env ua, ub;
	struct sk_env sk;
	static struct fk_msg ma[N], mb[N];
	static char *va[N], *vb[N];
	long long charged[ORGS] = { 0 };
	const char *extra[] = { "BATCH_MAX=20", NULL };
	char line[512], dbname[96];
	size_t applied = 0, bad_orgs = 0, answered = 0, stripe_ok = 0;
	long long t0 = tk_now_ms();

	uk_env_init(&ua, "f_neworg_a", 1);
	uk_env_init(&ub, "f_neworg_b", 1);
	snprintf(dbname, sizeof(dbname), "%s", ua.db);
	snprintf(ub.db, sizeof(ub.db), "%s", dbname);
	sk_env_init(&sk, "f_neworg_stripe", BW_STRIPE_WORKER_PATH);
	snprintf(sk.db, sizeof(sk.db), "%s", dbname);
	usage_events(ma, va, 0, charged);
	usage_events(mb, vb, 1, charged);
	fk_produce(ua.topic, ma, N, NULL);
	fk_produce(ub.topic, mb, N, NULL);
	for (int o = 0; o < ORGS; o++) {
		json_t *ev = sk_fixture("checkout_session_completed.json");
		char id[64], sid[64], org[32], credits[16], cus[32];
		snprintf(id, sizeof(id), "evt_new_%d", o);
		snprintf(sid, sizeof(sid), "cs_new_%d", o);
		snprintf(org, sizeof(org), "nw-%d", o);
		snprintf(credits, sizeof(credits), "%d", CREDITS);
		sk_set_str(ev, "id", id);
		sk_set_str(ev, "data.object.id", sid);
		snprintf(cus, sizeof(cus), "cus_new_%d", o);
		sk_set_str(ev, "data.object.customer", cus);
		sk_set_str(ev, "data.object.metadata.org_id", org);
		sk_set_str(ev, "data.object.metadata.credits", credits);
		sk_produce(&sk, ev);
		json_decref(ev);
	}

	/* All three at once. */
	char idle[32] = "IDLE_EXIT_MS=5000";
	const char *uextra[] = { idle, "BATCH_MAX=20", NULL };
	pid_t pa = uk_start_worker(&ua, uextra);
	pid_t pb = uk_start_worker(&ub, uextra);
	pid_t ps = sk_start_worker(&sk, extra, 5000);
	fk_track(pa);
	fk_track(pb);
	fk_track(ps);
	struct fk_watch *wa = fk_watch_new(ua.results, ua.topic, ma, N);
	struct fk_watch *wb = fk_watch_new(ub.results, ub.topic, mb, N);
	fk_watch_wait_all(wa, 120000);
	fk_watch_wait_all(wb, 120000);
	int bad_exit = (fk_stop(pa, 60000) != 0) + (fk_stop(pb, 60000) != 0) +
		       (tk_wait(ps, 60000) != 0);
	fk_watch_poll(wa, 500);
	answered = fk_watch_poll(wa, 0) + fk_watch_poll(wb, 0);
	for (size_t i = 0; i < N; i++)
		applied += fk_watch_seen(wa, i, "applied") + fk_watch_seen(wb, i, "applied");
	json_t *sres = sk_read_json(sk.results, ORGS), *r;
	size_t i;
	json_array_foreach(sres, i, r)
		stripe_ok += strcmp(sk_status(r), "applied") == 0;
	json_decref(sres);

	json_t *docs = tk_mongo_find(dbname, "payments_customers", "{}");
	json_t *recs = tk_mongo_find(dbname, "payments_usage_records", "{}");
	for (int o = 0; o < ORGS; o++) {
		char org[32];
		long long sum[5] = { 0 }, have[4];
		int ndocs = 0, nrecs = 0;
		json_t *doc = NULL;
		snprintf(org, sizeof(org), "nw-%d", o);
		json_array_foreach(docs, i, r)
			if (!strcmp(json_string_value(json_object_get(r, "org_id")), org)) {
				ndocs++;
				doc = r;
			}
		json_array_foreach(recs, i, r)
			if (!strcmp(json_string_value(json_object_get(r, "org_id")), org)) {
				nrecs++;
				sum[0] += tk_int(r, "from_subscription");
				sum[1] += tk_int(r, "from_purchased");
				sum[2] += tk_int(r, "from_granted");
				sum[3] += tk_int(r, "from_paid");
				sum[4] += tk_int(r, "spus");
			}
		int ok = ndocs == 1 && nrecs == 2 * PER_ORG && sum[4] == charged[o];
		if (doc) {
			have[0] = tk_int(doc, "subscription_spus_used");
			have[1] = tk_int(doc, "purchased_credits_used");
			have[2] = tk_int(doc, "granted_credits_used");
			have[3] = tk_int(doc, "paid_spus_used");
			ok = ok && tk_int(doc, "granted_credits") == 100 &&
			     tk_int(doc, "purchased_credits") == CREDITS;
			for (int k = 0; k < 4; k++)
				ok = ok && have[k] == sum[k];
		}
		if (!ok) {
			fprintf(stderr, "org %s: docs=%d records=%d/%d charged %lld of %lld\n", org,
				ndocs, nrecs, 2 * PER_ORG, sum[4], charged[o]);
			bad_orgs++;
		}
	}
	snprintf(line, sizeof(line),
		 "FIGURES new_org_race sent=%d applied=%zu duplicates=0 dlq=n/a lost=%zu "
		 "double_applied=n/a | orgs=%d orgs_off=%zu stripe_applied=%zu/%d "
		 "customer_docs=%zu bad_exits=%d wall_ms=%lld",
		 2 * N + ORGS, applied + stripe_ok, (size_t)(2 * N) - answered, ORGS, bad_orgs,
		 stripe_ok, ORGS, json_array_size(docs), bad_exit, tk_now_ms() - t0);
	fk_figures_line(line);
	ck_assert_int_eq(answered, 2 * N);
	ck_assert_int_eq(applied, 2 * N);
	ck_assert_int_eq(stripe_ok, ORGS);
	ck_assert_int_eq(json_array_size(docs), ORGS);
	ck_assert_int_eq(bad_orgs, 0);
	ck_assert_int_eq(bad_exit, 0);
	json_decref(docs);
	json_decref(recs);
	fk_watch_destroy(wa);
	fk_watch_destroy(wb);
	for (int k = 0; k < N; k++) {
		free(va[k]);
		free(vb[k]);
	}
	tk_mongo_drop(dbname);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("new_org_race");
	TCase *tc = tcase_create("race");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, two_usage_workers_and_the_stripe_worker_create_one_org);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
