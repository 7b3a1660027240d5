/* Unit tests of shared/kafka_env: which environment variables reach librdkafka, and that a
 * platform's own KAFKA_* variables (Kubernetes service links) never do (issue 12 item 2). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_env.h"
#include "testkit.h"

static const char *const service_links[] = {
	"KAFKA_SERVICE_HOST", "KAFKA_SERVICE_PORT", "KAFKA_PORT", "KAFKA_PORT_9092_TCP",
	"KAFKA_PORT_9092_TCP_PROTO", "KAFKA_PORT_9092_TCP_PORT", "KAFKA_PORT_9092_TCP_ADDR",
	"KAFKA_SERVICE_PORT_CLIENT", NULL,
};

/* The value of prop in conf after bw_kafka_env_apply (static buffer; "" when unset). */
static const char *applied(const char *prop)
{
	static char val[256];
	size_t len = sizeof(val);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct bw_err err;

	ck_assert_int_eq(bw_kafka_env_apply(conf, &err), 0);
	if (rd_kafka_conf_get(conf, prop, val, &len) != RD_KAFKA_CONF_OK)
		val[0] = '\0';
	rd_kafka_conf_destroy(conf);
	return val;
}

START_TEST(rdkafka_names_become_properties)
{
	setenv("RDKAFKA_SOCKET_TIMEOUT_MS", "1234", 1);
	setenv("RDKAFKA_CLIENT_ID", "bw-unit", 1);
	ck_assert_str_eq(applied("socket.timeout.ms"), "1234");
	ck_assert_str_eq(applied("client.id"), "bw-unit");
}
END_TEST

START_TEST(service_link_variables_are_ignored)
{
	struct bw_config_problems probs = { 0, "" };

	for (const char *const *v = service_links; *v; v++)
		setenv(*v, strstr(*v, "ADDR") || strstr(*v, "HOST") ? "10.96.0.12"
			   : strstr(*v, "PROTO") ? "tcp" : "tcp://10.96.0.12:9092", 1);
	setenv("KAFKA_BROKERS", "127.0.0.1:1", 1);
	ck_assert_int_eq(bw_kafka_env_check(&probs), 0);
	ck_assert_str_eq(applied("bootstrap.servers"), ""); /* KAFKA_BROKERS is ours */
}
END_TEST

START_TEST(deprecated_kafka_property_applies_and_rdkafka_wins)
{
	setenv("KAFKA_CLIENT_ID", "old-style", 1);
	ck_assert_str_eq(applied("client.id"), "old-style");
	setenv("RDKAFKA_CLIENT_ID", "new-style", 1);
	ck_assert_str_eq(applied("client.id"), "new-style");
}
END_TEST

START_TEST(kafka_message_max_bytes_is_a_named_setting)
{
	setenv("KAFKA_MESSAGE_MAX_BYTES", "2000000", 1);
	ck_assert_str_eq(applied("message.max.bytes"), "2000000");
}
END_TEST

START_TEST(every_refused_variable_is_a_problem)
{
	struct bw_config_problems probs = { 0, "" };
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct bw_err err;

	setenv("RDKAFKA_NO_SUCH_PROPERTY", "1", 1);
	setenv("RDKAFKA_ENABLE_GREMLINS", "yes", 1);
	setenv("KAFKA_SOCKET_TIMEOUT_MS", "soon", 1); /* a property, a bad value */
	setenv("RDKAFKA_", "x", 1);
	ck_assert_int_eq(bw_kafka_env_check(&probs), 4);
	ck_assert_ptr_nonnull(strstr(probs.text, "RDKAFKA_NO_SUCH_PROPERTY: No such"));
	ck_assert_ptr_nonnull(strstr(probs.text, "RDKAFKA_ENABLE_GREMLINS: No such"));
	ck_assert_ptr_nonnull(strstr(probs.text, "KAFKA_SOCKET_TIMEOUT_MS: "));
	ck_assert_ptr_nonnull(strstr(probs.text, "RDKAFKA_: "));
	ck_assert_int_eq(bw_kafka_env_apply(conf, &err), -1);
	ck_assert_int_eq(err.kind, BW_ERR_FATAL);
	rd_kafka_conf_destroy(conf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kafka_env");
	TCase *tc = tcase_create("env");

	/* Check's fork mode: each test starts from the parent's environment. */
	tcase_add_test(tc, rdkafka_names_become_properties);
	tcase_add_test(tc, service_link_variables_are_ignored);
	tcase_add_test(tc, deprecated_kafka_property_applies_and_rdkafka_wins);
	tcase_add_test(tc, kafka_message_max_bytes_is_a_named_setting);
	tcase_add_test(tc, every_refused_variable_is_a_problem);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
