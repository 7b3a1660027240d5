/* mongo_proxy: a TCP proxy between a test's MongoDB clients (a worker process or the test
 * itself) and the real MongoDB-wire server, that fails chosen write commands the way a network
 * or a replica set does, so the driver produces its real replies to those faults:
 *   MP_DROP                   the connection is closed instead of forwarding the command (the
 *                             server never sees it): mongoc's execute fails with a stream error
 *                             and an empty writeErrors array;
 *   MP_WRITE_CONCERN_ERROR    the command runs, and its reply gets a writeConcernError (code
 *                             64, as a primary whose majority wait timed out answers);
 *   MP_COMMAND_ERROR          the command is not forwarded; the client gets {ok: 0} (code 8).
 * A rule matches OP_MSG commands by name ("insert", "update") and collection (any database).
 * Everything else (handshakes, monitoring, reads) passes through unchanged. The proxy can also
 * be taken down as a whole, as a database outage looks to a client (mp_set_down). Runs in
 * threads of the calling process; mp_stop() joins them all. Failures fail the calling Check
 * test. Users: tests/integration/test_usage_db_faults.c (rules), test_ops_endpoint.c
 * (outage for /readyz), tests/fault/test_db_outage.c (a drop on a private stack). */
#ifndef BW_MONGO_PROXY_H
#define BW_MONGO_PROXY_H

#include <stddef.h>

enum mp_action { MP_PASS, MP_DROP, MP_WRITE_CONCERN_ERROR, MP_COMMAND_ERROR };

struct mp_proxy;

/* Listens on an ephemeral 127.0.0.1 port, forwarding to the host:port of tk_mongo_uri(). */
struct mp_proxy *mp_start(void);

/* The same, forwarding to the first host:port of uri ("mongodb://<IPv4 or localhost>:<port>
 * [/...]"), e.g. a private stack's server. */
struct mp_proxy *mp_start_uri(const char *uri);

/* A MongoDB URI through the proxy (the original's options kept). */
void mp_uri(const struct mp_proxy *p, char *buf, size_t len);

/* From now on, the next `times` commands named command on collection get action (times < 0:
 * every one until the next mp_rule). Resets the fired count. */
void mp_rule(struct mp_proxy *p, const char *command, const char *collection,
	     enum mp_action action, int times);

/* How many commands the current rule acted on. */
int mp_fired(struct mp_proxy *p);

/* down = 1: closes every open connection, and accepts and closes at once every new one, until
 * mp_set_down(p, 0). The rule is kept. */
void mp_set_down(struct mp_proxy *p, int down);

/* Closes every connection and the listener, joins the threads, frees. NULL-safe. */
void mp_stop(struct mp_proxy *p);

#endif
