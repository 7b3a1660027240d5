/* Unit tests of shared/metrics (Prometheus exposition) and shared/kafka_stats (consumer lag
 * from librdkafka's statistics). Each test runs in its own process (Check's fork mode), so
 * the process-wide counters start at 0. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka_stats.h"
#include "metrics.h"
#include "testkit.h"

static int has(const char *text, const char *line)
{
	const char *p = strstr(text, line);
	return p && (p == text || p[-1] == '\n');
}

START_TEST(families_have_help_type_and_worker_labels)
{
	char *text;

	bw_metrics_set_labels("usage-worker", "usage.events");
	bw_metrics_add(BW_M_MSGS_IN, 7);
	bw_metrics_add(BW_M_APPLIED, 5);
	bw_metrics_add(BW_M_DB_ROUND_TRIPS, 3);
	text = bw_metrics_render();
	ck_assert_ptr_nonnull(text);
	ck_assert(has(text, "# TYPE bw_messages_received_total counter\n"));
#define UW "{worker=\"usage-worker\""
	ck_assert(has(text, "bw_messages_received_total" UW ",topic=\"usage.events\"} 7\n"));
	ck_assert(has(text, "bw_messages_total" UW ",topic=\"usage.events\",status=\"applied\"} 5\n"));
	ck_assert(has(text, "bw_db_round_trips_total" UW "} 3\n"));
	ck_assert(has(text, "# HELP bw_build_info "));
	/* every sample's family has a TYPE line before it */
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		char fam[128], type[160];
		size_t n = strcspn(l, "{ ");
		if (*l == '#')
			continue;
		snprintf(fam, sizeof(fam), "%.*s", (int)n, l);
		static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
		for (size_t k = 0; k < 3; k++) {
			char *suf = strstr(fam, suffixes[k]);
			if (suf && suf[strlen(suffixes[k])] == '\0')
				*suf = '\0';
		}
		snprintf(type, sizeof(type), "# TYPE %s ", fam);
		ck_assert_msg(strstr(text, type) != NULL, "no TYPE for %s", fam);
	}
	free(text);
}
END_TEST

START_TEST(histograms_are_cumulative)
{
	char *text;

	bw_metrics_set_labels("w", NULL);
	bw_metrics_batch(1, 500, 1);       /* 0.5 ms */
	bw_metrics_batch(300, 40000, 1);   /* 40 ms */
	bw_metrics_batch(20000, 60000000, 0);
	text = bw_metrics_render();
	ck_assert(has(text, "bw_batch_size_bucket{worker=\"w\",le=\"1\"} 1\n"));
	ck_assert(has(text, "bw_batch_size_bucket{worker=\"w\",le=\"500\"} 2\n"));
	ck_assert(has(text, "bw_batch_size_bucket{worker=\"w\",le=\"10000\"} 2\n"));
	ck_assert(has(text, "bw_batch_size_bucket{worker=\"w\",le=\"+Inf\"} 3\n"));
	ck_assert(has(text, "bw_batch_size_sum{worker=\"w\"} 20301.000000\n"));
	ck_assert(has(text, "bw_batch_size_count{worker=\"w\"} 3\n"));
#define DUR "bw_batch_duration_seconds"
	ck_assert(has(text, DUR "_bucket{worker=\"w\",le=\"0.001\"} 1\n"));
	ck_assert(has(text, DUR "_bucket{worker=\"w\",le=\"0.05\"} 2\n"));
	ck_assert(has(text, DUR "_bucket{worker=\"w\",le=\"30\"} 2\n"));
	ck_assert(has(text, DUR "_sum{worker=\"w\"} 60.040500\n"));
	ck_assert(!has(text, "bw_last_batch_success_timestamp_seconds{worker=\"w\"} 0.000\n"));
	ck_assert(strstr(text, "bw_last_batch_success_timestamp_seconds{worker=\"w\"} 1"));
	free(text);
}
END_TEST

START_TEST(dlq_reasons_are_bounded_labels)
{
	char *text, reason[64];

	bw_metrics_set_labels("w", NULL);
	bw_metrics_dlq("invalid JSON: '\"}\n' at line 1");
	bw_metrics_dlq("invalid JSON: other detail");
	bw_metrics_dlq("");
	for (int i = 0; i < 40; i++) {
		snprintf(reason, sizeof(reason), "reason %d", i);
		bw_metrics_dlq(reason);
	}
	text = bw_metrics_render();
	ck_assert(has(text, "bw_dlq_records_total{worker=\"w\",reason=\"invalid JSON\"} 2\n"));
	ck_assert(has(text, "bw_dlq_records_total{worker=\"w\",reason=\"unknown\"} 1\n"));
	ck_assert(has(text, "bw_dlq_records_total{worker=\"w\",reason=\"reason 0\"} 1\n"));
	ck_assert(has(text, "bw_dlq_records_total{worker=\"w\",reason=\"other\"} 10\n"));
	ck_assert_int_eq((int)bw_metrics_get(BW_M_DLQ), 43);
	free(text);
}
END_TEST

/* Laps of one mark split a sequence of steps without gaps; the stages show up in /metrics and
 * as stage_<name>_us in the exit line (the bench reads those keys). */
START_TEST(stage_laps_add_up_and_are_rendered_and_logged)
{
	char *text, line[4096];
	int64_t mark = bw_metrics_now_us(), start = mark;
	struct timespec ms5 = { 0, 5 * 1000000L };
	FILE *log = tmpfile();

	ck_assert_ptr_nonnull(log);
	bw_metrics_set_labels("usage-worker", "usage.events");
	text = bw_metrics_render();
	ck_assert_ptr_null(strstr(text, "bw_batch_stage_seconds_total")); /* no batches: none */
	free(text);
	nanosleep(&ms5, NULL);
	bw_metrics_stage_lap(BW_STAGE_READS, &mark);
	nanosleep(&ms5, NULL);
	bw_metrics_stage_lap(BW_STAGE_WRITES, &mark);
	bw_metrics_stage_lap(BW_STAGE_ACK, &mark);
	ck_assert_uint_ge(bw_metrics_stage_us(BW_STAGE_READS), 5000);
	ck_assert_uint_ge(bw_metrics_stage_us(BW_STAGE_WRITES), 5000);
	ck_assert_uint_eq(bw_metrics_stage_us(BW_STAGE_READS) + bw_metrics_stage_us(BW_STAGE_WRITES) +
				  bw_metrics_stage_us(BW_STAGE_ACK),
			  (uint64_t)(mark - start));
	ck_assert_uint_eq(bw_metrics_stage_us(BW_STAGE_PARSE), 0);
	text = bw_metrics_render();
	ck_assert(has(text, "# TYPE bw_batch_stage_seconds_total counter\n"));
	ck_assert(has(text, "bw_batch_stage_seconds_total" UW ",stage=\"parse\"} 0.000000\n"));
	ck_assert_ptr_nonnull(strstr(text, "bw_batch_stage_seconds_total" UW ",stage=\"reads\"} 0.0"));
	free(text);

	int saved = dup(fileno(stderr));
	fflush(stderr);
	dup2(fileno(log), fileno(stderr));
	bw_metrics_log("final");
	fflush(stderr);
	dup2(saved, fileno(stderr));
	close(saved);
	rewind(log);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), log));
	fclose(log);
	ck_assert_ptr_nonnull(strstr(line, "metrics final {"));
	char want[64];
	snprintf(want, sizeof(want), "\\\"stage_reads_us\\\":%llu,",
		 (unsigned long long)bw_metrics_stage_us(BW_STAGE_READS));
	ck_assert_msg(strstr(line, want) != NULL, "%s not in %s", want, line);
	ck_assert_ptr_nonnull(strstr(line, "\\\"stage_wait_us\\\":0,"));
}
END_TEST

START_TEST(stats_give_the_lag_of_held_partitions)
{
	static const char stats[] =
		"{\"name\":\"c\",\"type\":\"consumer\",\"topics\":{\"usage.events\":{\"partitions\":{"
		"\"0\":{\"partition\":0,\"desired\":true,\"consumer_lag\":5},"
		"\"1\":{\"partition\":1,\"desired\":true,\"consumer_lag\":0},"
		"\"2\":{\"partition\":2,\"desired\":false,\"consumer_lag\":9},"
		"\"3\":{\"partition\":3,\"desired\":true,\"consumer_lag\":-1},"
		"\"-1\":{\"partition\":-1,\"desired\":false,\"consumer_lag\":-1}}}}}";
	char *text;

	bw_metrics_set_labels("w", NULL);
	ck_assert_int_eq(bw_kafka_stats_parse(stats, strlen(stats)), 2);
	ck_assert_int_eq(bw_kafka_stats_parse("[]", 2), -1);
	text = bw_metrics_render();
#define LAG "bw_consumer_lag{worker=\"w\",topic=\"usage.events\",partition="
	ck_assert(has(text, LAG "\"0\"} 5\n"));
	ck_assert(has(text, LAG "\"1\"} 0\n"));
	ck_assert_ptr_null(strstr(text, "partition=\"2\""));
	ck_assert_ptr_null(strstr(text, "partition=\"3\""));
	free(text);
	bw_metrics_rebalance(1, 2);
	bw_metrics_rebalance(0, 2); /* revoked: the lag rows go */
	text = bw_metrics_render();
	ck_assert_ptr_null(strstr(text, "bw_consumer_lag{"));
	ck_assert(has(text, "bw_consumer_rebalances_total{worker=\"w\",type=\"revoke\"} 1\n"));
	free(text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");

	tcase_add_test(tc, families_have_help_type_and_worker_labels);
	tcase_add_test(tc, histograms_are_cumulative);
	tcase_add_test(tc, dlq_reasons_are_bounded_labels);
	tcase_add_test(tc, stats_give_the_lag_of_held_partitions);
	tcase_add_test(tc, stage_laps_add_up_and_are_rendered_and_logged);
	suite_add_tcase(s, tc);
	return tk_run_suite(s);
}
