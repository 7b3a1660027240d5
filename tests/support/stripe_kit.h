/* stripe_kit: what the stripe worker's integration and fault tests share: an isolated
 * environment (topics, group, database), Stripe event fixtures from tests/fixtures/stripe
 * edited per test, running the worker binary, and reading results, ticks and documents. */
#ifndef BW_STRIPE_KIT_H
#define BW_STRIPE_KIT_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "testkit.h"

struct sk_env {
	char topic[96], results[128], ticks[128], dlq[128], group[128], db[96], log[512];
	const char *worker; /* path of bw-stripe-worker (borrowed) */
};

/* Unique topic (1 partition, with DLQ), results and ticks topics, group and database. */
void sk_env_init(struct sk_env *env, const char *name, const char *worker_path);

/* A fixture as a new JSON object (fails the test when missing or invalid). */
json_t *sk_fixture(const char *name);

/* Sets the member at a dotted path ("data.object.metadata.org_id"; numeric segments index
 * arrays), creating objects on the way. Steals v. */
void sk_set(json_t *root, const char *path, json_t *v);
void sk_set_str(json_t *root, const char *path, const char *s);
void sk_set_int(json_t *root, const char *path, long long n);

/* Produces the event (not stolen), keyed by data.object.customer else id, as the ingress. */
void sk_produce(const struct sk_env *env, const json_t *ev);

/* Produces the event and frees it (stolen). */
void sk_produce_free(const struct sk_env *env, json_t *ev);

/* A checkout.session.completed credit purchase (fixture checkout_session_completed.json)
 * with event id, session id, customer, metadata.org_id and metadata.credits set: a new
 * object, edited further by the caller (payment_intent, amount_total, type). */
json_t *sk_checkout(const char *id, const char *session, const char *customer,
		    const char *org, const char *credits);

/* Runs the worker until idle_ms without messages; extra "K=V" (NULL-terminated, may be
 * NULL). Returns its exit status (128+signal when killed, e.g. 134 for abort). */
int sk_run_worker(const struct sk_env *env, const char *const *extra, int idle_ms);

/* Starts the worker as sk_run_worker does and returns its pid without waiting. */
pid_t sk_start_worker(const struct sk_env *env, const char *const *extra, int idle_ms);

/* Reads want messages of topic and parses each value: a new JSON array. */
json_t *sk_read_json(const char *topic, size_t want);

/* The n-th (0-based) result of event_id in all, or NULL (borrowed). */
json_t *sk_result(json_t *all, const char *event_id, int nth);

/* Status string of a result (borrowed), failing when missing. */
const char *sk_status(const json_t *result);

/* The n-th result of event_id in all (borrowed), failing when it is missing or its status
 * is not status (the message names the result's reason). */
json_t *sk_expect_status(json_t *all, const char *event_id, int nth, const char *status);

/* The ledger row (payments_credit_transactions) of checkout session sid: a new reference,
 * failing when missing. */
json_t *sk_ledger(const struct sk_env *env, const char *sid);

/* The crash-and-restart of the fault tests: runs the worker with BW_FAULT_AT=step, which must
 * abort there (exit >= 128), then again without it, which must finish the batch and exit 0.
 * Both runs with FREE_GRANT_SPUS=0 and a 6 s group session: a crashed member holds its
 * partition until its session times out, and the restarted worker waits past it before it
 * counts as idle. */
void sk_crash_and_restart(const struct sk_env *env, const char *step);

/* The customer document of org (new reference, fails when missing). */
json_t *sk_customer(const struct sk_env *env, const char *org);

/* Inserts a customer document: org, Stripe customer, balances and version 1. */
void sk_seed_customer(const struct sk_env *env, const char *org, const char *cus,
		      long long purchased, long long used);

/* $set of one int64 field on the org's customer document (simulating usage). */
void sk_set_customer_int(const struct sk_env *env, const char *org, const char *field,
			 long long v);

/* Deletes the documents of coll matching filter_json (simulating a record lost in a crash). */
void sk_delete(const struct sk_env *env, const char *coll, const char *filter_json);

/* Milliseconds since the epoch of a relaxed extended JSON date ({"$date": ...}). */
long long sk_date_ms(const json_t *v);

#endif
