/* stripe_record: the event record of one Stripe event in payments_stripe_events: its state
 * ("waiting" for an unknown customer with the attempt count, or "done" with the outcome and
 * the Kafka offset it came from). Written last, after every effect of the event, so its
 * presence means the effect is durable; a later copy of the event replays it. */
#ifndef BW_STRIPE_RECORD_H
#define BW_STRIPE_RECORD_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>

#include "err.h"
#include "mongo.h"
#include "stripe_decide.h"
#include "stripe_outcome.h"

/* What the worker reads of a payments_stripe_events document. */
struct bw_stripe_rec {
	int found;
	int legacy; /* an entry of the original integration's stripe_events, not ours */
	char state[16], status[16], org_id[BW_STRIPE_ID_LEN], reason[BW_DLQ_REASON_MAX];
	char source_topic[256];
	int64_t source_partition, source_offset, attempts;
	json_t *details; /* owned (bw_stripe_rec_cleanup) */
};

void bw_stripe_rec_from_doc(const bson_t *doc, struct bw_stripe_rec *r);
void bw_stripe_rec_cleanup(struct bw_stripe_rec *r);

/* Reads the record of event_id into r (r->found = 0: none). 0, or -1 with err. */
int bw_stripe_rec_load(struct bw_mongo *m, mongoc_client_t *client, const char *event_id,
		       struct bw_stripe_rec *r, struct bw_err *err);

/* Appends to update (initialised by the caller) the upsert of the record of ev from msg:
 * state "done" with out's outcome, or "waiting" (out->waiting) with attempts. */
void bw_stripe_rec_update(const struct bw_stripe_event *ev, const rd_kafka_message_t *msg,
			  const struct bw_stripe_outcome *out, int64_t attempts, bson_t *update);

/* The outcome of an event whose record is done: the same Kafka message (a crash or a
 * rewound batch after the record was written) gets the original outcome, another copy of
 * the event `duplicate`; an event the original integration handled (r->legacy) is
 * `duplicate` with details.original_status "previous_integration". */
void bw_stripe_rec_replay(const struct bw_stripe_rec *r, const rd_kafka_message_t *msg,
			  struct bw_stripe_outcome *out);

#endif
