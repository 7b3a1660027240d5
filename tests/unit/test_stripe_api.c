/* test_stripe_api: the Stripe API client (shared/stripe_api) against the local Stripe stub
 * (tests/stub/stripe_stub.py): pagination, headers, retries (429 + Retry-After, 5xx, network
 * timeout), no retry on 4xx, Stripe's error object, malformed JSON, the body limit, and a
 * stable Idempotency-Key across retries. The stub is started per test on a free port. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../stub/stripe_stub.h"
#include "stripe_api.h"
#include "testkit.h"

static struct stub S;

static struct bw_stripe_api *client(long timeout_ms, int max_retries, size_t max_body)
{
	struct bw_stripe_api_conf conf = {
		.base_url = S.url,
		.secret_key = "sk_test_unit",
		.api_version = BW_STRIPE_API_VERSION_DEFAULT,
		.connect_timeout_ms = 2000,
		.timeout_ms = timeout_ms,
		.max_body = max_body,
		.max_retries = max_retries,
		.retry_base_ms = 5,
		.retry_max_ms = 2000,
		.rate_limit_rps = 0,
	};
	struct bw_err err;
	struct bw_stripe_api *api = bw_stripe_api_new(&conf, &err);
	ck_assert_msg(api != NULL, "%s", err.msg);
	return api;
}

static void start_with(json_t *state)
{
	stub_start(&S, state);
	json_decref(state);
}

static void teardown(void)
{
	stub_stop(&S);
}

static int count_item(void *opaque, json_t *item, struct bw_err *err)
{
	(void)item;
	(void)err;
	(*(int *)opaque)++;
	return 0;
}

START_TEST(list_follows_every_page_with_auth_and_version)
{
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;
	int n = 0, pages = 0;

	start_with(stub_fixture());
	struct bw_stripe_api *api = client(5000, 2, 1 << 20);
	ck_assert_int_eq(bw_stripe_api_list(api, "/v1/prices", "active=true&expand%5B%5D=data.product",
					    100, count_item, &n, &pages, &serr, &err),
			 0);
	ck_assert_int_eq(n, 8);      /* 9 prices, one inactive */
	ck_assert_int_eq(pages, 3);  /* the stub serves 3 per page */
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.requests, 3);
	ck_assert_uint_eq(stats.retries, 0);
	json_t *reqs = stub_requests(&S), *r;
	size_t i;
	json_array_foreach(reqs, i, r) {
		ck_assert_str_eq(json_string_value(json_object_get(r, "authorization")),
				 "Bearer sk_test_unit");
		ck_assert_str_eq(json_string_value(json_object_get(r, "stripe_version")),
				 BW_STRIPE_API_VERSION_DEFAULT);
	}
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_array_get(reqs, 1),
									"query")),
				     "starting_after=price_team"));
	json_decref(reqs);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(rate_limited_429_honours_retry_after_then_succeeds)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "GET", "/v1/customers/cus_alpha", 429, 1, 0, "1", NULL);
	start_with(st);
	struct bw_stripe_api *api = client(5000, 3, 1 << 20);
	json_t *c = bw_stripe_api_get(api, "/v1/customers/cus_alpha", &serr, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), "cus_alpha");
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.requests, 2);
	ck_assert_uint_eq(stats.retries, 1);
	/* Retry-After: 1 with a 5 ms backoff base: the retry waited for the server's wish. */
	json_t *reqs = stub_requests(&S);
	double t0 = json_real_value(json_object_get(json_array_get(reqs, 0), "time"));
	double t1 = json_real_value(json_object_get(json_array_get(reqs, 1), "time"));
	ck_assert_msg(t1 - t0 >= 0.9, "retried after %.3f s, Retry-After said 1 s", t1 - t0);
	json_decref(reqs);
	json_decref(c);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(server_errors_are_retried_then_succeed)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "GET", "/v1/customers/", 500, 1, 0, NULL, NULL);
	stub_add_fault(st, "GET", "/v1/customers/", 503, 1, 0, NULL, NULL);
	start_with(st);
	struct bw_stripe_api *api = client(5000, 3, 1 << 20);
	json_t *c = bw_stripe_api_get(api, "/v1/customers/cus_beta", &serr, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.retries, 2);
	ck_assert_uint_eq(stats.requests, 3);
	json_decref(c);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(server_errors_past_the_retries_are_transient_with_stripe_error)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "GET", "/v1/customers/", 500, -1, 0, NULL, NULL);
	start_with(st);
	struct bw_stripe_api *api = client(5000, 2, 1 << 20);
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_get(api, "/v1/customers/cus_beta", &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_int_eq(serr.http_status, 500);
	ck_assert_str_eq(serr.type, "api_error");
	ck_assert_str_eq(serr.message, "stub fault 500");
	ck_assert_ptr_nonnull(strstr(err.msg, "after 2 retries"));
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.requests, 3);
	ck_assert_uint_eq(stats.retries, 2);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(not_found_is_invalid_and_not_retried)
{
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	start_with(stub_fixture());
	struct bw_stripe_api *api = client(5000, 3, 1 << 20);
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_get(api, "/v1/customers/cus_nobody", &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	ck_assert_int_eq(serr.http_status, 404);
	ck_assert_str_eq(serr.type, "invalid_request_error");
	ck_assert_str_eq(serr.code, "resource_missing");
	ck_assert_str_eq(serr.message, "No such customer: 'cus_nobody'");
	ck_assert_ptr_nonnull(strstr(err.msg, "resource_missing"));
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.requests, 1);
	ck_assert_uint_eq(stats.retries, 0);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(malformed_json_is_transient_and_not_retried)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "GET", "/v1/prices", 200, 1, 0, NULL, "{\"object\": \"list\", \"data\": [");
	start_with(st);
	struct bw_stripe_api *api = client(5000, 3, 1 << 20);
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_get(api, "/v1/prices?limit=3", &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_str_eq(serr.type, "malformed_response");
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.retries, 0);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(slower_than_the_timeout_is_retried_as_a_network_error)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "GET", "/v1/customers/", 200, 1, 1500, NULL, "{}");
	start_with(st);
	struct bw_stripe_api *api = client(300, 2, 1 << 20);
	json_t *c = bw_stripe_api_get(api, "/v1/customers/cus_alpha", &serr, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), "cus_alpha");
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.retries, 1);
	json_decref(c);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(timeouts_past_the_retries_are_transient)
{
	json_t *st = stub_fixture();
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "GET", "/v1/customers/", 200, -1, 1000, NULL, "{}");
	start_with(st);
	struct bw_stripe_api *api = client(200, 1, 1 << 20);
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_get(api, "/v1/customers/cus_alpha", &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_str_eq(serr.type, "network_error");
	ck_assert_int_eq(serr.http_status, 0);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(response_above_the_body_limit_is_invalid)
{
	struct bw_stripe_error serr;
	struct bw_err err;

	start_with(stub_fixture());
	struct bw_stripe_api *api = client(5000, 3, 512);
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_get(api, "/v1/prices?expand%5B%5D=data.product&limit=100",
					     &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "larger than 512"));
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(post_keeps_its_idempotency_key_across_retries)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "POST", "/v1/customers", 500, 1, 0, NULL, NULL);
	stub_add_fault(st, "POST", "/v1/customers", 429, 1, 0, "0", NULL);
	start_with(st);
	struct bw_stripe_api *api = client(5000, 3, 1 << 20);
	json_t *c = bw_stripe_api_post(api, "/v1/customers", "metadata%5Borg_id%5D=org_x",
				       "key-org_x", &serr, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), "cus_for_org_x");
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.retries, 2);
	json_t *reqs = stub_requests(&S), *r;
	size_t i;
	ck_assert_int_eq(json_array_size(reqs), 3);
	json_array_foreach(reqs, i, r) {
		ck_assert_str_eq(json_string_value(json_object_get(r, "idempotency_key")), "key-org_x");
		ck_assert_str_eq(json_string_value(json_object_get(r, "body")),
				 "metadata%5Borg_id%5D=org_x");
	}
	json_decref(reqs);
	/* Without a key a POST is refused before anything is sent. */
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_post(api, "/v1/customers", "", NULL, &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_INVALID);
	json_decref(c);
	bw_stripe_api_destroy(api);
}
END_TEST

/* 409 idempotency_key_in_use: a concurrent request with the same key is still running at
 * Stripe; retried with backoff like a 429 (Stripe's own libraries do), with the same key. */
START_TEST(conflict_409_key_in_use_is_retried_with_the_same_key)
{
	json_t *st = stub_fixture();
	struct bw_stripe_api_stats stats;
	struct bw_stripe_error serr;
	struct bw_err err;

	stub_add_fault(st, "POST", "/v1/customers", 409, 2, 0, NULL,
		       "{\"error\":{\"type\":\"idempotency_error\",\"code\":"
		       "\"idempotency_key_in_use\",\"message\":\"in use\"}}");
	stub_add_fault(st, "GET", "/v1/customers/cus_alpha", 409, -1, 0, NULL, NULL);
	start_with(st);
	struct bw_stripe_api *api = client(5000, 3, 1 << 20);
	json_t *c = bw_stripe_api_post(api, "/v1/customers", "metadata%5Borg_id%5D=org_y",
				       "key-org_y", &serr, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), "cus_for_org_y");
	bw_stripe_api_get_stats(api, &stats);
	ck_assert_uint_eq(stats.requests, 3);
	ck_assert_uint_eq(stats.retries, 2);
	json_t *reqs = stub_requests(&S), *r;
	size_t i;
	json_array_foreach(reqs, i, r)
		ck_assert_str_eq(json_string_value(json_object_get(r, "idempotency_key")), "key-org_y");
	json_decref(reqs);
	json_decref(c);
	/* past the retries: transient (the tick is tried again later), Stripe's status kept */
	bw_err_clear(&err);
	ck_assert_ptr_null(bw_stripe_api_get(api, "/v1/customers/cus_alpha", &serr, &err));
	ck_assert_int_eq(err.kind, BW_ERR_TRANSIENT);
	ck_assert_int_eq(serr.http_status, 409);
	bw_stripe_api_destroy(api);
}
END_TEST

/* Stripe's clock: the Date header of the last answer (the stub's "now"), not local time. */
START_TEST(last_date_is_stripes_clock)
{
	json_t *st = stub_fixture();
	struct bw_stripe_error serr;
	struct bw_err err;

	json_object_set_new(st, "now", json_integer(1500000000));
	start_with(st);
	struct bw_stripe_api *api = client(5000, 0, 1 << 20);
	ck_assert_int_eq(bw_stripe_api_last_date(api), -1);
	json_t *c = bw_stripe_api_get(api, "/v1/customers/cus_alpha", &serr, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert_int_eq(bw_stripe_api_last_date(api), 1500000000);
	json_decref(c);
	bw_stripe_api_destroy(api);
}
END_TEST

START_TEST(retry_after_and_backoff_bounds)
{
	ck_assert_int_eq(bw_stripe_api_retry_after_ms("2"), 2000);
	ck_assert_int_eq(bw_stripe_api_retry_after_ms("0"), 0);
	ck_assert_int_eq(bw_stripe_api_retry_after_ms(""), -1);
	ck_assert_int_eq(bw_stripe_api_retry_after_ms("2.5"), -1);
	ck_assert_int_eq(bw_stripe_api_retry_after_ms("-1"), -1);
	ck_assert_int_eq(bw_stripe_api_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), -1);
	ck_assert_int_eq(bw_stripe_api_retry_after_ms(NULL), -1);
	for (int i = 0; i < 200; i++) {
		long b1 = bw_stripe_api_backoff_ms(1, 100, 1000);
		long b3 = bw_stripe_api_backoff_ms(3, 100, 1000);
		long b9 = bw_stripe_api_backoff_ms(9, 100, 1000);
		ck_assert(b1 >= 50 && b1 <= 100);
		ck_assert(b3 >= 200 && b3 <= 400);
		ck_assert(b9 >= 500 && b9 <= 1000);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stripe_api");
	TCase *stub = tcase_create("against_stub");
	TCase *pure = tcase_create("pure");

	tcase_add_checked_fixture(stub, NULL, teardown);
	tcase_set_timeout(stub, 20);
	tcase_add_test(stub, list_follows_every_page_with_auth_and_version);
	tcase_add_test(stub, rate_limited_429_honours_retry_after_then_succeeds);
	tcase_add_test(stub, server_errors_are_retried_then_succeed);
	tcase_add_test(stub, server_errors_past_the_retries_are_transient_with_stripe_error);
	tcase_add_test(stub, not_found_is_invalid_and_not_retried);
	tcase_add_test(stub, malformed_json_is_transient_and_not_retried);
	tcase_add_test(stub, slower_than_the_timeout_is_retried_as_a_network_error);
	tcase_add_test(stub, timeouts_past_the_retries_are_transient);
	tcase_add_test(stub, response_above_the_body_limit_is_invalid);
	tcase_add_test(stub, post_keeps_its_idempotency_key_across_retries);
	tcase_add_test(stub, conflict_409_key_in_use_is_retried_with_the_same_key);
	tcase_add_test(stub, last_date_is_stripes_clock);
	tcase_add_test(pure, retry_after_and_backoff_bounds);
	suite_add_tcase(s, stub);
	suite_add_tcase(s, pure);
	return tk_run_suite(s);
}
