/* api_http: see api_http.h. Every request passes through on_request(). */
#include "api_http.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_balance.h"
#include "api_pay.h"
#include "api_plans.h"
#include "api_report.h"
#include "api_usage.h"
#include "config.h"
#include "http_server.h"
#include "log.h"
#include "metrics.h"
#include "usage_event.h"

#define ORGS_PREFIX "/v1/orgs/"
#define BALANCE_SUFFIX "/balance"
#define USAGE_PATH "/v1/usage"
#define PLANS_PATH "/v1/plans"

struct bw_api_server {
	struct bw_http_server http;
	struct bw_api_http_cfg cfg;
	const struct bw_api_keys *keys;
	struct bw_acked_publisher *pub;
	struct bw_mongo *mongo;
	struct bw_api_balance_cache *cache;
};

/* State of one request, from its headers to its completion: the body of a POST /v1/usage,
 * or the GET to answer on the next call (answering on the first call, before microhttpd
 * finished reading the request, makes it close the connection: no keep-alive). */
enum route { R_USAGE, R_BALANCE, R_PLANS, R_SUBSCRIPTION, R_REPORT, R_CREDITS, R_PLAN,
	     R_CANCEL, R_REACTIVATE, R_PORTAL };

struct request {
	enum route route;
	size_t idlen;           /* org routes: length of the org id in the URL */
	struct bw_http_body body;
};

static void request_free(void *req)
{
	free(((struct request *)req)->body.data);
	free(req);
}

/* Queues status with body (taken over: free()d here) as application/json. */
static enum MHD_Result respond(struct bw_api_server *srv, struct MHD_Connection *conn,
			       unsigned status, char *body, const char *allow)
{
	struct MHD_Response *resp;

	if (!body)
		return MHD_NO; /* out of memory: close the connection */
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	return bw_http_server_queue(&srv->http, conn, status, resp, allow);
}

/* Answers {"error":"<code>","detail":...} with status and logs the one line of this refusal
 * (never the key or the body). */
static enum MHD_Result refuse(struct bw_api_server *srv, struct MHD_Connection *conn,
			      unsigned status, const char *code, const char *allow,
			      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static enum MHD_Result refuse(struct bw_api_server *srv, struct MHD_Connection *conn,
			      unsigned status, const char *code, const char *allow,
			      const char *fmt, ...)
{
	char detail[300], peer[64];
	json_t *o;
	char *body;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	bw_http_peer(conn, peer, sizeof(peer));
	bw_log(status == 404 || status == 405 ? BW_LOG_INFO : BW_LOG_WARN, NULL,
	       "refused %u %s from %s: %s", status, code, peer, detail);
	o = json_pack("{ssss}", "error", code, "detail", detail);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return respond(srv, conn, status, body, allow);
}

static int authorized(struct bw_api_server *srv, struct MHD_Connection *conn)
{
	return bw_api_keys_check(srv->keys,
				 MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_AUTHORIZATION));
}

/* GET /v1/orgs/{org_id}/balance[?spus=N]; org_id checked by the caller. */
static enum MHD_Result handle_balance(struct bw_api_server *srv, struct MHD_Connection *conn,
				      const char *org_id)
{
	const char *spus_text = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "spus");
	int64_t spus = -1;
	char *body = NULL;
	struct bw_err err;

	bw_err_clear(&err);
	if (spus_text && bw_parse_int64(spus_text, 1, INT64_MAX, &spus) != 0)
		return refuse(srv, conn, 400, "invalid_spus", NULL,
			      "spus must be an integer from 1 to 9223372036854775807");
	if (bw_api_balance_json(srv->mongo, srv->cache, org_id, srv->cfg.free_grant, spus, &body, &err) != 0)
		return refuse(srv, conn, 503, "unavailable", NULL, "balance of %s: %s", org_id,
			      err.msg);
	return respond(srv, conn, 200, body, NULL);
}

/* GET /v1/plans and GET /v1/orgs/{org_id}/subscription (org_id NULL for the plans). */
static enum MHD_Result handle_plans_read(struct bw_api_server *srv, struct MHD_Connection *conn,
					 const char *org_id)
{
	char *body = NULL;
	struct bw_err err;
	int rc;

	bw_err_clear(&err);
	rc = org_id ? bw_api_subscription_json(srv->mongo, org_id, &body, &err)
		    : bw_api_plans_json(srv->mongo, &body, &err);
	if (rc != 0)
		return refuse(srv, conn, 503, "unavailable", NULL, "%s: %s",
			      org_id ? "subscription" : "plans", err.msg);
	return respond(srv, conn, 200, body, NULL);
}

/* GET /v1/orgs/{org_id}/usage?from=&to=&group= (api_report). */
static enum MHD_Result handle_report(struct bw_api_server *srv, struct MHD_Connection *conn,
				     const char *org_id)
{
	struct bw_api_report_req rr = {
		org_id,
		MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from"),
		MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "to"),
		MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "group"),
		srv->cfg.report_max_days, srv->cfg.report_max_records,
	};
	char *body = NULL;
	unsigned status = bw_api_usage_report(srv->mongo, &rr, &body);

	return respond(srv, conn, status, body, NULL);
}

/* POST /v1/usage with the whole body in: validate every event, publish all or nothing. */
static enum MHD_Result handle_usage(struct bw_api_server *srv, struct MHD_Connection *conn,
				    struct request *req)
{
	struct bw_api_usage_batch b;
	struct bw_acked_msg *msgs = NULL;
	struct bw_err err;
	const char *code;
	char detail[200];
	enum MHD_Result ret;

	bw_err_clear(&err);
	if (bw_api_usage_parse(req->body.data, req->body.len, srv->cfg.max_events,
			       srv->cfg.max_event_bytes, &b, &code, detail, sizeof(detail)) != 0)
		return refuse(srv, conn, 400, code, NULL, "%s", detail);
	bw_metrics_add(BW_M_MSGS_IN, b.n);
	if (json_array_size(b.invalid) > 0) {
		size_t nbad = json_array_size(b.invalid);
		bw_metrics_add(BW_M_REJECTED, nbad);
		bw_log(BW_LOG_WARN, NULL, "refused 400 invalid_events: %zu of %zu events invalid, "
		       "first at index %lld", nbad, b.n,
		       (long long)json_integer_value(
			       json_object_get(json_array_get(b.invalid, 0), "index")));
		ret = respond(srv, conn, 400, bw_api_usage_answer(&b, "invalid_events"), NULL);
		goto done;
	}
	msgs = bw_api_usage_msgs(&b);
	if (!msgs) {
		ret = MHD_NO;
		goto done;
	}
	if (bw_acked_publish_batch(srv->pub, srv->cfg.topic, msgs, b.n, &err) != 0) {
		if (err.kind == BW_ERR_INVALID) { /* an event too large for the broker */
			bw_log(BW_LOG_WARN, NULL, "refused 413 payload_too_large: %s", err.msg);
			ret = respond(srv, conn, 413, bw_api_usage_answer(&b, "payload_too_large"),
				      NULL);
			goto done;
		}
		bw_log(BW_LOG_WARN, NULL, "refused 503 unavailable: %zu events to %s not all "
		       "acknowledged (%s): %s", b.n, srv->cfg.topic, bw_err_kind_name(err.kind),
		       err.msg);
		ret = respond(srv, conn, 503, bw_api_usage_answer(&b, "unavailable"), NULL);
		goto done;
	}
	bw_metrics_add(BW_M_APPLIED, b.n);
	bw_log(BW_LOG_DEBUG, NULL, "published %zu events to %s", b.n, srv->cfg.topic);
	ret = respond(srv, conn, 202, bw_api_usage_answer(&b, NULL), NULL);
done:
	free(msgs);
	bw_api_usage_batch_free(&b);
	return ret;
}

/* The Stripe-backed calls (api_pay) with the whole body in. */
static enum MHD_Result handle_pay(struct bw_api_server *srv, struct MHD_Connection *conn,
				  const char *url, struct request *req)
{
	char org_id[BW_USAGE_ID_MAX + 1];
	char *body = NULL;
	unsigned status;

	memcpy(org_id, url + strlen(ORGS_PREFIX), req->idlen);
	org_id[req->idlen] = '\0';
	struct bw_api_pay_req pr = {
		org_id, req->body.data, req->body.len,
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key"),
	};
	switch (req->route) {
	case R_CREDITS:
		status = bw_api_pay_credits(srv->cfg.pay, srv->mongo, &pr, &body);
		break;
	case R_PLAN:
		status = bw_api_pay_plan(srv->cfg.pay, srv->mongo, &pr, &body);
		break;
	case R_CANCEL:
	case R_REACTIVATE:
		status = bw_api_pay_cancel(srv->cfg.pay, srv->mongo, &pr, req->route == R_CANCEL,
					   &body);
		break;
	case R_PORTAL:
		status = bw_api_pay_portal(srv->cfg.pay, srv->mongo, &pr, &body);
		break;
	default:
		return refuse(srv, conn, 404, "not_found", NULL, "%s", url);
	}
	return respond(srv, conn, status, body, NULL);
}

/* The routes after /v1/orgs/{org_id} (suffix NULL: GET /v1/plans); allow: every method of
 * the suffix. */
struct org_route {
	const char *suffix;
	enum route route;
	const char *method;
	const char *allow;
};

static const struct org_route org_routes[] = {
	{ BALANCE_SUFFIX, R_BALANCE, "GET", "GET, HEAD" },
	{ "/subscription", R_SUBSCRIPTION, "GET", "GET, HEAD, DELETE" },
	{ "/subscription", R_CANCEL, "DELETE", "GET, HEAD, DELETE" },
	{ "/subscription/reactivate", R_REACTIVATE, "POST", "POST" },
	{ "/checkout/plan", R_PLAN, "POST", "POST" },
	{ "/portal", R_PORTAL, "POST", "POST" },
	{ "/usage", R_REPORT, "GET", "GET, HEAD" },
	{ "/checkout/credits", R_CREDITS, "POST", "POST" },
	{ NULL, R_PLANS, "GET", "GET, HEAD" },
};

/* The first call of a request: route, authorise, answer a GET at once, or set up the body of
 * a POST /v1/usage (413 before reading an announced oversized body). */
static enum MHD_Result start_request(struct bw_api_server *srv, struct MHD_Connection *conn,
				     const char *url, const char *method, void **con_cls)
{
	size_t ulen = strlen(url), plen = strlen(ORGS_PREFIX);
	int is_get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	struct request *req;

	if (!strcmp(url, USAGE_PATH)) {
		int64_t cl = bw_http_content_length(conn);
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return refuse(srv, conn, 405, "method_not_allowed", "POST", "%.16s %s",
				      method, url);
		if (!authorized(srv, conn))
			return refuse(srv, conn, 401, "unauthorized", NULL,
				      "missing or unknown API key");
		if (cl >= 0 && (uint64_t)cl > srv->cfg.max_body)
			return refuse(srv, conn, 413, "payload_too_large", NULL,
				      "Content-Length %lld over the limit of %zu", (long long)cl,
				      srv->cfg.max_body);
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		req->body.cap = cl > 0 ? (size_t)cl : 0;
		bw_http_server_track(&srv->http, con_cls, req);
		return MHD_YES;
	}
	if (!strcmp(url, PLANS_PATH) || (ulen > plen && !strncmp(url, ORGS_PREFIX, plen))) {
		const char *slash = strchr(url + plen, '/');
		const struct org_route *rt = NULL;
		size_t idlen = slash ? (size_t)(slash - (url + plen)) : 0;
		const char *allow = NULL;
		for (size_t i = 0; i < sizeof(org_routes) / sizeof(org_routes[0]); i++) {
			const struct org_route *o = &org_routes[i];
			if (!(o->suffix ? slash && !strcmp(slash, o->suffix) : !strcmp(url, PLANS_PATH)))
				continue;
			allow = o->allow;
			if (!strcmp(o->method, "GET") ? is_get : !strcmp(method, o->method))
				rt = o;
		}
		if (!allow)
			goto not_found;
		if (!rt)
			return refuse(srv, conn, 405, "method_not_allowed", allow, "%.16s %s",
				      method, url);
		if (!authorized(srv, conn))
			return refuse(srv, conn, 401, "unauthorized", NULL,
				      "missing or unknown API key");
		if (rt->suffix && (idlen == 0 || idlen > BW_USAGE_ID_MAX))
			return refuse(srv, conn, 400, "invalid_org_id", NULL,
				      "org id of %zu bytes (1 to %d)", idlen, BW_USAGE_ID_MAX);
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		req->route = rt->route;
		req->idlen = idlen;
		bw_http_server_track(&srv->http, con_cls, req);
		return MHD_YES;
	}
not_found:
	return refuse(srv, conn, 404, "not_found", NULL, "%.16s %.200s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct bw_api_server *srv = cls;
	struct request *req = *con_cls;

	(void)version;
	if (!req)
		return start_request(srv, conn, url, method, con_cls);
	if (req->route >= R_CREDITS) {
		if (*upload_data_size > 0) {
			enum MHD_Result r = bw_http_body_append(&req->body, conn, upload_data,
								*upload_data_size,
								srv->cfg.max_body);
			*upload_data_size = 0;
			return r;
		}
		return handle_pay(srv, conn, url, req);
	}
	if (req->route != R_USAGE) {
		char org_id[BW_USAGE_ID_MAX + 1] = "";
		*upload_data_size = 0; /* a GET body is ignored */
		memcpy(org_id, url + strlen(ORGS_PREFIX), req->route == R_PLANS ? 0 : req->idlen);
		org_id[req->route == R_PLANS ? 0 : req->idlen] = '\0';
		if (req->route == R_BALANCE)
			return handle_balance(srv, conn, org_id);
		if (req->route == R_REPORT)
			return handle_report(srv, conn, org_id);
		return handle_plans_read(srv, conn, req->route == R_PLANS ? NULL : org_id);
	}
	if (*upload_data_size > 0) {
		enum MHD_Result r = bw_http_body_append(&req->body, conn, upload_data,
							*upload_data_size, srv->cfg.max_body);
		*upload_data_size = 0;
		return r;
	}
	return handle_usage(srv, conn, req);
}

struct bw_api_server *bw_api_server_start(const struct bw_api_http_cfg *cfg,
					  const struct bw_api_keys *keys,
					  struct bw_acked_publisher *pub, struct bw_mongo *mongo,
					  struct bw_api_balance_cache *cache, struct bw_err *err)
{
	struct bw_api_server *srv = calloc(1, sizeof(*srv));
	struct bw_http_server_conf hconf = {
		.name = "API",
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
	srv->keys = keys;
	srv->pub = pub;
	srv->mongo = mongo;
	srv->cache = cache;
	if (bw_http_server_start(&srv->http, &hconf, err) != 0) {
		free(srv);
		return NULL;
	}
	return srv;
}

int bw_api_server_port(struct bw_api_server *srv)
{
	return srv->http.port;
}

void bw_api_server_stop(struct bw_api_server *srv, int drain_ms)
{
	if (!srv)
		return;
	bw_http_server_stop(&srv->http, drain_ms);
	free(srv);
}
