/* sync_tick: see sync_tick.h. */
#include "sync_tick.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "result.h"

static const char *const scope_names[] = { "prices", "customer", "all" };

const char *bw_sync_scope_name(enum bw_sync_scope scope)
{
	return (unsigned)scope < 3 ? scope_names[scope] : "unknown";
}

const char *bw_sync_status_name(enum bw_sync_status st)
{
	switch (st) {
	case BW_SYNC_APPLIED: return "applied";
	case BW_SYNC_SKIPPED: return "skipped";
	case BW_SYNC_FAILED: return "failed";
	case BW_SYNC_REJECTED: return "rejected";
	}
	return "unknown";
}

void bw_sync_tick_cleanup(struct bw_sync_tick *tick)
{
	if (!tick)
		return;
	json_decref(tick->root);
	memset(tick, 0, sizeof(*tick));
}

int bw_sync_tick_parse(const void *buf, size_t len, size_t max_len, struct bw_sync_tick *tick,
		       char **raw_tick_id, struct bw_err *err)
{
	const char *scope = NULL, *raw = NULL;
	int rc = -1;

	memset(tick, 0, sizeof(*tick));
	*raw_tick_id = NULL;
	tick->root = bw_json_parse_object(buf, len, max_len, err);
	if (!tick->root)
		goto done;
	raw = json_string_value(json_object_get(tick->root, "tick_id"));
	if (raw && strlen(raw) <= 128)
		*raw_tick_id = strdup(raw);
	if (bw_json_get_str(tick->root, "tick_id", 1, 128, &tick->tick_id, err) != 0 ||
	    bw_json_get_str(tick->root, "scope", 1, 16, &scope, err) != 0 ||
	    bw_json_get_str(tick->root, "org_id", 0, 128, &tick->org_id, err) != 0 ||
	    bw_json_get_str(tick->root, "stripe_customer_id", 0, 255, &tick->stripe_customer_id,
			    err) != 0 ||
	    bw_json_get_str(tick->root, "reason", 0, 256, &tick->reason, err) != 0)
		goto done;
	size_t i;
	for (i = 0; i < 3 && strcmp(scope, scope_names[i]) != 0; i++)
		;
	if (i == 3) {
		bw_err_set(err, BW_ERR_INVALID, "scope: '%.32s' is not prices, customer or all",
			   scope);
		goto done;
	}
	tick->scope = (enum bw_sync_scope)i;
	if (tick->scope == BW_SYNC_CUSTOMER && !tick->org_id && !tick->stripe_customer_id) {
		bw_err_set(err, BW_ERR_INVALID,
			   "scope customer needs org_id or stripe_customer_id");
		goto done;
	}
	rc = 0;
done:
	if (rc != 0) {
		json_decref(tick->root);
		tick->root = NULL;
	}
	return rc;
}

static json_t *counts_json(const struct bw_sync_counts *c)
{
	return json_pack("{sIsIsIsIsIsIsIsIsIsIsIsI}", "prices_seen", (json_int_t)c->prices_seen,
			 "prices_stored", (json_int_t)c->prices_stored, "prices_invalid",
			 (json_int_t)c->prices_invalid, "prices_deactivated",
			 (json_int_t)c->prices_deactivated, "pages", (json_int_t)c->pages,
			 "requests", (json_int_t)c->requests, "retries", (json_int_t)c->retries,
			 "customers_seen", (json_int_t)c->customers_seen, "customers_updated",
			 (json_int_t)c->customers_updated, "customers_created",
			 (json_int_t)c->customers_created, "customers_failed",
			 (json_int_t)c->customers_failed, "customers_foreign",
			 (json_int_t)c->customers_foreign);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

char *bw_sync_result_json(const struct bw_sync_outcome *out, const rd_kafka_message_t *msg,
			  const char *processed_at)
{
	json_t *o = bw_result_new(msg);

	if (!o)
		return NULL;
	json_object_set_new(o, "event_id", str_or_null(out->tick_id));
	json_object_set_new(o, "tick_id", str_or_null(out->tick_id));
	json_object_set_new(o, "scope", str_or_null(out->scope));
	json_object_set_new(o, "org_id", str_or_null(out->org_id));
	if (out->stripe_customer_id)
		json_object_set_new(o, "stripe_customer_id", json_string(out->stripe_customer_id));
	json_object_set_new(o, "status", json_string(bw_sync_status_name(out->status)));
	if (out->reason)
		json_object_set_new(o, "reason", json_string(out->reason));
	if (out->sync_run)
		json_object_set_new(o, "sync_run", json_string(out->sync_run));
	if (out->status != BW_SYNC_REJECTED) {
		json_object_set_new(o, "attempts", json_integer(out->attempts));
		json_object_set_new(o, "counts", counts_json(&out->counts));
	}
	if (out->stripe_error && (out->stripe_error->http_status || out->stripe_error->type[0]))
		json_object_set_new(o, "stripe_error",
				    json_pack("{sIssssss}", "http_status",
					      (json_int_t)out->stripe_error->http_status, "type",
					      out->stripe_error->type, "code", out->stripe_error->code,
					      "message", out->stripe_error->message));
	if (out->customer_errors && json_array_size(out->customer_errors) > 0)
		json_object_set(o, "customer_errors", out->customer_errors);
	return bw_result_finish(o, processed_at);
}
