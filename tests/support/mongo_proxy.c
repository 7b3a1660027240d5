/* mongo_proxy: see mongo_proxy.h. Wire protocol: every message starts with a 16-byte header
 * (int32 length, requestID, responseTo, opCode, little-endian); an OP_MSG (2013) then has
 * int32 flagBits and sections, kind 0 being the command document. */
#include "mongo_proxy.h"

#include <arpa/inet.h>
#include <bson/bson.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testkit.h"

#define OP_MSG 2013
#define MAX_MESSAGE (64 * 1024 * 1024)
#define MAX_CONNS 256
#define MAX_MARKED 64

struct conn {
	struct mp_proxy *p;
	int cfd, sfd;
	pthread_t up, down;
	pthread_mutex_t write_mu;            /* both directions may write to cfd */
	pthread_mutex_t mark_mu;
	int32_t marked[MAX_MARKED];          /* requestIDs whose reply gets a write concern error */
	int nmarked;
	atomic_int ended;                    /* threads of this connection that returned */
};

struct mp_proxy {
	int lfd, port;
	char host[128], tail[256];
	int target_port;
	pthread_t acceptor;
	atomic_int stop, down;
	pthread_mutex_t mu;                  /* rule and conns */
	char command[32], collection[128];
	enum mp_action action;
	int remaining, fired;
	struct conn *conns[MAX_CONNS];
	int nconns;
};

static int32_t le32(const unsigned char *b)
{
	return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			 (uint32_t)b[3] << 24);
}

static void put_le32(unsigned char *b, int32_t v)
{
	uint32_t u = (uint32_t)v;
	b[0] = (unsigned char)u;
	b[1] = (unsigned char)(u >> 8);
	b[2] = (unsigned char)(u >> 16);
	b[3] = (unsigned char)(u >> 24);
}

static int read_full(int fd, unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One whole message (new buffer), or NULL at EOF or on a framing error. */
static unsigned char *read_message(int fd, int32_t *len)
{
	unsigned char hdr[16], *msg;

	if (read_full(fd, hdr, sizeof(hdr)) != 0)
		return NULL;
	*len = le32(hdr);
	if (*len < 16 || *len > MAX_MESSAGE || !(msg = malloc((size_t)*len)))
		return NULL;
	memcpy(msg, hdr, sizeof(hdr));
	if (read_full(fd, msg + 16, (size_t)*len - 16) != 0) {
		free(msg);
		return NULL;
	}
	return msg;
}

/* The kind-0 section of an OP_MSG as a static bson (1), else 0. */
static int msg_body(const unsigned char *msg, int32_t len, bson_t *doc)
{
	if (len < 16 + 4 + 1 + 5 || le32(msg + 12) != OP_MSG || msg[20] != 0)
		return 0;
	int32_t dlen = le32(msg + 21);
	if (dlen < 5 || dlen > len - 21)
		return 0;
	return bson_init_static(doc, msg + 21, (size_t)dlen);
}

/* The action for a client message: the rule's when it matches and has uses left. */
static enum mp_action decide(struct mp_proxy *p, const unsigned char *msg, int32_t len)
{
	bson_t doc;
	bson_iter_t it;
	enum mp_action a = MP_PASS;

	if (!msg_body(msg, len, &doc) || !bson_iter_init(&it, &doc) || !bson_iter_next(&it) ||
	    !BSON_ITER_HOLDS_UTF8(&it))
		return MP_PASS;
	pthread_mutex_lock(&p->mu);
	if (p->action != MP_PASS && p->remaining != 0 &&
	    strcmp(bson_iter_key(&it), p->command) == 0 &&
	    strcmp(bson_iter_utf8(&it, NULL), p->collection) == 0) {
		a = p->action;
		if (p->remaining > 0)
			p->remaining--;
		p->fired++;
	}
	pthread_mutex_unlock(&p->mu);
	return a;
}

/* A new OP_MSG reply to requestID whose body is doc. */
static unsigned char *build_reply(int32_t request_id, int32_t response_to, const bson_t *doc,
				  int32_t *len)
{
	unsigned char *out;

	*len = (int32_t)(16 + 4 + 1 + doc->len);
	out = malloc((size_t)*len);
	ck_assert(out != NULL);
	put_le32(out, *len);
	put_le32(out + 4, request_id);
	put_le32(out + 8, response_to);
	put_le32(out + 12, OP_MSG);
	put_le32(out + 16, 0);
	out[20] = 0;
	memcpy(out + 21, bson_get_data(doc), doc->len);
	return out;
}

static void send_to_client(struct conn *c, const unsigned char *msg, int32_t len)
{
	pthread_mutex_lock(&c->write_mu);
	if (write_full(c->cfd, msg, (size_t)len) != 0)
		shutdown(c->sfd, SHUT_RDWR);
	pthread_mutex_unlock(&c->write_mu);
}

static void *upstream(void *arg)
{
	struct conn *c = arg;
	unsigned char *msg;
	int32_t len;

	while ((msg = read_message(c->cfd, &len))) {
		enum mp_action a = decide(c->p, msg, len);
		int32_t request_id = le32(msg + 4);
		if (a == MP_DROP) {
			free(msg);
			break;
		}
		if (a == MP_COMMAND_ERROR) {
			bson_t *doc = BCON_NEW("ok", BCON_DOUBLE(0), "errmsg",
					       BCON_UTF8("injected by the test proxy"), "code",
					       BCON_INT32(8), "codeName", BCON_UTF8("UnknownError"));
			int32_t rlen;
			unsigned char *reply = build_reply(request_id ^ 0x5a5a, request_id, doc, &rlen);
			send_to_client(c, reply, rlen);
			free(reply);
			bson_destroy(doc);
			free(msg);
			continue;
		}
		if (a == MP_WRITE_CONCERN_ERROR) {
			pthread_mutex_lock(&c->mark_mu);
			if (c->nmarked < MAX_MARKED)
				c->marked[c->nmarked++] = request_id;
			pthread_mutex_unlock(&c->mark_mu);
		}
		int failed = write_full(c->sfd, msg, (size_t)len) != 0;
		free(msg);
		if (failed)
			break;
	}
	shutdown(c->cfd, SHUT_RDWR);
	shutdown(c->sfd, SHUT_RDWR);
	atomic_fetch_add(&c->ended, 1);
	return NULL;
}

static int take_mark(struct conn *c, int32_t response_to)
{
	int found = 0;

	pthread_mutex_lock(&c->mark_mu);
	for (int i = 0; i < c->nmarked && !found; i++)
		if (c->marked[i] == response_to) {
			c->marked[i] = c->marked[--c->nmarked];
			found = 1;
		}
	pthread_mutex_unlock(&c->mark_mu);
	return found;
}

/* The reply with a writeConcernError added (new buffer), or NULL to forward it as is. */
static unsigned char *with_write_concern_error(const unsigned char *msg, int32_t len,
					       int32_t *out_len)
{
	bson_t doc, *copy, wce, info;
	unsigned char *out;

	if (!msg_body(msg, len, &doc))
		return NULL;
	copy = bson_copy(&doc);
	BSON_APPEND_DOCUMENT_BEGIN(copy, "writeConcernError", &wce);
	BSON_APPEND_INT32(&wce, "code", 64);
	BSON_APPEND_UTF8(&wce, "codeName", "WriteConcernFailed");
	BSON_APPEND_UTF8(&wce, "errmsg", "waiting for replication timed out");
	BSON_APPEND_DOCUMENT_BEGIN(&wce, "errInfo", &info);
	BSON_APPEND_BOOL(&info, "wtimeout", true);
	bson_append_document_end(&wce, &info);
	bson_append_document_end(copy, &wce);
	out = build_reply(le32(msg + 4), le32(msg + 8), copy, out_len);
	bson_destroy(copy);
	return out;
}

static void *downstream(void *arg)
{
	struct conn *c = arg;
	unsigned char *msg;
	int32_t len;

	while ((msg = read_message(c->sfd, &len))) {
		unsigned char *changed = NULL;
		int32_t clen = 0;
		if (le32(msg + 12) == OP_MSG && take_mark(c, le32(msg + 8)))
			changed = with_write_concern_error(msg, len, &clen);
		if (changed)
			send_to_client(c, changed, clen);
		else
			send_to_client(c, msg, len);
		free(changed);
		free(msg);
	}
	shutdown(c->cfd, SHUT_RDWR);
	shutdown(c->sfd, SHUT_RDWR);
	atomic_fetch_add(&c->ended, 1);
	return NULL;
}

static int connect_target(const struct mp_proxy *p)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)p->target_port);
	if (fd < 0 || inet_pton(AF_INET, p->host, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void conn_free(struct conn *c)
{
	pthread_join(c->up, NULL);
	pthread_join(c->down, NULL);
	close(c->cfd);
	close(c->sfd);
	pthread_mutex_destroy(&c->write_mu);
	pthread_mutex_destroy(&c->mark_mu);
	free(c);
}

/* Frees the connections whose both threads returned, so that reconnects after drops and
 * outages do not fill the table. Under p->mu. */
static void reap(struct mp_proxy *p)
{
	for (int i = 0; i < p->nconns;) {
		if (atomic_load(&p->conns[i]->ended) == 2) {
			conn_free(p->conns[i]);
			p->conns[i] = p->conns[--p->nconns];
		} else {
			i++;
		}
	}
}

static void *acceptor(void *arg)
{
	struct mp_proxy *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { p->lfd, POLLIN, 0 };
		int ready = poll(&pfd, 1, 100);
		pthread_mutex_lock(&p->mu);
		reap(p);
		pthread_mutex_unlock(&p->mu);
		if (ready <= 0)
			continue;
		int cfd = accept(p->lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		if (atomic_load(&p->down)) {
			close(cfd);
			continue;
		}
		int sfd = connect_target(p);
		struct conn *c = sfd >= 0 ? calloc(1, sizeof(*c)) : NULL;
		pthread_mutex_lock(&p->mu);
		if (!c || p->nconns == MAX_CONNS || atomic_load(&p->down)) {
			pthread_mutex_unlock(&p->mu);
			close(cfd);
			if (sfd >= 0)
				close(sfd);
			free(c);
			continue;
		}
		c->p = p;
		c->cfd = cfd;
		c->sfd = sfd;
		pthread_mutex_init(&c->write_mu, NULL);
		pthread_mutex_init(&c->mark_mu, NULL);
		p->conns[p->nconns++] = c;
		pthread_create(&c->up, NULL, upstream, c);
		pthread_create(&c->down, NULL, downstream, c);
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

struct mp_proxy *mp_start(void)
{
	return mp_start_uri(tk_mongo_uri());
}

struct mp_proxy *mp_start_uri(const char *uri)
{
	struct mp_proxy *p = calloc(1, sizeof(*p));
	const char *h, *colon, *end;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);

	ck_assert(p != NULL);
	h = strstr(uri, "://");
	ck_assert_msg(h != NULL, "mongo_proxy: %s: no scheme", uri);
	h += 3;
	colon = strchr(h, ':');
	ck_assert_msg(colon != NULL, "mongo_proxy: %s: no port", uri);
	ck_assert((size_t)(colon - h) < sizeof(p->host));
	memcpy(p->host, h, (size_t)(colon - h));
	if (strcmp(p->host, "localhost") == 0)
		snprintf(p->host, sizeof(p->host), "127.0.0.1");
	p->target_port = (int)strtol(colon + 1, (char **)&end, 10);
	snprintf(p->tail, sizeof(p->tail), "%s", end);
	pthread_mutex_init(&p->mu, NULL);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(p->lfd >= 0 && bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		  listen(p->lfd, 64) == 0 &&
		  getsockname(p->lfd, (struct sockaddr *)&sa, &salen) == 0);
	p->port = ntohs(sa.sin_port);
	ck_assert(pthread_create(&p->acceptor, NULL, acceptor, p) == 0);
	return p;
}

void mp_uri(const struct mp_proxy *p, char *buf, size_t len)
{
	snprintf(buf, len, "mongodb://127.0.0.1:%d%s", p->port, p->tail);
}

void mp_rule(struct mp_proxy *p, const char *command, const char *collection,
	     enum mp_action action, int times)
{
	pthread_mutex_lock(&p->mu);
	snprintf(p->command, sizeof(p->command), "%s", command);
	snprintf(p->collection, sizeof(p->collection), "%s", collection);
	p->action = action;
	p->remaining = times;
	p->fired = 0;
	pthread_mutex_unlock(&p->mu);
}

int mp_fired(struct mp_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	int n = p->fired;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void mp_set_down(struct mp_proxy *p, int down)
{
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->down, down);
	if (down)
		for (int i = 0; i < p->nconns; i++) {
			shutdown(p->conns[i]->cfd, SHUT_RDWR);
			shutdown(p->conns[i]->sfd, SHUT_RDWR);
		}
	pthread_mutex_unlock(&p->mu);
}

void mp_stop(struct mp_proxy *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	pthread_join(p->acceptor, NULL);
	close(p->lfd);
	for (int i = 0; i < p->nconns; i++) {
		struct conn *c = p->conns[i];
		shutdown(c->cfd, SHUT_RDWR);
		shutdown(c->sfd, SHUT_RDWR);
		conn_free(c);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}
