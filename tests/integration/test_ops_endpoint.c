/* Integration tests of the ops endpoint (METRICS_PORT: /metrics, /healthz, /readyz) and of the
 * configuration a platform injects, on the usage worker binary against the real broker and
 * MongoDB-wire server (issue 12 items 1 and 2):
 *   - /metrics after a known load equals what was sent, and the consumer lag falls to 0, with
 *     Kubernetes' service-link variables (KAFKA_SERVICE_HOST, KAFKA_PORT_9092_TCP, ...) set;
 *   - /readyz turns unready while MongoDB is unreachable (a proxy taken down, the shared
 *     server untouched) and ready again after, while /healthz stays ok;
 *   - unknown RDKAFKA_ properties exit 2 at start, listed with every other problem;
 *   - the webhook ingress counts answers by status and signature failures on its own
 *     METRICS_PORT (not on the public webhook port). */
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stripe_sig.h"
#include "mongo_proxy.h"
#include "usage_kit.h"

/* What Kubernetes injects for a Service named "kafka" in the namespace. */
#define SERVICE_LINKS                                                                   \
	"KAFKA_SERVICE_HOST=10.96.0.12", "KAFKA_SERVICE_PORT=9092",                     \
		"KAFKA_SERVICE_PORT_CLIENT=9092", "KAFKA_PORT=tcp://10.96.0.12:9092",   \
		"KAFKA_PORT_9092_TCP=tcp://10.96.0.12:9092",                            \
		"KAFKA_PORT_9092_TCP_PROTO=tcp", "KAFKA_PORT_9092_TCP_PORT=9092",       \
		"KAFKA_PORT_9092_TCP_ADDR=10.96.0.12"

struct body {
	char *text;
	size_t len;
};

static size_t on_data(char *data, size_t size, size_t n, void *opaque)
{
	struct body *b = opaque;
	char *nt = realloc(b->text, b->len + size * n + 1);

	if (!nt)
		return 0;
	memcpy(nt + b->len, data, size * n);
	b->len += size * n;
	nt[b->len] = '\0';
	b->text = nt;
	return size * n;
}

/* method http://127.0.0.1:port/path with an optional Stripe-Signature header and body: the
 * body answered (new string, "" when none) and *status (0 when nothing answered). */
static char *http_req(int port, const char *method, const char *path, const char *sig,
		      const char *data, long *status)
{
	char url[128], hdr[160];
	struct body b = { calloc(1, 1), 0 };
	struct curl_slist *hdrs = NULL;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	if (sig) {
		snprintf(hdr, sizeof(hdr), "Stripe-Signature: %s", sig);
		hdrs = curl_slist_append(hdrs, hdr);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	if (data)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	*status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return b.text;
}

static char *http_get(int port, const char *path, long *status)
{
	return http_req(port, "GET", path, NULL, NULL, status);
}

static const char *next_line(const char *line)
{
	const char *nl = strchr(line, '\n');
	return nl ? nl + 1 : NULL;
}

/* The value of the sample whose name and labels are exactly series, or -1 when absent. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; line && *line; line = next_line(line))
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
	return -1;
}

/* sample() of the series fmt formats (a topic label, say), as an integer. */
static long long value(const char *text, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static long long value(const char *text, const char *fmt, ...)
{
	char series[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(series, sizeof(series), fmt, ap);
	va_end(ap);
	return (long long)sample(text, series);
}

/* Sum of every sample of a family (name followed by '{'), and how many there are. */
static double family_sum(const char *text, const char *name, int *count)
{
	size_t n = strlen(name);
	double sum = 0;

	*count = 0;
	for (const char *line = text; line && *line; line = next_line(line))
		if (strncmp(line, name, n) == 0 && line[n] == '{') {
			const char *sp = strstr(line, "} "); /* label values may hold spaces */
			sum += sp ? strtod(sp + 2, NULL) : 0;
			(*count)++;
		}
	return sum;
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		  getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Polls path until it answers want (deadline_ms), returning the last body (new string). */
static char *wait_status(int port, const char *path, long want, int deadline_ms)
{
	long long end = tk_now_ms() + deadline_ms;
	long status = 0;
	char *text = NULL;

	for (;;) {
		free(text);
		text = http_get(port, path, &status);
		if (status == want || tk_now_ms() > end)
			break;
		usleep(200000);
	}
	ck_assert_msg(status == want, "%s answered %ld, not %ld: %s", path, status, want, text);
	return text;
}

static int log_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

#define N_OK 16

START_TEST(metrics_equal_a_known_load_with_service_link_variables)
{
	struct uk_env env;
	struct uk_org orgs[4];
	char port_var[32], buf[512], series[300], *text = NULL;
	int port = free_port(), rows = 0;
	const char *extra[] = { port_var, "RDKAFKA_STATISTICS_INTERVAL_MS=300",
				"RDKAFKA_CLIENT_ID=bw-ops-test", SERVICE_LINKS, NULL };
	long long end;
	pid_t pid;

	uk_env_init(&env, "ops_metrics", 2);
	uk_seed_orgs(&env, orgs, 4, "org-ops", 1000000, 0, 0);
	for (int i = 0; i < N_OK; i++) {
		char id[32];
		snprintf(id, sizeof(id), "ev-%d", i);
		uk_event_json(buf, sizeof(buf), id, orgs[i % 4].id, 3);
		tk_produce(env.topic, orgs[i % 4].id, buf);
	}
	uk_event_json(buf, sizeof(buf), "ev-0", orgs[0].id, 3); /* a redelivery: duplicate */
	tk_produce(env.topic, orgs[0].id, buf);
	tk_produce(env.topic, orgs[1].id, "{not json");        /* rejected, DLQ */
	tk_produce(env.topic, orgs[2].id, "[1,2,3]");          /* rejected, DLQ */

	snprintf(port_var, sizeof(port_var), "METRICS_PORT=%d", port);
	pid = uk_start_worker(&env, extra);
	/* Everything received and every partition's lag back to 0 (statistics every 300 ms,
	 * offsets committed every second). */
	snprintf(series, sizeof(series),
		 "bw_messages_received_total{worker=\"usage-worker\",topic=\"%s\"}", env.topic);
	for (end = tk_now_ms() + 40000; tk_now_ms() < end; usleep(200000)) {
		long status;
		double lag;
		free(text);
		text = http_get(port, "/metrics", &status);
		lag = family_sum(text, "bw_consumer_lag", &rows);
		if (status == 200 && sample(text, series) == N_OK + 3 && rows > 0 && lag == 0)
			break;
	}
	ck_assert_msg(sample(text, series) == N_OK + 3, "received: %s (log %s)", text, env.log);
	ck_assert_msg(rows > 0 && family_sum(text, "bw_consumer_lag", &rows) == 0,
		      "lag did not fall to 0: %s", text);

	/* usage-worker's series: {worker="usage-worker"...} */
#define UW "{worker=\"usage-worker\""
#define STATUS UW ",topic=\"%s\",status=\"%s\"}"
	ck_assert_int_eq(value(text, "bw_messages_total" STATUS, env.topic, "applied"), N_OK);
	ck_assert_int_eq(value(text, "bw_messages_total" STATUS, env.topic, "duplicate"), 1);
	ck_assert_int_eq(value(text, "bw_messages_total" STATUS, env.topic, "rejected"), 2);
	ck_assert_int_eq(value(text, "bw_messages_total" STATUS, env.topic, "conflict"), 0);
	ck_assert_int_eq((int)family_sum(text, "bw_dlq_records_total", &rows), 2);
	ck_assert_int_eq(value(text, "bw_results_published_total" UW "}"), N_OK + 3);
	ck_assert_int_eq(value(text, "bw_batch_size_sum" UW "}"), N_OK + 3);
	ck_assert_int_eq(value(text, "bw_batch_size_count" UW "}"),
			 value(text, "bw_batch_duration_seconds_count" UW "}"));
	ck_assert_int_ge(value(text, "bw_batch_size_bucket" UW ",le=\"+Inf\"}"), 1);
	ck_assert_int_gt(value(text, "bw_db_round_trips_total" UW "}"), 0);
	ck_assert_int_gt(value(text, "bw_last_batch_success_timestamp_seconds" UW "}"), 1700000000);
	ck_assert_int_ge(value(text, "bw_consumer_rebalances_total" UW ",type=\"assign\"}"), 1);
	ck_assert_int_eq(value(text, "bw_consumer_partitions_assigned" UW "}"), 2);
	ck_assert_int_eq(value(text, "bw_build_info" UW ",version=\"0.1.0\"}"), 1);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE bw_batch_duration_seconds histogram\n"));
	free(text);
	free(wait_status(port, "/healthz", 200, 5000));
	free(wait_status(port, "/readyz", 200, 5000));

	kill(pid, SIGTERM);
	ck_assert_int_eq(tk_wait(pid, 30000), 0);
	ck_assert_msg(log_has(env.log, "metrics final"), "no final counters line in %s", env.log);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(readyz_follows_the_database)
{
	struct uk_env env;
	struct mp_proxy *proxy = mp_start();
	char port_var[32], uri_var[320], uri[300], *text;
	int port = free_port();
	const char *extra[] = { port_var, uri_var, NULL };
	pid_t pid;

	uk_env_init(&env, "ops_ready", 1);
	mp_uri(proxy, uri, sizeof(uri));
	snprintf(uri_var, sizeof(uri_var), "MONGO_URI=%s", uri);
	snprintf(port_var, sizeof(port_var), "METRICS_PORT=%d", port);
	pid = uk_start_worker(&env, extra);
	free(wait_status(port, "/readyz", 200, 30000));

	mp_set_down(proxy, 1);
	text = wait_status(port, "/readyz", 503, 20000);
	ck_assert_msg(strstr(text, "\"mongodb\"") != NULL, "not the database: %s", text);
	free(text);
	free(wait_status(port, "/healthz", 200, 1000)); /* the loop itself is alive */

	mp_set_down(proxy, 0);
	free(wait_status(port, "/readyz", 200, 30000));

	kill(pid, SIGTERM);
	ck_assert_int_eq(tk_wait(pid, 30000), 0);
	mp_stop(proxy);
	tk_mongo_drop(env.db);
}
END_TEST

START_TEST(unknown_rdkafka_properties_exit_2_with_every_problem)
{
	struct uk_env env = { .topic = "unused", .results = "unused", .group = "unused",
			      .db = "unused" };
	const char *extra[] = { "RDKAFKA_NO_SUCH_PROPERTY=1", "RDKAFKA_ENABLE_GREMLINS=yes",
				"RDKAFKA_SOCKET_TIMEOUT_MS=1500", "LOG_LEVEL=loud", SERVICE_LINKS,
				NULL };

	tk_unique(env.log, sizeof(env.log), BW_BINARY_DIR "/ops_config");
	strncat(env.log, ".log", sizeof(env.log) - strlen(env.log) - 1);
	ck_assert_int_eq(tk_wait(uk_start_worker(&env, extra), 30000), 2);
	ck_assert(log_has(env.log, "3 configuration problems"));
	ck_assert(log_has(env.log, "RDKAFKA_NO_SUCH_PROPERTY: No such configuration property"));
	ck_assert(log_has(env.log, "RDKAFKA_ENABLE_GREMLINS: No such configuration property"));
	ck_assert(log_has(env.log, "LOG_LEVEL"));
	ck_assert(!log_has(env.log, "RDKAFKA_SOCKET_TIMEOUT_MS")); /* a valid one passes */
	ck_assert(!log_has(env.log, "KAFKA_SERVICE_HOST"));
	ck_assert(!log_has(env.log, "KAFKA_PORT"));
}
END_TEST

#define SECRET "whsec_ops_test_5gH7jK9mN2pQ4rS6"

/* Posts an event signed with secret (or a forged signature when secret is NULL). */
static long post_event(int port, const char *secret, const char *id)
{
	char body[256], sig[128], hex[65];
	long long t = (long long)time(NULL);
	long status;

	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"object\":\"event\",\"type\":\"invoice.paid\","
		 "\"data\":{\"object\":{\"id\":\"in_1\",\"customer\":\"cus_ops\"}}}", id);
	ck_assert(bw_stripe_sig_sign(secret ? secret : "whsec_forged", secret ? strlen(secret) : 12,
				     t, (const unsigned char *)body, strlen(body), hex) == 0);
	snprintf(sig, sizeof(sig), "t=%lld,v1=%s", t, hex);
	free(http_req(port, "POST", "/webhooks/stripe", sig, body, &status));
	return status;
}

START_TEST(ingress_metrics_count_requests_and_signature_failures)
{
	char topic[96], topic_var[128], http_var[32], port_var[32], logp[256];
	char *text;
	int http_port = free_port(), port = free_port();
	const char *env[] = { http_var, port_var, topic_var, "HTTP_BIND=127.0.0.1",
			      "STRIPE_WEBHOOK_SECRET=" SECRET, SERVICE_LINKS, NULL };
	long status;
	pid_t pid;

	tk_unique(topic, sizeof(topic), "ops_ingress");
	tk_create_topic(topic, 1, 0);
	snprintf(topic_var, sizeof(topic_var), "STRIPE_EVENTS_TOPIC=%s", topic);
	snprintf(http_var, sizeof(http_var), "HTTP_PORT=%d", http_port);
	snprintf(port_var, sizeof(port_var), "METRICS_PORT=%d", port);
	snprintf(logp, sizeof(logp), "%s/%s.log", BW_BINARY_DIR, topic);
	pid = tk_spawn(BW_WEBHOOK_INGRESS_PATH, env, logp);
	free(wait_status(port, "/readyz", 200, 20000));
	ck_assert_int_eq(post_event(http_port, SECRET, "evt_ops_1"), 200);
	ck_assert_int_eq(post_event(http_port, SECRET, "evt_ops_2"), 200);
	ck_assert_int_eq(post_event(http_port, NULL, "evt_ops_3"), 400);
	free(http_get(http_port, "/metrics", &status)); /* not on the public webhook port */
	ck_assert_int_eq(status, 404);

	text = wait_status(port, "/metrics", 200, 5000);
#define IW "{worker=\"webhook-ingress\""
	ck_assert_int_eq(value(text, "bw_http_requests_total" IW ",code=\"200\"}"), 2);
	ck_assert_int_eq(value(text, "bw_http_requests_total" IW ",code=\"400\"}"), 1);
	ck_assert_int_eq(value(text, "bw_http_requests_total" IW ",code=\"404\"}"), 1);
	ck_assert_int_eq(value(text, "bw_webhook_signature_failures_total" IW "}"), 1);
	ck_assert_int_eq(value(text, "bw_messages_total" IW ",topic=\"%s\",status=\"applied\"}",
			       topic), 2);
	free(text);
	free(wait_status(port, "/healthz", 200, 1000));

	kill(pid, SIGTERM);
	ck_assert_int_eq(tk_wait(pid, 30000), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ops_endpoint");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, unknown_rdkafka_properties_exit_2_with_every_problem);
	tcase_add_test(tc, metrics_equal_a_known_load_with_service_link_variables);
	tcase_add_test(tc, readyz_follows_the_database);
	tcase_add_test(tc, ingress_metrics_count_requests_and_signature_failures);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
