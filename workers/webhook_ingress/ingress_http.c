/* ingress_http: see ingress_http.h. Every Stripe webhook passes through on_request(). */
#include "ingress_http.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_server.h"
#include "ingress_event.h"
#include "log.h"
#include "metrics.h"
#include "stripe_sig.h"

struct bw_ingress_server {
	struct bw_http_server http;
	struct bw_ingress_http_cfg cfg;
	struct bw_acked_publisher *pub;
};

/* State of one webhook POST, from its headers to its completion. */
struct request {
	struct bw_http_body body;
	struct timespec received; /* when the headers arrived (CLOCK_REALTIME) */
};

static void request_free(void *req)
{
	free(((struct request *)req)->body.data);
	free(req);
}

static enum MHD_Result respond(struct bw_ingress_server *srv, struct MHD_Connection *conn,
			       unsigned status, const char *json, const char *allow)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	return bw_http_server_queue(&srv->http, conn, status, resp, allow);
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
	bw_http_peer(conn, peer, sizeof(peer));
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
	const unsigned char *body = req->body.data ? req->body.data : empty;
	size_t len = req->body.len;

	bw_err_clear(&err);
	bw_metrics_add(BW_M_MSGS_IN, 1);
	r = bw_stripe_sig_verify(sig, body, len, cfg->secrets, cfg->tolerance_s,
				 (int64_t)time(NULL), &t);
	if (r != BW_SIG_OK) {
		bw_metrics_add(BW_M_SIG_FAILURES, 1);
		return refuse(srv, conn, 400, bw_stripe_sig_result_name(r), NULL, NULL,
			      "signature check failed (t=%lld, now=%lld, body %zu bytes)",
			      (long long)t, (long long)time(NULL), len);
	}
	if (bw_ingress_event_inspect(body, len, cfg->max_body, &ev, &err) != 0)
		return refuse(srv, conn, 400, ev.error, NULL, NULL, "%s", err.msg);

	bw_ingress_format_time(&req->received, received_at);
	hdrs = rd_kafka_headers_new(4);
	rd_kafka_header_add(hdrs, "stripe.event_id", -1, ev.id, -1);
	rd_kafka_header_add(hdrs, "stripe.event_type", -1, ev.type, -1);
	rd_kafka_header_add(hdrs, "stripe.received_at", -1, received_at, -1);
	rd_kafka_header_add(hdrs, "stripe.signature_verified", -1, "true", -1);
	if (bw_acked_publish(srv->pub, cfg->topic, ev.key, strlen(ev.key), body, len,
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
	bw_log(BW_LOG_INFO, &ctx, "published %s key %s (%zu bytes)", ev.type, ev.key, len);
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
			int64_t cl = bw_http_content_length(conn);
			if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
				return refuse(srv, conn, 405, "method_not_allowed", "POST", NULL,
					      "%.16s %s", method, url);
			if (cl >= 0 && (uint64_t)cl > srv->cfg.max_body)
				return refuse(srv, conn, 413, "payload_too_large", NULL, NULL,
					      "Content-Length %lld over the limit of %zu",
					      (long long)cl, srv->cfg.max_body);
			req = calloc(1, sizeof(*req));
			if (!req)
				return MHD_NO;
			clock_gettime(CLOCK_REALTIME, &req->received);
			req->body.cap = cl > 0 ? (size_t)cl : 0;
			bw_http_server_track(&srv->http, con_cls, req);
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
		enum MHD_Result r = bw_http_body_append(&req->body, conn, upload_data,
							*upload_data_size, srv->cfg.max_body);
		*upload_data_size = 0;
		return r;
	}
	return handle_webhook(srv, conn, req);
}

struct bw_ingress_server *bw_ingress_server_start(const struct bw_ingress_http_cfg *cfg,
						  struct bw_acked_publisher *pub,
						  struct bw_err *err)
{
	struct bw_ingress_server *srv = calloc(1, sizeof(*srv));
	struct bw_http_server_conf hconf = {
		.name = "HTTP",
		.bind = cfg->bind,
		.port = cfg->port,
		.max_connections = cfg->max_connections,
		.on_request = on_request,
		.cls = srv,
		.release = request_free,
	};

	if (!srv) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		return NULL;
	}
	srv->cfg = *cfg;
	srv->pub = pub;
	if (bw_http_server_start(&srv->http, &hconf, err) != 0) {
		free(srv);
		return NULL;
	}
	return srv;
}

int bw_ingress_server_port(struct bw_ingress_server *srv)
{
	return srv->http.port;
}

void bw_ingress_server_stop(struct bw_ingress_server *srv, int drain_ms)
{
	if (!srv)
		return;
	bw_http_server_stop(&srv->http, drain_ms);
	free(srv);
}
