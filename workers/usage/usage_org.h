/* usage_org: what a batch does to one org's state, read from its customer document, before it
 * charges the org's events (usage_batch.c, org_compute): the opening balance at the first touch
 * of an org the original integration wrote, and the alert state re-armed from the balance. */
#ifndef BW_USAGE_ORG_H
#define BW_USAGE_ORG_H

#include <stdint.h>

#include "usage_alert.h"
#include "usage_store.h"

/* The first touch of an org the original integration wrote: its counters become its opening
 * balance in *bal (version bumped); org is marked to write it (and its opening row, when
 * anything was used before). */
void bw_usage_org_open(struct bw_org *org, struct bw_balances *bal, int64_t *version);

/* Drops the fired thresholds no longer in cfg and re-arms the others from bal. */
void bw_usage_org_alerts_open(struct bw_org *org, const struct bw_balances *bal,
			      const struct bw_alert_cfg *cfg);

#endif
