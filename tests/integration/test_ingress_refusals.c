/* Integration tests of bw-webhook-ingress against the real local Kafka broker, the refusing
 * side: forged, unsigned, stale and malformed requests are refused and nothing of them is
 * published, routes and probes; a second instance points at a port where no broker listens
 * (the shared broker is never stopped) for 503 and readiness; configuration refused at start
 * (exit 2) and a clean SIGTERM. Accepted events are in test_ingress.c. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingress_it.h"
#include "ingress_kit.h"

static struct ik up;   /* with the real broker */
static struct ik down; /* KAFKA_BROKERS=127.0.0.1:1: nothing listens there */

static void setup_up(void)
{
	start(&up, NULL, MAX_BODY_VAR);
}

static void teardown_up(void)
{
	stop(&up);
}

static void setup_down(void)
{
	start(&down, "127.0.0.1:1", MAX_BODY_VAR);
}

static void teardown_down(void)
{
	stop(&down);
}

/* ---- refusals ---------------------------------------------------------------------- */

/* Sends body with sig and expects 400 code; then proves nothing of it reached Kafka: a valid
 * sentinel sent afterwards is found and the refused event id is not. */
static void expect_refused_unpublished(const char *sig, const char *body, const char *id,
				       const char *code)
{
	char want[96], sid[64], sbody[256];
	struct ik_resp r;

	ik_http(&up, "POST", HOOK_PATH, sig, body, strlen(body), &r);
	snprintf(want, sizeof(want), "{\"error\":\"%s\"}", code);
	ik_expect(&r, 400, want);
	tk_unique(sid, sizeof(sid), "evt_sentinel");
	snprintf(sbody, sizeof(sbody), "{\"id\":\"%s\",\"type\":\"sentinel\"}", sid);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, sbody, &r);
	ik_expect(&r, 200, "{\"received\":true}");
	struct tk_msg m = ik_find_event(up.topic, sid);
	ck_assert_ptr_nonnull(m.value);
	ik_msg_free(&m);
	m = ik_find_event(up.topic, id);
	ck_assert_msg(m.value == NULL, "refused event %s was published", id);
}

START_TEST(forged_and_unsigned_requests_are_refused_and_not_published)
{
	char id[64], body[256], sig[128];
	long long now = (long long)time(NULL);

	tk_unique(id, sizeof(id), "evt_forged");
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"checkout.session.completed\"}", id);
	ik_sign_with("whsec_attacker_guess", sig, sizeof(sig), now, body);
	expect_refused_unpublished(sig, body, id, "signature_mismatch");
	expect_refused_unpublished(NULL, body, id, "signature_missing");
	expect_refused_unpublished("t=abc,v1=zz", body, id, "signature_malformed");
	ik_sign_with(SECRET_OLD, sig, sizeof(sig), now, "{\"id\":\"other\",\"type\":\"x\"}");
	expect_refused_unpublished(sig, body, id, "signature_mismatch"); /* tampered body */
	snprintf(sig, sizeof(sig), "t=%lld,v0=abcdef", now);
	expect_refused_unpublished(sig, body, id, "signature_no_v1");
}
END_TEST

START_TEST(stale_and_future_timestamps_are_refused)
{
	char id[64], body[256], sig[128];
	long long now = (long long)time(NULL);

	tk_unique(id, sizeof(id), "evt_stale");
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"invoice.paid\"}", id);
	ik_sign_with(SECRET_OLD, sig, sizeof(sig), now - 301 - 5, body);
	expect_refused_unpublished(sig, body, id, "timestamp_outside_tolerance");
	ik_sign_with(SECRET_OLD, sig, sizeof(sig), now + 301 + 5, body);
	expect_refused_unpublished(sig, body, id, "timestamp_outside_tolerance");
}
END_TEST

START_TEST(signed_but_malformed_events_are_400)
{
	struct {
		const char *body, *code;
	} cases[] = {
		{ "{\"id\":\"evt_bad1\",\"type\":", "invalid_json" },
		{ "[\"evt_bad2\"]", "invalid_json" },
		{ "", "invalid_json" },
		{ "{\"id\":\"evt_bad3\",\"id\":\"evt_dup\",\"type\":\"x\"}", "invalid_json" },
		{ "{\"type\":\"customer.created\"}", "invalid_event" },
		{ "{\"id\":\"evt_bad4\"}", "invalid_event" },
		{ "{\"id\":42,\"type\":\"x\"}", "invalid_event" },
		{ "{\"id\":\"\",\"type\":\"x\"}", "invalid_event" },
	};
	char want[96];
	struct ik_resp r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ik_http_signed(&up, SECRET_OLD, HOOK_PATH, cases[i].body, &r);
		snprintf(want, sizeof(want), "{\"error\":\"%s\"}", cases[i].code);
		ik_expect(&r, 400, want);
	}
}
END_TEST

START_TEST(routes_methods_and_probes)
{
	struct ik_resp r;

	ik_http(&up, "GET", HOOK_PATH, NULL, NULL, 0, &r);
	ik_expect(&r, 405, "{\"error\":\"method_not_allowed\"}");
	ik_http(&up, "PUT", HOOK_PATH, NULL, "{}", 2, &r);
	ik_expect(&r, 405, "{\"error\":\"method_not_allowed\"}");
	/* The configured path replaces the default one. */
	ik_http(&up, "POST", "/webhooks/stripe", NULL, "{}", 2, &r);
	ik_expect(&r, 404, "{\"error\":\"not_found\"}");
	ik_http(&up, "GET", "/", NULL, NULL, 0, &r);
	ik_expect(&r, 404, "{\"error\":\"not_found\"}");
	ik_http(&up, "POST", "/healthz", NULL, "{}", 2, &r);
	ik_expect(&r, 405, "{\"error\":\"method_not_allowed\"}");
	ik_http(&up, "GET", "/healthz", NULL, NULL, 0, &r);
	ik_expect(&r, 200, "{\"status\":\"ok\"}");
	ik_http(&up, "GET", "/readyz", NULL, NULL, 0, &r);
	ik_expect(&r, 200, "{\"status\":\"ready\"}");
}
END_TEST

/* ---- broker unreachable ------------------------------------------------------------ */

START_TEST(broker_down_gives_503_and_publishes_nothing)
{
	char id[64], body[256];
	struct ik_resp r;
	struct tk_msg *msgs = NULL;

	tk_unique(id, sizeof(id), "evt_down");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
		 "{\"customer\":\"cus_Down\"}}}", id);
	/* Answered within the curl bound (30 s) although the deadline is 1.5 s: never hangs. */
	ik_http_signed(&down, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 503, "{\"error\":\"unavailable\"}");
	ik_http(&down, "GET", "/readyz", NULL, NULL, 0, &r);
	ik_expect(&r, 503, "{\"error\":\"unavailable\"}");
	ik_http(&down, "GET", "/healthz", NULL, NULL, 0, &r);
	ik_expect(&r, 200, "{\"status\":\"ok\"}");
	/* Refusals still work without a broker. */
	ik_http(&down, "POST", HOOK_PATH, "t=1,v1=00", body, strlen(body), &r);
	ik_expect(&r, 400, "{\"error\":\"signature_mismatch\"}");
	ck_assert_uint_eq(tk_consume(down.topic, 1, 2000, &msgs), 0);
	tk_msgs_free(msgs, 0);
}
END_TEST

/* ---- process lifecycle ------------------------------------------------------------- */

START_TEST(bad_secret_config_exits_2)
{
	const char *env[] = { "STRIPE_WEBHOOK_SECRET=sk_live_not_a_webhook_secret", "HTTP_PORT=0",
			      NULL };
	const char *env2[] = { "STRIPE_WEBHOOK_SECRET=whsec_ok,", "HTTP_PORT=0", NULL };
	char logp[300];

	snprintf(logp, sizeof(logp), "%s/it_ingress_badcfg.log", BW_BINARY_DIR);
	ck_assert_int_eq(tk_wait(tk_spawn(BW_WEBHOOK_INGRESS_PATH, env, logp), 10000), 2);
	ck_assert_int_eq(tk_wait(tk_spawn(BW_WEBHOOK_INGRESS_PATH, env2, logp), 10000), 2);
}
END_TEST

/* A configured body limit the producer could not publish is refused at start. */
START_TEST(body_limit_above_the_producer_limit_exits_2)
{
	const char *env[] = { "STRIPE_WEBHOOK_SECRET=" SECRET_OLD, "HTTP_PORT=0",
			      "WEBHOOK_MAX_BODY_BYTES=1048576", NULL };
	const char *ok[] = { "STRIPE_WEBHOOK_SECRET=" SECRET_OLD, "HTTP_PORT=0",
			     "WEBHOOK_MAX_BODY_BYTES=1048576", "KAFKA_MESSAGE_MAX_BYTES=2000000",
			     "KAFKA_BROKERS=127.0.0.1:1", NULL };
	char logp[300];

	snprintf(logp, sizeof(logp), "%s/it_ingress_badlimit.log", BW_BINARY_DIR);
	ck_assert_int_eq(tk_wait(tk_spawn(BW_WEBHOOK_INGRESS_PATH, env, logp), 10000), 2);
	/* consistent once the producer's limit is raised: it starts (and stops on SIGTERM) */
	pid_t pid = tk_spawn(BW_WEBHOOK_INGRESS_PATH, ok, logp);
	usleep(1500000);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tk_wait(pid, 20000), 0);
}
END_TEST

START_TEST(sigterm_stops_cleanly)
{
	struct ik ing;
	struct ik_resp r;

	memset(&ing, 0, sizeof(ing));
	start(&ing, NULL, MAX_BODY_VAR);
	ik_http(&ing, "GET", "/healthz", NULL, NULL, 0, &r);
	ik_expect(&r, 200, "{\"status\":\"ok\"}");
	ck_assert_int_eq(ik_stop(&ing), 0);
}
END_TEST

static Suite *ingress_suite(void)
{
	Suite *s = suite_create("webhook_ingress_refusals");
	TCase *tc = tcase_create("broker_up");

	tcase_add_unchecked_fixture(tc, setup_up, teardown_up);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, forged_and_unsigned_requests_are_refused_and_not_published);
	tcase_add_test(tc, stale_and_future_timestamps_are_refused);
	tcase_add_test(tc, signed_but_malformed_events_are_400);
	tcase_add_test(tc, routes_methods_and_probes);
	suite_add_tcase(s, tc);

	tc = tcase_create("broker_down");
	tcase_add_unchecked_fixture(tc, setup_down, teardown_down);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, broker_down_gives_503_and_publishes_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, bad_secret_config_exits_2);
	tcase_add_test(tc, body_limit_above_the_producer_limit_exits_2);
	tcase_add_test(tc, sigterm_stops_cleanly);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(ingress_suite());
}
