/* ingress_event: what the ingress reads from a verified Stripe event before publishing it
 * unchanged: the event id and type (Kafka headers) and the partition key (the Stripe customer
 * of the event's object, else the event id), so one customer's events stay in order. */
#ifndef BW_INGRESS_EVENT_H
#define BW_INGRESS_EVENT_H

#include <stddef.h>
#include <time.h>

#include "err.h"

#define BW_INGRESS_ID_MAX 255

struct bw_ingress_event {
	char id[BW_INGRESS_ID_MAX + 1];
	char type[BW_INGRESS_ID_MAX + 1];
	char key[BW_INGRESS_ID_MAX + 1];
	int key_is_customer;  /* 1: key is a cus_ id; 0: key is the event id */
	const char *error;    /* on failure: "invalid_json" or "invalid_event" (static) */
};

/* Parses body[0..len) (at most max_len bytes) as a Stripe event: a JSON object with non-empty
 * string `id` and `type` of at most BW_INGRESS_ID_MAX bytes. The key is
 * data.object.customer (a string, or an expanded customer object's id), else data.object.id
 * when it starts with "cus_" (the object is a customer), else the event id. Returns 0, or -1
 * with err (INVALID, naming the problem) and ev->error set. Nothing is allocated. */
int bw_ingress_event_inspect(const unsigned char *body, size_t len, size_t max_len,
			     struct bw_ingress_event *ev, struct bw_err *err);

/* Formats ts as RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.123Z") into out. */
void bw_ingress_format_time(const struct timespec *ts, char out[32]);

/* What a published webhook adds to its body at most: the key (an id of up to 255 bytes,
 * BW_INGRESS_ID_MAX), the four stripe.* headers and the record overhead. */
#define BW_INGRESS_RECORD_OVERHEAD (128 + 255 + 15 + 255 + 17 + 255 + 18 + 32 + 25 + 5 + 40)

/* The largest webhook body the ingress accepts under the producer's message.max.bytes: one it
 * can publish, and one the stripe worker's DLQ record carries with its body (the larger of
 * the two overheads). 0 when none fits. */
size_t bw_ingress_max_body(size_t max_message_bytes);

#endif
