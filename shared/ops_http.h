/* ops_http: the operations endpoint every long-running binary serves on METRICS_PORT:
 *   GET /metrics  Prometheus text (metrics.h), with the producer's queue depth read at scrape;
 *   GET /healthz  200 while the loop's heartbeat is fresher than stall_ms, else 503;
 *   GET /readyz   200 when every readiness check passes, else 503 with the failing ones:
 *                 the consumer group assigned this worker its partitions (possibly none: a
 *                 surplus replica is ready, idle), MongoDB answers a ping (own client, short
 *                 timeouts, answer cached for 2 s), the producer raised no fatal error, and
 *                 the caller's own check (the ingress: its publisher).
 * One microhttpd thread serves all three; nothing here touches the workers' hot path.
 * The ingress serves it on a port of its own beside its webhook port, so /metrics is not
 * reachable through the public webhook endpoint. */
#ifndef BW_OPS_HTTP_H
#define BW_OPS_HTTP_H

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

struct bw_ops_conf {
	const char *bind;        /* numeric IPv4/IPv6 address */
	int port;                /* 0: any free port (tests) */
	int64_t stall_ms;        /* /healthz fails when the heartbeat is older */
	const char *mongo_uri;   /* NULL: no MongoDB check */
	int mongo_timeout_ms;    /* connect and server selection timeout of the ping */
	int consumer;            /* 1: ready needs the group's assignment */
};

struct bw_ops_server;

/* Starts listening (strings copied). NULL with err (FATAL) when the port cannot be bound. */
struct bw_ops_server *bw_ops_server_start(const struct bw_ops_conf *conf, struct bw_err *err);

/* The producer whose health and queue depth are reported (borrowed; set NULL before it is
 * destroyed). NULL-safe on srv. */
void bw_ops_server_set_producer(struct bw_ops_server *srv, rd_kafka_t *rk);

/* An extra readiness check: fn(opaque) returns 1 when ready; name labels it. NULL-safe. */
void bw_ops_server_set_check(struct bw_ops_server *srv, const char *name,
			     int (*fn)(void *opaque), void *opaque);

/* The bound port. */
int bw_ops_server_port(const struct bw_ops_server *srv);

/* Stops serving and frees. NULL-safe. */
void bw_ops_server_stop(struct bw_ops_server *srv);

/* Shared with the webhook ingress's server. Fills ss with bind:port (bind a numeric IPv4 or
 * IPv6 address). Returns 1 for IPv6 (MHD_USE_IPv6 needed), 0 for IPv4, -1 when bind is not a
 * numeric address. */
int bw_ops_http_sockaddr(const char *bind, int port, struct sockaddr_storage *ss);

/* microhttpd's external logger (MHD_OPTION_EXTERNAL_LOGGER): one bw_log warning per message,
 * prefixed with cls (a const char *, e.g. "microhttpd"). */
void bw_ops_http_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Graceful stop of an HTTP front's microhttpd daemon (the webhook ingress and bw-api): sets
 * *draining (answers then close their connection), stops accepting (so a load balancer or a
 * retry goes elsewhere), waits up to drain_ms for *in_flight to reach 0, logs what is left,
 * then stops the daemon. daemon is consumed. */
struct MHD_Daemon;
void bw_ops_http_drain_stop(struct MHD_Daemon *daemon, atomic_int *draining,
			    atomic_int *in_flight, int drain_ms);

/* The client address of conn (numeric), or "?". Shared by the HTTP fronts' refusal logs. */
struct MHD_Connection;
void bw_ops_http_peer(struct MHD_Connection *conn, char *out, size_t len);

#endif
