/* err: the one error type every fallible function in shared/ and workers/ fills.
 *
 * The kind is decided once, at the edge module that talks to the outside (mongo, kafka,
 * stripe_api), and the consumer loop acts on it:
 *   TRANSIENT  broker/DB down, 429, 5xx: back off, retry, store no offset
 *   INVALID    this message can never succeed: DLQ with the reason, move on
 *   CONFLICT   a conditional update missed: reload and redo
 *   FATAL      misconfiguration, fenced producer: stop cleanly, non-zero exit
 * The struct is caller-owned and filled without allocating. */
#ifndef BW_ERR_H
#define BW_ERR_H

enum bw_err_kind {
	BW_ERR_NONE = 0,
	BW_ERR_TRANSIENT,
	BW_ERR_INVALID,
	BW_ERR_CONFLICT,
	BW_ERR_FATAL,
};

struct bw_err {
	enum bw_err_kind kind;
	char msg[256];
};

/* Resets err to BW_ERR_NONE with an empty message. NULL-safe. */
void bw_err_clear(struct bw_err *err);

/* Fills err (NULL-safe) with kind and a printf-style message, truncated to fit.
 * Always returns -1 so callers can write `return bw_err_set(...)` or `rc = bw_err_set(...)`. */
int bw_err_set(struct bw_err *err, enum bw_err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with context ("ctx: old message"), keeping the kind. */
void bw_err_prefix(struct bw_err *err, const char *ctx);

/* "none", "transient", "invalid", "conflict", "fatal". Static string. */
const char *bw_err_kind_name(enum bw_err_kind kind);

#endif
