/* fault_kit: what the fault suite (tests/fault/) shares.
 *  - A private stack (fault_stack.h); a MongoDB proxy that drops the connection of a chosen
 *    write (mongo_proxy.h); the webhook ingress as a process (ingress_kit.h).
 *  - Worker processes tracked, so a failed test leaves none running.
 *  - A producer that records where every message landed (partition, offset), with explicit
 *    partitions and raw bytes (NUL inside, invalid UTF-8, up to the broker's limit).
 *  - A results watch: reads a results topic as it grows and maps every result back to the
 *    input message it answers.
 *  - The usage accounting at the end of a case: one line of figures (sent, applied,
 *    duplicates, DLQ, lost, double-applied) and the checks (every input answered, every
 *    distinct event recorded exactly once, every org's counters equal to the reference and to
 *    the sum of its records' breakdowns).
 * fault_kit.c has the processes, producing, reading and the watch; fault_usage.c the usage
 * load and accounting. Failures inside these helpers fail the calling Check test (ck_assert). */
#ifndef BW_FAULT_KIT_H
#define BW_FAULT_KIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fault_stack.h"
#include "usage_kit.h"

/* ---- processes ------------------------------------------------------------------------ */

/* Tracks a worker process this test started: a test that fails half-way (Check ends its
 * process) takes its workers down with it (SIGKILL at exit) instead of leaving them running. */
void fk_track(pid_t pid);

/* SIGTERM, then waits up to timeout_ms; returns the exit status as tk_wait. Untracks it. */
int fk_stop(pid_t pid, int timeout_ms);

/* fk_stop of each of n processes; returns how many did not exit 0. */
int fk_stop_all(const pid_t *pids, int n, int timeout_ms);

/* Starts n usage workers on env (uk_start_worker with extra), tracked, into pids. */
void fk_start_usage(const struct uk_env *env, pid_t *pids, int n, const char *const *extra);

/* SIGKILL and reap. Untracks it. */
void fk_kill(pid_t pid);

/* Starts bw-sync-worker on topic (group "<topic>.g"), answering to results, database db,
 * log <build>/<topic>.log, with extra "K=V" variables (NULL-terminated, may be NULL);
 * tracked. */
pid_t fk_start_sync(const char *topic, const char *results, const char *db,
		    const char *const *extra);

/* Peak RSS (VmHWM) of a running process in KiB, or -1. */
long fk_peak_rss_kb(pid_t pid);

/* ---- producing ----------------------------------------------------------------------- */

struct fk_msg {
	const char *key;     /* may be NULL */
	const void *value;
	size_t len;
	int32_t partition;   /* -1: by key */
	/* filled by fk_produce: */
	int32_t out_partition;
	int64_t out_offset;
};

/* Produces msgs (borrowed) in order and waits for every ack; fills out_partition/offset.
 * compression: NULL for none, else a librdkafka codec name ("lz4"). */
void fk_produce(const char *topic, struct fk_msg *msgs, size_t n, const char *compression);

/* ---- reading ---------------------------------------------------------------------------- */

/* Reads every message of topic up to its current end (all partitions), at most timeout_ms.
 * Returns the count; *out as tk_consume (tk_msgs_free). */
size_t fk_consume_all(const char *topic, int timeout_ms, struct tk_msg **out);

/* Maps results back to the inputs: for each input message (index into the produced array)
 * the number of results seen and the last status. */
struct fk_watch;

/* Watches results_topic for answers to the n messages msgs (borrowed, must outlive it)
 * produced to input_topic. */
struct fk_watch *fk_watch_new(const char *results_topic, const char *input_topic,
			      const struct fk_msg *msgs, size_t n);
void fk_watch_destroy(struct fk_watch *w);

/* Reads what arrived for up to ms. Returns how many inputs have at least one result. */
size_t fk_watch_poll(struct fk_watch *w, int ms);

/* Polls until every input has a result or timeout_ms passed; returns the answered count. */
size_t fk_watch_wait_all(struct fk_watch *w, int timeout_ms);

/* Results of input i so far, and the status of its last result (borrowed, or NULL). */
int fk_watch_count(const struct fk_watch *w, size_t i);
const char *fk_watch_status(const struct fk_watch *w, size_t i);
size_t fk_watch_results(const struct fk_watch *w);

/* Whether input i was ever answered with status ("applied" also matches
 * "insufficient_credits"). */
int fk_watch_seen(const struct fk_watch *w, size_t i, const char *status);

/* ---- usage load and accounting ---------------------------------------------------------- */

/* A usage load: distinct events e-<n> over orgs, each also re-sent (same content) with
 * resend_pct percent probability a little later; the reference (orgs[].used) is charged in
 * production order, which is each org's partition order. */
struct fk_load {
	struct fk_msg *msgs;
	char **values, **keys;
	int *event_of;      /* message -> event number */
	int *org_of_event;  /* event -> org index */
	size_t n, events;
};
void fk_usage_load(struct fk_load *load, struct uk_org *orgs, int norgs, size_t events,
		   int resend_pct, unsigned seed);
void fk_load_free(struct fk_load *load);

/* A usage case on 12 partitions: env named name, norgs orgs "<prefix>-<i>" seeded with caps
 * 60 / 120 / 100 (subscription, purchased, granted: loads run into overage), the load of
 * events (5 % re-sends, seed) produced, and a watch on the results (new: fk_usage_case_end). */
struct fk_watch *fk_usage_case_begin(struct uk_env *env, const char *name, struct uk_org *orgs,
				     int norgs, const char *prefix, struct fk_load *load,
				     size_t events, unsigned seed);

/* Frees the watch and the load and drops the case's database. */
void fk_usage_case_end(struct uk_env *env, struct fk_load *load, struct fk_watch *w);

struct fk_figures {
	size_t sent, answered, applied, duplicates, rejected, dlq, lost, double_applied, results;
	size_t orgs_bad;
};

/* Drains w (the load's results watch), reads every DLQ record, usage record and customer document of the case and prints
 * "FIGURES <case> sent=.. applied=.. duplicates=.. dlq=.. lost=.. double_applied=.. ..."
 * (also appended to <build>/fault-figures.txt, with extra as free text). Then asserts: every
 * input answered, every distinct event exactly one usage record, no org off its reference or
 * off the sum of its records. */
void fk_usage_account(const char *case_name, const struct uk_env *env, const struct fk_load *load,
		      struct fk_watch *w, const struct uk_org *orgs, int norgs, const char *extra,
		      struct fk_figures *fig);

/* Appends one line to <build>/fault-figures.txt and prints it. */
void fk_figures_line(const char *line);

/* Pseudo-random from a caller-held state (xorshift), deterministic per seed. */
unsigned fk_rand(unsigned *state);

#endif
