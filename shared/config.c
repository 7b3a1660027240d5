/* config: see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void bw_config_problem(struct bw_config_problems *probs, const char *fmt, ...)
{
	size_t used = strlen(probs->text);
	va_list ap;

	probs->count++;
	if (used + 2 >= sizeof(probs->text))
		return;
	va_start(ap, fmt);
	vsnprintf(probs->text + used, sizeof(probs->text) - used - 1, fmt, ap);
	va_end(ap);
	used = strlen(probs->text);
	if (used + 1 < sizeof(probs->text)) {
		probs->text[used] = '\n';
		probs->text[used + 1] = '\0';
	}
}

int bw_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end = NULL;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || !end || *end != '\0')
		return -1;
	if (v < min || v > max)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	static const char *yes[] = { "1", "true", "yes", "on" };
	static const char *no[] = { "0", "false", "no", "off" };

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

int bw_config_load(const struct bw_cfg_opt *opts, size_t n, void *cfg,
		   struct bw_config_problems *probs)
{
	int before = probs->count;

	for (size_t i = 0; i < n; i++) {
		const struct bw_cfg_opt *o = &opts[i];
		const char *v = getenv(o->env);
		char *slot = (char *)cfg + o->offset;

		if (v && *v == '\0')
			v = NULL; /* empty means unset: the default applies */
		if (!v)
			v = o->def;
		if (!v) {
			bw_config_problem(probs, "%s: required, not set (%s)", o->env, o->help);
			continue;
		}
		switch (o->type) {
		case BW_CFG_STR: {
			size_t len = strlen(v);
			if ((int64_t)len < o->min || (o->max > 0 && (int64_t)len > o->max)) {
				bw_config_problem(probs, "%s: length %zu outside [%lld, %lld]", o->env,
						  len, (long long)o->min, (long long)o->max);
				break;
			}
			char why[200] = "";
			if (o->validate && o->validate(v, why, sizeof(why)) != 0) {
				bw_config_problem(probs, "%s: %s", o->env, why);
				break;
			}
			char *copy = strdup(v);
			if (!copy) {
				bw_config_problem(probs, "%s: out of memory", o->env);
				break;
			}
			memcpy(slot, &copy, sizeof(copy));
			break;
		}
		case BW_CFG_INT: {
			int64_t x;
			if (bw_parse_int64(v, o->min, o->max, &x) != 0) {
				bw_config_problem(probs,
						  "%s: '%s' is not a whole number in [%lld, %lld]",
						  o->env, o->secret ? "***" : v, (long long)o->min,
						  (long long)o->max);
				break;
			}
			memcpy(slot, &x, sizeof(x));
			break;
		}
		case BW_CFG_BOOL: {
			int b;
			if (parse_bool(v, &b) != 0) {
				bw_config_problem(probs, "%s: '%s' is not a boolean (true/false)",
						  o->env, v);
				break;
			}
			memcpy(slot, &b, sizeof(b));
			break;
		}
		}
	}
	return probs->count - before;
}

void bw_config_print(const struct bw_cfg_opt *opts, size_t n, const void *cfg, FILE *out)
{
	json_t *obj = json_object();
	char *text;

	for (size_t i = 0; i < n; i++) {
		const struct bw_cfg_opt *o = &opts[i];
		const char *slot = (const char *)cfg + o->offset;
		json_t *v = NULL;

		if (o->secret) {
			const char *s = NULL;
			memcpy(&s, slot, sizeof(s));
			v = json_string(s && *s ? "***" : "");
		} else if (o->type == BW_CFG_STR) {
			const char *s = NULL;
			memcpy(&s, slot, sizeof(s));
			v = s ? json_string(s) : json_null();
		} else if (o->type == BW_CFG_INT) {
			int64_t x;
			memcpy(&x, slot, sizeof(x));
			v = json_integer(x);
		} else {
			int b;
			memcpy(&b, slot, sizeof(b));
			v = json_boolean(b);
		}
		json_object_set_new(obj, o->env, v);
	}
	text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text) {
		fprintf(out, "%s\n", text);
		free(text);
	}
	json_decref(obj);
}

void bw_config_free(const struct bw_cfg_opt *opts, size_t n, void *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < n; i++) {
		char *s = NULL;
		if (opts[i].type != BW_CFG_STR)
			continue;
		memcpy(&s, (char *)cfg + opts[i].offset, sizeof(s));
		free(s);
		s = NULL;
		memcpy((char *)cfg + opts[i].offset, &s, sizeof(s));
	}
}
