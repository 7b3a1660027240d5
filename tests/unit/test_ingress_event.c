/* Unit tests of workers/webhook_ingress/ingress_event: which fields of a verified Stripe event
 * become the Kafka key and headers, and which bodies are refused (no Kafka needed). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ingress_event.h"
#include "testkit.h"

static int inspect(const char *body, struct bw_ingress_event *ev)
{
	struct bw_err err;

	bw_err_clear(&err);
	return bw_ingress_event_inspect((const unsigned char *)body, strlen(body), 1 << 20, ev,
					&err);
}

START_TEST(key_is_the_object_customer)
{
	struct bw_ingress_event ev;

	ck_assert_int_eq(inspect("{\"id\":\"evt_1\",\"type\":\"invoice.paid\",\"data\":{\"object\":"
				 "{\"id\":\"in_1\",\"customer\":\"cus_A\"}}}", &ev), 0);
	ck_assert_str_eq(ev.id, "evt_1");
	ck_assert_str_eq(ev.type, "invoice.paid");
	ck_assert_str_eq(ev.key, "cus_A");
	ck_assert_int_eq(ev.key_is_customer, 1);
}
END_TEST

START_TEST(key_is_an_expanded_customer_id)
{
	struct bw_ingress_event ev;

	ck_assert_int_eq(inspect("{\"id\":\"evt_2\",\"type\":\"x\",\"data\":{\"object\":"
				 "{\"customer\":{\"id\":\"cus_B\",\"object\":\"customer\"}}}}", &ev), 0);
	ck_assert_str_eq(ev.key, "cus_B");
}
END_TEST

START_TEST(key_is_the_customer_object_itself)
{
	struct bw_ingress_event ev;

	ck_assert_int_eq(inspect("{\"id\":\"evt_3\",\"type\":\"customer.updated\",\"data\":"
				 "{\"object\":{\"id\":\"cus_C\",\"object\":\"customer\"}}}", &ev), 0);
	ck_assert_str_eq(ev.key, "cus_C");
	ck_assert_int_eq(ev.key_is_customer, 1);
}
END_TEST

START_TEST(key_falls_back_to_the_event_id)
{
	struct bw_ingress_event ev;

	ck_assert_int_eq(inspect("{\"id\":\"evt_4\",\"type\":\"price.updated\",\"data\":{\"object\":"
				 "{\"id\":\"price_1\",\"customer\":null}}}", &ev), 0);
	ck_assert_str_eq(ev.key, "evt_4");
	ck_assert_int_eq(ev.key_is_customer, 0);
	ck_assert_int_eq(inspect("{\"id\":\"evt_5\",\"type\":\"x\",\"data\":{\"object\":"
				 "{\"customer\":\"\"}}}", &ev), 0);
	ck_assert_str_eq(ev.key, "evt_5");
	ck_assert_int_eq(inspect("{\"id\":\"evt_6\",\"type\":\"x\",\"data\":[1]}", &ev), 0);
	ck_assert_str_eq(ev.key, "evt_6");
}
END_TEST

START_TEST(refusals_name_their_reason)
{
	struct bw_ingress_event ev;
	char long_id[400];

	ck_assert_int_eq(inspect("{\"id\":", &ev), -1);
	ck_assert_str_eq(ev.error, "invalid_json");
	ck_assert_int_eq(inspect("\"evt\"", &ev), -1);
	ck_assert_str_eq(ev.error, "invalid_json");
	ck_assert_int_eq(inspect("{\"type\":\"x\"}", &ev), -1);
	ck_assert_str_eq(ev.error, "invalid_event");
	ck_assert_int_eq(inspect("{\"id\":\"evt_7\",\"type\":7}", &ev), -1);
	ck_assert_str_eq(ev.error, "invalid_event");
	memset(long_id, 'a', sizeof(long_id));
	memcpy(long_id, "{\"id\":\"", 7);
	memcpy(long_id + sizeof(long_id) - 16, "\",\"type\":\"x\"}", 14);
	ck_assert_int_eq(inspect(long_id, &ev), -1);
	ck_assert_str_eq(ev.error, "invalid_event");
}
END_TEST

START_TEST(received_at_is_rfc3339_utc_millis)
{
	struct timespec ts = { 1700000000, 123456789 };
	char out[32];

	bw_ingress_format_time(&ts, out);
	ck_assert_str_eq(out, "2023-11-14T22:13:20.123Z");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ingress_event");
	TCase *tc = tcase_create("inspect");

	tcase_add_test(tc, key_is_the_object_customer);
	tcase_add_test(tc, key_is_an_expanded_customer_id);
	tcase_add_test(tc, key_is_the_customer_object_itself);
	tcase_add_test(tc, key_falls_back_to_the_event_id);
	tcase_add_test(tc, refusals_name_their_reason);
	tcase_add_test(tc, received_at_is_rfc3339_utc_millis);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
