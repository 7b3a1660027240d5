/* api_pay_common: see api_pay_common.h. */
#include "api_pay_common.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdatomic.h>
#include <unistd.h>

#include "log.h"
#include "sync_customer.h"
#include "sync_customer_store.h"

unsigned pay_answer(char **out, unsigned status, json_t *ans)
{
	*out = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
	if (!*out) {
		*out = strdup("{\"error\":\"unavailable\",\"detail\":\"out of memory\"}");
		return 503;
	}
	return status;
}

unsigned pay_fail(char **out, unsigned status, const char *code,
		  const struct bw_stripe_error *serr, const char *fmt, ...)
{
	char detail[400];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	bw_log(status >= 500 ? BW_LOG_WARN : BW_LOG_INFO, NULL, "refused %u %s: %s", status, code,
	       detail);
	o = json_pack("{s:s s:s}", "error", code, "detail", detail);
	if (o && serr)
		json_object_set_new(o, "stripe",
				    json_pack("{s:I s:s s:s s:s}", "http_status",
					      (json_int_t)serr->http_status, "type", serr->type,
					      "code", serr->code, "message", serr->message));
	return pay_answer(out, status, o);
}

unsigned pay_stripe_fail(struct pay_call *c, char **out, const char *what)
{
	long hs = c->serr.http_status;

	if (c->err.kind == BW_ERR_INVALID && hs >= 400 && hs < 500)
		return pay_fail(out, hs == 402 ? 402 : 400, "stripe_refused", &c->serr,
				"%s: Stripe refused it (%ld %s): %s", what, hs, c->serr.type,
				c->serr.message[0] ? c->serr.message : c->err.msg);
	return pay_fail(out, 502, "stripe_unavailable", &c->serr, "%s: %s", what, c->err.msg);
}

const char *pay_url(const json_t *body, const char *key)
{
	const char *s = json_string_value(json_object_get(body, key));

	if (!s || strlen(s) > 2048 || (strncmp(s, "https://", 8) && strncmp(s, "http://", 7)))
		return NULL;
	return s;
}

unsigned pay_begin(struct pay_call *c, const struct bw_api_pay_cfg *cfg,
		   const struct bw_api_pay_req *req, const char *call, char **out)
{
	json_error_t jerr;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->req = req;
	bw_err_clear(&c->err);
	if (!cfg->stripe.secret_key || !cfg->stripe.secret_key[0])
		return pay_fail(out, 409, "local_only", NULL,
				"%s needs Stripe: bw-api runs local-only (no STRIPE_SECRET_KEY); "
				"plans, subscription and usage reads still work", call);
	c->body = req->len ? json_loadb((const char *)req->body, req->len, 0, &jerr)
			   : json_object();
	if (!json_is_object(c->body)) {
		pay_end(c);
		return pay_fail(out, 400, "invalid_json", NULL, "the body is not a JSON object");
	}
	c->api = bw_stripe_api_new(&cfg->stripe, &c->err);
	if (!c->api) {
		pay_end(c);
		return pay_fail(out, 503, "unavailable", NULL, "Stripe client: %s", c->err.msg);
	}
	return 0;
}

void pay_end(struct pay_call *c)
{
	json_decref(c->body);
	bw_stripe_api_destroy(c->api);
	free(c->form);
	free(c->customer);
	memset(c, 0, sizeof(*c));
}

static void form_append(struct pay_call *c, const char *s)
{
	size_t n = strlen(s);

	if (c->form_len + n + 1 > c->form_cap) {
		size_t cap = c->form_cap ? c->form_cap : 512;
		while (cap < c->form_len + n + 1)
			cap *= 2;
		char *f = realloc(c->form, cap);
		if (!f) {
			c->form_oom = 1;
			return;
		}
		c->form = f;
		c->form_cap = cap;
	}
	memcpy(c->form + c->form_len, s, n + 1);
	c->form_len += n;
}

void pay_form(struct pay_call *c, const char *key, const char *value)
{
	char *k, *v;

	if (!value)
		return;
	k = bw_stripe_api_escape(c->api, key);
	v = bw_stripe_api_escape(c->api, value);
	if (!k || !v) {
		c->form_oom = 1;
	} else {
		if (c->form_len)
			form_append(c, "&");
		form_append(c, k);
		form_append(c, "=");
		form_append(c, v);
	}
	free(k);
	free(v);
}

void pay_key(const struct pay_call *c, const char *call, int update, char key[BW_PAY_KEY_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[33], who[300];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* The caller's key when it sent one (not the state the request finds: a retry after a
	 * first attempt that changed it is still the same request); else the ten minutes a
	 * creation falls in. */
	if (c->req->client_key) {
		snprintf(who, sizeof(who), "c:%.256s", c->req->client_key);
	} else if (update) {
		/* An update sets values (a retry changes nothing more): this attempt's own key,
		 * so a later identical change (cancel, reactivate, cancel) is never a replay. */
		struct timespec ts;
		static atomic_uint_fast64_t seq;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(who, sizeof(who), "n:%lld.%09ld.%llu.%ld", (long long)ts.tv_sec,
			 ts.tv_nsec, (unsigned long long)atomic_fetch_add(&seq, 1), (long)getpid());
	} else {
		snprintf(who, sizeof(who), "t:%lld", (long long)(time(NULL) / BW_PAY_KEY_WINDOW_S));
	}
	memset(md, 0, sizeof(md));
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		EVP_DigestUpdate(ctx, who, strlen(who));
		EVP_DigestUpdate(ctx, "\n", 1);
		EVP_DigestUpdate(ctx, c->req->body ? (const void *)c->req->body : "", c->req->len);
		EVP_DigestFinal_ex(ctx, md, &mdlen);
	}
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(key, BW_PAY_KEY_MAX, "bw-api-%s-%s-%s", call, c->req->org_id, hex);
}

json_t *pay_post(struct pay_call *c, const char *path, const char *key)
{
	json_t *ans = NULL;

	if (c->form_oom) {
		bw_err_set(&c->err, BW_ERR_TRANSIENT, "out of memory");
	} else {
		ans = bw_stripe_api_post(c->api, path, c->form ? c->form : "", key, &c->serr,
					 &c->err);
		if (!ans)
			bw_log(BW_LOG_WARN, NULL, "Stripe POST %s for org %s: %s %s", path,
			       c->req->org_id, bw_err_kind_name(c->err.kind), c->err.msg);
	}
	c->form_len = 0;
	if (c->form)
		c->form[0] = '\0';
	return ans;
}

unsigned pay_customer(struct pay_call *c, struct bw_mongo *m, char **out)
{
	mongoc_client_t *client = bw_mongo_pop(m);
	mongoc_collection_t *coll = bw_mongo_coll(m, client, BW_COLL_CUSTOMERS);
	struct bw_sync_doc d;
	unsigned status = 0;

	memset(&d, 0, sizeof(d));
	if (bw_sync_doc_load(coll, "org_id", c->req->org_id, &d, &c->err) != 0) {
		status = pay_fail(out, 503, "unavailable", NULL, "customer of %s: %s",
				  c->req->org_id, c->err.msg);
		goto done;
	}
	if (d.stripe_customer_id) {
		c->customer = strdup(d.stripe_customer_id);
		goto done;
	}
	if (bw_sync_create_customer(c->api, c->req->org_id, c->cfg->product_tag,
				    d.customers_deleted, &c->customer, &c->serr, &c->err) != 0) {
		status = pay_stripe_fail(c, out, "create customer");
		goto done;
	}
	bw_log(BW_LOG_INFO, NULL, "created Stripe customer %s for org %s", c->customer,
	       c->req->org_id);
	/* Stored at once, as the sync does: the idempotency key expires after a day. */
	struct bw_sync_write w = { c->customer, NULL, 0, 0, c->cfg->free_grant };
	if (bw_sync_doc_write(m, client, coll, c->req->org_id, &w, &c->err) != 0)
		status = pay_fail(out, 503, "unavailable", NULL, "store customer of %s: %s",
				  c->req->org_id, c->err.msg);
done:
	if (!status && !c->customer)
		status = pay_fail(out, 503, "unavailable", NULL, "out of memory");
	bw_sync_doc_cleanup(&d);
	mongoc_collection_destroy(coll);
	bw_mongo_push(m, client);
	return status;
}

json_t *pay_checkout_session(struct pay_call *c, const struct pay_checkout *co)
{
	char key[BW_PAY_KEY_MAX];

	pay_form(c, "mode", co->mode);
	pay_form(c, "customer", c->customer);
	pay_form(c, "line_items[0][price]", co->price_id);
	pay_form(c, "line_items[0][quantity]", co->quantity);
	pay_form(c, "success_url", co->success);
	pay_form(c, "cancel_url", co->cancel);
	pay_form(c, "metadata[org_id]", c->req->org_id);
	pay_form(c, co->extra_key, co->extra_value);
	pay_key(c, co->call, 0, key);
	return pay_post(c, "/v1/checkout/sessions", key);
}
