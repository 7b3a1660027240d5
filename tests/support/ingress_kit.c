/* ingress_kit: see ingress_kit.h. */
#include "ingress_kit.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_kit.h"
#include "stripe_sig.h"

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static long request(const struct ik *ing, const char *path, const char *sig, const char *body,
		    int timeout_ms, long *ms)
{
	char url[256], h[512];
	struct curl_slist *hdrs = NULL;
	CURL *c = curl_easy_init();
	long status = 0;
	long long t0 = tk_now_ms();

	ck_assert(c != NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", ing->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	hdrs = curl_slist_append(hdrs, "Expect:");
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (sig) {
		snprintf(h, sizeof(h), "Stripe-Signature: %s", sig);
		hdrs = curl_slist_append(hdrs, h);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (ms)
		*ms = (long)(tk_now_ms() - t0);
	return status;
}

long ik_post(const struct ik *ing, const char *sig, const char *body, int timeout_ms, long *ms)
{
	return request(ing, IK_PATH, sig, body, timeout_ms, ms);
}

long ik_get(const struct ik *ing, const char *path, int timeout_ms)
{
	return request(ing, path, NULL, NULL, timeout_ms, NULL);
}

void ik_sign(char *out, size_t len, long long t, const char *body)
{
	char hex[65];

	ck_assert(bw_stripe_sig_sign(IK_SECRET, strlen(IK_SECRET), t, (const void *)body,
				     strlen(body), hex) == 0);
	snprintf(out, len, "t=%lld,v1=%s", t, hex);
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

void ik_start(struct ik *ing, const char *name, const char *const *extra)
{
	char port[32], topic[200], bro[160];
	const char *env[24] = { port, topic, bro, "HTTP_BIND=127.0.0.1", "WEBHOOK_PATH=" IK_PATH,
				"STRIPE_WEBHOOK_SECRET=" IK_SECRET, NULL };
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
	snprintf(bro, sizeof(bro), "KAFKA_BROKERS=%s", tk_brokers());
	snprintf(ing->log, sizeof(ing->log), "%s/%s.log", BW_BINARY_DIR, ing->topic);
	ing->pid = tk_spawn(BW_WEBHOOK_INGRESS_PATH, env, ing->log);
	fk_track(ing->pid);
	while (ik_get(ing, "/healthz", 1000) != 200) {
		ck_assert_msg(tk_now_ms() < deadline, "ingress did not start, see %s", ing->log);
		usleep(50000);
	}
}

int ik_stop(struct ik *ing)
{
	int rc = ing->pid > 0 ? fk_stop(ing->pid, 20000) : 0;
	ing->pid = 0;
	return rc;
}
