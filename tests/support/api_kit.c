/* api_kit: see api_kit.h. */
#include "api_kit.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testkit.h"

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

struct buf {
	char *p;
	size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;
	char *np = realloc(b->p, b->len + len + 1);

	if (!np)
		return 0;
	memcpy(np + b->len, p, len);
	b->p = np;
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

static int try_http(const struct ak_api *api, const char *method, const char *path,
		    const char *key, const char *header, const char *body, struct ak_resp *out)
{
	char url[512], auth[200];
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
	struct buf b = { NULL, 0 };
	CURL *c = curl_easy_init();
	CURLcode rc;

	ck_assert(c != NULL);
	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", api->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L); /* a bound, not an assertion */
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (key) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (header)
		hdrs = curl_slist_append(hdrs, header);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	if (strcmp(method, body ? "POST" : "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	out->body = b.p ? b.p : strdup("");
	out->json = json_loads(out->body, 0, NULL);
	return rc == CURLE_OK ? 0 : -1;
}

void ak_http(const struct ak_api *api, const char *method, const char *path, const char *key,
	     const char *body, struct ak_resp *out)
{
	ck_assert_msg(try_http(api, method, path, key, NULL, body, out) == 0,
		      "%s %s failed, see %s", method, path, api->log);
}

void ak_http_hdr(const struct ak_api *api, const char *method, const char *path,
		 const char *key, const char *header, const char *body, struct ak_resp *out)
{
	ck_assert_msg(try_http(api, method, path, key, header, body, out) == 0,
		      "%s %s failed, see %s", method, path, api->log);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

long ak_new_connections_on_reuse(const struct ak_api *api, const char *path, const char *key)
{
	char url[512], auth[200];
	struct curl_slist *hdrs;
	CURL *c = curl_easy_init();
	long status = 0, conns = -1;

	ck_assert(c != NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", api->port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	hdrs = curl_slist_append(NULL, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		ck_assert_int_eq(status, 200);
	}
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return conns;
}

json_t *ak_call(const struct ak_api *api, const char *method, const char *path,
		const char *header, const char *body, long status)
{
	struct ak_resp r;
	json_t *j;

	ak_http_hdr(api, method, path, AK_KEY, header, body, &r);
	ck_assert_msg(r.status == status && r.json, "%s %s: %ld %s (expected %ld)", method, path,
		      r.status, r.body ? r.body : "", status);
	j = json_incref(r.json);
	ak_resp_free(&r);
	return j;
}

const char *ak_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	ck_assert_msg(s != NULL, "no string %s", key);
	return s;
}

void ak_resp_free(struct ak_resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

void ak_start(struct ak_api *api, const char *brokers, const char *topic, const char *db,
	      const char *const *extra)
{
	static char vars[6][320];
	const char *envp[24];
	struct ak_resp r;
	long long deadline = tk_now_ms() + 15000;
	int n = 0;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	api->port = free_port();
	snprintf(vars[0], sizeof(vars[0]), "API_PORT=%d", api->port);
	snprintf(vars[1], sizeof(vars[1]), "KAFKA_BROKERS=%s", brokers);
	snprintf(vars[2], sizeof(vars[2]), "USAGE_TOPIC=%s", topic);
	snprintf(vars[3], sizeof(vars[3]), "MONGO_URI=%s", tk_mongo_uri());
	snprintf(vars[4], sizeof(vars[4]), "MONGO_DB=%s", db);
	snprintf(vars[5], sizeof(vars[5]), "BW_API_KEYS=%s,%s", AK_KEY, AK_KEY2);
	for (int i = 0; i < 6; i++)
		envp[n++] = vars[i];
	envp[n++] = "API_BIND=127.0.0.1";
	for (const char *const *e = extra; e && *e && n < 23; e++)
		envp[n++] = *e;
	envp[n] = NULL;
	snprintf(api->log, sizeof(api->log), "%s/%s.api.log", BW_BINARY_DIR, topic);
	api->pid = tk_spawn(BW_API_PATH, envp, api->log);
	/* Up once it answers anything (a 404 for an unknown path). */
	while (try_http(api, "GET", "/", NULL, NULL, NULL, &r) != 0) {
		ak_resp_free(&r);
		ck_assert_msg(tk_now_ms() < deadline, "bw-api did not start, see %s", api->log);
		usleep(50000);
	}
	ak_resp_free(&r);
}

void ak_stop(struct ak_api *api)
{
	if (api->pid > 0) {
		kill(api->pid, SIGTERM);
		ck_assert_int_eq(tk_wait(api->pid, 20000), 0);
	}
	api->pid = 0;
}
