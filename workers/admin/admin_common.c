/* admin_common: see admin.h. */
#include "admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Options that take a value, and where it goes. */
static const char **value_slot(struct bw_admin_args *args, const char *name)
{
	static const struct {
		const char *name;
		size_t offset;
	} opts[] = {
		{ "--org", offsetof(struct bw_admin_args, org) },
		{ "--bucket", offsetof(struct bw_admin_args, bucket) },
		{ "--spus", offsetof(struct bw_admin_args, spus) },
		{ "--reason", offsetof(struct bw_admin_args, reason) },
		{ "--key", offsetof(struct bw_admin_args, key) },
		{ "--offset", offsetof(struct bw_admin_args, offset) },
		{ "--partition", offsetof(struct bw_admin_args, partition) },
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strcmp(name, opts[i].name) == 0)
			return (const char **)((char *)args + opts[i].offset);
	return NULL;
}

int bw_admin_parse_args(int argc, char **argv, struct bw_admin_args *args, char *why,
			size_t why_len)
{
	memset(args, 0, sizeof(*args));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **slot;

		if (strcmp(s, "--json") == 0) {
			args->json = 1;
		} else if (strcmp(s, "--all") == 0) {
			args->all = 1;
		} else if ((slot = value_slot(args, s)) != NULL) {
			if (i + 1 >= argc) {
				snprintf(why, why_len, "%s needs a value", s);
				return -1;
			}
			*slot = argv[++i];
		} else if (strncmp(s, "--", 2) == 0 && s[2]) {
			snprintf(why, why_len, "unknown option %s", s);
			return -1;
		} else if (args->npos < BW_ADMIN_MAX_POS) {
			args->pos[args->npos++] = s;
		} else {
			snprintf(why, why_len, "too many arguments at '%s'", s);
			return -1;
		}
	}
	if (args->npos == 0) {
		snprintf(why, why_len, "no command");
		return -1;
	}
	return 0;
}

struct bw_mongo *bw_admin_mongo(struct bw_admin *a)
{
	if (a->mongo)
		return a->mongo;
	a->mongo = bw_mongo_new(a->common.mongo_uri, a->common.mongo_db, "bw-admin", &a->err);
	if (a->mongo && bw_mongo_ping(a->mongo, &a->err) != 0) {
		bw_mongo_destroy(a->mongo);
		a->mongo = NULL;
	}
	return a->mongo;
}

struct bw_producer *bw_admin_producer(struct bw_admin *a)
{
	if (!a->producer)
		a->producer = bw_producer_new(a->common.kafka_brokers, NULL, &a->err);
	return a->producer;
}

int bw_admin_fail(struct bw_admin *a)
{
	switch (a->err.kind) {
	case BW_ERR_INVALID:
	case BW_ERR_CONFLICT:
		return BW_ADMIN_REFUSED;
	case BW_ERR_FATAL:
		return BW_ADMIN_USAGE;
	default:
		return BW_ADMIN_UNAVAILABLE;
	}
}

int bw_admin_fail_with(struct bw_admin *a, int code, enum bw_err_kind kind, const char *fmt, ...)
{
	va_list ap;

	a->err.kind = kind;
	va_start(ap, fmt);
	vsnprintf(a->err.msg, sizeof(a->err.msg), fmt, ap);
	va_end(ap);
	return code;
}

json_t *bw_admin_bson_json(const bson_t *doc)
{
	char *text = bson_as_relaxed_extended_json(doc, NULL);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;

	bson_free(text);
	return j;
}

void bw_admin_format_ms(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
