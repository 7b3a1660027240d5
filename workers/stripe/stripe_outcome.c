/* stripe_outcome: see stripe_outcome.h. */
#include "stripe_outcome.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *bw_stripe_status_name(enum bw_stripe_status st)
{
	static const char *const names[BW_SS_COUNT] = { "applied", "duplicate", "ignored",
							"stale",   "deferred",  "rejected",
							"payment_failed" };
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "unknown";
}

int bw_stripe_status_parse(const char *s, enum bw_stripe_status *out)
{
	for (int i = BW_SS_APPLIED; i < BW_SS_COUNT; i++)
		if (strcmp(s, bw_stripe_status_name((enum bw_stripe_status)i)) == 0) {
			*out = (enum bw_stripe_status)i;
			return 0;
		}
	return -1;
}

void bw_stripe_outcome_set(struct bw_stripe_outcome *out, enum bw_stripe_status st,
			   const char *fmt, ...)
{
	out->status = st;
	out->reason[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
		va_end(ap);
	}
	out->to_dlq = st == BW_SS_REJECTED;
}

void bw_stripe_detail_str(struct bw_stripe_outcome *out, const char *key, const char *v)
{
	if (v)
		json_object_set_new(out->details, key, json_string(v));
}

void bw_stripe_detail_int(struct bw_stripe_outcome *out, const char *key, int64_t v)
{
	json_object_set_new(out->details, key, json_integer((json_int_t)v));
}

void bw_stripe_want_tick(struct bw_stripe_outcome *out, const struct bw_stripe_event *ev,
			 const char *reason, int64_t attempt)
{
	snprintf(out->tick_reason, sizeof(out->tick_reason), "%s", reason);
	if (attempt > 0)
		snprintf(out->tick_id, sizeof(out->tick_id), "%s:%s:%" PRId64, ev->id, reason,
			 attempt);
	else
		snprintf(out->tick_id, sizeof(out->tick_id), "%s:%s", ev->id, reason);
	bw_stripe_detail_str(out, "sync_tick_id", out->tick_id);
}

void bw_stripe_outcome_cleanup(struct bw_stripe_outcome *out)
{
	if (!out)
		return;
	json_decref(out->details);
	out->details = NULL;
}
