/* usage_org: see usage_org.h. */
#include "usage_org.h"

#include <stdio.h>

/* The first touch of an org the original integration wrote: its counters become its opening
 * balance (normalised by shared/customer_doc), written with this org's conditional update
 * (so exactly once, whichever worker wins) and kept as a pending entry ("" id) until a
 * later write has seen its row: a crash before the row is repaired on the next batch. */
void bw_usage_org_open(struct bw_org *org, struct bw_balances *bal, int64_t *version)
{
	struct bw_customer c = org->cust;

	c.enterprise = bal->enterprise;
	if (bw_customer_opening(&c, &org->opening) != 0) {
		/* an excess that overflows paid_spus_used: keep the counters as they are */
		c = org->cust;
		org->opening = (struct bw_opening){ c.sub_used, c.purchased_used, c.granted_used,
						    c.paid_used, c.sub_used, c.purchased_used,
						    c.granted_used, c.paid_used };
	}
	org->write_opening = 1;
	org->dirty = 1;
	bal->subscription_used = org->opening.sub_used;
	bal->purchased_used = org->opening.purchased_used;
	bal->granted_used = org->opening.granted_used;
	bal->paid_used = org->opening.paid_used;
	(*version)++;
	if (bal->subscription_used == 0 && bal->purchased_used == 0 && bal->granted_used == 0 &&
	    bal->paid_used == 0)
		return; /* nothing used before: the marker alone, no row */
	struct bw_pending *np = &org->new_pending[org->nnew_pending++];
	np->event_id = (char *)""; /* the opening key (usage_result.h) */
	snprintf(np->hash, sizeof(np->hash), "%s", BW_CUST_OPENING);
	np->bd = (struct bw_breakdown){ bal->subscription_used, bal->purchased_used,
					 bal->granted_used, bal->paid_used };
	np->version = *version;
	org->record_opening = 1;
	org->opening_bd = np->bd;
	org->opening_version = np->version;
}

/* Alerts: drop the fired thresholds no longer configured, re-arm from the balance read. */
void bw_usage_org_alerts_open(struct bw_org *org, const struct bw_balances *bal,
			const struct bw_alert_cfg *cfg)
{
	size_t kept = 0;

	for (size_t i = 0; i < org->alerts.nfired; i++)
		if (bw_alert_cfg_has(cfg, org->alerts.fired[i]))
			org->alerts.fired[kept++] = org->alerts.fired[i];
	org->alerts.nfired = kept;
	bw_alert_rearm(&org->alerts, bw_alert_remaining(bal));
}
