/* loadgen_plan: the event stream of bw-bench-loadgen (loadgen.h): which org each message
 * charges and which messages are re-sends, decided by a seeded generator, so every run with
 * the same options produces the same stream. Also the clocks and the org names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"

int64_t lg_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lg_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

void lg_plan_free(struct plan *p)
{
	free(p->msg_uniq);
	free(p->uniq_org);
	free(p->uniq_spus);
	free(p->first_msg);
	free(p->dup_msg);
	memset(p, 0, sizeof(*p));
}

/* Zipf(s) over orgs ranks 0..m-1 via a precomputed CDF and binary search. */
int lg_plan_build(struct plan *p, const struct opts *o)
{
	double *cdf = calloc((size_t)o->orgs, sizeof(*cdf));
	uint64_t s = o->seed;
	double sum = 0;
	long n = o->events;

	memset(p, 0, sizeof(*p));
	p->n = n;
	p->hex_orgs = o->hex_orgs;
	p->msg_uniq = calloc((size_t)n, sizeof(long));
	p->uniq_org = calloc((size_t)n, sizeof(long));
	p->uniq_spus = calloc((size_t)n, sizeof(int));
	p->first_msg = calloc((size_t)n, sizeof(long));
	p->dup_msg = calloc((size_t)n, sizeof(long));
	if (!cdf || !p->msg_uniq || !p->uniq_org || !p->uniq_spus || !p->first_msg ||
	    !p->dup_msg) {
		free(cdf);
		lg_plan_free(p);
		return -1;
	}
	for (long r = 0; r < o->orgs; r++) {
		sum += 1.0 / pow((double)(r + 1), o->zipf);
		cdf[r] = sum;
	}
	for (long i = 0; i < n; i++) {
		long src = -1;
		if (p->nuniq > 0 && rng_unit(&s) < o->dup) {
			for (int t = 0; t < 4 && src < 0; t++) {
				long c = (long)(rng_next(&s) % (uint64_t)p->nuniq);
				if (p->dup_msg[c] < 0)
					src = c;
			}
		}
		if (src >= 0) {
			p->dup_msg[src] = i;
			p->msg_uniq[i] = src;
			continue;
		}
		long u = p->nuniq++;
		double x = rng_unit(&s) * sum;
		long lo = 0, hi = o->orgs - 1;
		while (lo < hi) {
			long mid = lo + (hi - lo) / 2;
			if (cdf[mid] < x)
				lo = mid + 1;
			else
				hi = mid;
		}
		p->uniq_org[u] = lo;
		p->uniq_spus[u] = 1 + (int)(rng_next(&s) % 50);
		p->first_msg[u] = i;
		p->dup_msg[u] = -1;
		p->msg_uniq[i] = u;
	}
	free(cdf);
	return 0;
}

int lg_org_name(const struct plan *p, char *buf, size_t len, long n)
{
	return p->hex_orgs ? snprintf(buf, len, "%024lx", n) : snprintf(buf, len, "org-%ld", n);
}
