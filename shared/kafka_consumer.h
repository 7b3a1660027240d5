/* kafka_consumer: the consumer-group loop every worker runs.
 *
 * Offsets are stored (enable.auto.offset.store=false) only after the handler says a batch's
 * effects are durable and its outputs acknowledged, and committed by the background
 * auto-commit, on revoke and on close. A batch is up to batch_max messages polled within
 * batch_wait_ms; it is handed over early when no further message arrives within 2 ms (the
 * local queue ran dry).
 *
 * Two kinds of handler:
 *  - bw_batch_fn (bw_consumer_run): one call does everything, acks included; the offsets of
 *    the batch are stored when it returns 0.
 *  - struct bw_batch_handler (bw_consumer_run_pipelined): the batch is split so that the
 *    acknowledgement of batch N's outputs overlaps the database work of batch N+1:
 *
 *        apply(N+1)         parse, reads, writes: N+1's database effect is durable
 *        settle(N)          N's outputs acknowledged (and its after-ack steps): store N's offsets
 *        publish(N+1)       N+1's outputs queued; N+1 is now held, its acks in flight
 *
 *    N's database writes were complete before N published, so N+1 reads what N wrote; only
 *    the publish and its acks overlap. At most one batch is held. It is settled before the
 *    next batch publishes: one wait for acks covers exactly one batch (the shared producer
 *    reports delivery per flush, kafka_producer.h) and offsets are stored in order; N's acks
 *    usually arrive before N+1's database work ends, so N+1 rarely waits. It is also settled
 *    when no message comes within 2 ms (the loop idles), before a partition revoke, and before
 *    run() returns: a rebalance or a stop hands over clean offsets. When apply(N+1) fails, N
 *    is still settled (and stored) before N+1 is rewound.
 *
 * Outcomes (of apply, publish or settle, for the batch they concern):
 *   0                   for a bw_batch_fn: every message is done (DB effect durable, results/
 *                       DLQ acknowledged); for a handler: the step succeeded, and once settle()
 *                       returned 0, the batch's offsets are stored;
 *   -1, TRANSIENT/other nothing of the batch is stored, nor of any batch after it: the loop
 *                       seeks the partitions of the failed batch and of the one in hand behind
 *                       it (a held batch that fails takes the next one with it) back to their
 *                       first offsets, backs off (exponential, capped) and polls them again;
 *                       if that seek fails, the loop stops as for FATAL (polling on would
 *                       store a later batch's offsets over the dropped messages);
 *   -1, FATAL           run() returns -1; nothing of the failed batch (or later) is stored.
 * On a revoke, a batch that fails is dropped and the new owner redelivers it. */
#ifndef BW_KAFKA_CONSUMER_H
#define BW_KAFKA_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>

#include "err.h"

typedef int (*bw_batch_fn)(void *opaque, rd_kafka_message_t *const *msgs, size_t count,
			   struct bw_err *err);

/* A pipelined handler (see the top). state is the handler's own record of one batch: new from
 * apply(), owned by the loop until it passes it to discard(). The messages given to apply()
 * stay valid until that discard(). */
struct bw_batch_handler {
	/* Everything up to the batch's durable database effect. 0 with *state set, or -1 with
	 * err (and *state NULL: apply cleans up after itself). */
	int (*apply)(void *opaque, rd_kafka_message_t *const *msgs, size_t count, void **state,
		     struct bw_err *err);
	/* Queues the batch's outputs without waiting for their acks. It may settle the batch
	 * itself when the next batch's apply() must see the after-ack steps done (settle() then
	 * has nothing left to do). 0, or -1 with err. */
	int (*publish)(void *opaque, void *state, struct bw_err *err);
	/* Waits for the acks of what publish() queued, then does the steps that must follow
	 * them. 0 when every output is acknowledged, or -1 with err. */
	int (*settle)(void *opaque, void *state, struct bw_err *err);
	/* Frees state (after settle(), or instead of it when the batch failed). */
	void (*discard)(void *opaque, void *state);
};

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

/* bw_consumer_run() with a pipelined handler (borrowed; every member set). */
int bw_consumer_run_pipelined(struct bw_consumer *c, const struct bw_batch_handler *h,
			      void *opaque, volatile sig_atomic_t *stop, struct bw_err *err);

/* Commits stored offsets synchronously, closes (leaving the group) and frees. NULL-safe. */
void bw_consumer_destroy(struct bw_consumer *c);

#endif
