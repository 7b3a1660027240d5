/* ingress_kit: see ingress_kit.h. */
#include "ingress_kit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_kit.h"
#include "stripe_sig.h"

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct ik_resp *r = arg;
	size_t len = size * n, room = sizeof(r->body) - 1 - r->len;
	size_t take = len < room ? len : room;

	memcpy(r->body + r->len, p, take);
	r->len += take;
	r->body[r->len] = '\0';
	return len;
}

/* A new easy handle for method path (sig, body optional) answering into out within
 * timeout_ms; *hdrs is the header list the caller frees after the transfer. */
static CURL *request_new(const struct ik *ing, const char *method, const char *path,
			 const char *sig, const void *body, size_t len, long timeout_ms,
			 struct ik_resp *out, struct curl_slist **hdrs)
{
	char url[256], h[9000];
	CURL *c = curl_easy_init();

	ck_assert(c != NULL);
	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", ing->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
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

/* One request: CURLE_OK or the failure, the answer in *out. */
static CURLcode perform(const struct ik *ing, const char *method, const char *path,
			const char *sig, const void *body, size_t len, long timeout_ms,
			struct ik_resp *out)
{
	struct curl_slist *hdrs = NULL;
	CURL *c = request_new(ing, method, path, sig, body, len, timeout_ms, out, &hdrs);
	CURLcode rc = curl_easy_perform(c);

	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return rc;
}

CURL *ik_request_new(const struct ik *ing, const char *method, const char *path,
		     const char *sig, const void *body, size_t len, struct ik_resp *out,
		     struct curl_slist **hdrs)
{
	/* Bound, not a timing assertion: a hung ingress fails instead of hanging the test. */
	return request_new(ing, method, path, sig, body, len, 30000L, out, hdrs);
}

void ik_http(const struct ik *ing, const char *method, const char *path, const char *sig,
	     const void *body, size_t len, struct ik_resp *out)
{
	CURLcode rc = perform(ing, method, path, sig, body, len, 30000L, out);

	ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
}

void ik_http_signed(const struct ik *ing, const char *secret, const char *path,
		    const char *body, struct ik_resp *out)
{
	char sig[160];

	ik_sign_with(secret, sig, sizeof(sig), (long long)time(NULL), body);
	ik_http(ing, "POST", path, sig, body, strlen(body), out);
}

void ik_expect(const struct ik_resp *r, long status, const char *body)
{
	ck_assert_msg(r->status == status && !strcmp(r->body, body), "got %ld %s, want %ld %s",
		      r->status, r->body, status, body);
}

static long request(const struct ik *ing, const char *path, const char *sig, const char *body,
		    int timeout_ms, long *ms)
{
	struct ik_resp r;
	long long t0 = tk_now_ms();

	perform(ing, body ? "POST" : "GET", path, sig, body, body ? strlen(body) : 0,
		(long)timeout_ms, &r);
	if (ms)
		*ms = (long)(tk_now_ms() - t0);
	return r.status;
}

long ik_post(const struct ik *ing, const char *sig, const char *body, int timeout_ms, long *ms)
{
	return request(ing, IK_PATH, sig, body, timeout_ms, ms);
}

long ik_get(const struct ik *ing, const char *path, int timeout_ms)
{
	return request(ing, path, NULL, NULL, timeout_ms, NULL);
}

void ik_sign_with(const char *secret, char *out, size_t len, long long t, const char *body)
{
	char hex[65];

	ck_assert(bw_stripe_sig_sign(secret, strlen(secret), t, (const void *)body, strlen(body),
				     hex) == 0);
	snprintf(out, len, "t=%lld,v1=%s", t, hex);
}

void ik_sign(char *out, size_t len, long long t, const char *body)
{
	ik_sign_with(IK_SECRET, out, len, t, body);
}

long ik_post_signed(const struct ik *ing, const char *body, int timeout_ms, long *ms)
{
	char sig[160];

	ik_sign(sig, sizeof(sig), (long long)time(NULL), body);
	return ik_post(ing, sig, body, timeout_ms, ms);
}

void ik_event(char *out, size_t len, const char *id)
{
	snprintf(out, len,
		 "{\"id\":\"%s\",\"object\":\"event\",\"type\":\"customer.created\","
		 "\"created\":1764000000,\"data\":{\"object\":{\"id\":\"cus_fault\","
		 "\"object\":\"customer\"}}}",
		 id);
}

void ik_start_with(struct ik *ing, const char *name, const char *brokers, const char *path,
		   const char *secrets, const char *const *extra)
{
	char port[32], topic[200], bro[160], pathv[160], secv[300];
	const char *env[24] = { port, topic, bro, "HTTP_BIND=127.0.0.1", pathv, secv, NULL };
	int n = 6;
	long long deadline = tk_now_ms() + 20000;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (const char *const *e = extra; e && *e && n < 23; e++)
		env[n++] = *e;
	env[n] = NULL;
	tk_unique(ing->topic, sizeof(ing->topic), name);
	tk_create_topic(ing->topic, 3, 0);
	ing->port = fk_free_port();
	ck_assert(ing->port > 0);
	snprintf(port, sizeof(port), "HTTP_PORT=%d", ing->port);
	snprintf(topic, sizeof(topic), "STRIPE_EVENTS_TOPIC=%s", ing->topic);
	snprintf(bro, sizeof(bro), "KAFKA_BROKERS=%s", brokers ? brokers : tk_brokers());
	snprintf(pathv, sizeof(pathv), "WEBHOOK_PATH=%s", path ? path : IK_PATH);
	snprintf(secv, sizeof(secv), "STRIPE_WEBHOOK_SECRET=%s", secrets ? secrets : IK_SECRET);
	snprintf(ing->log, sizeof(ing->log), "%s/%s.log", BW_BINARY_DIR, ing->topic);
	ing->pid = tk_spawn(BW_WEBHOOK_INGRESS_PATH, env, ing->log);
	fk_track(ing->pid);
	while (ik_get(ing, "/healthz", 1000) == 0) {
		ck_assert_msg(tk_now_ms() < deadline, "ingress did not start, see %s", ing->log);
		usleep(50000);
	}
}

void ik_start(struct ik *ing, const char *name, const char *const *extra)
{
	long long deadline = tk_now_ms() + 20000;

	ik_start_with(ing, name, NULL, NULL, NULL, extra);
	while (ik_get(ing, "/healthz", 1000) != 200) {
		ck_assert_msg(tk_now_ms() < deadline, "ingress is not healthy, see %s", ing->log);
		usleep(50000);
	}
}

int ik_stop(struct ik *ing)
{
	int rc = ing->pid > 0 ? fk_stop(ing->pid, 20000) : 0;
	ing->pid = 0;
	return rc;
}

struct tk_msg ik_find_event(const char *topic, const char *id)
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

void ik_msg_free(struct tk_msg *m)
{
	free(m->key);
	free(m->value);
	if (m->headers)
		rd_kafka_headers_destroy(m->headers);
}
