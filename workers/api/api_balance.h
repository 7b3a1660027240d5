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

/* A per-process cache of the answers read from the database, each kept ttl_ms (0: none),
 * so a hot org's reads do not each cost database round trips. A read is then at most ttl_ms
 * older than the database, which the usage worker's own asynchrony already exceeds; the
 * cache holds nothing another process would need (bw-api stays stateless). Thread-safe. */
struct bw_api_balance_cache;
struct bw_api_balance_cache *bw_api_balance_cache_new(int64_t ttl_ms);
void bw_api_balance_cache_free(struct bw_api_balance_cache *c);

/* The answer for org_id as a new JSON string (caller free()): org_id, known, enterprise,
 * balance_version, balances, subscription; with spus >= 1 also spus, allowed, available
 * (null for an enterprise org) and shortfall. spus < 0: no pre-check. cache may be NULL.
 * Returns 0, or -1 with err (TRANSIENT: the database did not answer). */
int bw_api_balance_json(struct bw_mongo *m, struct bw_api_balance_cache *cache,
			const char *org_id, int64_t free_grant, int64_t spus, char **out,
			struct bw_err *err);

#endif
