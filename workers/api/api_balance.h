/* api_balance: the answer of GET /v1/orgs/{org_id}/balance[?spus=N], read by the usage
 * worker's own code: its load of an org (usage_store: the organizations enterprise flag, the
 * customer document through shared/customer_doc's readings, the free grant of an org never
 * seen), its "balances" object (usage_result) and its one definition of available
 * (bw_waterfall_available). Nothing is written. */
#ifndef BW_API_BALANCE_H
#define BW_API_BALANCE_H

#include <stdint.h>

#include "err.h"
#include "mongo.h"

/* The answer for org_id as a new JSON string (caller free()): org_id, known, enterprise,
 * balance_version, balances, subscription; with spus >= 1 also spus, allowed, available
 * (null for an enterprise org) and shortfall. spus < 0: no pre-check. Returns 0, or -1 with
 * err (TRANSIENT: the database did not answer). */
int bw_api_balance_json(struct bw_mongo *m, const char *org_id, int64_t free_grant, int64_t spus,
			char **out, struct bw_err *err);

#endif
