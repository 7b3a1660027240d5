/* admin: what every bw-admin command shares: the parsed command line, the configuration, the
 * lazily opened MongoDB pool and producer, the documented exit codes and the output (one JSON
 * object with --json, else the same object as "key: value" lines).
 *
 * Commands (admin_<name>.c) return an exit code and leave their answer in a->out (a JSON
 * object owned by the context). Only main.c exits. */
#ifndef BW_ADMIN_H
#define BW_ADMIN_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "kafka_producer.h"
#include "mongo.h"
#include "worker_config.h"

/* Exit codes (README "bw-admin"): stable, scripts test them. */
enum bw_admin_exit {
	BW_ADMIN_OK = 0,          /* done (also: nothing to do, e.g. an adjustment already applied) */
	BW_ADMIN_FOUND = 1,       /* audit found drift / doctor found a problem */
	BW_ADMIN_USAGE = 2,       /* bad arguments or configuration */
	BW_ADMIN_REFUSED = 3,     /* refused: no reason, key reused with other values, overflow,
				   * below zero, already replayed */
	BW_ADMIN_NOT_FOUND = 4,   /* no such org, DLQ record or topic */
	BW_ADMIN_UNAVAILABLE = 5, /* Kafka or MongoDB failed: nothing or all was done, retry */
};

#define BW_ADMIN_MAX_POS 4

/* The command line after the program name. Strings are borrowed from argv. */
struct bw_admin_args {
	const char *pos[BW_ADMIN_MAX_POS]; /* command words and positional arguments */
	int npos;
	const char *org, *bucket, *spus, *reason, *key, *offset, *partition;
	int all, json;
};

struct bw_admin_cfg {
	char *usage_topic;
	char *stripe_topic;
	char *ticks_topic;
	char *user;
	int64_t flush_timeout_ms;
};

struct bw_admin {
	struct bw_common_cfg common;
	struct bw_admin_cfg cfg;
	struct bw_admin_args args;
	struct bw_mongo *mongo;       /* owned, opened by bw_admin_mongo() */
	struct bw_producer *producer; /* owned, opened by bw_admin_producer() */
	json_t *out;                  /* owned: the command's answer */
	struct bw_err err;
};

/* Parses argv[1..argc) into args. 0, or -1 with why (a usage error). */
int bw_admin_parse_args(int argc, char **argv, struct bw_admin_args *args, char *why,
			size_t why_len);

/* The pool on MONGO_URI / MONGO_DB, opened and pinged at the first call (borrowed), or NULL
 * with a->err. */
struct bw_mongo *bw_admin_mongo(struct bw_admin *a);

/* The idempotent producer on KAFKA_BROKERS, created at the first call (borrowed), or NULL. */
struct bw_producer *bw_admin_producer(struct bw_admin *a);

/* The exit code of a failure with a->err: TRANSIENT -> UNAVAILABLE, INVALID and CONFLICT ->
 * REFUSED, FATAL -> USAGE. */
int bw_admin_fail(struct bw_admin *a);

/* Sets a->err and returns code (for the not found and refused cases). */
int bw_admin_fail_with(struct bw_admin *a, int code, enum bw_err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A BSON document as a new relaxed extended JSON object (dates as {"$date": ...}), or NULL. */
json_t *bw_admin_bson_json(const bson_t *doc);

/* Milliseconds since the epoch as an RFC 3339 string into buf (>= 32 bytes). */
void bw_admin_format_ms(int64_t ms, char *buf, size_t len);

/* The commands: an exit code, the answer in a->out. */
int bw_admin_balance(struct bw_admin *a);
int bw_admin_adjust(struct bw_admin *a, int grant);
int bw_admin_audit(struct bw_admin *a);
int bw_admin_dlq(struct bw_admin *a);
int bw_admin_tick(struct bw_admin *a);
int bw_admin_doctor(struct bw_admin *a);

#endif
