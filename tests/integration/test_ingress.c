/* Integration tests of bw-webhook-ingress against the real local Kafka broker, the accepted
 * side: the binary is started as a process on a free port (tests/support/ingress_kit),
 * requests are sent with libcurl, and what reached Kafka is read back: raw bytes and headers,
 * keys, secret rotation, body limits (configured and derived from the producer's limit) and
 * concurrent requests. Refusals, an unreachable broker and the process lifecycle are in
 * test_ingress_refusals.c. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingress_it.h"
#include "ingress_kit.h"
#include "ingress_event.h"
#include "json.h"
#include "kafka_producer.h"

static struct ik up;  /* with the real broker */
static struct ik big; /* WEBHOOK_MAX_BODY_BYTES unset: derived from message.max.bytes */

static void setup_up(void)
{
	start(&up, NULL, MAX_BODY_VAR);
}

static void teardown_up(void)
{
	stop(&up);
}

static void setup_big(void)
{
	start(&big, NULL, NULL);
}

static void teardown_big(void)
{
	stop(&big);
}

START_TEST(accepted_event_lands_raw_with_headers_and_customer_key)
{
	char id[64], body[512];
	struct ik_resp r;

	tk_unique(id, sizeof(id), "evt_ok");
	/* Spacing, key order and a newline must survive byte for byte (the raw body is signed). */
	snprintf(body, sizeof(body),
		 "{ \"id\": \"%s\",\n  \"object\":\"event\", \"type\": \"checkout.session.completed\","
		 " \"data\": {\"object\": {\"id\": \"cs_1\", \"customer\": \"cus_KeyA\", "
		 "\"amount\": 1.50}} }",
		 id);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");

	struct tk_msg m = ik_find_event(up.topic, id);
	ck_assert_msg(m.value != NULL, "accepted event %s not in Kafka", id);
	ck_assert_uint_eq(m.len, strlen(body));
	ck_assert_mem_eq(m.value, body, m.len);
	ck_assert_str_eq(m.key, "cus_KeyA");
	char *type = tk_header(&m, "stripe.event_type");
	char *at = tk_header(&m, "stripe.received_at");
	char *ver = tk_header(&m, "stripe.signature_verified");
	ck_assert_str_eq(type, "checkout.session.completed");
	ck_assert_str_eq(ver, "true");
	ck_assert_msg(at && bw_json_check_rfc3339(at) == 0, "received_at %s", at ? at : "(none)");
	free(type);
	free(at);
	free(ver);
	ik_msg_free(&m);
}
END_TEST

START_TEST(keys_follow_the_customer_else_the_event_id)
{
	char id1[64], id2[64], id3[64], body[512];
	struct ik_resp r;
	struct tk_msg m;

	tk_unique(id1, sizeof(id1), "evt_cus");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"customer.updated\",\"data\":{\"object\":"
		 "{\"id\":\"cus_Self9\",\"object\":\"customer\"}}}", id1);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");
	tk_unique(id2, sizeof(id2), "evt_exp");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"invoice.paid\",\"data\":{\"object\":"
		 "{\"id\":\"in_1\",\"customer\":{\"id\":\"cus_Expanded\",\"object\":\"customer\"}}}}",
		 id2);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");
	tk_unique(id3, sizeof(id3), "evt_nocus");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"price.updated\",\"data\":{\"object\":{\"id\":\"price_1\"}}}",
		 id3);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");

	m = ik_find_event(up.topic, id1);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_str_eq(m.key, "cus_Self9");
	ik_msg_free(&m);
	m = ik_find_event(up.topic, id2);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_str_eq(m.key, "cus_Expanded");
	ik_msg_free(&m);
	m = ik_find_event(up.topic, id3);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_str_eq(m.key, id3);
	ik_msg_free(&m);
}
END_TEST

START_TEST(rotated_secret_is_accepted)
{
	char id[64], body[256];
	struct ik_resp r;

	tk_unique(id, sizeof(id), "evt_rot");
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"customer.created\"}", id);
	ik_http_signed(&up, SECRET_NEW, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");
	struct tk_msg m = ik_find_event(up.topic, id);
	ck_assert_ptr_nonnull(m.value);
	ik_msg_free(&m);
}
END_TEST

/* A body exactly at the limit passes; one byte more is 413. */
START_TEST(body_limit_is_inclusive_and_oversized_gets_413)
{
	char id[64], *body = malloc(MAX_BODY + 2);
	struct ik_resp r;
	int head;

	ck_assert_ptr_nonnull(body);
	tk_unique(id, sizeof(id), "evt_big");
	head = snprintf(body, MAX_BODY + 2, "{\"id\":\"%s\",\"type\":\"x.y\",\"pad\":\"", id);
	memset(body + head, 'p', (size_t)(MAX_BODY - head - 2));
	memcpy(body + MAX_BODY - 2, "\"}", 3);
	ck_assert_uint_eq(strlen(body), MAX_BODY);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");

	memcpy(body + MAX_BODY - 2, "p\"}", 4);
	ik_http_signed(&up, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 413, "{\"error\":\"payload_too_large\"}");
	free(body);
}
END_TEST

/* A new signed-able event of exactly size bytes (caller frees). */
static char *padded_event(const char *id, size_t size)
{
	char *body = malloc(size + 1);
	int head;

	ck_assert_ptr_nonnull(body);
	head = snprintf(body, size + 1, "{\"id\":\"%s\",\"type\":\"x.y\",\"pad\":\"", id);
	ck_assert((size_t)head + 2 < size);
	memset(body + head, 'p', size - (size_t)head - 2);
	memcpy(body + size - 2, "\"}", 3);
	return body;
}

/* Issue 11 defect 3: the default body limit derives from the producer's message.max.bytes
 * (librdkafka's default here), so a body at the limit is published (and would fit the stripe
 * worker's DLQ with its body) and one byte more is 413. */
START_TEST(derived_body_limit_is_inclusive_and_published)
{
	size_t limit = bw_ingress_max_body(BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
	char id[64];
	struct ik_resp r;
	char *body;

	tk_unique(id, sizeof(id), "evt_limit");
	body = padded_event(id, limit);
	ik_http_signed(&big, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 200, "{\"received\":true}");
	struct tk_msg m = ik_find_event(big.topic, id);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_uint_eq(m.len, limit);
	ik_msg_free(&m);
	free(body);

	tk_unique(id, sizeof(id), "evt_over");
	body = padded_event(id, limit + 1);
	ik_http_signed(&big, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 413, "{\"error\":\"payload_too_large\"}");
	free(body);
}
END_TEST

/* Before: the default limit (1 MiB) was above what the producer sends (1,000,000 bytes), so
 * such a webhook got 503 and Stripe retried it until it gave up. */
START_TEST(a_body_the_producer_cannot_send_is_413_not_503)
{
	char id[64];
	struct ik_resp r;
	char *body;

	tk_unique(id, sizeof(id), "evt_mib");
	body = padded_event(id, BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
	ik_http_signed(&big, SECRET_OLD, HOOK_PATH, body, &r);
	ik_expect(&r, 413, "{\"error\":\"payload_too_large\"}");
	free(body);
	struct tk_msg m = ik_find_event(big.topic, id);
	ck_assert_ptr_null(m.value);
}
END_TEST

/* Many connections at once: every request is acknowledged and every event is in Kafka. */
START_TEST(concurrent_requests_are_all_acknowledged)
{
	enum { N = 40 };
	char ids[N][64], bodies[N][256], sigs[N][128];
	struct ik_resp resp[N];
	struct curl_slist *hdrs[N];
	CURL *easy[N];
	CURLM *multi = curl_multi_init();
	int running = 0;

	for (int i = 0; i < N; i++) {
		tk_unique(ids[i], sizeof(ids[i]), "evt_conc");
		snprintf(bodies[i], sizeof(bodies[i]),
			 "{\"id\":\"%s\",\"type\":\"invoice.created\",\"data\":{\"object\":"
			 "{\"customer\":\"cus_C%d\"}}}", ids[i], i % 7);
		ik_sign_with(SECRET_OLD, sigs[i], sizeof(sigs[i]), (long long)time(NULL), bodies[i]);
		easy[i] = ik_request_new(&up, "POST", HOOK_PATH, sigs[i], bodies[i],
				      strlen(bodies[i]), &resp[i], &hdrs[i]);
		curl_multi_add_handle(multi, easy[i]);
	}
	do {
		ck_assert(curl_multi_perform(multi, &running) == CURLM_OK);
		if (running)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	} while (running);
	for (int i = 0; i < N; i++) {
		curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &resp[i].status);
		ik_expect(&resp[i], 200, "{\"received\":true}");
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
		curl_slist_free_all(hdrs[i]);
	}
	curl_multi_cleanup(multi);
	for (int i = 0; i < N; i += 13) {
		struct tk_msg m = ik_find_event(up.topic, ids[i]);
		ck_assert_msg(m.value != NULL, "%s missing", ids[i]);
		ik_msg_free(&m);
	}
}
END_TEST

static Suite *ingress_suite(void)
{
	Suite *s = suite_create("webhook_ingress");
	TCase *tc = tcase_create("broker_up");

	tcase_add_unchecked_fixture(tc, setup_up, teardown_up);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, accepted_event_lands_raw_with_headers_and_customer_key);
	tcase_add_test(tc, keys_follow_the_customer_else_the_event_id);
	tcase_add_test(tc, rotated_secret_is_accepted);
	tcase_add_test(tc, body_limit_is_inclusive_and_oversized_gets_413);
	tcase_add_test(tc, concurrent_requests_are_all_acknowledged);
	suite_add_tcase(s, tc);

	tc = tcase_create("derived_limit");
	tcase_add_unchecked_fixture(tc, setup_big, teardown_big);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, derived_body_limit_is_inclusive_and_published);
	tcase_add_test(tc, a_body_the_producer_cannot_send_is_413_not_503);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(ingress_suite());
}
