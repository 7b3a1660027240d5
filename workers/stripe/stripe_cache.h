/* stripe_cache: what one batch looks up before it applies anything: the event records of
 * its events and the customer documents of their orgs / Stripe customers, each set read
 * with one $in query instead of one read per event. Events whose record is `done` then
 * replay it without a round trip. bw_stripe_apply keeps it current (customers it creates
 * or links are added) and queues the event records it writes in one bulk write, which
 * bw_stripe_cache_flush sends after every effect of the batch (so a record still means
 * its effect is durable). One batch and one client only. */
#ifndef BW_STRIPE_CACHE_H
#define BW_STRIPE_CACHE_H

#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>

#include "err.h"
#include "mongo.h"
#include "stripe_decide.h"
#include "stripe_event.h"
#include "stripe_outcome.h"
#include "stripe_record.h"

struct bw_stripe_cache;

/* New empty cache reading and writing through m and client (both borrowed, must outlive
 * it; bw_stripe_cache_destroy), or NULL when out of memory. */
struct bw_stripe_cache *bw_stripe_cache_new(struct bw_mongo *m, mongoc_client_t *client);
void bw_stripe_cache_destroy(struct bw_stripe_cache *cache);

/* Notes the keys ev (borrowed) will look up. 0, or -1 when out of memory. */
int bw_stripe_cache_want(struct bw_stripe_cache *cache, const struct bw_stripe_event *ev);

/* Reads every wanted key: at most two queries. 0, or -1 with err (TRANSIENT). */
int bw_stripe_cache_load(struct bw_stripe_cache *cache, struct bw_err *err);

/* Writes the queued event records (one round trip; fault point after_event_record). 0, or
 * -1 with err (TRANSIENT). Must run before the batch's results are published. */
int bw_stripe_cache_flush(struct bw_stripe_cache *cache, struct bw_err *err);

/* The batch's database handles (borrowed). */
struct bw_mongo *bw_stripe_cache_mongo(const struct bw_stripe_cache *cache);
mongoc_client_t *bw_stripe_cache_client(const struct bw_stripe_cache *cache);

/* 1 with *r filled (a copy: bw_stripe_rec_cleanup; r->found = 0 when known absent) when
 * the cache knows the record of event_id, else 0 (read it). */
int bw_stripe_cache_rec(const struct bw_stripe_cache *cache, const char *event_id,
			struct bw_stripe_rec *r);

/* Whether the record of event_id is queued and not yet written. */
int bw_stripe_cache_rec_pending(const struct bw_stripe_cache *cache, const char *event_id);

/* Queues the event record (bw_stripe_rec_update) in the batch's bulk write. A repeat of the
 * event later in the batch flushes first and reads it back. 0, or -1 with err. */
int bw_stripe_cache_queue_rec(struct bw_stripe_cache *cache, const struct bw_stripe_event *ev,
			      const rd_kafka_message_t *msg, const struct bw_stripe_outcome *out,
			      int64_t attempts, struct bw_err *err);

/* 1 with *c filled (found or not; c->fresh = 0: a batch-start copy, trust its identity
 * fields only) when the cache knows the org / Stripe customer id, else 0 (read it). */
int bw_stripe_cache_cust_by_org(const struct bw_stripe_cache *cache, const char *org_id,
				struct bw_stripe_cust *c);
int bw_stripe_cache_cust_by_customer(const struct bw_stripe_cache *cache,
				     const char *customer_id, struct bw_stripe_cust *c);

/* Whether the original integration credited checkout session sid (a ledger row keyed
 * session_id that is not ours): 1 with row = that row's _id, 0 no, -1 not looked up. */
int bw_stripe_cache_old_credit(const struct bw_stripe_cache *cache, const char *sid, char *row,
			       size_t len);

/* Adds (or replaces) c (found) under its org and Stripe customer ids. 0, or -1 (memory). */
int bw_stripe_cache_put_cust(struct bw_stripe_cache *cache, const struct bw_stripe_cust *c);

#endif
