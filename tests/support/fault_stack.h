/* fault_stack: a private stack for the fault suite: its own Kafka broker and/or MongoDB-wire
 * server (H2 backend, data kept) on free ports under its own BW_STACK_DIR, started with
 * deploy/local/stack, that a test may kill, freeze and restart without touching the stack the
 * other tests use (CTest runs two test programs at once). A watchdog process stops it if the
 * test program dies (CTest's timeout). main() starts it once before the suite runs and stops it
 * after; every case of the program shares it. */
#ifndef BW_FAULT_STACK_H
#define BW_FAULT_STACK_H

#include <sys/types.h>

struct fk_stack {
	char dir[400];
	int kafka, mongo;            /* which components are private */
	int kafka_port, ctrl_port, mongo_port;
	char brokers[64], uri[96];
	pid_t watchdog;
};

/* A port on 127.0.0.1 free right now (bound to port 0 and released), or -1. */
int fk_free_port(void);

/* A TCP connection to 127.0.0.1:port, or -1. */
int fk_connect_local(int port);

/* Starts the components asked for (kafka and/or mongo; mongo on its H2 backend) on free
 * ports under <build>/fault-stacks/<name>-<pid>, jars linked from $BW_STACK_DIR/jars or the
 * repo's .stack/jars when present. Exports KAFKA_BROKERS / MONGO_URI of the private
 * components into this process's environment, so tk_brokers(), tk_mongo_uri() and every
 * worker started afterwards use them (the other component stays the shared one).
 * Returns 0, or -1 with the stack script's output on stderr. */
int fk_stack_start(struct fk_stack *st, const char *name, int kafka, int mongo);

/* Stops the private components and removes the directory (logs are kept when keep_logs). */
void fk_stack_stop(struct fk_stack *st, int keep_logs);

/* Pid of a private component's JVM ("kafka" or "mongo"), or -1. */
pid_t fk_stack_pid(const struct fk_stack *st, const char *comp);

/* Sends sig (SIGKILL, SIGSTOP, SIGCONT) to a private component; after SIGKILL waits until
 * the process is gone. */
void fk_stack_signal(const struct fk_stack *st, const char *comp, int sig);

/* Starts a private component again (after a kill) and waits until it answers. */
void fk_stack_restart(const struct fk_stack *st, const char *comp);

/* main() of a test program with a private stack: starts it (fk_stack_start), runs the suite
 * s (taken over, tk_run_suite), stops it (keeping its logs when a test failed). Returns the
 * program's exit code. */
struct Suite;
int fk_run_with_stack(struct Suite *s, struct fk_stack *st, const char *name, int kafka,
		      int mongo);

#endif
