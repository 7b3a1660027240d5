/* bw-admin: the operator's command line. Wires the configuration (the workers' common table
 * plus the topics), parses the command, runs it and prints its answer: one JSON object with
 * --json, else the same fields as lines. Exit codes: admin.h / README "bw-admin". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define OWN(field) offsetof(struct bw_admin_cfg, field)

static const struct bw_cfg_opt admin_opts[] = {
	{ "USAGE_TOPIC", BW_CFG_STR, "usage.events", 1, 249, 0, OWN(usage_topic),
	  "input topic of the usage workers", NULL },
	{ "STRIPE_EVENTS_TOPIC", BW_CFG_STR, "stripe.events", 1, 249, 0, OWN(stripe_topic),
	  "input topic of the stripe workers", NULL },
	{ "SYNC_TICKS_TOPIC", BW_CFG_STR, "sync.ticks", 1, 249, 0, OWN(ticks_topic),
	  "topic `bw-admin tick` publishes to", NULL },
	{ "BW_ADMIN_USER", BW_CFG_STR, "", 0, 128, 0, OWN(user),
	  "who is recorded on adjustments and replays (default: $USER)", NULL },
	{ "BW_ADMIN_FLUSH_TIMEOUT_MS", BW_CFG_INT, "30000", 100, 600000, 0, OWN(flush_timeout_ms),
	  "how long a publish waits for the broker's acknowledgement", NULL },
};

#define NOPTS (sizeof(admin_opts) / sizeof(admin_opts[0]))

static const char usage_text[] =
	"usage: bw-admin [--json] COMMAND ...\n"
	"  balance ORG\n"
	"  adjust ORG --bucket granted|purchased|subscription --spus N --reason TEXT --key KEY\n"
	"  grant ORG --spus N --reason TEXT --key KEY        (adjust --bucket granted)\n"
	"  audit [--org ORG]\n"
	"  dlq ls|show|replay TOPIC [--partition P] [--offset N | --all]\n"
	"  tick prices | tick customer ORG | tick all\n"
	"  doctor\n"
	"exit: 0 done, 1 drift or problems found, 2 usage/configuration, 3 refused,\n"
	"      4 not found, 5 Kafka or MongoDB unavailable (retry)\n";

static void print_value(const char *indent, const char *key, json_t *v)
{
	char *text;

	if (json_is_string(v)) {
		printf("%s%s: %s\n", indent, key, json_string_value(v));
		return;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *item;
		printf("%s%s: %zu\n", indent, key, json_array_size(v));
		json_array_foreach(v, i, item) {
			text = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY);
			printf("%s  - %s\n", indent, text ? text : "?");
			free(text);
		}
		return;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("%s%s: %s\n", indent, key, text ? text : "?");
	free(text);
}

static void print_answer(const struct bw_admin *a, int code)
{
	const char *key;
	json_t *v;

	if (a->args.json) {
		char *text = json_dumps(a->out, JSON_COMPACT);
		puts(text ? text : "{}");
		free(text);
		return;
	}
	/* The error goes to stderr and the exit code is the process's: not repeated here. */
	json_object_foreach(a->out, key, v)
		if (strcmp(key, "error") != 0 && strcmp(key, "exit") != 0)
			print_value("", key, v);
	if (code != BW_ADMIN_OK && a->err.msg[0])
		fprintf(stderr, "bw-admin: %s\n", a->err.msg);
}

static int run(struct bw_admin *a)
{
	const char *cmd = a->args.pos[0];

	if (strcmp(cmd, "balance") == 0)
		return bw_admin_balance(a);
	if (strcmp(cmd, "adjust") == 0)
		return bw_admin_adjust(a, 0);
	if (strcmp(cmd, "grant") == 0)
		return bw_admin_adjust(a, 1);
	if (strcmp(cmd, "audit") == 0)
		return bw_admin_audit(a);
	if (strcmp(cmd, "dlq") == 0)
		return bw_admin_dlq(a);
	if (strcmp(cmd, "tick") == 0)
		return bw_admin_tick(a);
	if (strcmp(cmd, "doctor") == 0)
		return bw_admin_doctor(a);
	return bw_admin_fail_with(a, BW_ADMIN_USAGE, BW_ERR_FATAL, "unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	struct bw_admin a;
	char why[256];
	int code;

	memset(&a, 0, sizeof(a));
	if (argc > 1 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage_text, stdout);
		return BW_ADMIN_OK;
	}
	if (bw_admin_parse_args(argc, argv, &a.args, why, sizeof(why)) != 0) {
		fprintf(stderr, "bw-admin: %s\n%s", why, usage_text);
		return BW_ADMIN_USAGE;
	}
	if (bw_worker_config_load("bw-admin", &a.common, admin_opts, NOPTS, &a.cfg) != 0)
		return BW_ADMIN_USAGE;
	if (!a.cfg.user[0]) {
		const char *u = getenv("USER");
		free(a.cfg.user);
		a.cfg.user = strdup(u && u[0] ? u : "unknown");
	}
	a.out = json_object();
	code = run(&a);
	if (code != BW_ADMIN_OK && a.err.msg[0])
		json_object_set_new(a.out, "error", json_string(a.err.msg));
	json_object_set_new(a.out, "exit", json_integer(code));
	print_answer(&a, code);
	if (code == BW_ADMIN_USAGE && a.err.kind == BW_ERR_FATAL && !a.args.json)
		fputs(usage_text, stderr);
	json_decref(a.out);
	bw_producer_destroy(a.producer);
	bw_mongo_destroy(a.mongo);
	bw_worker_config_free(&a.common, admin_opts, NOPTS, &a.cfg);
	return code;
}
