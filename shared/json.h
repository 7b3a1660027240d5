/* json: strict helpers over jansson for reading messages.
 *
 * Every getter fills a BW_ERR_INVALID error naming the field when the value is missing
 * (and required) or of the wrong type, so a worker can DLQ the message with that text. */
#ifndef BW_JSON_H
#define BW_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Parses len bytes (not NUL-terminated) as one JSON object of at most max_len bytes.
 * Returns a new reference (caller json_decref), or NULL with err (INVALID). */
json_t *bw_json_parse_object(const unsigned char *buf, size_t len, size_t max_len,
			     struct bw_err *err);

/* String member: *out borrowed from obj. Missing: -1 if required, else 0 with *out NULL.
 * Present but not a non-empty string of at most max_len bytes: -1. */
int bw_json_get_str(const json_t *obj, const char *key, int required, size_t max_len,
		    const char **out, struct bw_err *err);

/* Integer member in [min, max]. A real (5.0), a string, a bool: -1 (not an integer).
 * Missing: -1 if required, else 0 with *present = 0 (present may be NULL). */
int bw_json_get_int64(const json_t *obj, const char *key, int required, int64_t min,
		      int64_t max, int64_t *out, int *present, struct bw_err *err);

/* Number member (integer or real) as double, for informational fields only (never money).
 * Missing and not required: 0 with *present = 0. */
int bw_json_get_number(const json_t *obj, const char *key, int required, double *out,
		       int *present, struct bw_err *err);

/* Checks that s is an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)).
 * Returns 0 or -1. */
int bw_json_check_rfc3339(const char *s);

/* s (as bw_json_check_rfc3339) as unix milliseconds, UTC (the offset applied, digits past
 * milliseconds cut). Returns 0 or -1. */
int bw_json_rfc3339_ms(const char *s, int64_t *ms);

/* SHA-256 of the canonical form of obj (keys sorted, compact), as 64 hex chars + NUL in out.
 * The canonical form is byte for byte what json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENCODE_ANY) writes, produced without building the string through jansson (it was a
 * fifth of the usage worker's CPU). Thread-safe. Returns 0, or -1 (OOM, unknown type). */
int bw_json_canonical_hash(const json_t *obj, char out[65]);

/* Writes v in decimal (no allocation, no locale) into buf; returns the length. */
#define BW_JSON_INT64_LEN 24
size_t bw_json_format_int64(char buf[BW_JSON_INT64_LEN], int64_t v);

/* The canonical form itself: a new NUL-terminated string (caller free()), or NULL. */
char *bw_json_canonical_dump(const json_t *obj);

/* Checks that v can be stored as a MongoDB document as it is: no key is empty, starts with
 * '$' or contains '.', and objects/arrays nest at most max_depth deep. 0, or -1 with err
 * (INVALID) naming the offending key. */
int bw_json_check_storable(const json_t *v, int max_depth, struct bw_err *err);

/* Borrowed string of a nested path "a.b.c" (objects only), or NULL if absent / not a string. */
const char *bw_json_path_str(const json_t *obj, const char *path);

#endif
