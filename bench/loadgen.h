/* loadgen.h: the parts of bw-bench-loadgen (see loadgen.c for the command line) and what
 * they share:
 *   loadgen.c        main: options, usage, dispatch to a mode;
 *   loadgen_plan.c   the event stream (orgs, re-sends) from a seed, clocks, org names;
 *   loadgen_kafka.c  Kafka clients, and the `count` mode (the pipe ceiling);
 *   loadgen_run.c    the `run` mode: the producer thread and the result matcher; the
 *                    `produce` mode (the producer alone);
 *   loadgen_store.c  the `store` mode (the store ceiling). */
#ifndef BW_BENCH_LOADGEN_H
#define BW_BENCH_LOADGEN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

struct opts {
	const char *mode, *topic, *results, *db, *prefix;
	long events, orgs, batch;
	int compound_index;   /* store: also a unique {org_id, balance_version} index */
	int series;           /* run: per-second latency lines on stderr */
	int records;          /* store: also insert a usage record per new event */
	double dup, zipf, rate, timeout_s, warmup_s;
	uint64_t seed;
	int hex_orgs;         /* org ids as 24-hex strings (an organizations _id): the worker
			       * then reads organizations once per batch */
};

/* One message of the stream: a new event (src = its unique index) or a re-send of src. */
struct plan {
	long n, nuniq;
	long *msg_uniq;       /* message -> unique event index */
	long *uniq_org;       /* unique event -> org rank */
	int *uniq_spus;
	long *first_msg;      /* unique event -> message index of its first send */
	long *dup_msg;        /* unique event -> message index of its re-send, or -1 */
	int hex_orgs;         /* org names as 24 hex digits (from opts) */
};

/* Monotonic and wall-clock microseconds. */
int64_t lg_now_us(void);
int64_t lg_wall_us(void);

/* Builds the stream of o->events messages from (events, orgs, dup, zipf, seed, hex_orgs)
 * into *p (owned; lg_plan_free). Returns 0, or -1 out of memory (p freed). */
int lg_plan_build(struct plan *p, const struct opts *o);
void lg_plan_free(struct plan *p);

/* The org id of org number n: "org-<n>", or 24 hex digits when p->hex_orgs. snprintf's. */
int lg_org_name(const struct plan *p, char *buf, size_t len, long n);

typedef void lg_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* A client on $KAFKA_BROKERS with props (name, value pairs ending with NULL); on_delivery
 * (NULL: none) gets opaque. New, or NULL (printed). */
rd_kafka_t *lg_kafka_new(rd_kafka_type_t type, const char *const *props, void *opaque,
			 lg_delivery_cb *on_delivery);

/* A consumer assigned every partition of topic from the beginning, no group commits. New,
 * or NULL (printed). */
rd_kafka_t *lg_reader_new(const char *topic);

/* The modes: each prints its JSON line and returns the exit code (0, 1 error, 3 short). */
int lg_mode_run(const struct opts *o);
int lg_mode_produce(const struct opts *o);
int lg_mode_count(const struct opts *o);
int lg_mode_store(const struct opts *o);

#endif
