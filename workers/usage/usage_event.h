/* usage_event: parses and validates one usage.events message (schemas/usage-event.schema.json).
 *
 * One scan of the bytes (shared/json_scan.h) validates the JSON and records its values as
 * tokens; the fields are read from the tokens and the canonical hash is made from them, with
 * no jansson tree and no allocation per field. A message the scan refuses goes through
 * jansson once more, for the wording of its reason (the tests pin those texts).
 * A message refused here (INVALID) can never succeed: the caller DLQs it with err->msg. */
#ifndef BW_USAGE_EVENT_H
#define BW_USAGE_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "json_scan.h"

#define BW_USAGE_ID_MAX 256
#define BW_USAGE_MAX_DEPTH 16  /* nesting of extra fields kept on the usage record */

struct bw_usage_event {
	void *block;                    /* owned: the tokens and text below, one allocation */
	const struct bw_json_tok *tok;  /* the event's values; tok[0] is the object */
	uint32_t ntok;
	const char *text;     /* the event's bytes, every string decoded and NUL-terminated at
			       * text + tok.start (bw_json_scan_decode) */
	const char *event_id; /* into text */
	const char *org_id;   /* into text */
	int64_t spus;
	char hash[65];        /* SHA-256 of the canonical event: tells a duplicate from a conflict */
};

/* Parses buf[0..len) (at most max_len bytes) into ev. On success ev owns its memory:
 * bw_usage_event_cleanup(). On failure ev is left empty and err is INVALID with the reason
 * (the message can never succeed: DLQ it), or TRANSIENT when memory ran out (the event is not
 * at fault: fail the batch so that it is retried);
 * *event_id_out/org_id_out (optional, new strings or NULL) receive the ids, on failure
 * when they could be read, so the rejection can still name them. */
int bw_usage_event_parse(const unsigned char *buf, size_t len, size_t max_len,
			 struct bw_usage_event *ev, char **event_id_out, char **org_id_out,
			 struct bw_err *err);

/* Frees ev's memory and empties ev. NULL-safe. */
void bw_usage_event_cleanup(struct bw_usage_event *ev);

#endif
