/* usage_alert: see usage_alert.h. */
#include "usage_alert.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "customer_doc.h"

#define MAX_THRESHOLD_SPUS 1000000000000000LL

static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

int bw_alert_thresholds_parse(const char *text, struct bw_alert_cfg *out, struct bw_err *err)
{
	const char *p = text;

	out->n = 0;
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[32];
		int64_t v;
		if (len == 0 || len >= sizeof(item))
			return bw_err_set(err, BW_ERR_INVALID,
					  "threshold '%.*s' is not an SPU value", (int)len, p);
		memcpy(item, p, len);
		item[len] = '\0';
		if (bw_parse_int64(item, 1, MAX_THRESHOLD_SPUS, &v) != 0)
			return bw_err_set(err, BW_ERR_INVALID,
					  "threshold '%s' is not an integer in [1, %lld]", item,
					  MAX_THRESHOLD_SPUS);
		if (bw_alert_cfg_has(out, v))
			return bw_err_set(err, BW_ERR_INVALID, "threshold %lld listed twice",
					  (long long)v);
		if (out->n == BW_ALERT_MAX_THRESHOLDS)
			return bw_err_set(err, BW_ERR_INVALID, "more than %d thresholds",
					  BW_ALERT_MAX_THRESHOLDS);
		out->threshold[out->n++] = v;
		p = comma ? comma + 1 : NULL;
		if (comma && !*p)
			return bw_err_set(err, BW_ERR_INVALID, "trailing comma");
	}
	qsort(out->threshold, out->n, sizeof(out->threshold[0]), cmp_desc);
	return 0;
}

int bw_alert_cfg_has(const struct bw_alert_cfg *cfg, int64_t t)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (cfg->threshold[i] == t)
			return 1;
	return 0;
}

int64_t bw_alert_remaining(const struct bw_balances *b)
{
	/* The one definition of available (the results' total_remaining, bw-api's pre-check). */
	return b->enterprise ? 0 : bw_waterfall_available(b);
}

void bw_alert_rearm(struct bw_alert_state *s, int64_t remaining)
{
	size_t kept = 0;

	for (size_t i = 0; i < s->nfired; i++)
		if (s->fired[i] >= remaining)
			s->fired[kept++] = s->fired[i];
	s->nfired = kept;
	if (remaining > 0)
		s->exhausted_fired = 0;
}

static int is_fired(const struct bw_alert_state *s, int64_t t)
{
	for (size_t i = 0; i < s->nfired; i++)
		if (s->fired[i] == t)
			return 1;
	return 0;
}

size_t bw_alert_after_charge(struct bw_alert_state *s, const struct bw_alert_cfg *cfg,
			     int64_t remaining, int overage, struct bw_alert_fire *out)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n; i++) {
		int64_t t = cfg->threshold[i];
		if (remaining > t || is_fired(s, t) || s->nfired == BW_ALERT_MAX_THRESHOLDS)
			continue;
		s->fired[s->nfired++] = t;
		out[n++].threshold = t;
	}
	if (overage && !s->exhausted_fired) {
		s->exhausted_fired = 1;
		out[n++].threshold = 0;
	}
	return n;
}

int bw_alert_id(char *buf, size_t len, const char *org_id, int64_t threshold,
		int64_t balance_version)
{
	char what[32];
	int w;

	if (threshold > 0)
		snprintf(what, sizeof(what), "%lld", (long long)threshold);
	else
		snprintf(what, sizeof(what), "exhausted");
	w = snprintf(buf, len, "%s:%s:%lld", org_id, what, (long long)balance_version);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

char *bw_alert_message_json(const char *org_id, const char *event_id, int64_t threshold,
			    int64_t remaining, int64_t balance_version, int64_t created_at_ms)
{
	char id[BW_ALERT_ID_MAX], at[80];
	time_t secs = (time_t)(created_at_ms / 1000);
	struct tm tm;
	json_t *o;
	char *text;

	if (bw_alert_id(id, sizeof(id), org_id, threshold, balance_version) != 0 ||
	    !gmtime_r(&secs, &tm))
		return NULL;
	snprintf(at, sizeof(at), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(created_at_ms % 1000));
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "alert_id", id, "org_id", org_id,
		      "type", threshold > 0 ? "low_balance" : "exhausted", "event_id", event_id,
		      "remaining_spus", (json_int_t)remaining, "balance_version",
		      (json_int_t)balance_version, "created_at", at);
	if (o && threshold > 0)
		json_object_set_new(o, "threshold_spus", json_integer(threshold));
	text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return text;
}
