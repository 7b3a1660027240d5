/* usage_alert: the pure rule of low-balance alerts (no I/O): when a charge crosses a
 * configured threshold of total remaining credits, or starts overage ("exhausted").
 *
 * Remaining is the sum of the three buckets' remaining (max(total - used, 0) each,
 * shared/customer_doc), saturated at INT64_MAX. A threshold T is armed until it fires; it fires
 * on the first charge that leaves remaining <= T while armed, and is re-armed only by a
 * balance read with remaining > T (a purchase, a grant, a new period: written by other
 * writers, seen here through the balance the usage worker loads). "exhausted" fires on the
 * first charge with overage (from_paid > 0) while armed, and is re-armed by a read with
 * remaining > 0. Enterprise orgs never alert (the caller skips them).
 *
 * Delivery (usage_batch.c): the state and the alerts a charge fires are written in the same
 * conditional customer-document update as the charge, so each crossing yields exactly one
 * alert, with an id derived from (org_id, threshold, balance_version after the crossing
 * charge). It is published at least once; twice only after a crash or a lost ack between the
 * publish and its clearing write, and then as the identical message (same alert_id and bytes):
 * consumers dedupe on alert_id. */
#ifndef BW_USAGE_ALERT_H
#define BW_USAGE_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "waterfall.h"

#define BW_ALERT_MAX_THRESHOLDS 16
#define BW_ALERT_ID_MAX 320

/* The configured thresholds, distinct, > 0, sorted from highest to lowest. */
struct bw_alert_cfg {
	int64_t threshold[BW_ALERT_MAX_THRESHOLDS];
	size_t n;
};

/* An org's alert state, as stored on its customer document. */
struct bw_alert_state {
	int64_t fired[BW_ALERT_MAX_THRESHOLDS]; /* thresholds fired and not re-armed */
	size_t nfired;
	int exhausted_fired;
};

/* One alert fired by a charge: threshold > 0, or 0 for "exhausted". */
struct bw_alert_fire {
	int64_t threshold;
};

/* Parses ALERT_THRESHOLDS: "" (no thresholds) or comma-separated SPU values, each in
 * [1, 10^15], distinct, at most BW_ALERT_MAX_THRESHOLDS. 0, or -1 with err INVALID. */
int bw_alert_thresholds_parse(const char *text, struct bw_alert_cfg *out, struct bw_err *err);

/* 1 when t is one of cfg's thresholds. */
int bw_alert_cfg_has(const struct bw_alert_cfg *cfg, int64_t t);

/* Total remaining credits of b (saturated at INT64_MAX); 0 for an enterprise org. */
int64_t bw_alert_remaining(const struct bw_balances *b);

/* Re-arms from a balance read: drops the fired thresholds below remaining, and the exhausted
 * flag when remaining > 0. */
void bw_alert_rearm(struct bw_alert_state *s, int64_t remaining);

/* After one charge that left `remaining` and had overage (from_paid > 0) or not: fires every
 * armed threshold >= remaining (highest first), then "exhausted" when overage and armed;
 * marks them fired. Writes them to out (room for BW_ALERT_MAX_THRESHOLDS + 1) and returns
 * how many. */
size_t bw_alert_after_charge(struct bw_alert_state *s, const struct bw_alert_cfg *cfg,
			     int64_t remaining, int overage, struct bw_alert_fire *out);

/* The alert id: "<org_id>:<threshold|exhausted>:<balance_version>". 0, or -1 when it does not
 * fit in len. */
int bw_alert_id(char *buf, size_t len, const char *org_id, int64_t threshold,
		int64_t balance_version);

/* The billing.alerts message (schemas/billing-alert.schema.json): a new string, or NULL. Every
 * input is stored with the pending alert, so a re-publish is byte-identical. */
char *bw_alert_message_json(const char *org_id, const char *event_id, int64_t threshold,
			    int64_t remaining, int64_t balance_version, int64_t created_at_ms);

#endif
