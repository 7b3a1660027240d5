/* usage_event: parses and validates one usage.events message (schemas/usage-event.schema.json).
 *
 * A message that fails here can never succeed: the caller DLQs it with err->msg. */
#ifndef BW_USAGE_EVENT_H
#define BW_USAGE_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define BW_USAGE_ID_MAX 256
#define BW_USAGE_MAX_DEPTH 16  /* nesting of extra fields kept on the usage record */

struct bw_usage_event {
	json_t *raw;            /* the whole event object (owned) */
	const char *event_id;   /* borrowed from raw */
	const char *org_id;     /* borrowed from raw */
	int64_t spus;
	char hash[65];          /* SHA-256 of the canonical event: tells a duplicate from a conflict */
};

/* Parses buf[0..len) (at most max_len bytes) into ev. On success ev owns a reference to the
 * parsed object: bw_usage_event_cleanup(). On failure ev is left empty and err is INVALID
 * with the reason; *event_id_out/org_id_out (optional, new strings or NULL) receive the ids
 * when they could be read, so the rejection can still name them. */
int bw_usage_event_parse(const unsigned char *buf, size_t len, size_t max_len,
			 struct bw_usage_event *ev, char **event_id_out, char **org_id_out,
			 struct bw_err *err);

/* Drops the reference and empties ev. NULL-safe. */
void bw_usage_event_cleanup(struct bw_usage_event *ev);

#endif
