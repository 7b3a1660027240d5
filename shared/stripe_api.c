/* stripe_api: see stripe_api.h. */
#include "stripe_api.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "log.h"

struct bw_stripe_api {
	CURL *curl;
	char *base_url;
	char *auth_header;      /* "Authorization: Bearer sk_..." */
	char *version_header;   /* "Stripe-Version: ..." */
	long connect_timeout_ms, timeout_ms;
	size_t max_body;
	int max_retries, retry_base_ms, retry_max_ms;
	long pace_ns;           /* minimum spacing of requests, 0 = none */
	struct timespec last_request;
	int has_last;
	unsigned int seed;
	struct bw_stripe_api_stats stats;
	int64_t last_date_s;    /* Date header of the last HTTP answer, -1 when none */
};

/* A response being read: body with a hard maximum, and the headers we act on. */
struct response {
	unsigned char *buf;
	size_t len, cap, max;
	int too_big;
	char retry_after[32];
	char should_retry[8];
	char date[64];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

struct bw_stripe_api *bw_stripe_api_new(const struct bw_stripe_api_conf *conf,
					struct bw_err *err)
{
	struct bw_stripe_api *api = NULL;
	size_t blen;

	pthread_once(&curl_once, curl_init_once);
	if (!conf->base_url || !conf->secret_key || !conf->api_version || !*conf->secret_key) {
		bw_err_set(err, BW_ERR_FATAL, "stripe_api: base URL, secret key and version needed");
		goto fail;
	}
	api = calloc(1, sizeof(*api));
	if (!api)
		goto nomem;
	api->base_url = strdup(conf->base_url);
	api->auth_header = join("Authorization: Bearer ", conf->secret_key);
	api->version_header = join("Stripe-Version: ", conf->api_version);
	api->curl = curl_easy_init();
	if (!api->base_url || !api->auth_header || !api->version_header || !api->curl)
		goto nomem;
	blen = strlen(api->base_url);
	while (blen > 0 && api->base_url[blen - 1] == '/')
		api->base_url[--blen] = '\0';
	api->connect_timeout_ms = conf->connect_timeout_ms;
	api->timeout_ms = conf->timeout_ms;
	api->max_body = conf->max_body;
	api->max_retries = conf->max_retries < 0 ? 0 : conf->max_retries;
	api->retry_base_ms = conf->retry_base_ms < 1 ? 1 : conf->retry_base_ms;
	api->retry_max_ms = conf->retry_max_ms < api->retry_base_ms ? api->retry_base_ms
								     : conf->retry_max_ms;
	api->pace_ns = conf->rate_limit_rps > 0 ? 1000000000L / conf->rate_limit_rps : 0;
	api->seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)api;
	api->last_date_s = -1;
	return api;
nomem:
	bw_err_set(err, BW_ERR_FATAL, "stripe_api: out of memory");
fail:
	bw_stripe_api_destroy(api);
	return NULL;
}

void bw_stripe_api_destroy(struct bw_stripe_api *api)
{
	if (!api)
		return;
	if (api->curl)
		curl_easy_cleanup(api->curl);
	free(api->base_url);
	if (api->auth_header) {
		/* the key must not linger in freed memory */
		memset(api->auth_header, 0, strlen(api->auth_header));
		free(api->auth_header);
	}
	free(api->version_header);
	free(api);
}

void bw_stripe_api_get_stats(const struct bw_stripe_api *api, struct bw_stripe_api_stats *out)
{
	*out = api->stats;
}

char *bw_stripe_api_escape(struct bw_stripe_api *api, const char *s)
{
	char *e = curl_easy_escape(api->curl, s, 0);
	char *copy = e ? strdup(e) : NULL;
	curl_free(e);
	return copy;
}

long bw_stripe_api_retry_after_ms(const char *value)
{
	int64_t secs;

	if (!value || !*value)
		return -1;
	if (bw_parse_int64(value, 0, 86400, &secs) != 0)
		return -1;
	return (long)secs * 1000L;
}

int64_t bw_stripe_api_parse_date(const char *value)
{
	time_t t;

	if (!value || !*value)
		return -1;
	t = curl_getdate(value, NULL);
	return t < 0 ? -1 : (int64_t)t;
}

int64_t bw_stripe_api_last_date(const struct bw_stripe_api *api)
{
	return api->last_date_s;
}

long bw_stripe_api_backoff_ms(int attempt, int base_ms, int max_ms)
{
	static __thread unsigned int seed;
	long d = base_ms > 0 ? base_ms : 1;

	if (!seed)
		seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)&seed;
	for (int i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	long half = d / 2;
	long delay = half + (long)(rand_r(&seed) % (unsigned long)(d - half + 1));
	return delay < 1 ? 1 : delay;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Waits until at least pace_ns passed since the previous request. */
static void pace(struct bw_stripe_api *api)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (api->pace_ns > 0 && api->has_last) {
		long elapsed = (now.tv_sec - api->last_request.tv_sec) * 1000000000L +
			       (now.tv_nsec - api->last_request.tv_nsec);
		if (elapsed < api->pace_ns) {
			long left = api->pace_ns - elapsed;
			struct timespec ts = { left / 1000000000L, left % 1000000000L };
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
			clock_gettime(CLOCK_MONOTONIC, &now);
		}
	}
	api->last_request = now;
	api->has_last = 1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct response *r = opaque;
	size_t n = size * nmemb;

	if (n > r->max - r->len) {
		r->too_big = 1;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 16384;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->max + 1)
			cap = r->max + 1;
		unsigned char *grown = realloc(r->buf, cap);
		if (!grown)
			return 0;
		r->buf = grown;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	r->buf[r->len] = '\0';
	return n;
}

/* Copies the value of header `name` (case-insensitive) from a raw header line. */
static void grab_header(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	const char *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	size_t len = (size_t)(end - v);
	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, v, len);
	out[len] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *opaque)
{
	struct response *r = opaque;
	size_t n = size * nmemb;

	grab_header(line, n, "Retry-After", r->retry_after, sizeof(r->retry_after));
	grab_header(line, n, "Stripe-Should-Retry", r->should_retry, sizeof(r->should_retry));
	grab_header(line, n, "Date", r->date, sizeof(r->date));
	return n;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

/* Fills serr from a Stripe error body {"error": {...}} when the body is one. */
static void parse_stripe_error(const struct response *r, struct bw_stripe_error *serr)
{
	json_t *root = r->len ? json_loadb((const char *)r->buf, r->len, 0, NULL) : NULL;
	json_t *e = root ? json_object_get(root, "error") : NULL;

	if (json_is_object(e)) {
		copy_str(serr->type, sizeof(serr->type),
			 json_string_value(json_object_get(e, "type")));
		copy_str(serr->code, sizeof(serr->code),
			 json_string_value(json_object_get(e, "code")));
		copy_str(serr->message, sizeof(serr->message),
			 json_string_value(json_object_get(e, "message")));
	}
	json_decref(root);
}

enum verdict { OK, RETRY, FAIL };

/* One attempt. Returns OK with *out set, RETRY (after filling serr/err as if final and
 * *wait_ms with the server's wish, or -1), or FAIL. */
static enum verdict attempt(struct bw_stripe_api *api, const char *url, const char *form,
			    struct curl_slist *headers, json_t **out, long *wait_ms,
			    struct bw_stripe_error *serr, struct bw_err *err)
{
	struct response r = { NULL, 0, 0, api->max_body, 0, "", "", "" };
	enum verdict v = FAIL;
	long status = 0;
	CURLcode cc;
	char curl_err[CURL_ERROR_SIZE] = "";

	memset(serr, 0, sizeof(*serr));
	*wait_ms = -1;
	curl_easy_reset(api->curl); /* keeps the connection cache */
	curl_easy_setopt(api->curl, CURLOPT_URL, url);
	curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(api->curl, CURLOPT_CONNECTTIMEOUT_MS, api->connect_timeout_ms);
	curl_easy_setopt(api->curl, CURLOPT_TIMEOUT_MS, api->timeout_ms);
	curl_easy_setopt(api->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(api->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(api->curl, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(api->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(api->curl, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(api->curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(api->curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(api->curl, CURLOPT_USERAGENT, "billing-workers-sync/0.1");
	if (form) {
		curl_easy_setopt(api->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, form);
		curl_easy_setopt(api->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
	}
	pace(api);
	api->stats.requests++;
	cc = curl_easy_perform(api->curl);
	if (cc != CURLE_OK) {
		if (r.too_big) {
			bw_err_set(err, BW_ERR_INVALID, "Stripe response larger than %zu bytes",
				   api->max_body);
			goto done;
		}
		bw_err_set(err, BW_ERR_TRANSIENT, "Stripe request failed: %s",
			   curl_err[0] ? curl_err : curl_easy_strerror(cc));
		copy_str(serr->type, sizeof(serr->type), "network_error");
		copy_str(serr->message, sizeof(serr->message), err->msg);
		v = RETRY;
		goto done;
	}
	curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, &status);
	serr->http_status = status;
	api->last_date_s = bw_stripe_api_parse_date(r.date);
	if (status >= 200 && status < 300) {
		json_error_t jerr;
		json_t *root = json_loadb((const char *)r.buf, r.len, 0, &jerr);
		if (!json_is_object(root)) {
			json_decref(root);
			bw_err_set(err, BW_ERR_TRANSIENT,
				   "Stripe answered %ld with malformed JSON: %s", status, jerr.text);
			copy_str(serr->type, sizeof(serr->type), "malformed_response");
			copy_str(serr->message, sizeof(serr->message), err->msg);
			goto done;
		}
		*out = root;
		v = OK;
		goto done;
	}
	parse_stripe_error(&r, serr);
	/* 409: an idempotency key still in use by a concurrent request (or a lock on the
	 * object); Stripe's own libraries retry it like a rate limit. */
	int temporary = status == 429 || status >= 500 || status == 408 || status == 409;
	int retryable = temporary;
	if (strcasecmp(r.should_retry, "true") == 0)
		retryable = temporary = 1;
	else if (strcasecmp(r.should_retry, "false") == 0)
		retryable = 0;
	bw_err_set(err, temporary ? BW_ERR_TRANSIENT : BW_ERR_INVALID,
		   "Stripe HTTP %ld: %s%s%s%s%s", status, serr->type[0] ? serr->type : "error",
		   serr->code[0] ? " " : "", serr->code, serr->message[0] ? ": " : "",
		   serr->message);
	if (retryable) {
		*wait_ms = bw_stripe_api_retry_after_ms(r.retry_after);
		v = RETRY;
	}
done:
	free(r.buf);
	return v;
}

/* The request with its retries. form NULL: GET. */
static json_t *request(struct bw_stripe_api *api, const char *path, const char *form,
		       const char *idempotency_key, struct bw_stripe_error *serr,
		       struct bw_err *err)
{
	struct bw_stripe_error local;
	struct curl_slist *headers = NULL, *h;
	char *url = NULL, *idem = NULL;
	json_t *out = NULL;

	if (!serr)
		serr = &local;
	url = join(api->base_url, path);
	if (idempotency_key)
		idem = join("Idempotency-Key: ", idempotency_key);
	if (!url || (idempotency_key && !idem)) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	const char *lines[] = { api->auth_header, api->version_header, "Accept: application/json",
				"Expect:", idem };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (!lines[i])
			continue;
		h = curl_slist_append(headers, lines[i]);
		if (!h) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		headers = h;
	}
	for (int n = 0;; n++) {
		long wait_ms;
		enum verdict v = attempt(api, url, form, headers, &out, &wait_ms, serr, err);
		if (v != RETRY)
			break;
		if (n >= api->max_retries) {
			char last[sizeof(err->msg)];
			snprintf(last, sizeof(last), "%s", err->msg);
			bw_err_set(err, BW_ERR_TRANSIENT, "%s (after %d retries)", last, n);
			break;
		}
		long backoff = bw_stripe_api_backoff_ms(n + 1, api->retry_base_ms, api->retry_max_ms);
		if (wait_ms > backoff)
			backoff = wait_ms > api->retry_max_ms ? api->retry_max_ms : wait_ms;
		bw_log(BW_LOG_WARN, NULL, "stripe %s %s: retry %d in %ld ms: %s", form ? "POST" : "GET",
		       path, n + 1, backoff, err->msg);
		api->stats.retries++;
		sleep_ms(backoff);
	}
	if (out)
		bw_err_clear(err);
done:
	curl_slist_free_all(headers);
	if (idem)
		free(idem);
	free(url);
	return out;
}

json_t *bw_stripe_api_get(struct bw_stripe_api *api, const char *path_query,
			  struct bw_stripe_error *serr, struct bw_err *err)
{
	return request(api, path_query, NULL, NULL, serr, err);
}

json_t *bw_stripe_api_post(struct bw_stripe_api *api, const char *path, const char *form,
			   const char *idempotency_key, struct bw_stripe_error *serr,
			   struct bw_err *err)
{
	if (!idempotency_key || !*idempotency_key) {
		bw_err_set(err, BW_ERR_INVALID, "POST %s without an Idempotency-Key", path);
		return NULL;
	}
	return request(api, path, form ? form : "", idempotency_key, serr, err);
}

int bw_stripe_api_list(struct bw_stripe_api *api, const char *path, const char *query,
		       int limit, bw_stripe_item_fn fn, void *opaque, int *pages,
		       struct bw_stripe_error *serr, struct bw_err *err)
{
	char *after = NULL, *url = NULL;
	json_t *page = NULL;
	int rc = -1, npages = 0;

	for (;;) {
		size_t cap = strlen(path) + strlen(query) + (after ? strlen(after) : 0) + 64;
		url = malloc(cap);
		if (!url) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		snprintf(url, cap, "%s?%s%slimit=%d%s%s", path, query, *query ? "&" : "", limit,
			 after ? "&starting_after=" : "", after ? after : "");
		page = bw_stripe_api_get(api, url, serr, err);
		if (!page)
			goto done;
		npages++;
		json_t *data = json_object_get(page, "data");
		json_t *more = json_object_get(page, "has_more");
		if (!json_is_array(data) || !json_is_boolean(more)) {
			bw_err_set(err, BW_ERR_TRANSIENT, "Stripe list %s: no data array / has_more",
				   path);
			goto done;
		}
		size_t i;
		json_t *item;
		const char *last = NULL;
		json_array_foreach(data, i, item) {
			int r = fn(opaque, item, err);
			if (r != 0)
				goto done;
			last = json_string_value(json_object_get(item, "id"));
		}
		if (!json_is_true(more))
			break;
		if (!last) {
			bw_err_set(err, BW_ERR_TRANSIENT,
				   "Stripe list %s: has_more without an id to continue from", path);
			goto done;
		}
		free(after);
		after = bw_stripe_api_escape(api, last);
		if (!after) {
			bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
			goto done;
		}
		json_decref(page);
		page = NULL;
		free(url);
		url = NULL;
	}
	rc = 0;
done:
	if (pages)
		*pages = npages;
	json_decref(page);
	free(url);
	free(after);
	return rc;
}
