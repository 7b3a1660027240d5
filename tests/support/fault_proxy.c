/* fault_proxy: see fault_proxy.h. One accept thread; one thread per connection that polls
 * both sockets, forwards server bytes as they come and client bytes one whole message at a
 * time (header: int32 length, requestID, responseTo, opCode; OP_MSG = 2013: flags, then a
 * kind-0 section holding the command document, whose first element names the command). */
#include "fault_proxy.h"

#include "fault_stack.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_MSG = 64 * 1024 * 1024 };

struct fk_proxy {
	int listen_fd, port, target_port;
	pthread_t acceptor;
	atomic_int stop, drops, armed, active; /* active: pipe threads running */
	char coll[128];
	pthread_mutex_t mu;
};

struct pipe_pair {
	struct fk_proxy *p;
	int client, server;
};

static int write_all(int fd, const unsigned char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, unsigned char *b, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, b, n, 0);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int32_t le32(const unsigned char *b)
{
	return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			 (uint32_t)b[3] << 24);
}

/* Whether msg (whole) is an OP_MSG `insert` into coll. */
static int is_insert_into(const unsigned char *msg, size_t len, const char *coll)
{
	static const char key[] = "insert";
	size_t off = 16 + 4; /* header, flagBits */

	if (len < off + 1 + 4 + 1 + sizeof(key) + 4 || le32(msg + 12) != 2013 || msg[off] != 0)
		return 0;
	off += 1 + 4;                /* section kind 0, document length */
	if (msg[off] != 0x02)        /* first element: a string */
		return 0;
	off++;
	if (memcmp(msg + off, key, sizeof(key)) != 0) /* "insert\0" */
		return 0;
	off += sizeof(key) + 4;      /* string length */
	size_t cl = strlen(coll);
	return off + cl + 1 <= len && memcmp(msg + off, coll, cl + 1) == 0;
}

static void *pipe_main(void *arg)
{
	struct pipe_pair *pp = arg;
	struct fk_proxy *p = pp->p;
	unsigned char *buf = malloc(MAX_MSG);

	while (buf && !atomic_load(&p->stop)) {
		struct pollfd fds[2] = { { pp->client, POLLIN, 0 }, { pp->server, POLLIN, 0 } };
		if (poll(fds, 2, 200) < 0)
			break;
		if (fds[1].revents) {
			ssize_t r = recv(pp->server, buf, 65536, 0);
			if (r <= 0 || write_all(pp->client, buf, (size_t)r) != 0)
				break;
		}
		if (fds[0].revents) {
			if (read_all(pp->client, buf, 4) != 0)
				break;
			int32_t len = le32(buf);
			if (len < 16 || len > MAX_MSG || read_all(pp->client, buf + 4, (size_t)len - 4))
				break;
			int drop = 0;
			pthread_mutex_lock(&p->mu);
			if (atomic_load(&p->armed) && is_insert_into(buf, (size_t)len, p->coll)) {
				atomic_store(&p->armed, 0);
				drop = 1;
			}
			pthread_mutex_unlock(&p->mu);
			if (drop) {
				atomic_fetch_add(&p->drops, 1);
				break;
			}
			if (write_all(pp->server, buf, (size_t)len) != 0)
				break;
		}
	}
	close(pp->client);
	close(pp->server);
	free(buf);
	free(pp);
	atomic_fetch_sub(&p->active, 1);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fk_proxy *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { p->listen_fd, POLLIN, 0 };
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		int c = accept(p->listen_fd, NULL, NULL);
		if (c < 0)
			continue;
		int s = fk_connect_local(p->target_port);
		struct pipe_pair *pp = s >= 0 ? malloc(sizeof(*pp)) : NULL;
		pthread_t t;
		if (!pp) {
			close(c);
			if (s >= 0)
				close(s);
			continue;
		}
		*pp = (struct pipe_pair){ p, c, s };
		atomic_fetch_add(&p->active, 1);
		if (pthread_create(&t, NULL, pipe_main, pp) != 0) {
			atomic_fetch_sub(&p->active, 1);
			close(c);
			close(s);
			free(pp);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

struct fk_proxy *fk_proxy_new(int target_port)
{
	struct fk_proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int one = 1;

	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	p->target_port = target_port;
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(p->listen_fd, 128) != 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&sin, &sl) != 0 ||
	    pthread_create(&p->acceptor, NULL, accept_main, p) != 0) {
		if (p->listen_fd >= 0)
			close(p->listen_fd);
		free(p);
		return NULL;
	}
	p->port = ntohs(sin.sin_port);
	return p;
}

void fk_proxy_destroy(struct fk_proxy *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	pthread_join(p->acceptor, NULL);
	close(p->listen_fd);
	/* The pipe threads see stop within one poll interval (200 ms). */
	for (int i = 0; i < 100 && atomic_load(&p->active) > 0; i++)
		usleep(50000);
	if (atomic_load(&p->active) == 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
}

int fk_proxy_port(const struct fk_proxy *p)
{
	return p->port;
}

void fk_proxy_arm_insert(struct fk_proxy *p, const char *collection)
{
	pthread_mutex_lock(&p->mu);
	strncpy(p->coll, collection, sizeof(p->coll) - 1);
	atomic_store(&p->armed, 1);
	pthread_mutex_unlock(&p->mu);
}

int fk_proxy_drops(const struct fk_proxy *p)
{
	return atomic_load(&((struct fk_proxy *)p)->drops);
}
