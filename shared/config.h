/* config: every setting comes from an environment variable, declared in one table.
 *
 * A worker declares `struct bw_cfg_opt` rows (name, type, default, limits, secret flag, and
 * where the value goes in its config struct) and calls bw_config_load(), which validates
 * every row and collects every problem, so a start-up lists all that is wrong at once.
 * main() then prints the problems and exits 2. Nothing here exits. */
#ifndef BW_CONFIG_H
#define BW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum bw_cfg_type {
	BW_CFG_STR,  /* char * in the struct: a new string, freed by bw_config_free() */
	BW_CFG_INT,  /* int64_t in the struct, checked against [min, max] */
	BW_CFG_BOOL, /* int in the struct: true/false, 1/0, yes/no */
};

struct bw_cfg_opt {
	const char *env;      /* environment variable name */
	enum bw_cfg_type type;
	const char *def;      /* default text; NULL means required */
	int64_t min, max;     /* INT: inclusive limits; STR: min/max length (max 0 = none) */
	int secret;           /* never printed */
	size_t offset;        /* offsetof(struct <worker>_config, field) */
	const char *help;
	/* Optional check of a STR value beyond its length: 0, or -1 with why filled. */
	int (*validate)(const char *value, char *why, size_t why_len);
};

/* Collected problems of one load: count and a newline-separated text. */
struct bw_config_problems {
	int count;
	char text[4096];
};

/* Reads every row of opts[0..n) from the environment into cfg (base of the worker's struct).
 * Appends a line per problem to probs (which the caller zero-initialises) and returns the
 * number of problems added. Strings stored in cfg are owned by cfg: bw_config_free(). */
int bw_config_load(const struct bw_cfg_opt *opts, size_t n, void *cfg,
		   struct bw_config_problems *probs);

/* Appends a problem found by a worker's own cross-field check. */
void bw_config_problem(struct bw_config_problems *probs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes the effective config as one JSON object to out, secrets as "***". */
void bw_config_print(const struct bw_cfg_opt *opts, size_t n, const void *cfg, FILE *out);

/* Frees the strings bw_config_load stored. NULL-safe. */
void bw_config_free(const struct bw_cfg_opt *opts, size_t n, void *cfg);

/* Parses a whole decimal int64 with range check (no trailing garbage). 0 or -1. */
int bw_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
