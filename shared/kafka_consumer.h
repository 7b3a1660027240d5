/* kafka_consumer: the consumer-group loop every worker runs.
 *
 * Offsets are stored (enable.auto.offset.store=false) only after the handler says a batch's
 * effects are durable, and committed by the background auto-commit, on revoke and on close.
 * A batch is up to batch_max messages polled within batch_wait_ms; it is handed over early
 * when no further message arrives within 2 ms (the local queue ran dry). On a partition revoke the
 * buffered batch is processed and committed first, so a rebalance hands over a clean offset.
 *
 * Handler outcomes:
 *   0                   every message is done (DB effect durable, results/DLQ acknowledged):
 *                       their offsets are stored;
 *   -1, TRANSIENT/other the loop seeks the batch's partitions back to its first offsets, backs
 *                       off (exponential, capped) and polls them again: nothing is stored;
 *   -1, FATAL           bw_consumer_run() returns -1; nothing of the batch is stored. */
#ifndef BW_KAFKA_CONSUMER_H
#define BW_KAFKA_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>

#include "err.h"

typedef int (*bw_batch_fn)(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			   struct bw_err *err);

struct bw_consumer_conf {
	const char *brokers;
	const char *group_id;
	const char *topic;
	int batch_max;            /* messages per batch (>= 1) */
	int batch_wait_ms;        /* longest wait to fill a batch once it has a message */
	int idle_exit_ms;         /* > 0: run() returns 0 after this long without messages
				     (counted from the last message or partition assignment;
				     before the first assignment it waits max(10x, 60 s)) */
	int backoff_max_ms;       /* cap of the retry backoff after a failed batch */
	const char *const *extra_props; /* "name=value", NULL-terminated, may be NULL */
	int stats_interval_ms;    /* > 0: librdkafka statistics feed the lag metrics */
};

struct bw_consumer;

/* Creates the consumer and subscribes. conf strings are copied. NULL with err (FATAL). */
struct bw_consumer *bw_consumer_new(const struct bw_consumer_conf *conf, struct bw_err *err);

/* Polls and hands batches to fn until *stop is set, idle_exit_ms passes, or a fatal error.
 * The messages passed to fn are borrowed for the call. Returns 0, or -1 with err. */
int bw_consumer_run(struct bw_consumer *c, bw_batch_fn fn, void *opaque,
		    volatile sig_atomic_t *stop, struct bw_err *err);

/* Commits stored offsets synchronously, closes (leaving the group) and frees. NULL-safe. */
void bw_consumer_destroy(struct bw_consumer *c);

#endif
