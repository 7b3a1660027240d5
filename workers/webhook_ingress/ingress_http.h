/* ingress_http: the HTTP side of the webhook ingress (libmicrohttpd, one thread per
 * connection so a request blocked on its Kafka acknowledgement never delays another).
 *
 *   POST <path>    verify Stripe-Signature, check the event, publish the raw body, answer 200
 *                  {"received":true} only after the broker acknowledged it
 *   GET  /healthz  200 while the process runs
 *   GET  /readyz   200 when a broker answers a metadata request, else 503
 * Refusals (one JSON body {"error":"<code>"} and one log line each): 400 signature_* /
 * timestamp_outside_tolerance / invalid_json / invalid_event, 413 payload_too_large,
 * 405 method_not_allowed, 404 not_found, 503 unavailable. See docs/webhook-ingress.md. */
#ifndef BW_INGRESS_HTTP_H
#define BW_INGRESS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "acked_publisher.h"

struct bw_ingress_http_cfg {
	const char *bind;        /* numeric IPv4 or IPv6 address */
	int port;                /* 0: any free port (see bw_ingress_server_port) */
	const char *path;        /* webhook path, e.g. "/webhooks/stripe" */
	size_t max_body;         /* larger bodies: 413 */
	const char *secrets;     /* comma-separated whsec_ secrets */
	int64_t tolerance_s;     /* signature timestamp tolerance, both directions */
	const char *topic;       /* where verified events go */
	int ready_timeout_ms;    /* metadata wait of /readyz */
	unsigned max_connections;
};

struct bw_ingress_server;

/* Starts listening. cfg's strings and pub are borrowed and must outlive the server.
 * Returns NULL with err (FATAL: bad address, port in use). */
struct bw_ingress_server *bw_ingress_server_start(const struct bw_ingress_http_cfg *cfg,
						  struct bw_acked_publisher *pub,
						  struct bw_err *err);

/* The port actually bound. */
int bw_ingress_server_port(struct bw_ingress_server *srv);

/* Stops accepting connections, waits up to drain_ms for requests in progress to be answered,
 * then closes every connection and frees the server. NULL-safe. */
void bw_ingress_server_stop(struct bw_ingress_server *srv, int drain_ms);

#endif
