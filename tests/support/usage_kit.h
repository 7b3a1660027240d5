/* usage_kit: what the usage worker's integration and fault tests share: an independent
 * reference of the waterfall (written separately from the worker's code), event builders,
 * running the worker binary, and the end-of-test checks (balances, invariant 2). */
#ifndef BW_USAGE_KIT_H
#define BW_USAGE_KIT_H

#include <stdint.h>
#include <sys/types.h>

#include "testkit.h"

/* Reference state of one org. Order: 0 subscription, 1 purchased, 2 granted. */
struct uk_org {
	char id[64];
	int enterprise;
	long long cap[3];
	long long used[3];
	long long paid;
	long long charged_events;
};

/* Charges spus to org in the given bucket order (indexes into cap/used). */
void uk_ref_charge(struct uk_org *org, long long spus, const int order[3]);

/* Writes a usage event JSON into buf. */
void uk_event_json(char *buf, size_t len, const char *event_id, const char *org_id,
		   long long spus);

/* An isolated environment: topic (with DLQ), results and alerts topics, group and database
 * names. */
struct uk_env {
	char topic[96], results[128], alerts[128], group[128], db[96], log[512];
};
void uk_env_init(struct uk_env *env, const char *name, int partitions);

/* Produces a usage event (uk_event_json) to env's topic, keyed by org as the API does. */
void uk_produce_event(const struct uk_env *env, const char *event_id, const char *org,
		      long long spus);

/* Inserts a customer document for org (caps from org, used counters 0, version 1). */
void uk_seed_org(const struct uk_env *env, const struct uk_org *org);

/* Fills orgs[0..n) with ids "<prefix>-<i>", the same caps (subscription, purchased, granted)
 * and used counters 0, and seeds each (uk_seed_org). */
void uk_seed_orgs(const struct uk_env *env, struct uk_org *orgs, int n, const char *prefix,
		  long long sub, long long purchased, long long granted);

/* Frees n strings of each of two arrays (either may be NULL) and the arrays. */
void uk_free_strings(const char **a, const char **b, size_t n);

/* Starts the usage worker on env with extra "K=V" variables (NULL-terminated, may be NULL). */
pid_t uk_start_worker(const struct uk_env *env, const char *const *extra);

/* Runs the worker until it is idle for idle_ms and exits; returns its exit status. */
int uk_run_worker(const struct uk_env *env, const char *const *extra, int idle_ms);

/* Asserts the stored customer document of org equals the reference exactly, that its usage
 * records sum to its used counters (invariant 2) and that it has org->charged_events records. */
void uk_check_org(const struct uk_env *env, const struct uk_org *org);

/* Reads at least `want` results of env (fails the test otherwise) as a new JSON array. */
json_t *uk_results(const struct uk_env *env, size_t want);

/* The first result of event_id with status (any status when NULL), borrowed, or NULL. */
json_t *uk_find_result(json_t *all, const char *event_id, const char *status);

/* How many results of all have event_id and status. */
size_t uk_count_results(json_t *all, const char *event_id, const char *status);

#endif
