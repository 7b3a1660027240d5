/* ops_http: see ops_http.h. The daemon is http_server's (one polling thread, 64
 * connections, 10 s idle timeout); responses are copied into microhttpd. */
#include "ops_http.h"

#include <microhttpd.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_server.h"
#include "log.h"
#include "metrics.h"

/* How long a MongoDB ping answer is reused: probes and scrapes do not load the database. */
#define PING_CACHE_MS 2000

struct bw_ops_server {
	struct bw_http_server http;
	int64_t stall_ms;
	int consumer;
	_Atomic(rd_kafka_t *) producer;
	_Atomic(int (*)(void *)) check_fn;
	_Atomic(void *) check_opaque;
	char check_name[32];
	/* MongoDB ping, used only from the microhttpd thread (lock for safety and clarity). */
	pthread_mutex_t lock;
	mongoc_client_t *mongo;
	int64_t pinged_at;
	int mongo_ok;
	char mongo_why[160];
	int was_ready;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
			       const char *body)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
								    MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Pings MongoDB unless the last answer is fresh. Caller holds srv->lock. */
static int mongo_answers(struct bw_ops_server *srv)
{
	bson_error_t error;
	bson_t *cmd;
	int64_t now = mono_ms();

	if (!srv->mongo)
		return 1;
	if (srv->pinged_at && now - srv->pinged_at < PING_CACHE_MS)
		return srv->mongo_ok;
	cmd = BCON_NEW("ping", BCON_INT32(1));
	srv->mongo_ok = mongoc_client_command_simple(srv->mongo, "admin", cmd, NULL, NULL, &error);
	bson_destroy(cmd);
	if (!srv->mongo_ok)
		snprintf(srv->mongo_why, sizeof(srv->mongo_why), "%.150s", error.message);
	srv->pinged_at = mono_ms();
	return srv->mongo_ok;
}

/* Appends `"name":"why"` of a failed check to out (JSON-safe: quotes and controls dropped). */
static void add_failure(char *out, size_t len, const char *name, const char *why)
{
	size_t used = strlen(out);
	char clean[160];
	size_t n = 0;

	for (; why[n] && n + 1 < sizeof(clean); n++)
		clean[n] = why[n] == '"' || why[n] == '\\' || (unsigned char)why[n] < 0x20 ? '\''
											 : why[n];
	clean[n] = '\0';
	if (used < len)
		snprintf(out + used, len - used, ",\"%s\":\"%s\"", name, clean);
}

static enum MHD_Result readyz(struct bw_ops_server *srv, struct MHD_Connection *conn)
{
	char fails[512] = "", body[700], fatal[128];
	rd_kafka_t *rk = atomic_load(&srv->producer);
	int (*fn)(void *) = atomic_load(&srv->check_fn);
	int64_t parts = bw_metrics_gauge_get(BW_G_PARTITIONS);
	int ready;

	if (srv->consumer && parts < 0)
		add_failure(fails, sizeof(fails), "consumer", "no partition assignment yet");
	pthread_mutex_lock(&srv->lock);
	if (!mongo_answers(srv))
		add_failure(fails, sizeof(fails), "mongodb", srv->mongo_why);
	pthread_mutex_unlock(&srv->lock);
	if (srv->consumer && !rk)
		add_failure(fails, sizeof(fails), "producer", "not created yet");
	else if (rk && rd_kafka_fatal_error(rk, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		add_failure(fails, sizeof(fails), "producer", fatal);
	if (fn && !fn(atomic_load(&srv->check_opaque)))
		add_failure(fails, sizeof(fails), srv->check_name, "not ready");
	ready = fails[0] == '\0';
	if (ready != srv->was_ready)
		bw_log(ready ? BW_LOG_INFO : BW_LOG_WARN, NULL, "readyz: %s%s",
		       ready ? "ready" : "unready", fails);
	srv->was_ready = ready;
	snprintf(body, sizeof(body), "{\"status\":\"%s\",\"partitions\":%lld%s}\n",
		 ready ? "ready" : "unready", (long long)(parts < 0 ? 0 : parts), fails);
	return respond(conn, ready ? 200 : 503, "application/json", body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct bw_ops_server *srv = cls;
	char body[128];
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond(conn, 405, "application/json",
			       "{\"error\":\"method_not_allowed\"}\n");
	if (!strcmp(url, "/metrics")) {
		rd_kafka_t *rk = atomic_load(&srv->producer);
		char *text;
		if (rk)
			bw_metrics_gauge_set(BW_G_PRODUCER_QUEUE, rd_kafka_outq_len(rk));
		text = bw_metrics_render();
		if (!text)
			return respond(conn, 500, "text/plain", "out of memory\n");
		ret = respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text);
		free(text);
		return ret;
	}
	if (!strcmp(url, "/healthz")) {
		int64_t age = bw_metrics_heartbeat_age_ms();
		int ok = age <= srv->stall_ms;
		snprintf(body, sizeof(body), "{\"status\":\"%s\",\"heartbeat_age_ms\":%lld}\n",
			 ok ? "ok" : "stalled", (long long)age);
		return respond(conn, ok ? 200 : 503, "application/json", body);
	}
	if (!strcmp(url, "/readyz"))
		return readyz(srv, conn);
	return respond(conn, 404, "application/json", "{\"error\":\"not_found\"}\n");
}

/* The ping's own client: short timeouts, so a probe never waits for the workers' 30 s. */
static mongoc_client_t *ping_client(const char *uri_text, int timeout_ms, struct bw_err *err)
{
	bson_error_t error;
	mongoc_uri_t *uri;
	mongoc_client_t *client = NULL;

	mongoc_init();
	uri = mongoc_uri_new_with_error(uri_text, &error);
	if (!uri) {
		bw_err_set(err, BW_ERR_FATAL, "MONGO_URI: %s", error.message);
		return NULL;
	}
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, timeout_ms);
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout_ms);
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, timeout_ms);
	mongoc_uri_set_appname(uri, "bw-readyz");
	client = mongoc_client_new_from_uri_with_error(uri, &error);
	if (!client)
		bw_err_set(err, BW_ERR_FATAL, "MONGO_URI: %s", error.message);
	mongoc_uri_destroy(uri);
	return client;
}

struct bw_ops_server *bw_ops_server_start(const struct bw_ops_conf *conf, struct bw_err *err)
{
	struct bw_ops_server *srv = calloc(1, sizeof(*srv));
	struct bw_http_server_conf hconf = {
		.name = "METRICS",
		.bind = conf->bind,
		.port = conf->port,
		.max_connections = 64,
		.timeout_s = 10,
		.single_thread = 1, /* probes and scrapes are small and rare */
		.on_request = on_request,
		.cls = srv,
	};

	if (!srv) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&srv->lock, NULL);
	srv->stall_ms = conf->stall_ms;
	srv->consumer = conf->consumer;
	srv->was_ready = -1;
	if (conf->mongo_uri) {
		srv->mongo = ping_client(conf->mongo_uri, conf->mongo_timeout_ms, err);
		if (!srv->mongo)
			goto fail;
	}
	if (bw_http_server_start(&srv->http, &hconf, err) != 0)
		goto fail;
	bw_log(BW_LOG_INFO, NULL, "ops endpoint on %s:%d (/metrics /healthz /readyz)", conf->bind,
	       srv->http.port);
	return srv;
fail:
	bw_ops_server_stop(srv);
	return NULL;
}

void bw_ops_server_set_producer(struct bw_ops_server *srv, rd_kafka_t *rk)
{
	if (srv)
		atomic_store(&srv->producer, rk);
}

void bw_ops_server_set_check(struct bw_ops_server *srv, const char *name,
			     int (*fn)(void *opaque), void *opaque)
{
	if (!srv)
		return;
	snprintf(srv->check_name, sizeof(srv->check_name), "%s", name);
	atomic_store(&srv->check_opaque, opaque);
	atomic_store(&srv->check_fn, fn);
}

int bw_ops_server_port(const struct bw_ops_server *srv)
{
	return srv->http.port;
}

void bw_ops_server_stop(struct bw_ops_server *srv)
{
	if (!srv)
		return;
	bw_http_server_stop(&srv->http, 0);
	if (srv->mongo)
		mongoc_client_destroy(srv->mongo);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
