/* api_usage: see api_usage.h. */
#include "api_usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usage_event.h"

static int batch_alloc(struct bw_api_usage_batch *b, size_t n)
{
	b->values = calloc(n, sizeof(*b->values));
	b->lens = calloc(n, sizeof(*b->lens));
	b->event_ids = calloc(n, sizeof(*b->event_ids));
	b->org_ids = calloc(n, sizeof(*b->org_ids));
	b->invalid = json_array();
	return b->values && b->lens && b->event_ids && b->org_ids && b->invalid ? 0 : -1;
}

/* Serialises item i and validates it with the worker's parser. -1 only on OOM. */
static int add_event(struct bw_api_usage_batch *b, size_t i, const json_t *item,
		     size_t max_event_bytes)
{
	struct bw_usage_event ev;
	struct bw_err err;
	json_t *bad;

	bw_err_clear(&err);
	b->values[i] = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!b->values[i])
		return -1;
	b->lens[i] = strlen(b->values[i]);
	if (bw_usage_event_parse((const unsigned char *)b->values[i], b->lens[i], max_event_bytes,
				 &ev, &b->event_ids[i], &b->org_ids[i], &err) == 0) {
		bw_usage_event_cleanup(&ev);
		return 0;
	}
	if (err.kind == BW_ERR_TRANSIENT)  /* out of memory: not the event's fault */
		return -1;
	bad = json_pack("{sI so ss}", "index", (json_int_t)i, "event_id",
			b->event_ids[i] ? json_string(b->event_ids[i]) : json_null(), "reason",
			err.msg);
	return bad ? json_array_append_new(b->invalid, bad) : -1;
}

int bw_api_usage_parse(const unsigned char *body, size_t len, size_t max_events,
		       size_t max_event_bytes, struct bw_api_usage_batch *b, const char **code,
		       char *detail, size_t detail_len)
{
	json_error_t jerr;
	json_t *root = NULL;
	size_t n;
	int rc = -1;

	memset(b, 0, sizeof(*b));
	*code = "invalid_json";
	root = len ? json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!root) {
		snprintf(detail, detail_len, "malformed JSON at line %d column %d: %s",
			 len ? jerr.line : 1, len ? jerr.column : 0, len ? jerr.text : "empty body");
		goto done;
	}
	if (!json_is_object(root) && !json_is_array(root)) {
		snprintf(detail, detail_len, "the body is neither an event nor an array of events");
		goto done;
	}
	n = json_is_array(root) ? json_array_size(root) : 1;
	if (n == 0) {
		*code = "empty_batch";
		snprintf(detail, detail_len, "the array holds no event");
		goto done;
	}
	if (n > max_events) {
		*code = "too_many_events";
		snprintf(detail, detail_len, "%zu events, at most %zu per request", n, max_events);
		goto done;
	}
	if (batch_alloc(b, n) != 0)
		goto oom;
	b->n = n;
	for (size_t i = 0; i < n; i++)
		if (add_event(b, i, json_is_array(root) ? json_array_get(root, i) : root,
			      max_event_bytes) != 0)
			goto oom;
	*code = NULL;
	rc = 0;
	goto done;
oom:
	*code = "out_of_memory";
	snprintf(detail, detail_len, "out of memory");
	bw_api_usage_batch_free(b);
done:
	json_decref(root);
	return rc;
}

struct bw_acked_msg *bw_api_usage_msgs(const struct bw_api_usage_batch *b)
{
	struct bw_acked_msg *msgs = calloc(b->n ? b->n : 1, sizeof(*msgs));

	for (size_t i = 0; msgs && i < b->n; i++) {
		msgs[i].key = b->org_ids[i];
		msgs[i].key_len = b->org_ids[i] ? strlen(b->org_ids[i]) : 0;
		msgs[i].value = b->values[i];
		msgs[i].value_len = b->lens[i];
	}
	return msgs;
}

char *bw_api_usage_answer(const struct bw_api_usage_batch *b, const char *error)
{
	json_t *o = json_object(), *ids = json_array();
	char *text = NULL;

	if (!o || !ids)
		goto done;
	for (size_t i = 0; i < b->n; i++)
		json_array_append_new(ids, b->event_ids[i] ? json_string(b->event_ids[i])
							   : json_null());
	if (error)
		json_object_set_new(o, "error", json_string(error));
	else
		json_object_set_new(o, "accepted", json_integer((json_int_t)b->n));
	json_object_set(o, "event_ids", ids);
	if (b->invalid && json_array_size(b->invalid) > 0)
		json_object_set(o, "invalid", b->invalid);
	text = json_dumps(o, JSON_COMPACT);
done:
	json_decref(ids);
	json_decref(o);
	return text;
}

void bw_api_usage_batch_free(struct bw_api_usage_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->values[i]);
		free(b->event_ids[i]);
		free(b->org_ids[i]);
	}
	free(b->values);
	free(b->lens);
	free(b->event_ids);
	free(b->org_ids);
	json_decref(b->invalid);
	memset(b, 0, sizeof(*b));
}
