/* api_balance: see api_balance.h. */
#include "api_balance.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "customer_doc.h"
#include "metrics.h"
#include "usage_result.h"
#include "usage_store.h"
#include "waterfall.h"

/* The subscription fields of the customer document, as stored (extended JSON for dates). */
static int load_subscription(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
			     json_t **out, struct bw_err *err)
{
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	bson_t *filter = BCON_NEW(BW_CUST_ORG_ID, BCON_UTF8(org_id));
	bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id", BCON_INT32(0),
				BW_CUST_SUB_TYPE, BCON_INT32(1), "stripe_subscription_status",
				BCON_INT32(1), BW_CUST_SUB_ALLOWANCE, BCON_INT32(1),
				BW_CUST_PERIOD_START, BCON_INT32(1),
				BW_CUST_PERIOD_END, BCON_INT32(1), BW_CUST_CANCEL_AT_END,
				BCON_INT32(1), BW_CUST_CANCEL_AT, BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t error;
	int rc = -1;

	*out = NULL;
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	if (mongoc_cursor_next(cur, &doc)) {
		char *text = bson_as_relaxed_extended_json(doc, NULL);
		*out = text ? json_loads(text, 0, NULL) : NULL;
		bson_free(text);
	}
	if (mongoc_cursor_error(cur, &error)) {
		bw_mongo_error(&error, "load subscription", err);
		goto done;
	}
	if (!*out)
		*out = json_pack("{ss}", BW_CUST_SUB_TYPE, BW_CUST_TYPE_NONE);
	rc = 0;
done:
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	return rc;
}

/* The pre-check fields appended to the answer base (an object's text): the new string. */
static char *with_precheck(const char *base, const struct bw_balances *bal, int64_t spus)
{
	int64_t available = bw_waterfall_available(bal);
	size_t len = strlen(base), cap = len + 160;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	memcpy(out, base, len - 1); /* without the closing brace */
	if (bal->enterprise)
		snprintf(out + len - 1, cap - len + 1,
			 ",\"spus\":%lld,\"allowed\":true,\"available\":null,\"shortfall\":0}",
			 (long long)spus);
	else /* available >= 0 and spus > 0: the difference cannot overflow */
		snprintf(out + len - 1, cap - len + 1,
			 ",\"spus\":%lld,\"allowed\":%s,\"available\":%lld,\"shortfall\":%lld}",
			 (long long)spus, available >= spus ? "true" : "false",
			 (long long)available, (long long)(available >= spus ? 0 : spus - available));
	return out;
}

/* Reads the org from the database: the answer without pre-check (*base) and its balances. */
static int load_answer(struct bw_mongo *m, const char *org_id, int64_t free_grant, char **base,
		       struct bw_balances *bal_out, struct bw_err *err)
{
	struct bw_org org;
	struct bw_org *orgp = &org;
	mongoc_client_t *client = bw_mongo_pop(m);
	json_t *o = NULL, *sub = NULL, *bal = NULL;
	char *bal_text = NULL;
	int rc = -1;

	*base = NULL;
	memset(&org, 0, sizeof(org));
	org.org_id = org_id;
	if (bw_usage_store_load_org_types(m, client, &org, 1, err) != 0 ||
	    bw_usage_store_load_orgs(m, client, &orgp, 1, free_grant, err) != 0 ||
	    load_subscription(m, client, org_id, &sub, err) != 0)
		goto done;
	bal_text = bw_usage_balances_json(&org.bal);
	bal = bal_text ? json_loads(bal_text, 0, NULL) : NULL;
	o = json_object();
	if (!bal || !o) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	json_object_set_new(o, "org_id", json_string(org_id));
	json_object_set_new(o, "known", json_boolean(org.exists));
	json_object_set_new(o, "enterprise", json_boolean(org.bal.enterprise));
	json_object_set_new(o, "balance_version", json_integer(org.version));
	json_object_set_new(o, "balances", bal);
	bal = NULL;
	json_object_set_new(o, "subscription", sub);
	sub = NULL;
	*base = json_dumps(o, JSON_COMPACT);
	if (!*base) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	*bal_out = org.bal;
	rc = 0;
done:
	json_decref(o);
	json_decref(sub);
	json_decref(bal);
	free(bal_text);
	bw_org_reset(&org);
	bw_mongo_push(m, client);
	return rc;
}

/* Direct-mapped: a slot holds the last org whose id hashed there. */
#define CACHE_SLOTS 4096

struct slot {
	char *org_id;
	char *base;
	struct bw_balances bal;
	int64_t fetched_ms;
};

struct bw_api_balance_cache {
	pthread_mutex_t mu;
	int64_t ttl_ms;
	struct slot slots[CACHE_SLOTS];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slot_of(const char *org_id)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)org_id; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % CACHE_SLOTS);
}

struct bw_api_balance_cache *bw_api_balance_cache_new(int64_t ttl_ms)
{
	struct bw_api_balance_cache *c;

	if (ttl_ms <= 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	c->ttl_ms = ttl_ms;
	return c;
}

void bw_api_balance_cache_free(struct bw_api_balance_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		free(c->slots[i].org_id);
		free(c->slots[i].base);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* A fresh entry's copy, or NULL. */
static char *cache_get(struct bw_api_balance_cache *c, const char *org_id,
		       struct bw_balances *bal)
{
	struct slot *s = &c->slots[slot_of(org_id)];
	char *base = NULL;

	pthread_mutex_lock(&c->mu);
	if (s->org_id && !strcmp(s->org_id, org_id) && mono_ms() - s->fetched_ms < c->ttl_ms) {
		base = strdup(s->base);
		*bal = s->bal;
	}
	pthread_mutex_unlock(&c->mu);
	return base;
}

static void cache_put(struct bw_api_balance_cache *c, const char *org_id, const char *base,
		      const struct bw_balances *bal, int64_t fetched_ms)
{
	struct slot *s = &c->slots[slot_of(org_id)];
	char *id = strdup(org_id), *copy = strdup(base);

	if (!id || !copy) {
		free(id);
		free(copy);
		return;
	}
	pthread_mutex_lock(&c->mu);
	if (s->org_id && !strcmp(s->org_id, org_id) && s->fetched_ms > fetched_ms) {
		pthread_mutex_unlock(&c->mu); /* a newer read is already there */
		free(id);
		free(copy);
		return;
	}
	free(s->org_id);
	free(s->base);
	s->org_id = id;
	s->base = copy;
	s->bal = *bal;
	s->fetched_ms = fetched_ms;
	pthread_mutex_unlock(&c->mu);
}

int bw_api_balance_json(struct bw_mongo *m, struct bw_api_balance_cache *cache,
			const char *org_id, int64_t free_grant, int64_t spus, char **out,
			struct bw_err *err)
{
	struct bw_balances bal;
	char *base = cache ? cache_get(cache, org_id, &bal) : NULL;

	*out = NULL;
	if (!base) {
		int64_t started = mono_ms();
		if (load_answer(m, org_id, free_grant, &base, &bal, err) != 0)
			return -1;
		if (cache)
			cache_put(cache, org_id, base, &bal, started);
	}
	if (spus < 1) {
		*out = base;
		return 0;
	}
	*out = with_precheck(base, &bal, spus);
	free(base);
	if (!*out)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	return 0;
}
