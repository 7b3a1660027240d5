/* sync_prices: see sync_prices.h. */
#include "sync_prices.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

#define PAGE_LIMIT 100

int bw_sync_meta_int64(const json_t *metadata, const char *key, int64_t *out, int *present,
		       char *why, size_t whylen)
{
	const json_t *v = metadata ? json_object_get(metadata, key) : NULL;
	const char *s = json_string_value(v);

	*present = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!s || bw_parse_int64(s, 0, INT64_MAX / 4, out) != 0) {
		snprintf(why, whylen, "metadata %s '%.40s' is not a whole number >= 0", key,
			 s ? s : "(not a string)");
		return -1;
	}
	*present = 1;
	return 0;
}

static const char *meta_str(const json_t *metadata, const char *key)
{
	const char *s = metadata ? json_string_value(json_object_get(metadata, key)) : NULL;
	return s && *s ? s : NULL;
}

int bw_sync_price_parse(const json_t *price, const char *product_tag, struct bw_price *out,
			struct bw_err *err)
{
	const json_t *product = json_object_get(price, "product");
	const json_t *md = json_object_get(price, "metadata");
	const json_t *tq = json_object_get(price, "transform_quantity");
	const json_t *rec = json_object_get(price, "recurring");
	const json_t *ua = json_object_get(price, "unit_amount");
	char why[160] = "";

	memset(out, 0, sizeof(*out));
	out->price_id = json_string_value(json_object_get(price, "id"));
	if (!out->price_id || !*out->price_id)
		return bw_err_set(err, BW_ERR_INVALID, "price without an id");
	if (!json_is_object(product))
		return bw_err_set(err, BW_ERR_INVALID, "price %.64s: product not expanded",
				  out->price_id);
	const char *tag = meta_str(json_object_get(product, "metadata"), "product");
	if (!tag || strcmp(tag, product_tag) != 0)
		return 0;
	out->product_id = json_string_value(json_object_get(product, "id"));
	out->product_name = json_string_value(json_object_get(product, "name"));
	out->currency = json_string_value(json_object_get(price, "currency"));
	out->nickname = json_string_value(json_object_get(price, "nickname"));
	out->lookup_key = json_string_value(json_object_get(price, "lookup_key"));
	out->active = json_is_true(json_object_get(price, "active"));
	out->metadata = json_is_object(md) ? md : NULL;
	out->price_type = meta_str(md, "price_type");
	out->tier = meta_str(md, "tier");
	if (json_is_integer(ua)) {
		out->has_unit_amount = 1;
		out->unit_amount = json_integer_value(ua);
	}
	if (json_is_object(rec))
		out->recurring_interval = json_string_value(json_object_get(rec, "interval"));
	if (json_is_object(tq) && json_is_integer(json_object_get(tq, "divide_by"))) {
		out->has_divide_by = 1;
		out->divide_by = json_integer_value(json_object_get(tq, "divide_by"));
		out->round = json_string_value(json_object_get(tq, "round"));
	}
	if (bw_sync_meta_int64(md, "included_spus", &out->included_spus, &out->has_included_spus,
			       why, sizeof(why)) != 0 ||
	    bw_sync_meta_int64(md, "min_spu_purchase", &out->min_spu_purchase, &out->has_min_spu,
			       why, sizeof(why)) != 0 ||
	    bw_sync_meta_int64(md, "max_spu_purchase", &out->max_spu_purchase, &out->has_max_spu,
			       why, sizeof(why)) != 0)
		snprintf(out->error, sizeof(out->error), "%s", why);
	else if (out->price_type && strcmp(out->price_type, "base") == 0 &&
		 (!out->tier || !out->has_included_spus))
		snprintf(out->error, sizeof(out->error),
			 "base price without metadata tier and included_spus");
	return 1;
}

/* Collects the kept prices of every page (the list JSON is freed page by page). */
struct collect {
	const char *product_tag;
	json_t *kept;     /* array of price objects (references) */
	struct bw_sync_counts *counts;
};

static int collect_price(void *opaque, json_t *item, struct bw_err *err)
{
	struct collect *c = opaque;
	struct bw_price p;
	struct bw_err perr;

	(void)err;
	c->counts->prices_seen++;
	bw_err_clear(&perr);
	int r = bw_sync_price_parse(item, c->product_tag, &p, &perr);
	if (r < 0) {
		c->counts->prices_invalid++;
		bw_log(BW_LOG_WARN, NULL, "prices sync: skipped: %s", perr.msg);
		return 0;
	}
	if (r == 1 && json_array_append(c->kept, item) != 0)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	return 0;
}

static void append_opt_str(bson_t *b, const char *key, const char *v)
{
	if (v)
		BSON_APPEND_UTF8(b, key, v);
	else
		BSON_APPEND_NULL(b, key);
}

/* The update of one price: $set of what Stripe says; numbers with a metadata problem are
 * left as stored. */
static void price_update(const struct bw_price *p, const char *sync_run, int64_t now_ms,
			 bson_t *update)
{
	bson_t set, unset, tq;

	BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
	BSON_APPEND_UTF8(&set, "price_id", p->price_id);
	append_opt_str(&set, "product_id", p->product_id);
	append_opt_str(&set, "product_name", p->product_name);
	BSON_APPEND_BOOL(&set, "active", p->active);
	if (p->has_unit_amount)
		BSON_APPEND_INT64(&set, "unit_amount", p->unit_amount);
	else
		BSON_APPEND_NULL(&set, "unit_amount");
	append_opt_str(&set, "currency", p->currency);
	append_opt_str(&set, "nickname", p->nickname);
	append_opt_str(&set, "lookup_key", p->lookup_key);
	append_opt_str(&set, "recurring_interval", p->recurring_interval);
	append_opt_str(&set, "price_type", p->price_type);
	append_opt_str(&set, "tier", p->tier);
	if (!p->error[0]) {
		if (p->has_included_spus)
			BSON_APPEND_INT64(&set, "included_spus", p->included_spus);
		if (p->has_min_spu)
			BSON_APPEND_INT64(&set, "min_spu_purchase", p->min_spu_purchase);
		if (p->has_max_spu)
			BSON_APPEND_INT64(&set, "max_spu_purchase", p->max_spu_purchase);
	} else {
		BSON_APPEND_UTF8(&set, "metadata_error", p->error);
	}
	if (p->has_divide_by) {
		BSON_APPEND_DOCUMENT_BEGIN(&set, "transform_quantity", &tq);
		BSON_APPEND_INT64(&tq, "divide_by", p->divide_by);
		append_opt_str(&tq, "round", p->round);
		bson_append_document_end(&set, &tq);
	} else {
		BSON_APPEND_NULL(&set, "transform_quantity");
	}
	if (p->metadata)
		bw_mongo_append_json(&set, "metadata", p->metadata);
	BSON_APPEND_DATE_TIME(&set, "synced_at", now_ms);
	BSON_APPEND_UTF8(&set, "sync_run", sync_run);
	bson_append_document_end(update, &set);
	if (!p->error[0]) {
		BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
		BSON_APPEND_UTF8(&unset, "metadata_error", "");
		bson_append_document_end(update, &unset);
	}
}

static int store_prices(struct bw_mongo *mongo, const char *product_tag, const json_t *kept,
			const char *sync_run, struct bw_sync_counts *counts, struct bw_err *err)
{
	mongoc_client_t *client = bw_mongo_pop(mongo);
	mongoc_collection_t *coll = bw_mongo_coll(mongo, client, BW_COLL_PRICES);
	mongoc_bulk_operation_t *bulk = NULL;
	bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
	bson_t reply = BSON_INITIALIZER;
	bson_error_t error;
	int64_t now = bw_mongo_now_ms();
	int rc = -1, queued = 0;
	size_t i;
	json_t *item;

	bulk = mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
	json_array_foreach(kept, i, item) {
		struct bw_price p;
		struct bw_err perr;
		bson_t update = BSON_INITIALIZER;
		bson_t *filter;

		if (bw_sync_price_parse(item, product_tag, &p, &perr) != 1)
			continue;
		if (p.error[0]) {
			counts->prices_invalid++;
			bw_log(BW_LOG_WARN, NULL, "price %s: %s", p.price_id, p.error);
		}
		filter = BCON_NEW("price_id", BCON_UTF8(p.price_id));
		price_update(&p, sync_run, now, &update);
		int ok = mongoc_bulk_operation_update_one_with_opts(bulk, filter, &update, opts,
								   &error);
		bson_destroy(filter);
		bson_destroy(&update);
		if (!ok) {
			bw_err_set(err, BW_ERR_TRANSIENT, "price %s: %s", p.price_id, error.message);
			goto done;
		}
		queued++;
	}
	if (queued > 0) {
		bson_destroy(&reply);
		bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
		uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &error);
		/* a duplicate price_id: another sync upserted it first (CONFLICT, as before) */
		if (bw_mongo_bulk_check(ok, &reply, &error, BW_ERR_CONFLICT, 0, "store prices", NULL,
					err) != 0)
			goto done;
		counts->prices_stored += queued;
	}
	/* Only now, with every page read and stored: what this run did not see is gone. */
	bson_t *filter = BCON_NEW("active", BCON_BOOL(true), "sync_run", "{", "$ne",
				  BCON_UTF8(sync_run), "}");
	bson_t *update = BCON_NEW("$set", "{", "active", BCON_BOOL(false), "deactivated_at",
				  BCON_DATE_TIME(now), "}");
	bson_t ureply;
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 1);
	int ok = mongoc_collection_update_many(coll, filter, update, NULL, &ureply, &error);
	bson_destroy(filter);
	bson_destroy(update);
	if (!ok) {
		bson_destroy(&ureply);
		bw_mongo_error(&error, "deactivate prices", err);
		goto done;
	}
	int64_t modified;
	bw_mongo_get_int64(&ureply, "modifiedCount", &modified);
	counts->prices_deactivated += modified;
	bson_destroy(&ureply);
	rc = 0;
done:
	bson_destroy(&reply);
	bson_destroy(opts);
	mongoc_bulk_operation_destroy(bulk);
	mongoc_collection_destroy(coll);
	bw_mongo_push(mongo, client);
	return rc;
}

int bw_sync_prices(struct bw_stripe_api *api, struct bw_mongo *mongo, const char *product_tag,
		   const char *sync_run, struct bw_sync_counts *counts,
		   struct bw_stripe_error *serr, struct bw_err *err)
{
	struct collect c = { product_tag, json_array(), counts };
	int pages = 0, rc = -1;

	if (!c.kept)
		return bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
	if (bw_stripe_api_list(api, "/v1/prices", "active=true&expand%5B%5D=data.product",
			       PAGE_LIMIT, collect_price, &c, &pages, serr, err) != 0) {
		counts->pages += pages;
		bw_err_prefix(err, "list prices");
		goto done;
	}
	counts->pages += pages;
	if (store_prices(mongo, product_tag, c.kept, sync_run, counts, err) != 0)
		goto done;
	bw_log(BW_LOG_INFO, NULL,
	       "prices sync %s: %lld listed on %d pages, %zu of product %s stored, %lld inactive",
	       sync_run, (long long)counts->prices_seen, pages, json_array_size(c.kept),
	       product_tag, (long long)counts->prices_deactivated);
	rc = 0;
done:
	json_decref(c.kept);
	return rc;
}
