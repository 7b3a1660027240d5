/* fault_stack: see fault_stack.h. Drives deploy/local/stack with the private ports and
 * directory in its environment; the JVMs' pids come from the script's pidfiles. */
#define _GNU_SOURCE
#include "fault_stack.h"

#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testkit.h"

int fk_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

int fk_connect_local(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int is_dir_with(const char *dir, const char *file)
{
	char p[600];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return stat(p, &sb) == 0;
}

/* The stack script's command line for this stack: "<env> <script> <verb> <comp>". */
static void stack_cmd(const struct fk_stack *st, char *out, size_t len, const char *verb,
		      const char *comp)
{
	snprintf(out, len,
		 "env KAFKA_PORT=%d KAFKA_CONTROLLER_PORT=%d MONGO_PORT=%d BW_STACK_DIR='%s' "
		 "MONGO_BACKEND=h2 MONGO_HEAP=1g KAFKA_HEAP=768m STOP_TIMEOUT=10 STACK_TOPICS=0 "
		 "'%s/deploy/local/stack' %s %s >>'%s/stack.out' 2>&1",
		 st->kafka_port, st->ctrl_port, st->mongo_port, st->dir, BW_SOURCE_DIR, verb,
		 comp ? comp : "", st->dir);
}

static int run_stack(const struct fk_stack *st, const char *verb, const char *comp)
{
	char cmd[2048];

	stack_cmd(st, cmd, sizeof(cmd), verb, comp);
	return system(cmd);
}

static void show_output(const struct fk_stack *st)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "tail -n 40 '%s/stack.out' >&2", st->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fault_stack: no output in %s\n", st->dir);
}

/* A child that outlives a killed test program (CTest's timeout) just long enough to stop
 * the private JVMs: they run in their own sessions and would otherwise be left behind. */
static pid_t start_watchdog(const struct fk_stack *st)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
		_exit(1);
	while (getppid() == parent)
		sleep(1);
	run_stack(st, "stop", NULL);
	_exit(0);
}

int fk_stack_start(struct fk_stack *st, const char *name, int kafka, int mongo)
{
	char cmd[1200], jars[600];
	const char *shared = getenv("BW_STACK_DIR");
	const char *comp = kafka && mongo ? NULL : kafka ? "kafka" : "mongo";

	memset(st, 0, sizeof(*st));
	st->kafka = kafka;
	st->mongo = mongo;
	snprintf(st->dir, sizeof(st->dir), "%s/fault-stacks/%s-%d", BW_BINARY_DIR, name,
		 (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", st->dir, st->dir);
	if (system(cmd) != 0)
		return -1;
	/* The jars of the stack already running (the shared one, or the repo's), linked: no
	 * Maven fetch. Without them the script fetches its own. */
	jars[0] = '\0';
	if (shared && *shared) {
		snprintf(jars, sizeof(jars), "%s/jars", shared);
		if (!is_dir_with(jars, ".complete"))
			jars[0] = '\0';
	}
	if (!jars[0]) {
		snprintf(jars, sizeof(jars), "%s/.stack/jars", BW_SOURCE_DIR);
		if (!is_dir_with(jars, ".complete"))
			jars[0] = '\0';
	}
	if (jars[0]) {
		snprintf(cmd, sizeof(cmd), "%s/jars", st->dir);
		if (symlink(jars, cmd) != 0)
			return -1;
	}
	/* Free ports now; the broker binds them a few seconds later (a race only with another
	 * program binding port 0 in that window, which the script reports as a busy port). */
	st->kafka_port = fk_free_port();
	do
		st->ctrl_port = fk_free_port();
	while (st->ctrl_port == st->kafka_port);
	do
		st->mongo_port = fk_free_port();
	while (st->mongo_port == st->kafka_port || st->mongo_port == st->ctrl_port);
	st->watchdog = start_watchdog(st);
	if (run_stack(st, "start", comp) != 0) {
		fprintf(stderr, "fault_stack: 'stack start' failed in %s\n", st->dir);
		show_output(st);
		return -1;
	}
	snprintf(st->brokers, sizeof(st->brokers), "127.0.0.1:%d", st->kafka_port);
	snprintf(st->uri, sizeof(st->uri), "mongodb://127.0.0.1:%d", st->mongo_port);
	if (kafka)
		setenv("KAFKA_BROKERS", st->brokers, 1);
	if (mongo)
		setenv("MONGO_URI", st->uri, 1);
	fprintf(stderr, "fault_stack: %s%s%s up in %s\n", kafka ? "kafka " : "",
		kafka ? st->brokers : "", mongo ? st->uri : "", st->dir);
	return 0;
}

void fk_stack_stop(struct fk_stack *st, int keep_logs)
{
	char cmd[1200];

	if (!st->dir[0])
		return;
	if (st->watchdog > 0) {
		kill(st->watchdog, SIGKILL);
		waitpid(st->watchdog, NULL, 0);
		st->watchdog = 0;
	}
	/* A frozen server would not stop on SIGTERM. */
	if (st->mongo)
		fk_stack_signal(st, "mongo", SIGCONT);
	if (st->kafka)
		fk_stack_signal(st, "kafka", SIGCONT);
	run_stack(st, "stop", NULL);
	if (keep_logs)
		snprintf(cmd, sizeof(cmd), "rm -rf '%s/kafka' '%s/mongo'", st->dir, st->dir);
	else
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", st->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fault_stack: could not remove %s\n", st->dir);
	st->dir[0] = '\0';
}

pid_t fk_stack_pid(const struct fk_stack *st, const char *comp)
{
	char path[600], buf[32] = "";
	FILE *f;
	long pid;
	char *end;

	snprintf(path, sizeof(path), "%s/run/%s.pid", st->dir, comp);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	pid = strtol(buf, &end, 10);
	return end != buf && pid > 1 ? (pid_t)pid : -1;
}

/* Alive and not a zombie (the JVMs are not our children: nobody here reaps them). */
static int alive(pid_t pid)
{
	char path[64], state = '?';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%*d %*s %c", &state) != 1)
		state = '?';
	fclose(f);
	return state != 'Z' && state != 'X' && state != '?';
}

void fk_stack_signal(const struct fk_stack *st, const char *comp, int sig)
{
	pid_t pid = fk_stack_pid(st, comp);

	if (pid <= 0 || !alive(pid))
		return;
	kill(pid, sig);
	for (int i = 0; sig == SIGKILL && i < 200 && alive(pid); i++)
		usleep(50000);
}

void fk_stack_restart(const struct fk_stack *st, const char *comp)
{
	int rc = run_stack(st, "start", comp);

	if (rc != 0)
		show_output(st);
	ck_assert_msg(rc == 0, "restarting the private %s failed (see %s/stack.out)", comp,
		      st->dir);
}

int fk_run_with_stack(struct Suite *s, struct fk_stack *st, const char *name, int kafka,
		      int mongo)
{
	int rc;

	if (fk_stack_start(st, name, kafka, mongo) != 0) {
		srunner_free(srunner_create(s)); /* frees s */
		return EXIT_FAILURE;
	}
	rc = tk_run_suite(s);
	fk_stack_stop(st, rc != EXIT_SUCCESS);
	return rc;
}
