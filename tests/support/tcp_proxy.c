/* tcp_proxy: see tcp_proxy.h. One accept thread; one thread per connection that polls both
 * sockets (100 ms ticks, so a take-down or a stop is seen quickly). */
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <check.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testkit.h"

#define MAX_CONNS 256

struct tp_proxy {
	int lfd, port;
	struct sockaddr_in target;
	atomic_int down, stopping;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_t conns[MAX_CONNS];
	int nconns;
};

struct pair {
	struct tp_proxy *p;
	int a, b;
};

static void *pump(void *arg)
{
	struct pair *pr = arg;
	char buf[16384];

	for (;;) {
		struct pollfd fds[2] = { { pr->a, POLLIN, 0 }, { pr->b, POLLIN, 0 } };
		int n = poll(fds, 2, 100);
		if (atomic_load(&pr->p->down) || atomic_load(&pr->p->stopping) || n < 0)
			break;
		int done = 0;
		for (int i = 0; i < 2 && !done; i++) {
			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t got = read(fds[i].fd, buf, sizeof(buf));
			if (got <= 0) {
				done = 1;
				break;
			}
			for (ssize_t off = 0; off < got && !done;) {
				int to = i == 0 ? pr->b : pr->a;
				ssize_t w = write(to, buf + off, (size_t)(got - off));
				if (w <= 0)
					done = 1;
				else
					off += w;
			}
		}
		if (done)
			break;
	}
	close(pr->a);
	close(pr->b);
	free(pr);
	return NULL;
}

static void *acceptor(void *arg)
{
	struct tp_proxy *p = arg;

	while (!atomic_load(&p->stopping)) {
		struct pollfd pfd = { p->lfd, POLLIN, 0 };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int a = accept(p->lfd, NULL, NULL);
		if (a < 0)
			continue;
		int b = atomic_load(&p->down) ? -1 : socket(AF_INET, SOCK_STREAM, 0);
		if (b < 0 || connect(b, (struct sockaddr *)&p->target, sizeof(p->target)) != 0) {
			if (b >= 0)
				close(b);
			close(a);
			continue;
		}
		struct pair *pr = malloc(sizeof(*pr));
		pthread_mutex_lock(&p->lock);
		if (!pr || p->nconns >= MAX_CONNS) {
			pthread_mutex_unlock(&p->lock);
			free(pr);
			close(a);
			close(b);
			continue;
		}
		*pr = (struct pair){ p, a, b };
		if (pthread_create(&p->conns[p->nconns], NULL, pump, pr) == 0)
			p->nconns++;
		else {
			close(a);
			close(b);
			free(pr);
		}
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

struct tp_proxy *tp_start(void)
{
	struct tp_proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	bson_error_t error;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(tk_mongo_uri(), &error);
	const mongoc_host_list_t *host = uri ? mongoc_uri_get_hosts(uri) : NULL;

	ck_assert_msg(p && host, "tcp_proxy: MongoDB URI");
	p->target.sin_family = AF_INET;
	p->target.sin_port = htons(host->port);
	ck_assert_msg(inet_pton(AF_INET, strcmp(host->host, "localhost") ? host->host : "127.0.0.1",
				&p->target.sin_addr) == 1, "tcp_proxy: numeric IPv4 host expected");
	mongoc_uri_destroy(uri);
	pthread_mutex_init(&p->lock, NULL);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(p->lfd >= 0 && bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		  listen(p->lfd, 64) == 0 && getsockname(p->lfd, (struct sockaddr *)&sa, &sl) == 0);
	p->port = ntohs(sa.sin_port);
	ck_assert(pthread_create(&p->acceptor, NULL, acceptor, p) == 0);
	return p;
}

void tp_uri(const struct tp_proxy *p, char *buf, size_t len)
{
	snprintf(buf, len, "mongodb://127.0.0.1:%d", p->port);
}

void tp_set_down(struct tp_proxy *p, int down)
{
	atomic_store(&p->down, down);
}

void tp_stop(struct tp_proxy *p)
{
	if (!p)
		return;
	atomic_store(&p->stopping, 1);
	pthread_join(p->acceptor, NULL);
	for (int i = 0; i < p->nconns; i++)
		pthread_join(p->conns[i], NULL);
	close(p->lfd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
