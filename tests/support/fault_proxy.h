/* fault_proxy: a TCP proxy between workers and a MongoDB-wire server, run as threads inside a
 * test. It forwards everything, reads the client's messages whole (the wire header gives their
 * length) and, when armed, drops the connection that sends the next insert into a given
 * collection: the message is never forwarded and both sockets are closed, so the driver sees
 * a network error on exactly that write while every earlier write of the batch succeeded.
 * That is a database that drops connections, placed at the one moment a test wants (e.g.
 * between a batch's balance update and its usage-record insert). */
#ifndef BW_FAULT_PROXY_H
#define BW_FAULT_PROXY_H

struct fk_proxy;

/* Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:target_port. New; NULL on error. */
struct fk_proxy *fk_proxy_new(int target_port);

/* Stops accepting, closes every connection, frees. NULL-safe. */
void fk_proxy_destroy(struct fk_proxy *p);

int fk_proxy_port(const struct fk_proxy *p);

/* The next `insert` command into collection (any database) drops its connection. */
void fk_proxy_arm_insert(struct fk_proxy *p, const char *collection);

/* Connections dropped so far. */
int fk_proxy_drops(const struct fk_proxy *p);

#endif
