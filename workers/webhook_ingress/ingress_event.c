/* ingress_event: see ingress_event.h. Runs on every verified webhook request. */
#include "ingress_event.h"

#include <stdio.h>
#include <string.h>

#include "dlq.h"
#include "json.h"

static int copy_id(char dst[BW_INGRESS_ID_MAX + 1], const char *src)
{
	size_t n = strlen(src);
	if (n == 0 || n > BW_INGRESS_ID_MAX)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

/* Customer id of the event's object, or NULL: data.object.customer as a string or as an
 * expanded object, else the object's own id when it is a customer. Borrowed from root. */
static const char *customer_of(const json_t *root)
{
	const json_t *obj = json_object_get(json_object_get(root, "data"), "object");
	const json_t *cust = json_object_get(obj, "customer");
	const char *id = NULL;

	if (json_is_string(cust))
		id = json_string_value(cust);
	else if (json_is_object(cust) && json_is_string(json_object_get(cust, "id")))
		id = json_string_value(json_object_get(cust, "id"));
	else if (json_is_string(json_object_get(obj, "id")) &&
		 strncmp(json_string_value(json_object_get(obj, "id")), "cus_", 4) == 0)
		id = json_string_value(json_object_get(obj, "id"));
	if (id && (strlen(id) == 0 || strlen(id) > BW_INGRESS_ID_MAX))
		id = NULL;
	return id;
}

int bw_ingress_event_inspect(const unsigned char *body, size_t len, size_t max_len,
			     struct bw_ingress_event *ev, struct bw_err *err)
{
	json_t *root = NULL;
	const char *id = NULL, *type = NULL, *cust = NULL;
	int rc = -1;

	memset(ev, 0, sizeof(*ev));
	ev->error = "invalid_json";
	root = bw_json_parse_object(body, len, max_len, err);
	if (!root)
		goto done;
	ev->error = "invalid_event";
	if (bw_json_get_str(root, "id", 1, BW_INGRESS_ID_MAX, &id, err) != 0 ||
	    bw_json_get_str(root, "type", 1, BW_INGRESS_ID_MAX, &type, err) != 0)
		goto done;
	copy_id(ev->id, id);
	copy_id(ev->type, type);
	cust = customer_of(root);
	ev->key_is_customer = cust != NULL;
	copy_id(ev->key, cust ? cust : id);
	ev->error = NULL;
	rc = 0;
done:
	json_decref(root);
	return rc;
}

void bw_ingress_format_time(const struct timespec *ts, char out[32])
{
	struct tm tm;
	int ms = (int)(ts->tv_nsec / 1000000L) % 1000;

	gmtime_r(&ts->tv_sec, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
		 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
		 tm.tm_sec % 100, ms);
}

size_t bw_ingress_max_body(size_t max_message_bytes)
{
	size_t over = BW_INGRESS_RECORD_OVERHEAD > BW_DLQ_OVERHEAD ? BW_INGRESS_RECORD_OVERHEAD
								    : BW_DLQ_OVERHEAD;
	return max_message_bytes > over ? max_message_bytes - over : 0;
}
