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
#include <stdint.h>

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

#endif
