/* bw-bench-loadgen: the usage benchmark's load generator and ceiling probes.
 *
 *   bw-bench-loadgen run   --topic T --results R [--events N] [--orgs M] [--dup F] [--zipf S]
 *                          [--seed X] [--rate EPS] [--prefix P] [--timeout-s S] [--series 1]
 *                          [--warmup-s W]
 *       Produces N usage events (keyed by org_id, Zipf-skewed orgs, a fraction F re-sent
 *       unchanged) to T as fast as the broker takes them, or at EPS events/s (token bucket),
 *       while consuming R; matches every result to its send by event_id and prints one JSON
 *       line: events, results per status, seconds from the first send to the last result,
 *       events/s, and produce-to-result latency p50/p99/max in ms. --series 1 also writes
 *       one line per second of sending (count, p50, max latency) to stderr.
 *       --warmup-s W leaves the events sent in the first W seconds out of p50/p99 (they are
 *       still counted, and p99_all_ms has every event).
 *   bw-bench-loadgen produce --topic T [--events N] [--orgs M] [--dup F] [--zipf S]
 *                          [--seed X] [--rate EPS] [--prefix P]
 *       Only the producing half of `run`: the same stream to T, flushed, then one JSON line
 *       (events, unique events and their SPUs, sent). Exit 0 when all were acknowledged.
 *       bench/callgrind fills a topic with it before the worker starts under valgrind.
 *   bw-bench-loadgen count --topic T --events N
 *       The pipe ceiling: reads T from the beginning with no processing until N messages.
 *   bw-bench-loadgen store --db D [--events N] [--orgs M] [--dup F] [--zipf S] [--seed X]
 *                          [--batch B] [--compound-index 1]
 *       The store ceiling: the same event stream cut into batches of B; per batch one
 *       unordered bulk of conditional updates, one per distinct org
 *       ({org_id, balance_version: v} -> $inc the counter, $set balance_version v+1).
 *       --compound-index 1 first creates a unique {org_id, balance_version} index.
 *       --records 1 also inserts, per batch, one unordered bulk of usage records (one per new
 *       event, shaped like the worker's): the store's rate for the worker's whole write set.
 *
 * The event stream depends only on (events, orgs, dup, zipf, seed), so every scenario of a
 * bench run gets the same topic contents (except bench_ts_us, the send time).
 * KAFKA_BROKERS and MONGO_URI come from the environment (local stack defaults). The parts:
 * loadgen.h. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || !end || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

#define OPT(field) offsetof(struct opts, field)

/* Command-line options: strings are borrowed from argv; numbers are range-checked. */
static const struct option_def {
	const char *name;
	char kind;          /* 's' string, 'l' long, 'i' int, 'd' double, 'u' uint64_t */
	double lo, hi;
	size_t off;
} options[] = {
	{ "--topic", 's', 0, 0, OPT(topic) },         { "--results", 's', 0, 0, OPT(results) },
	{ "--db", 's', 0, 0, OPT(db) },               { "--prefix", 's', 0, 0, OPT(prefix) },
	{ "--events", 'l', 1, 1e8, OPT(events) },     { "--orgs", 'l', 1, 1e8, OPT(orgs) },
	{ "--batch", 'l', 1, 1e6, OPT(batch) },       { "--dup", 'd', 0, 0.9, OPT(dup) },
	{ "--zipf", 'd', 0, 10, OPT(zipf) },          { "--rate", 'd', 0, 1e9, OPT(rate) },
	{ "--timeout-s", 'd', 1, 1e6, OPT(timeout_s) },
	{ "--warmup-s", 'd', 0, 1e6, OPT(warmup_s) }, { "--records", 'i', 0, 1, OPT(records) },
	{ "--series", 'i', 0, 1, OPT(series) },
	{ "--compound-index", 'i', 0, 1, OPT(compound_index) },
	{ "--seed", 'u', 0, 1e15, OPT(seed) },
	{ "--hex-orgs", 'i', 0, 1, OPT(hex_orgs) },
};

static int set_option(struct opts *o, const char *name, const char *value)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct option_def *d = &options[i];
		char *field = (char *)o + d->off;
		double num = 0;
		if (strcmp(name, d->name) != 0)
			continue;
		if (d->kind == 's') {
			*(const char **)(void *)field = value;
			return 0;
		}
		if (parse_num(value, d->lo, d->hi, &num) != 0)
			return -1;
		if (d->kind == 'l')
			*(long *)(void *)field = (long)num;
		else if (d->kind == 'i')
			*(int *)(void *)field = (int)num;
		else if (d->kind == 'u')
			*(uint64_t *)(void *)field = (uint64_t)num;
		else
			*(double *)(void *)field = num;
		return 0;
	}
	return -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: bw-bench-loadgen run|produce|count|store [--topic T] [--results R] "
			"[--db D] [--events N] [--orgs M] [--dup F] [--zipf S] [--seed X] "
			"[--rate EPS] [--batch B] [--prefix P] [--timeout-s S] "
			"[--compound-index 0|1] [--records 0|1] [--series 0|1] [--warmup-s S] "
			"[--hex-orgs 0|1]\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .prefix = "bench", .events = 200000, .orgs = 10000, .batch = 500,
			  .dup = 0.05, .zipf = 1.1, .timeout_s = 60, .seed = 42 };

	if (argc < 2) {
		usage();
		return 2;
	}
	o.mode = argv[1];
	for (int i = 2; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v || set_option(&o, k, v) != 0) {
			fprintf(stderr, "loadgen: bad option %s %s\n", k, v ? v : "(missing)");
			usage();
			return 2;
		}
	}
	if (strcmp(o.mode, "run") == 0 && o.topic && o.results)
		return lg_mode_run(&o);
	if (strcmp(o.mode, "produce") == 0 && o.topic)
		return lg_mode_produce(&o);
	if (strcmp(o.mode, "count") == 0 && o.topic)
		return lg_mode_count(&o);
	if (strcmp(o.mode, "store") == 0 && o.db)
		return lg_mode_store(&o);
	usage();
	return 2;
}
