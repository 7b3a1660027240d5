/* mongo_proxy: a TCP proxy between workers and a MongoDB-wire server, run as threads inside a
 * test. It forwards everything, reads the client's messages whole (the wire header gives their
 * length) and, when armed, drops the connection that sends the next insert into a given
 * collection: the message is never forwarded and both sockets are closed, so the driver sees
 * a network error on exactly that write while every earlier write of the batch succeeded.
 * That is a database that drops connections, placed at the one moment a test wants (e.g.
 * between a batch's balance update and its usage-record insert). */
#ifndef BW_MONGO_PROXY_H
#define BW_MONGO_PROXY_H

struct mongo_proxy;

/* Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:target_port. New; NULL on error. */
struct mongo_proxy *mongo_proxy_new(int target_port);

/* Stops accepting, closes every connection, frees. NULL-safe. */
void mongo_proxy_destroy(struct mongo_proxy *p);

int mongo_proxy_port(const struct mongo_proxy *p);

/* The next `insert` command into collection (any database) drops its connection. */
void mongo_proxy_arm_insert(struct mongo_proxy *p, const char *collection);

/* Connections dropped so far. */
int mongo_proxy_drops(const struct mongo_proxy *p);

#endif
