/* admin_tick: `bw-admin tick prices | customer ORG | all`: publishes one sync tick
 * (schemas/sync-tick.schema.json) to SYNC_TICKS_TOPIC and waits for the broker's ack. The
 * scheduler (docker-compose `scheduler`, the k8s CronJob) runs `tick all` on an interval.
 * tick_id is "admin:<scope>:<ms since epoch>:<pid>", keyed by the org (customer) or the id. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"

int bw_admin_tick(struct bw_admin *a)
{
	const struct bw_admin_args *g = &a->args;
	const char *scope = g->npos > 1 ? g->pos[1] : "", *org = g->npos > 2 ? g->pos[2] : NULL;
	struct bw_producer *p;
	char tick_id[128];
	json_t *tick = NULL;
	char *text = NULL;
	int code;

	if (strcmp(scope, "customer") == 0 ? (!org || g->npos != 3)
	    : ((strcmp(scope, "prices") != 0 && strcmp(scope, "all") != 0) || g->npos != 2))
		return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL,
					  "tick prices | tick customer ORG | tick all");
	snprintf(tick_id, sizeof(tick_id), "admin:%s:%" PRId64 ":%ld", scope, bw_mongo_now_ms(),
		 (long)getpid());
	tick = json_object();
	json_object_set_new(tick, "tick_id", json_string(tick_id));
	json_object_set_new(tick, "scope", json_string(scope));
	if (org)
		json_object_set_new(tick, "org_id", json_string(org));
	json_object_set_new(tick, "reason", json_string("bw-admin"));
	text = json_dumps(tick, JSON_COMPACT);
	if (!text || !(p = bw_admin_producer(a))) {
		code = text ? bw_admin_fail(a)
			    : bw_admin_fail_with(a, BW_ADMIN_UNAVAILABLE, BW_ERR_TRANSIENT, "OOM");
		goto done;
	}
	if (bw_producer_send(p, a->cfg.ticks_topic, org ? org : tick_id,
			     strlen(org ? org : tick_id), text, strlen(text), NULL, &a->err) != 0 ||
	    bw_producer_flush(p, (int)a->cfg.flush_timeout_ms, &a->err) != 0) {
		code = bw_admin_fail(a);
		goto done;
	}
	json_object_set_new(a->out, "topic", json_string(a->cfg.ticks_topic));
	json_object_set(a->out, "tick", tick);
	code = BW_ADMIN_OK;
done:
	free(text);
	json_decref(tick);
	return code;
}
