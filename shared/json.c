/* json: see json.h. */
#include "json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *bw_json_parse_object(const unsigned char *buf, size_t len, size_t max_len,
			     struct bw_err *err)
{
	json_error_t jerr;
	json_t *root;

	if (!buf || len == 0) {
		bw_err_set(err, BW_ERR_INVALID, "empty message");
		return NULL;
	}
	if (len > max_len) {
		bw_err_set(err, BW_ERR_INVALID, "message of %zu bytes exceeds the limit of %zu",
			   len, max_len);
		return NULL;
	}
	root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		bw_err_set(err, BW_ERR_INVALID, "malformed JSON at line %d column %d: %s",
			   jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		bw_err_set(err, BW_ERR_INVALID, "JSON value is not an object");
		return NULL;
	}
	return root;
}

int bw_json_get_str(const json_t *obj, const char *key, int required, size_t max_len,
		    const char **out, struct bw_err *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return bw_err_set(err, BW_ERR_INVALID, "field '%s' is required", key);
		return 0;
	}
	if (!json_is_string(v))
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' must be a string", key);
	if (json_string_length(v) == 0)
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' must not be empty", key);
	if (json_string_length(v) > max_len)
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' is longer than %zu bytes",
				  key, max_len);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' contains a NUL byte", key);
	*out = json_string_value(v);
	return 0;
}

int bw_json_get_int64(const json_t *obj, const char *key, int required, int64_t min,
		      int64_t max, int64_t *out, int *present, struct bw_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (present)
		*present = 0;
	if (!v || json_is_null(v)) {
		if (required)
			return bw_err_set(err, BW_ERR_INVALID, "field '%s' is required", key);
		return 0;
	}
	if (!json_is_integer(v))
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' = %lld is outside [%lld, %lld]",
				  key, (long long)x, (long long)min, (long long)max);
	*out = (int64_t)x;
	if (present)
		*present = 1;
	return 0;
}

int bw_json_get_number(const json_t *obj, const char *key, int required, double *out,
		       int *present, struct bw_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (present)
		*present = 0;
	if (!v || json_is_null(v)) {
		if (required)
			return bw_err_set(err, BW_ERR_INVALID, "field '%s' is required", key);
		return 0;
	}
	if (!json_is_number(v))
		return bw_err_set(err, BW_ERR_INVALID, "field '%s' must be a number", key);
	*out = json_number_value(v);
	if (present)
		*present = 1;
	return 0;
}

static int digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static int num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

int bw_json_check_rfc3339(const char *s)
{
	size_t i = 19;

	if (!s || strlen(s) < 20)
		return -1;
	if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
	    !digits(s + 17, 2))
		return -1;
	if (num2(s + 5) < 1 || num2(s + 5) > 12 || num2(s + 8) < 1 || num2(s + 8) > 31 ||
	    num2(s + 11) > 23 || num2(s + 14) > 59 || num2(s + 17) > 60)
		return -1;
	if (s[i] == '.') {
		i++;
		if (!isdigit((unsigned char)s[i]))
			return -1;
		while (isdigit((unsigned char)s[i]))
			i++;
	}
	if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0')
		return 0;
	if ((s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' &&
	    digits(s + i + 4, 2) && s[i + 6] == '\0' && num2(s + i + 1) <= 23 &&
	    num2(s + i + 4) <= 59)
		return 0;
	return -1;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int bw_json_rfc3339_ms(const char *s, int64_t *ms)
{
	size_t i = 19;
	int64_t frac = 0, scale = 100, off = 0, secs;

	if (bw_json_check_rfc3339(s) != 0)
		return -1;
	secs = days_from_civil(num2(s) * 100 + num2(s + 2), num2(s + 5), num2(s + 8)) * 86400 +
	       num2(s + 11) * 3600 + num2(s + 14) * 60 + num2(s + 17);
	if (s[i] == '.') {
		for (i++; isdigit((unsigned char)s[i]); i++, scale /= 10)
			frac += (s[i] - '0') * scale;
	}
	if (s[i] == '+' || s[i] == '-')
		off = (num2(s + i + 1) * 3600 + num2(s + i + 4) * 60) * (s[i] == '+' ? 1 : -1);
	*ms = (secs - off) * 1000 + frac;
	return 0;
}

const char *bw_json_path_str(const json_t *obj, const char *path)
{
	char key[128];
	const char *p = path;

	while (obj && json_is_object(obj)) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		obj = json_object_get(obj, key);
		if (!dot)
			return json_is_string(obj) ? json_string_value(obj) : NULL;
		p = dot + 1;
	}
	return NULL;
}

static int check_storable(const json_t *v, int depth, int max_depth, struct bw_err *err)
{
	const char *key;
	json_t *sub;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (depth > max_depth)
		return bw_err_set(err, BW_ERR_INVALID, "JSON nests deeper than %d levels", max_depth);
	if (json_is_array(v)) {
		json_array_foreach(v, i, sub)
			if (check_storable(sub, depth + 1, max_depth, err))
				return -1;
		return 0;
	}
	json_object_foreach((json_t *)v, key, sub) {
		if (key[0] == '\0' || key[0] == '$' || strchr(key, '.'))
			return bw_err_set(err, BW_ERR_INVALID,
					  "field name '%.64s' is empty, starts with '$' or contains '.'",
					  key);
		if (check_storable(sub, depth + 1, max_depth, err))
			return -1;
	}
	return 0;
}

int bw_json_check_storable(const json_t *v, int max_depth, struct bw_err *err)
{
	return check_storable(v, 1, max_depth, err);
}
