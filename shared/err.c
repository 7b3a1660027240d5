/* err: see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void bw_err_clear(struct bw_err *err)
{
	if (!err)
		return;
	err->kind = BW_ERR_NONE;
	err->msg[0] = '\0';
}

int bw_err_set(struct bw_err *err, enum bw_err_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

void bw_err_prefix(struct bw_err *err, const char *ctx)
{
	char old[sizeof(err->msg)];

	if (!err || !ctx)
		return;
	size_t n;

	memcpy(old, err->msg, sizeof(old));
	n = strnlen(ctx, sizeof(err->msg) - 3);
	memcpy(err->msg, ctx, n);
	memcpy(err->msg + n, ": ", 2);
	/* Truncation of the old message is intended when the whole does not fit. */
	size_t rest = sizeof(err->msg) - n - 3;
	size_t olen = strnlen(old, rest);
	memcpy(err->msg + n + 2, old, olen);
	err->msg[n + 2 + olen] = '\0';
}

const char *bw_err_kind_name(enum bw_err_kind kind)
{
	switch (kind) {
	case BW_ERR_NONE: return "none";
	case BW_ERR_TRANSIENT: return "transient";
	case BW_ERR_INVALID: return "invalid";
	case BW_ERR_CONFLICT: return "conflict";
	case BW_ERR_FATAL: return "fatal";
	}
	return "unknown";
}
