/* http_server: see http_server.h. Below the fronts' routing and the ops endpoint's pages. */
#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

/* First allocation of a body buffer when the client announced no length. */
#define BODY_INITIAL_CAP 65536

/* microhttpd's external logger: one bw_log warning per message, prefixed with the server's
 * name (cls). */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	bw_log(BW_LOG_WARN, NULL, "microhttpd (%s): %s", (const char *)cls, line);
}

/* Fills ss with bind:port. Returns 1 for IPv6 (MHD_USE_IPv6 needed), 0 for IPv4, -1 when bind
 * is not a numeric address. */
static int sockaddr_of(const char *bind, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return 1;
	}
	return -1;
}

/* microhttpd's notice that a request is over (answered, refused or cut): the tracked state
 * is freed and no longer in progress. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct bw_http_server *http = cls;

	(void)conn;
	(void)toe;
	if (!*con_cls)
		return;
	if (http->release)
		http->release(*con_cls);
	*con_cls = NULL;
	atomic_fetch_sub(&http->in_flight, 1);
}

int bw_http_server_start(struct bw_http_server *http, const struct bw_http_server_conf *conf,
			 struct bw_err *err)
{
	struct sockaddr_storage ss;
	/* ITC: a quiesced daemon's polling thread is woken to let go of the listening socket. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	int family = sockaddr_of(conf->bind, conf->port, &ss);

	if (family < 0) {
		bw_err_set(err, BW_ERR_FATAL, "%s_BIND '%s' is not a numeric IP address",
			   conf->name, conf->bind);
		return -1;
	}
	if (family == 1)
		flags |= MHD_USE_IPv6;
	if (!conf->single_thread)
		flags |= MHD_USE_THREAD_PER_CONNECTION;
	http->release = conf->release;
	atomic_store(&http->in_flight, 0);
	atomic_store(&http->draining, 0);
	http->daemon = MHD_start_daemon(
		flags, (uint16_t)conf->port, NULL, NULL, conf->on_request, conf->cls,
		/* first, so it catches everything */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)conf->name,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, conf->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, conf->timeout_s ? conf->timeout_s : 30u,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, http,
		/* a thread per connection needs little stack: the default 8 MiB is address space */
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
		MHD_OPTION_END);
	if (!http->daemon) {
		bw_err_set(err, BW_ERR_FATAL, "%s_PORT: cannot listen on %s:%d", conf->name,
			   conf->bind, conf->port);
		return -1;
	}
	di = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
	http->port = di ? di->port : conf->port;
	return 0;
}

void bw_http_server_track(struct bw_http_server *http, void **con_cls, void *req)
{
	atomic_fetch_add(&http->in_flight, 1);
	*con_cls = req;
}

void bw_http_server_stop(struct bw_http_server *http, int drain_ms)
{
	MHD_socket lsock;

	if (!http->daemon)
		return;
	atomic_store(&http->draining, 1);
	lsock = MHD_quiesce_daemon(http->daemon);
	if (lsock != MHD_INVALID_SOCKET)
		close(lsock);
	for (int waited = 0; atomic_load(&http->in_flight) > 0 && waited < drain_ms; waited += 20)
		usleep(20000);
	if (atomic_load(&http->in_flight) > 0)
		bw_log(BW_LOG_WARN, NULL, "%d requests still in progress at shutdown",
		       atomic_load(&http->in_flight));
	MHD_stop_daemon(http->daemon);
	http->daemon = NULL;
}

enum MHD_Result bw_http_server_queue(struct bw_http_server *http, struct MHD_Connection *conn,
				     unsigned status, struct MHD_Response *resp,
				     const char *allow)
{
	enum MHD_Result ret;

	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	/* While draining, keep-alive clients are told to go, so the drain ends quickly. */
	if (atomic_load(&http->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	bw_metrics_http(status);
	return ret;
}

int64_t bw_http_content_length(struct MHD_Connection *conn)
{
	const char *text = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t cl = -1;

	if (!text || bw_parse_int64(text, 0, INT64_MAX, &cl) != 0)
		return -1;
	return cl;
}

enum MHD_Result bw_http_body_append(struct bw_http_body *body, struct MHD_Connection *conn,
				    const char *data, size_t n, size_t max)
{
	char peer[64];

	if (n > max - body->len) {
		bw_http_peer(conn, peer, sizeof(peer));
		bw_log(BW_LOG_WARN, NULL, "refused payload_too_large from %s: body over the "
		       "limit of %zu bytes, connection closed", peer, max);
		bw_metrics_add(BW_M_REJECTED, 1);
		return MHD_NO;
	}
	if (body->len + n > body->cap || !body->data) {
		size_t cap = body->cap ? body->cap : BODY_INITIAL_CAP;
		unsigned char *grown;
		while (cap < body->len + n)
			cap *= 2;
		if (cap > max)
			cap = max;
		grown = realloc(body->data, cap);
		if (!grown)
			return MHD_NO;
		body->data = grown;
		body->cap = cap;
	}
	memcpy(body->data + body->len, data, n);
	body->len += n;
	return MHD_YES;
}

void bw_http_peer(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
			  (socklen_t)len);
}
