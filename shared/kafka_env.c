/* kafka_env: see kafka_env.h. */
#include "kafka_env.h"

#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

extern char **environ;

enum source { SRC_LEGACY, SRC_NAMED, SRC_RDKAFKA };

/* One variable to apply: env is "NAME=value" (borrowed from environ). */
typedef int (*visit_fn)(void *opaque, const char *env, size_t name_len, const char *prop,
			const char *value, enum source src);

static const char *const named[][2] = {
	{ "KAFKA_MESSAGE_MAX_BYTES", "message.max.bytes" },
};

#define NNAMED (sizeof(named) / sizeof(named[0]))

static int is_named(const char *env, size_t len)
{
	for (size_t i = 0; i < NNAMED; i++)
		if (strlen(named[i][0]) == len && strncmp(env, named[i][0], len) == 0)
			return (int)i;
	return -1;
}

/* "<PREFIX>SOCKET_TIMEOUT_MS" -> "socket.timeout.ms". -1 when the name is empty or too long. */
static int prop_of(const char *name, size_t len, char *prop, size_t cap)
{
	if (len == 0 || len >= cap)
		return -1;
	for (size_t i = 0; i < len; i++)
		prop[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
	prop[len] = '\0';
	return 0;
}

/* Visits every variable in the order of application; stops when fn returns non-zero. */
static int walk(visit_fn fn, void *opaque)
{
	static const enum source order[] = { SRC_LEGACY, SRC_NAMED, SRC_RDKAFKA };

	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
		for (char **e = environ; e && *e; e++) {
			const char *eq = strchr(*e, '=');
			size_t nlen = eq ? (size_t)(eq - *e) : 0;
			char prop[256];
			int k, rc;

			if (!eq)
				continue;
			k = is_named(*e, nlen);
			if (order[o] == SRC_NAMED && k >= 0) {
				rc = fn(opaque, *e, nlen, named[k][1], eq + 1, SRC_NAMED);
			} else if (order[o] == SRC_LEGACY && k < 0 &&
				   strncmp(*e, "KAFKA_", 6) == 0 &&
				   strncmp(*e, "KAFKA_BROKERS=", 14) != 0) {
				if (prop_of(*e + 6, nlen - 6, prop, sizeof(prop)) != 0)
					continue;
				rc = fn(opaque, *e, nlen, prop, eq + 1, SRC_LEGACY);
			} else if (order[o] == SRC_RDKAFKA && strncmp(*e, "RDKAFKA_", 8) == 0) {
				if (prop_of(*e + 8, nlen - 8, prop, sizeof(prop)) != 0)
					prop[0] = '\0'; /* librdkafka refuses it: reported */
				rc = fn(opaque, *e, nlen, prop, eq + 1, SRC_RDKAFKA);
			} else {
				continue;
			}
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

struct apply_state {
	rd_kafka_conf_t *conf;
	struct bw_err *err;                /* apply: the first refusal ends the walk */
	struct bw_config_problems *probs;  /* check: every refusal is listed */
	int problems;
};

static int apply_one(void *opaque, const char *env, size_t name_len, const char *prop,
		     const char *value, enum source src)
{
	struct apply_state *st = opaque;
	char errstr[256];
	rd_kafka_conf_res_t res = rd_kafka_conf_set(st->conf, prop, value, errstr, sizeof(errstr));

	/* A deprecated KAFKA_* that names no property is someone else's variable. */
	if (res == RD_KAFKA_CONF_OK || (res == RD_KAFKA_CONF_UNKNOWN && src == SRC_LEGACY))
		return 0;
	if (st->probs) {
		bw_config_problem(st->probs, "%.*s: %s", (int)name_len, env, errstr);
		st->problems++;
		return 0;
	}
	bw_err_set(st->err, BW_ERR_FATAL, "%.*s: %s", (int)name_len, env, errstr);
	return -1;
}

int bw_kafka_env_apply(rd_kafka_conf_t *conf, struct bw_err *err)
{
	struct apply_state st = { conf, err, NULL, 0 };

	return walk(apply_one, &st) == 0 ? 0 : -1;
}

int bw_kafka_env_check(struct bw_config_problems *probs)
{
	struct apply_state st = { rd_kafka_conf_new(), NULL, probs, 0 };

	walk(apply_one, &st);
	rd_kafka_conf_destroy(st.conf);
	return st.problems;
}

static int warn_one(void *opaque, const char *env, size_t name_len, const char *prop,
		    const char *value, enum source src)
{
	char errstr[256];

	if (src == SRC_LEGACY &&
	    rd_kafka_conf_set(opaque, prop, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
		bw_log(BW_LOG_WARN, NULL,
		       "%.*s is deprecated: rename it RDKAFKA_%.*s (KAFKA_* variables that are no "
		       "librdkafka property are ignored)", (int)name_len, env, (int)name_len - 6,
		       env + 6);
	return 0;
}

void bw_kafka_env_warn_deprecated(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	walk(warn_one, conf);
	rd_kafka_conf_destroy(conf);
}
