/* tcp_proxy: a TCP forwarder between a worker and the real MongoDB-wire server that a test
 * can take down and bring back, as a database outage looks to a client: while down every
 * open connection is closed and new ones are accepted and closed at once. Bytes pass
 * unchanged otherwise. Threads of the calling process; tp_stop() joins them. */
#ifndef BW_TCP_PROXY_H
#define BW_TCP_PROXY_H

#include <stddef.h>

struct tp_proxy;

/* Listens on an ephemeral 127.0.0.1 port, forwarding to the first host of tk_mongo_uri(). */
struct tp_proxy *tp_start(void);

/* "mongodb://127.0.0.1:<port>" of the proxy. */
void tp_uri(const struct tp_proxy *p, char *buf, size_t len);

/* down = 1: closes every connection and refuses service until tp_set_down(p, 0). */
void tp_set_down(struct tp_proxy *p, int down);

/* Closes everything, joins the threads, frees. NULL-safe. */
void tp_stop(struct tp_proxy *p);

#endif
