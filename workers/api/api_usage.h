/* api_usage: the body of POST /v1/usage: one usage event (a JSON object) or a JSON array of
 * them, each validated by the usage worker's own parser (usage_event: the checks of
 * schemas/usage-event.schema.json) on exactly the bytes that would be published, so an event
 * accepted here is never rejected by the worker as invalid. Pure: no I/O. */
#ifndef BW_API_USAGE_H
#define BW_API_USAGE_H

#include <jansson.h>
#include <stddef.h>

#include "acked_publisher.h"

/* The events of one request. */
struct bw_api_usage_batch {
	size_t n;
	char **values;          /* compact JSON of each event (the message value), owned */
	size_t *lens;
	char **event_ids;       /* owned; NULL when the event has no readable event_id */
	char **org_ids;         /* owned; NULL when unreadable */
	json_t *invalid;        /* [{index, event_id, reason}] of the invalid events */
};

/* Parses body[0..len). Returns 0 with b filled (b->invalid may be non-empty), or -1 when the
 * body as a whole is refused: *code "invalid_json" (not JSON, or neither an object nor an
 * array), "empty_batch" or "too_many_events" (more than max_events), detail saying why. */
int bw_api_usage_parse(const unsigned char *body, size_t len, size_t max_events,
		       size_t max_event_bytes, struct bw_api_usage_batch *b, const char **code,
		       char *detail, size_t detail_len);

/* The messages to publish (key org_id, value the event), as a new array of b->n (free()). */
struct bw_acked_msg *bw_api_usage_msgs(const struct bw_api_usage_batch *b);

/* The answer body: {"accepted": n, "event_ids": [...]} when error is NULL, else
 * {"error": error, "event_ids": [...]} plus "invalid" when there are invalid events. New
 * string (caller free()), NULL on OOM. */
char *bw_api_usage_answer(const struct bw_api_usage_batch *b, const char *error);

void bw_api_usage_batch_free(struct bw_api_usage_batch *b);

#endif
