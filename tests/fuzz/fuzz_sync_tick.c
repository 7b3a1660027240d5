/* fuzz_sync_tick: the sync tick parser (workers/sync/sync_tick.c).
 *
 * Input: one sync.ticks message. Properties:
 *  - a parsed tick has a tick_id of 1..128 bytes, a known scope, optional strings within
 *    their limits, and scope customer names an org or a customer;
 *  - a rejected tick has an INVALID reason, owns nothing, and the raw tick_id it hands back
 *    for the result is a readable string of at most 128 bytes or NULL;
 *  - a parsed tick written back as JSON parses again to the same tick. */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "sync_tick.h"

static void check_opt(const char *s, size_t max)
{
	if (s)
		FUZZ_CHECK(strlen(s) >= 1 && strlen(s) <= max);
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The tick written back with only its known fields parses to the same values. */
static void check_round_trip(const struct bw_sync_tick *tick)
{
	json_t *o = json_pack("{ssss}", "tick_id", tick->tick_id, "scope",
			      bw_sync_scope_name(tick->scope));
	struct bw_sync_tick again;
	struct bw_err err;
	char *text, *raw = NULL;

	FUZZ_CHECK(o != NULL);
	if (tick->org_id)
		json_object_set_new(o, "org_id", json_string(tick->org_id));
	if (tick->stripe_customer_id)
		json_object_set_new(o, "stripe_customer_id", json_string(tick->stripe_customer_id));
	if (tick->reason)
		json_object_set_new(o, "reason", json_string(tick->reason));
	text = json_dumps(o, JSON_COMPACT);
	FUZZ_CHECK(text != NULL);
	FUZZ_CHECK(bw_sync_tick_parse(text, strlen(text), 1 << 20, &again, &raw, &err) == 0);
	FUZZ_CHECK(same(again.tick_id, tick->tick_id) && again.scope == tick->scope &&
		   same(again.org_id, tick->org_id) &&
		   same(again.stripe_customer_id, tick->stripe_customer_id) &&
		   same(again.reason, tick->reason));
	FUZZ_CHECK(raw && strcmp(raw, tick->tick_id) == 0);
	free(raw);
	bw_sync_tick_cleanup(&again);
	free(text);
	json_decref(o);
}

int BW_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	struct bw_sync_tick tick;
	struct bw_err err;
	char *raw = NULL;

	bw_err_clear(&err);
	if (bw_sync_tick_parse(data, size, BW_FUZZ_MAX_MESSAGE, &tick, &raw, &err) == 0) {
		FUZZ_CHECK(tick.root != NULL);
		check_opt(tick.tick_id, 128);
		FUZZ_CHECK(tick.tick_id != NULL);
		FUZZ_CHECK(tick.scope <= BW_SYNC_ALL);
		FUZZ_CHECK(strcmp(bw_sync_scope_name(tick.scope), "unknown") != 0);
		check_opt(tick.org_id, 128);
		check_opt(tick.stripe_customer_id, 255);
		check_opt(tick.reason, 256);
		if (tick.scope == BW_SYNC_CUSTOMER)
			FUZZ_CHECK(tick.org_id || tick.stripe_customer_id);
		check_round_trip(&tick);
	} else {
		FUZZ_CHECK(err.kind == BW_ERR_INVALID && err.msg[0] != '\0');
		FUZZ_CHECK(tick.root == NULL);
		if (raw)
			FUZZ_CHECK(strlen(raw) <= 128);
	}
	free(raw);
	bw_sync_tick_cleanup(&tick);
	return 0;
}
