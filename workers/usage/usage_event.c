/* usage_event: see usage_event.h. The checks mirror schemas/usage-event.schema.json; the
 * schema test validates the same fixture files against both. */
#include "usage_event.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"

static int check_optional(const json_t *obj, struct bw_err *err)
{
	static const char *const str_fields[] = { "llm_provider", "llm_model" };
	static const char *const int_fields[] = { "prompt_tokens", "completion_tokens",
						  "total_tokens" };
	const char *s;
	int64_t x;
	double d;
	int present;

	for (size_t i = 0; i < 2; i++)
		if (bw_json_get_str(obj, str_fields[i], 0, 256, &s, err))
			return -1;
	for (size_t i = 0; i < 3; i++)
		if (bw_json_get_int64(obj, int_fields[i], 0, 0, INT64_MAX, &x, NULL, err))
			return -1;
	if (bw_json_get_number(obj, "actual_cost", 0, &d, &present, err))
		return -1;
	if (present && d < 0)
		return bw_err_set(err, BW_ERR_INVALID, "field 'actual_cost' must be >= 0");
	return 0;
}

static char *dup_member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int bw_usage_event_parse(const unsigned char *buf, size_t len, size_t max_len,
			 struct bw_usage_event *ev, char **event_id_out, char **org_id_out,
			 struct bw_err *err)
{
	json_t *root = NULL;
	const char *s;

	memset(ev, 0, sizeof(*ev));
	if (event_id_out)
		*event_id_out = NULL;
	if (org_id_out)
		*org_id_out = NULL;
	root = bw_json_parse_object(buf, len, max_len, err);
	if (!root)
		goto fail;
	if (event_id_out)
		*event_id_out = dup_member(root, "event_id");
	if (org_id_out)
		*org_id_out = dup_member(root, "org_id");
	if (bw_json_get_str(root, "event_id", 1, BW_USAGE_ID_MAX, &ev->event_id, err) ||
	    bw_json_get_str(root, "org_id", 1, BW_USAGE_ID_MAX, &ev->org_id, err) ||
	    bw_json_get_int64(root, "spus", 1, 1, INT64_MAX, &ev->spus, NULL, err) ||
	    bw_json_get_str(root, "operation", 1, 128, &s, err) ||
	    bw_json_get_str(root, "source", 1, 128, &s, err) ||
	    bw_json_get_str(root, "timestamp", 1, 64, &s, err))
		goto fail;
	if (bw_json_check_rfc3339(s) != 0) {
		bw_err_set(err, BW_ERR_INVALID, "field 'timestamp' is not an RFC 3339 date-time");
		goto fail;
	}
	if (check_optional(root, err))
		goto fail;
	/* The whole event is stored on the usage record: a name MongoDB refuses would fail
	 * the insert on every retry and hold the partition, so it is refused here instead. */
	if (bw_json_check_storable(root, BW_USAGE_MAX_DEPTH, err))
		goto fail;
	if (bw_json_canonical_hash(root, ev->hash) != 0) {
		bw_err_set(err, BW_ERR_INVALID, "event cannot be serialised");
		goto fail;
	}
	ev->raw = root;
	return 0;
fail:
	json_decref(root);
	memset(ev, 0, sizeof(*ev));
	return -1;
}

void bw_usage_event_cleanup(struct bw_usage_event *ev)
{
	if (!ev)
		return;
	json_decref(ev->raw);
	memset(ev, 0, sizeof(*ev));
}
