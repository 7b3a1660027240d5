/* http_server: the one place a libmicrohttpd daemon is started and stopped. Every HTTP server
 * of the project uses it: the public fronts (bw-api's api_http, the webhook ingress's
 * ingress_http) and the operations endpoint (ops_http).
 *
 * It owns the daemon: the numeric bind address (IPv4 or IPv6), the thread model (one thread
 * per connection for the fronts, so a request blocked on MongoDB or on its Kafka
 * acknowledgement never delays another; one polling thread for the ops endpoint), the
 * connection limit and idle timeout, microhttpd's error log through bw_log, the count of
 * requests in progress and the graceful drain at stop. It also owns what every front's
 * answer and upload share: the JSON response queued with "Connection: close" while
 * draining and counted by status (metrics.h), and the request body buffer with its hard
 * limit. Routing and each request's state belong to the front. */
#ifndef BW_HTTP_SERVER_H
#define BW_HTTP_SERVER_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct bw_http_server_conf {
	const char *name;           /* config prefix in errors: "API" gives API_BIND, API_PORT */
	const char *bind;           /* numeric IPv4 or IPv6 address */
	int port;                   /* 0: any free port (see port below) */
	unsigned max_connections;
	unsigned timeout_s;         /* idle connection timeout; 0: 30 s */
	int single_thread;          /* 0: a thread per connection (the fronts); 1: one polling
				     * thread serves all (the ops endpoint) */
	MHD_AccessHandlerCallback on_request;
	void *cls;                  /* on_request's first argument (borrowed) */
	/* Frees a request state handed to bw_http_server_track() once its request completed;
	 * NULL when the server keeps no state per request. */
	void (*release)(void *req);
};

/* Embedded in the server that uses it; initialise with { 0 }. */
struct bw_http_server {
	struct MHD_Daemon *daemon;
	void (*release)(void *req);
	atomic_int in_flight; /* requests tracked and not yet completed */
	atomic_int draining;  /* stopping: answers close their connection */
	int port;             /* the port actually bound */
};

/* Starts listening on conf's address. 0, or -1 with err (FATAL: not a numeric address,
 * port in use); on -1 nothing is left to stop. */
int bw_http_server_start(struct bw_http_server *http, const struct bw_http_server_conf *conf,
			 struct bw_err *err);

/* Hands req (the front's state of this request) to the connection (*con_cls = req) and
 * counts it in progress until microhttpd reports the request completed, when conf.release
 * frees it. */
void bw_http_server_track(struct bw_http_server *http, void **con_cls, void *req);

/* Stops gracefully: answers close their connection from now on, stops accepting (so a load
 * balancer or a retry goes elsewhere), waits up to drain_ms for the requests in progress,
 * logs what is left, then stops the daemon. Safe on a server that never started. */
void bw_http_server_stop(struct bw_http_server *http, int drain_ms);

/* Queues resp (consumed) with status as application/json, adding "Allow: <allow>" when allow
 * is not NULL and "Connection: close" while draining, and counts the status (metrics.h). */
enum MHD_Result bw_http_server_queue(struct bw_http_server *http, struct MHD_Connection *conn,
				     unsigned status, struct MHD_Response *resp,
				     const char *allow);

/* The announced Content-Length of conn's request, or -1 when absent or not a number. */
int64_t bw_http_content_length(struct MHD_Connection *conn);

/* The body of an upload, grown up to a hard limit. Initialise with { 0 }; free data. */
struct bw_http_body {
	unsigned char *data;
	size_t len, cap;
};

/* Appends data[0..n) to body. Past max (a chunked body: no status line can be sent in the
 * middle of it) the refusal is logged and counted and MHD_NO closes the connection; MHD_NO
 * too when out of memory. First allocation: the announced length when known (body->cap set
 * by the caller), else 64 KiB. */
enum MHD_Result bw_http_body_append(struct bw_http_body *body, struct MHD_Connection *conn,
				    const char *data, size_t n, size_t max);

/* The client address of conn (numeric), or "?". For the fronts' refusal logs. */
void bw_http_peer(struct MHD_Connection *conn, char *out, size_t len);

#endif
