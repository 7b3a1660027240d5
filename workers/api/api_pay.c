/* api_pay: see api_pay.h. Shared pieces (answers, idempotency keys, forms, the customer) are
 * in api_pay_common.c. */
#include "api_pay.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api_pay_common.h"
#include "api_plans.h"

unsigned bw_api_pay_credits(const struct bw_api_pay_cfg *cfg, struct bw_mongo *m,
			    const struct bw_api_pay_req *req, char **out)
{
	struct pay_call c;
	json_t *price = NULL, *session = NULL;
	const char *success, *cancel;
	int64_t credits, min, max;
	char val[32];
	unsigned status;

	status = pay_begin(&c, cfg, req, "checkout-credits", out);
	if (status)
		return status;
	json_t *jc = json_object_get(c.body, "credits");
	success = pay_url(c.body, "success_url");
	cancel = pay_url(c.body, "cancel_url");
	if (!json_is_integer(jc) || !success || !cancel) {
		status = pay_fail(out, 400, "invalid_request", NULL,
				  "body must be {\"credits\": <whole number>, \"success_url\": "
				  "<http(s) URL>, \"cancel_url\": <http(s) URL>}");
		goto done;
	}
	credits = json_integer_value(jc);
	if (bw_api_credit_price(m, &price, &c.err) != 0) {
		status = pay_fail(out, 503, "unavailable", NULL, "credit price: %s", c.err.msg);
		goto done;
	}
	if (!price) {
		status = pay_fail(out, 404, "no_price", NULL,
				  "no active credit price is stored (is the sync worker running?)");
		goto done;
	}
	min = json_integer_value(json_object_get(price, "min_spu_purchase"));
	max = json_is_integer(json_object_get(price, "max_spu_purchase"))
		      ? json_integer_value(json_object_get(price, "max_spu_purchase")) : INT32_MAX;
	if (min < 1)
		min = 1;
	if (credits < min || credits > max) {
		status = pay_fail(out, 400, "invalid_request", NULL,
				  "credits must be from %lld to %lld (got %lld)", (long long)min,
				  (long long)max, (long long)credits);
		goto done;
	}
	if ((status = pay_customer(&c, m, out)) != 0)
		goto done;
	snprintf(val, sizeof(val), "%lld", (long long)credits);
	struct pay_checkout co = {
		"checkout-credits", "payment",
		json_string_value(json_object_get(price, "price_id")), val, success, cancel,
		"metadata[credits]", val,
	};
	session = pay_checkout_session(&c, &co);
	if (!session) {
		status = pay_stripe_fail(&c, out, "create checkout session");
		goto done;
	}
	status = pay_answer(out, 200, json_pack("{s:O s:O s:s s:I}", "id",
						json_object_get(session, "id"), "url",
						json_object_get(session, "url"), "mode", "payment",
						"credits", (json_int_t)credits));
done:
	json_decref(session);
	json_decref(price);
	pay_end(&c);
	return status;
}
