/* Integration tests of bw-webhook-ingress against the real local Kafka broker: the binary is
 * started as a process on a free port, requests are sent with libcurl, and what reached Kafka
 * is read back with tk_consume. A second instance points at a port where no broker listens
 * (the shared broker is never stopped) to check 503 and readiness. */
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingress_event.h"
#include "json.h"
#include "kafka_producer.h"
#include "stripe_sig.h"
#include "testkit.h"

#ifndef BW_WEBHOOK_INGRESS_PATH
#error "bw-webhook-ingress target missing"
#endif

#define SECRET_OLD "whsec_it_old_8dJ2kLmN4pQrS6tUvW"
#define SECRET_NEW "whsec_it_new_Zx9Cv8Bn7Mq6Wr5Ty4"
#define HOOK_PATH "/hooks/stripe-it"
#define MAX_BODY 4096
#define PUBLISH_TIMEOUT_MS 1500

struct ingress {
	pid_t pid;
	int port;
	char topic[128];
	char log[256];
};

static struct ingress up;   /* with the real broker */
static struct ingress down; /* KAFKA_BROKERS=127.0.0.1:1: nothing listens there */
static struct ingress big;  /* WEBHOOK_MAX_BODY_BYTES unset: derived from message.max.bytes */

struct http_resp {
	long status;
	char body[2048];
	size_t len;
};

static int free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct http_resp *r = arg;
	size_t len = size * n, room = sizeof(r->body) - 1 - r->len;
	size_t take = len < room ? len : room;

	memcpy(r->body + r->len, p, take);
	r->len += take;
	r->body[r->len] = '\0';
	return len;
}

static CURL *new_request(const struct ingress *ing, const char *method, const char *path,
			 const char *sig, const void *body, size_t len, struct http_resp *out,
			 struct curl_slist **hdrs)
{
	char url[256], h[9000];
	CURL *c = curl_easy_init();

	ck_assert(c != NULL);
	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", ing->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	/* Bound, not a timing assertion: a hung ingress fails instead of hanging the test. */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	*hdrs = curl_slist_append(NULL, "Expect:");
	*hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
	if (sig) {
		snprintf(h, sizeof(h), "Stripe-Signature: %s", sig);
		*hdrs = curl_slist_append(*hdrs, h);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (strcmp(method, body ? "POST" : "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	return c;
}

static void http(const struct ingress *ing, const char *method, const char *path,
		 const char *sig, const void *body, size_t len, struct http_resp *out)
{
	struct curl_slist *hdrs = NULL;
	CURL *c = new_request(ing, method, path, sig, body, len, out, &hdrs);
	CURLcode rc = curl_easy_perform(c);

	ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
}

/* "t=<t>,v1=<hmac>" under secret. */
static void sign(char *out, size_t len, const char *secret, long long t, const char *body)
{
	char hex[65];

	ck_assert(bw_stripe_sig_sign(secret, strlen(secret), t, (const void *)body, strlen(body),
				     hex) == 0);
	snprintf(out, len, "t=%lld,v1=%s", t, hex);
}

static void post_signed(const struct ingress *ing, const char *secret, long long t,
			const char *body, struct http_resp *out)
{
	char sig[128];

	sign(sig, sizeof(sig), secret, t, body);
	http(ing, "POST", HOOK_PATH, sig, body, strlen(body), out);
}

static void expect(const struct http_resp *r, long status, const char *body)
{
	ck_assert_msg(r->status == status && !strcmp(r->body, body), "got %ld %s, want %ld %s",
		      r->status, r->body, status, body);
}

static void free_msg(struct tk_msg *m);

/* The message whose stripe.event_id is id, or an empty tk_msg (value NULL). Reads every
 * partition from the start up to its high watermark at call time: everything the ingress
 * acknowledged before the call is there, so "absent" is a definite answer, not a timeout. */
static struct tk_msg find_event(const char *topic, const char *id)
{
	char errstr[512], group[96];
	struct tk_msg found = { 0 };
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk = NULL;
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_topic_t *rkt = NULL;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
	int64_t high[64];
	int np, left = 0;
	long long deadline = tk_now_ms() + 20000;

	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tk_brokers(), errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	ck_assert(rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	/* assign() needs a group id; this reader never commits. */
	tk_unique(group, sizeof(group), "it_ingress_reader");
	ck_assert(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
		  RD_KAFKA_CONF_OK);
	ck_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
				    sizeof(errstr)) == RD_KAFKA_CONF_OK);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "%s", errstr);
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	ck_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1);
	np = md->topics[0].partition_cnt;
	ck_assert(np > 0 && np <= 64);
	for (int p = 0; p < np; p++) {
		int64_t low;
		int32_t pid = md->topics[0].partitions[p].id;
		ck_assert(pid < 64);
		ck_assert(rd_kafka_query_watermark_offsets(rk, topic, pid, &low, &high[pid],
							   10000) == 0);
		if (high[pid] > low) {
			rd_kafka_topic_partition_list_add(parts, topic, pid)->offset = low;
			left++;
		}
	}
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	ck_assert(rd_kafka_assign(rk, parts) == 0);
	while (left > 0) {
		ck_assert_msg(tk_now_ms() < deadline, "reading %s timed out", topic);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (!m->err && m->offset < high[m->partition]) {
			rd_kafka_headers_t *h = NULL;
			const void *v = NULL;
			size_t vl = 0;
			if (!found.value && rd_kafka_message_headers(m, &h) == 0 &&
			    rd_kafka_header_get_last(h, "stripe.event_id", &v, &vl) == 0 &&
			    vl == strlen(id) && memcmp(v, id, vl) == 0) {
				found.key = m->key ? strndup(m->key, m->key_len) : NULL;
				found.value = strndup(m->payload, m->len);
				found.len = m->len;
				found.partition = m->partition;
				found.offset = m->offset;
				found.headers = rd_kafka_headers_copy(h);
			}
			if (m->offset + 1 == high[m->partition])
				left--;
		} else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			ck_abort_msg("consume %s: %s", topic, rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_topic_partition_list_destroy(parts);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return found;
}

static void free_msg(struct tk_msg *m)
{
	free(m->key);
	free(m->value);
	if (m->headers)
		rd_kafka_headers_destroy(m->headers);
}

/* max_body: a "WEBHOOK_MAX_BODY_BYTES=..." variable, or NULL for the derived default. */
static void start_with(struct ingress *ing, const char *brokers, const char *max_body)
{
	char port[32], topic[160], bro[160], logp[300];
	struct http_resp r;
	const char *env[] = { port, topic, bro, "HTTP_BIND=127.0.0.1",
			      "WEBHOOK_PATH=" HOOK_PATH,
			      "STRIPE_WEBHOOK_SECRET=" SECRET_OLD "," SECRET_NEW,
			      "INGRESS_PUBLISH_TIMEOUT_MS=1500",
			      "INGRESS_READY_TIMEOUT_MS=500", max_body, NULL };
	long long deadline = tk_now_ms() + 15000;

	tk_unique(ing->topic, sizeof(ing->topic), "it_ingress");
	tk_create_topic(ing->topic, 3, 0);
	ing->port = free_port();
	snprintf(port, sizeof(port), "HTTP_PORT=%d", ing->port);
	snprintf(topic, sizeof(topic), "STRIPE_EVENTS_TOPIC=%s", ing->topic);
	snprintf(bro, sizeof(bro), "KAFKA_BROKERS=%s", brokers);
	snprintf(ing->log, sizeof(ing->log), "%s/%s.log", BW_BINARY_DIR, ing->topic);
	snprintf(logp, sizeof(logp), "%s", ing->log);
	ing->pid = tk_spawn(BW_WEBHOOK_INGRESS_PATH, env, logp);
	for (;;) {
		struct curl_slist *hdrs = NULL;
		CURL *c = new_request(ing, "GET", "/healthz", NULL, NULL, 0, &r, &hdrs);
		CURLcode rc = curl_easy_perform(c);
		curl_easy_cleanup(c);
		curl_slist_free_all(hdrs);
		if (rc == CURLE_OK)
			break;
		ck_assert_msg(tk_now_ms() < deadline, "ingress did not start, see %s", ing->log);
		usleep(50000);
	}
}

static void start(struct ingress *ing, const char *brokers)
{
	start_with(ing, brokers, "WEBHOOK_MAX_BODY_BYTES=4096");
}

static void stop(struct ingress *ing)
{
	if (ing->pid > 0) {
		kill(ing->pid, SIGTERM);
		ck_assert_int_eq(tk_wait(ing->pid, 20000), 0);
	}
	ing->pid = 0;
}

static void setup_up(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	start(&up, tk_brokers());
}

static void teardown_up(void)
{
	stop(&up);
}

static void setup_big(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	start_with(&big, tk_brokers(), NULL);
}

static void teardown_big(void)
{
	stop(&big);
}

static void setup_down(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	start(&down, "127.0.0.1:1");
}

static void teardown_down(void)
{
	stop(&down);
}

/* ---- accepted events --------------------------------------------------------------- */

START_TEST(accepted_event_lands_raw_with_headers_and_customer_key)
{
	char id[64], body[512];
	struct http_resp r;

	tk_unique(id, sizeof(id), "evt_ok");
	/* Spacing, key order and a newline must survive byte for byte (the raw body is signed). */
	snprintf(body, sizeof(body),
		 "{ \"id\": \"%s\",\n  \"object\":\"event\", \"type\": \"checkout.session.completed\","
		 " \"data\": {\"object\": {\"id\": \"cs_1\", \"customer\": \"cus_KeyA\", "
		 "\"amount\": 1.50}} }",
		 id);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");

	struct tk_msg m = find_event(up.topic, id);
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
	free_msg(&m);
}
END_TEST

START_TEST(keys_follow_the_customer_else_the_event_id)
{
	char id1[64], id2[64], id3[64], body[512];
	struct http_resp r;
	struct tk_msg m;

	tk_unique(id1, sizeof(id1), "evt_cus");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"customer.updated\",\"data\":{\"object\":"
		 "{\"id\":\"cus_Self9\",\"object\":\"customer\"}}}", id1);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");
	tk_unique(id2, sizeof(id2), "evt_exp");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"invoice.paid\",\"data\":{\"object\":"
		 "{\"id\":\"in_1\",\"customer\":{\"id\":\"cus_Expanded\",\"object\":\"customer\"}}}}",
		 id2);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");
	tk_unique(id3, sizeof(id3), "evt_nocus");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"price.updated\",\"data\":{\"object\":{\"id\":\"price_1\"}}}",
		 id3);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");

	m = find_event(up.topic, id1);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_str_eq(m.key, "cus_Self9");
	free_msg(&m);
	m = find_event(up.topic, id2);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_str_eq(m.key, "cus_Expanded");
	free_msg(&m);
	m = find_event(up.topic, id3);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_str_eq(m.key, id3);
	free_msg(&m);
}
END_TEST

START_TEST(rotated_secret_is_accepted)
{
	char id[64], body[256];
	struct http_resp r;

	tk_unique(id, sizeof(id), "evt_rot");
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"customer.created\"}", id);
	post_signed(&up, SECRET_NEW, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");
	struct tk_msg m = find_event(up.topic, id);
	ck_assert_ptr_nonnull(m.value);
	free_msg(&m);
}
END_TEST

/* A body exactly at the limit passes; one byte more is 413. */
START_TEST(body_limit_is_inclusive_and_oversized_gets_413)
{
	char id[64], *body = malloc(MAX_BODY + 2);
	struct http_resp r;
	int head;

	ck_assert_ptr_nonnull(body);
	tk_unique(id, sizeof(id), "evt_big");
	head = snprintf(body, MAX_BODY + 2, "{\"id\":\"%s\",\"type\":\"x.y\",\"pad\":\"", id);
	memset(body + head, 'p', (size_t)(MAX_BODY - head - 2));
	memcpy(body + MAX_BODY - 2, "\"}", 3);
	ck_assert_uint_eq(strlen(body), MAX_BODY);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");

	memcpy(body + MAX_BODY - 2, "p\"}", 4);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 413, "{\"error\":\"payload_too_large\"}");
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
	struct http_resp r;
	char *body;

	tk_unique(id, sizeof(id), "evt_limit");
	body = padded_event(id, limit);
	post_signed(&big, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 200, "{\"received\":true}");
	struct tk_msg m = find_event(big.topic, id);
	ck_assert_ptr_nonnull(m.value);
	ck_assert_uint_eq(m.len, limit);
	free_msg(&m);
	free(body);

	tk_unique(id, sizeof(id), "evt_over");
	body = padded_event(id, limit + 1);
	post_signed(&big, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 413, "{\"error\":\"payload_too_large\"}");
	free(body);
}
END_TEST

/* Before: the default limit (1 MiB) was above what the producer sends (1,000,000 bytes), so
 * such a webhook got 503 and Stripe retried it until it gave up. */
START_TEST(a_body_the_producer_cannot_send_is_413_not_503)
{
	char id[64];
	struct http_resp r;
	char *body;

	tk_unique(id, sizeof(id), "evt_mib");
	body = padded_event(id, BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
	post_signed(&big, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 413, "{\"error\":\"payload_too_large\"}");
	free(body);
	struct tk_msg m = find_event(big.topic, id);
	ck_assert_ptr_null(m.value);
}
END_TEST

/* Many connections at once: every request is acknowledged and every event is in Kafka. */
START_TEST(concurrent_requests_are_all_acknowledged)
{
	enum { N = 40 };
	char ids[N][64], bodies[N][256], sigs[N][128];
	struct http_resp resp[N];
	struct curl_slist *hdrs[N];
	CURL *easy[N];
	CURLM *multi = curl_multi_init();
	int running = 0;

	for (int i = 0; i < N; i++) {
		tk_unique(ids[i], sizeof(ids[i]), "evt_conc");
		snprintf(bodies[i], sizeof(bodies[i]),
			 "{\"id\":\"%s\",\"type\":\"invoice.created\",\"data\":{\"object\":"
			 "{\"customer\":\"cus_C%d\"}}}", ids[i], i % 7);
		sign(sigs[i], sizeof(sigs[i]), SECRET_OLD, (long long)time(NULL), bodies[i]);
		easy[i] = new_request(&up, "POST", HOOK_PATH, sigs[i], bodies[i],
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
		expect(&resp[i], 200, "{\"received\":true}");
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
		curl_slist_free_all(hdrs[i]);
	}
	curl_multi_cleanup(multi);
	for (int i = 0; i < N; i += 13) {
		struct tk_msg m = find_event(up.topic, ids[i]);
		ck_assert_msg(m.value != NULL, "%s missing", ids[i]);
		free_msg(&m);
	}
}
END_TEST

/* ---- refusals ---------------------------------------------------------------------- */

/* Sends body with sig and expects 400 code; then proves nothing of it reached Kafka: a valid
 * sentinel sent afterwards is found and the refused event id is not. */
static void expect_refused_unpublished(const char *sig, const char *body, const char *id,
				       const char *code)
{
	char want[96], sid[64], sbody[256];
	struct http_resp r;

	http(&up, "POST", HOOK_PATH, sig, body, strlen(body), &r);
	snprintf(want, sizeof(want), "{\"error\":\"%s\"}", code);
	expect(&r, 400, want);
	tk_unique(sid, sizeof(sid), "evt_sentinel");
	snprintf(sbody, sizeof(sbody), "{\"id\":\"%s\",\"type\":\"sentinel\"}", sid);
	post_signed(&up, SECRET_OLD, (long long)time(NULL), sbody, &r);
	expect(&r, 200, "{\"received\":true}");
	struct tk_msg m = find_event(up.topic, sid);
	ck_assert_ptr_nonnull(m.value);
	free_msg(&m);
	m = find_event(up.topic, id);
	ck_assert_msg(m.value == NULL, "refused event %s was published", id);
}

START_TEST(forged_and_unsigned_requests_are_refused_and_not_published)
{
	char id[64], body[256], sig[128];
	long long now = (long long)time(NULL);

	tk_unique(id, sizeof(id), "evt_forged");
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"checkout.session.completed\"}", id);
	sign(sig, sizeof(sig), "whsec_attacker_guess", now, body);
	expect_refused_unpublished(sig, body, id, "signature_mismatch");
	expect_refused_unpublished(NULL, body, id, "signature_missing");
	expect_refused_unpublished("t=abc,v1=zz", body, id, "signature_malformed");
	sign(sig, sizeof(sig), SECRET_OLD, now, "{\"id\":\"other\",\"type\":\"x\"}");
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
	sign(sig, sizeof(sig), SECRET_OLD, now - 301 - 5, body);
	expect_refused_unpublished(sig, body, id, "timestamp_outside_tolerance");
	sign(sig, sizeof(sig), SECRET_OLD, now + 301 + 5, body);
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
	struct http_resp r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		post_signed(&up, SECRET_OLD, (long long)time(NULL), cases[i].body, &r);
		snprintf(want, sizeof(want), "{\"error\":\"%s\"}", cases[i].code);
		expect(&r, 400, want);
	}
}
END_TEST

START_TEST(routes_methods_and_probes)
{
	struct http_resp r;

	http(&up, "GET", HOOK_PATH, NULL, NULL, 0, &r);
	expect(&r, 405, "{\"error\":\"method_not_allowed\"}");
	http(&up, "PUT", HOOK_PATH, NULL, "{}", 2, &r);
	expect(&r, 405, "{\"error\":\"method_not_allowed\"}");
	/* The configured path replaces the default one. */
	http(&up, "POST", "/webhooks/stripe", NULL, "{}", 2, &r);
	expect(&r, 404, "{\"error\":\"not_found\"}");
	http(&up, "GET", "/", NULL, NULL, 0, &r);
	expect(&r, 404, "{\"error\":\"not_found\"}");
	http(&up, "POST", "/healthz", NULL, "{}", 2, &r);
	expect(&r, 405, "{\"error\":\"method_not_allowed\"}");
	http(&up, "GET", "/healthz", NULL, NULL, 0, &r);
	expect(&r, 200, "{\"status\":\"ok\"}");
	http(&up, "GET", "/readyz", NULL, NULL, 0, &r);
	expect(&r, 200, "{\"status\":\"ready\"}");
}
END_TEST

/* ---- broker unreachable ------------------------------------------------------------ */

START_TEST(broker_down_gives_503_and_publishes_nothing)
{
	char id[64], body[256];
	struct http_resp r;
	struct tk_msg *msgs = NULL;

	tk_unique(id, sizeof(id), "evt_down");
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
		 "{\"customer\":\"cus_Down\"}}}", id);
	/* Answered within the curl bound (30 s) although the deadline is 1.5 s: never hangs. */
	post_signed(&down, SECRET_OLD, (long long)time(NULL), body, &r);
	expect(&r, 503, "{\"error\":\"unavailable\"}");
	http(&down, "GET", "/readyz", NULL, NULL, 0, &r);
	expect(&r, 503, "{\"error\":\"unavailable\"}");
	http(&down, "GET", "/healthz", NULL, NULL, 0, &r);
	expect(&r, 200, "{\"status\":\"ok\"}");
	/* Refusals still work without a broker. */
	http(&down, "POST", HOOK_PATH, "t=1,v1=00", body, strlen(body), &r);
	expect(&r, 400, "{\"error\":\"signature_mismatch\"}");
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
	struct ingress ing;
	struct http_resp r;

	memset(&ing, 0, sizeof(ing));
	start(&ing, tk_brokers());
	http(&ing, "GET", "/healthz", NULL, NULL, 0, &r);
	expect(&r, 200, "{\"status\":\"ok\"}");
	stop(&ing); /* asserts exit status 0 */
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
	tcase_add_test(tc, forged_and_unsigned_requests_are_refused_and_not_published);
	tcase_add_test(tc, stale_and_future_timestamps_are_refused);
	tcase_add_test(tc, signed_but_malformed_events_are_400);
	tcase_add_test(tc, routes_methods_and_probes);
	suite_add_tcase(s, tc);

	tc = tcase_create("derived_limit");
	tcase_add_unchecked_fixture(tc, setup_big, teardown_big);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, derived_body_limit_is_inclusive_and_published);
	tcase_add_test(tc, a_body_the_producer_cannot_send_is_413_not_503);
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
