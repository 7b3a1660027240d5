/* ingress_http: see ingress_http.h. Every Stripe webhook passes through on_request(). */
#include "ingress_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ingress_event.h"
#include "log.h"
#include "metrics.h"
#include "ops_http.h"
#include "stripe_sig.h"

/* First allocation of a body buffer when the client sent no Content-Length. */
#define BODY_INITIAL_CAP 65536

struct bw_ingress_server {
	struct MHD_Daemon *daemon;
	struct bw_ingress_http_cfg cfg;
	struct bw_acked_publisher *pub;
	atomic_int in_flight; /* webhook requests accepted and not yet completed */
	atomic_int draining;  /* shutting down: answers close their connection */
	int port;
};

/* State of one webhook POST, from its headers to its completion. */
struct request {
	unsigned char *body;
	size_t len, cap;
	struct timespec received; /* when the headers arrived (CLOCK_REALTIME) */
	char peer[64];
};

static enum MHD_Result respond(struct bw_ingress_server *srv, struct MHD_Connection *conn,
			       unsigned status, const char *json, const char *allow)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	/* While draining, keep-alive clients are told to go, so the drain ends quickly. */
	if (atomic_load(&srv->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	bw_metrics_http(status);
	return ret;
}

/* Answers {"error":"<code>"} with status and writes the one log line of this refusal
 * (detail never holds the secret or the body). */
static enum MHD_Result refuse(struct bw_ingress_server *srv, struct MHD_Connection *conn,
			      unsigned status, const char *code, const char *allow,
			      const char *event_id, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static enum MHD_Result refuse(struct bw_ingress_server *srv, struct MHD_Connection *conn,
			      unsigned status, const char *code, const char *allow,
			      const char *event_id, const char *fmt, ...)
{
	char body[96], detail[300], peer[64];
	struct bw_log_ctx ctx = BW_LOG_CTX_NONE;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	bw_ops_http_peer(conn, peer, sizeof(peer));
	ctx.event_id = event_id;
	bw_log(status == 404 || status == 405 ? BW_LOG_INFO : BW_LOG_WARN, &ctx,
	       "refused %u %s from %s: %s", status, code, peer, detail);
	bw_metrics_add(BW_M_REJECTED, 1);
	snprintf(body, sizeof(body), "{\"error\":\"%s\"}", code);
	return respond(srv, conn, status, body, allow);
}

static int is_get(const char *method)
{
	return !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
}

/* The whole body is in: verify, inspect, publish, answer. */
static enum MHD_Result handle_webhook(struct bw_ingress_server *srv, struct MHD_Connection *conn,
				      struct request *req)
{
	const struct bw_ingress_http_cfg *cfg = &srv->cfg;
	const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Stripe-Signature");
	struct bw_ingress_event ev;
	struct bw_acked_delivery dlv = { -1, -1 };
	struct bw_log_ctx ctx = BW_LOG_CTX_NONE;
	struct bw_err err;
	rd_kafka_headers_t *hdrs = NULL;
	char received_at[32];
	int64_t t = -1;
	enum bw_stripe_sig_result r;
	static const unsigned char empty[1];
	const unsigned char *body = req->body ? req->body : empty;

	bw_err_clear(&err);
	bw_metrics_add(BW_M_MSGS_IN, 1);
	r = bw_stripe_sig_verify(sig, body, req->len, cfg->secrets, cfg->tolerance_s,
				 (int64_t)time(NULL), &t);
	if (r != BW_SIG_OK) {
		bw_metrics_add(BW_M_SIG_FAILURES, 1);
		return refuse(srv, conn, 400, bw_stripe_sig_result_name(r), NULL, NULL,
			      "signature check failed (t=%lld, now=%lld, body %zu bytes)",
			      (long long)t, (long long)time(NULL), req->len);
	}
	if (bw_ingress_event_inspect(body, req->len, cfg->max_body, &ev, &err) != 0)
		return refuse(srv, conn, 400, ev.error, NULL, NULL, "%s", err.msg);

	bw_ingress_format_time(&req->received, received_at);
	hdrs = rd_kafka_headers_new(4);
	rd_kafka_header_add(hdrs, "stripe.event_id", -1, ev.id, -1);
	rd_kafka_header_add(hdrs, "stripe.event_type", -1, ev.type, -1);
	rd_kafka_header_add(hdrs, "stripe.received_at", -1, received_at, -1);
	rd_kafka_header_add(hdrs, "stripe.signature_verified", -1, "true", -1);
	if (bw_acked_publish(srv->pub, cfg->topic, ev.key, strlen(ev.key), body, req->len,
			       hdrs, &dlv, &err) != 0) {
		hdrs = NULL; /* taken over by bw_acked_publish */
		if (err.kind == BW_ERR_INVALID) /* too large for the broker: a retry never fits */
			return refuse(srv, conn, 413, "payload_too_large", NULL, ev.id,
				      "not published: %s", err.msg);
		return refuse(srv, conn, 503, "unavailable", NULL, ev.id, "not published (%s): %s",
			      bw_err_kind_name(err.kind), err.msg);
	}
	hdrs = NULL;
	ctx.topic = cfg->topic;
	ctx.partition = dlv.partition;
	ctx.offset = dlv.offset;
	ctx.event_id = ev.id;
	bw_metrics_add(BW_M_APPLIED, 1);
	bw_log(BW_LOG_INFO, &ctx, "published %s key %s (%zu bytes)", ev.type, ev.key, req->len);
	return respond(srv, conn, 200, "{\"received\":true}", NULL);
}

/* First call: route and check the headers (413 before reading an announced oversized body).
 * Next calls: append the body, refusing to buffer past the limit. Last call: handle it. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct bw_ingress_server *srv = cls;
	struct request *req = *con_cls;

	(void)version;
	if (!req) {
		if (!strcmp(url, srv->cfg.path)) {
			const char *cl_text = MHD_lookup_connection_value(
				conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
			int64_t cl = -1;
			if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
				return refuse(srv, conn, 405, "method_not_allowed", "POST", NULL,
					      "%.16s %s", method, url);
			if (cl_text && bw_parse_int64(cl_text, 0, INT64_MAX, &cl) == 0 &&
			    (uint64_t)cl > srv->cfg.max_body)
				return refuse(srv, conn, 413, "payload_too_large", NULL, NULL,
					      "Content-Length %lld over the limit of %zu",
					      (long long)cl, srv->cfg.max_body);
			req = calloc(1, sizeof(*req));
			if (!req)
				return MHD_NO;
			clock_gettime(CLOCK_REALTIME, &req->received);
			req->cap = cl > 0 ? (size_t)cl : 0;
			atomic_fetch_add(&srv->in_flight, 1);
			*con_cls = req;
			return MHD_YES;
		}
		if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz")) {
			if (!is_get(method))
				return refuse(srv, conn, 405, "method_not_allowed", "GET, HEAD", NULL,
					      "%.16s %s", method, url);
			if (!strcmp(url, "/healthz"))
				return respond(srv, conn, 200, "{\"status\":\"ok\"}", NULL);
			if (bw_acked_publisher_ready(srv->pub, srv->cfg.ready_timeout_ms))
				return respond(srv, conn, 200, "{\"status\":\"ready\"}", NULL);
			bw_log(BW_LOG_WARN, NULL, "readyz: no broker answered within %d ms",
			       srv->cfg.ready_timeout_ms);
			return respond(srv, conn, 503, "{\"error\":\"unavailable\"}", NULL);
		}
		return refuse(srv, conn, 404, "not_found", NULL, NULL, "%.16s %.200s", method, url);
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		if (n > srv->cfg.max_body - req->len) {
			/* Chunked upload past the limit: the status line cannot be sent in the
			 * middle of a body, so the connection is closed without reading more. */
			bw_ops_http_peer(conn, req->peer, sizeof(req->peer));
			bw_log(BW_LOG_WARN, NULL,
			       "refused payload_too_large from %s: body over the limit of %zu, "
			       "connection closed",
			       req->peer, srv->cfg.max_body);
			bw_metrics_add(BW_M_REJECTED, 1);
			return MHD_NO;
		}
		if (req->len + n > req->cap || !req->body) {
			size_t cap = req->cap ? req->cap : BODY_INITIAL_CAP;
			while (cap < req->len + n)
				cap *= 2;
			if (cap > srv->cfg.max_body)
				cap = srv->cfg.max_body;
			unsigned char *nb = realloc(req->body, cap);
			if (!nb)
				return MHD_NO;
			req->body = nb;
			req->cap = cap;
		}
		memcpy(req->body + req->len, upload_data, n);
		req->len += n;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return handle_webhook(srv, conn, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct bw_ingress_server *srv = cls;
	struct request *req = *con_cls;

	(void)conn;
	(void)toe;
	if (!req)
		return;
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

struct bw_ingress_server *bw_ingress_server_start(const struct bw_ingress_http_cfg *cfg,
						  struct bw_acked_publisher *pub,
						  struct bw_err *err)
{
	struct bw_ingress_server *srv = calloc(1, sizeof(*srv));
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;

	if (!srv) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		goto fail;
	}
	srv->cfg = *cfg;
	srv->pub = pub;
	int family = bw_ops_http_sockaddr(cfg->bind, cfg->port, &ss);
	if (family < 0) {
		bw_err_set(err, BW_ERR_FATAL, "HTTP_BIND '%s' is not a numeric IP address",
			   cfg->bind);
		goto fail;
	}
	if (family == 1)
		flags |= MHD_USE_IPv6;
	srv->daemon = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
		/* first, so it catches everything */
		MHD_OPTION_EXTERNAL_LOGGER, bw_ops_http_mhd_log, (void *)"microhttpd",
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
		MHD_OPTION_END);
	if (!srv->daemon) {
		bw_err_set(err, BW_ERR_FATAL, "cannot listen on %s:%d", cfg->bind, cfg->port);
		goto fail;
	}
	di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : cfg->port;
	return srv;
fail:
	free(srv);
	return NULL;
}

int bw_ingress_server_port(struct bw_ingress_server *srv)
{
	return srv->port;
}

void bw_ingress_server_stop(struct bw_ingress_server *srv, int drain_ms)
{
	if (!srv)
		return;
	bw_ops_http_drain_stop(srv->daemon, &srv->draining, &srv->in_flight, drain_ms);
	free(srv);
}
