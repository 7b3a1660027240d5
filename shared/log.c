/* log: see log.h. Lines are built with jansson so every value is escaped correctly. */
#include "log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char log_worker[64] = "bw";
static enum bw_log_level log_min = BW_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void bw_log_init(const char *worker, enum bw_log_level min_level)
{
	if (worker)
		snprintf(log_worker, sizeof(log_worker), "%s", worker);
	log_min = min_level;
}

int bw_log_level_parse(const char *s, enum bw_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (s && strcmp(s, level_names[i]) == 0) {
			*out = (enum bw_log_level)i;
			return 0;
		}
	}
	return -1;
}

void bw_log_format_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n > 0 && n < len)
		snprintf(buf + n, len - n, ".%03dZ", (int)((ts.tv_nsec / 1000000L) % 1000));
}

void bw_log(enum bw_log_level level, const struct bw_log_ctx *ctx, const char *fmt, ...)
{
	char msg[1024];
	char now[BW_LOG_TIME_LEN];
	va_list ap;
	json_t *line;
	char *text;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bw_log_format_now(now, sizeof(now));

	line = json_object();
	if (!line)
		return;
	json_object_set_new(line, "time", json_string(now));
	json_object_set_new(line, "level", json_string(level_names[level]));
	json_object_set_new(line, "worker", json_string(log_worker));
	if (ctx) {
		if (ctx->topic)
			json_object_set_new(line, "topic", json_string(ctx->topic));
		if (ctx->partition >= 0)
			json_object_set_new(line, "partition", json_integer(ctx->partition));
		if (ctx->offset >= 0)
			json_object_set_new(line, "offset", json_integer(ctx->offset));
		if (ctx->org_id)
			json_object_set_new(line, "org_id", json_string(ctx->org_id));
		if (ctx->event_id)
			json_object_set_new(line, "event_id", json_string(ctx->event_id));
	}
	/* json_string() refuses invalid UTF-8; keep the line rather than lose it. */
	json_t *m = json_string(msg);
	json_object_set_new(line, "msg", m ? m : json_string("(message not valid UTF-8)"));
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (!text)
		return;
	pthread_mutex_lock(&log_lock);
	fputs(text, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
	free(text);
}
