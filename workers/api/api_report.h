/* api_report: GET /v1/orgs/{org_id}/usage?from=&to=&group=day,operation — the org's usage
 * records aggregated by UTC day and/or operation, from MongoDB (one bounded find, summed
 * here: the same on MongoDB 7 and the local mongo-java-server).
 *
 * from, to: "YYYY-MM-DD" (00:00 UTC) or RFC 3339 date-times; the range is [from, to), at most
 * API_USAGE_MAX_DAYS days. group: "day,operation" (default), "day", "operation" or "".
 * Records counted: this project's records (status "applied" or "insufficient_credits", a
 * charge applied with overage; timestamp the event's RFC 3339
 * string, any offset, read as UTC) and the original integration's (no status; timestamp a
 * UTC datetime). Not counted: other statuses, the opening_balance record, and the old code's
 * "paid_usage" rows, which are the overage already inside a charge row (its page double
 * counted them): their sum is reported apart as old_paid_usage_spus.
 * Each row and the totals: records, spus, breakdown {from_subscription, from_purchased,
 * from_granted, from_paid, unattributed (old records have no breakdown)}, tokens {prompt,
 * completion, total}, cost (actual_cost summed, decimal string, 6 decimals). Counters are
 * int64 with overflow checks. More than API_USAGE_MAX_RECORDS records in the range: 400. */
#ifndef BW_API_REPORT_H
#define BW_API_REPORT_H

#include <stdint.h>

#include "mongo.h"

struct bw_api_report_req {
	const char *org_id, *from, *to, *group; /* from, to, group may be NULL */
	int64_t max_days, max_records;
};

/* Returns the HTTP status with the JSON answer (or {"error","detail"}) in *out (free()). */
unsigned bw_api_usage_report(struct bw_mongo *m, const struct bw_api_report_req *req,
			     char **out);

#endif
