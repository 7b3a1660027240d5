/* stripe_opening: opens an old org (one the original integration wrote, without the
 * opening_balance marker) before the stripe worker changes its balances, so a credit is not
 * eaten by the old code's overdraft (used > total). Owns nothing of its own: the marker and
 * the normalised counters are shared/customer_doc's; the opening row in
 * payments_usage_records is written by the usage worker from the pending entry this leaves. */
#ifndef BW_STRIPE_OPENING_H
#define BW_STRIPE_OPENING_H

#include <mongoc/mongoc.h>
#include <stdint.h>

#include "err.h"
#include "mongo.h"

/* Opens org_id's document when it exists without the marker: one conditional update (on the
 * balance_version and the marker's absence as read) sets the normalised used counters, the
 * marker, balance_version + 1, and pushes the opening pending entry (event_id "") when
 * anything was used. Opening changes no remaining balance (an overdrawn bucket reads 0 before
 * and after), so it stands alone: a crash after it leaves a consistent opened org. A miss
 * (another writer came first) reads again. 0, or -1 with err (TRANSIENT). */
int bw_stripe_open_old_org(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			   int64_t free_grant, struct bw_err *err);

#endif
