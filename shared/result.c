/* result: see result.h. */
#include "result.h"

json_t *bw_result_new(const rd_kafka_message_t *msg)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "source_topic", json_string(rd_kafka_topic_name(msg->rkt)));
	json_object_set_new(o, "source_partition", json_integer(msg->partition));
	json_object_set_new(o, "source_offset", json_integer(msg->offset));
	return o;
}

char *bw_result_finish(json_t *o, const char *processed_at)
{
	char *text;

	if (!o)
		return NULL;
	json_object_set_new(o, "processed_at", json_string(processed_at));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}
