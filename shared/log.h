/* log: structured logs, one JSON object per line on stderr.
 *
 * Every line has time, level, worker and msg, plus the context fields that are known
 * (topic, partition, offset, org_id, event_id). Never pass secrets, signature headers
 * or full payloads. Thread-safe: a line is written with one locked fputs. */
#ifndef BW_LOG_H
#define BW_LOG_H

#include <stddef.h>
#include <stdint.h>

enum bw_log_level { BW_LOG_DEBUG = 0, BW_LOG_INFO, BW_LOG_WARN, BW_LOG_ERROR };

/* Optional context of a line. Unknown fields: NULL pointers, partition -1, offset -1.
 * Strings are borrowed for the duration of the call. */
struct bw_log_ctx {
	const char *topic;
	int32_t partition;
	int64_t offset;
	const char *org_id;
	const char *event_id;
};

#define BW_LOG_CTX_NONE ((struct bw_log_ctx){ NULL, -1, -1, NULL, NULL })

/* Sets the worker name (copied) and the minimum level written. Call once at start. */
void bw_log_init(const char *worker, enum bw_log_level min_level);

/* Parses "debug", "info", "warn", "error". Returns 0, or -1 for anything else. */
int bw_log_level_parse(const char *s, enum bw_log_level *out);

/* Writes the current UTC time as RFC 3339 with milliseconds ("2026-11-25T12:00:00.000Z")
 * into buf (at least BW_LOG_TIME_LEN bytes). */
#define BW_LOG_TIME_LEN 40
void bw_log_format_now(char *buf, size_t len);

/* Writes one line. ctx may be NULL. */
void bw_log(enum bw_log_level level, const struct bw_log_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
