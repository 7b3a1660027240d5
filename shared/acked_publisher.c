/* acked_publisher: see acked_publisher.h. */
#include "acked_publisher.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kafka_producer.h"
#include "log.h"

/* The waiter allows librdkafka this long past message.timeout.ms to report the outcome
 * itself, so nearly every 503 is a definitive "not delivered". */
#define WAIT_GRACE_MS 500

struct bw_acked_publisher {
	rd_kafka_t *rk;
	int timeout_ms;
	pthread_t poller;
	int poller_started;
	atomic_int stop;
	atomic_int fatal;
};

/* The in-flight messages of one request. Shared by the waiting request and the delivery
 * callbacks (one reference per produced message): whoever drops the last reference frees it,
 * so a waiter that gave up never leaves a callback writing into freed memory. */
struct pending {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int refs;
	size_t outstanding;       /* produced, no delivery report yet */
	rd_kafka_resp_err_t err;  /* the first failure */
	int32_t partition;        /* of the last delivered message */
	int64_t offset;
};

static void pending_unref(struct pending *pm)
{
	if (atomic_fetch_sub(&pm->refs, 1) != 1)
		return;
	pthread_cond_destroy(&pm->cv);
	pthread_mutex_destroy(&pm->mu);
	free(pm);
}

static struct pending *pending_new(void)
{
	struct pending *pm = calloc(1, sizeof(*pm));
	pthread_condattr_t ca;

	if (!pm)
		return NULL;
	pthread_mutex_init(&pm->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pm->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&pm->refs, 1);
	pm->partition = -1;
	pm->offset = -1;
	return pm;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	struct pending *pm = msg->_private;

	(void)rk;
	(void)opaque;
	if (!pm)
		return;
	pthread_mutex_lock(&pm->mu);
	if (msg->err && !pm->err)
		pm->err = msg->err;
	pm->partition = msg->partition;
	pm->offset = msg->offset;
	if (pm->outstanding > 0 && --pm->outstanding == 0)
		pthread_cond_signal(&pm->cv);
	pthread_mutex_unlock(&pm->mu);
	pending_unref(pm);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct bw_acked_publisher *pub = opaque;
	char fatal[256];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		atomic_store(&pub->fatal, 1);
		bw_log(BW_LOG_ERROR, NULL, "producer fatal error: %s", fatal);
		return;
	}
	/* Broker down and the like: every waiting request times out on its own. */
	bw_log(BW_LOG_WARN, NULL, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Serves delivery reports (and error events) for every request. */
static void *poll_loop(void *arg)
{
	struct bw_acked_publisher *pub = arg;

	while (!atomic_load(&pub->stop))
		rd_kafka_poll(pub->rk, 100);
	return NULL;
}

struct bw_acked_publisher *bw_acked_publisher_new(const char *brokers, int timeout_ms,
						  int linger_ms, struct bw_err *err)
{
	char errstr[512], tmo[32], linger[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct bw_acked_publisher *pub = calloc(1, sizeof(*pub));

	if (!pub) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		goto fail;
	}
	pub->timeout_ms = timeout_ms;
	snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
	/* Default overridable by RDKAFKA_LINGER_MS: a request waits on its own messages. */
	snprintf(linger, sizeof(linger), "%d", linger_ms);
	rd_kafka_conf_set(conf, "linger.ms", linger, errstr, sizeof(errstr));
	if (bw_kafka_conf_apply(conf, brokers, NULL, err) != 0)
		goto fail;
	/* Not overridable: the 2xx promise rests on these. */
	if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "message.timeout.ms", tmo, errstr, sizeof(errstr)) ||
	    /* every request waits for its own success report */
	    rd_kafka_conf_set(conf, "delivery.report.only.error", "false", errstr,
			      sizeof(errstr))) {
		bw_err_set(err, BW_ERR_FATAL, "producer config: %s", errstr);
		goto fail;
	}
	rd_kafka_conf_set_opaque(conf, pub);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	pub->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!pub->rk) {
		bw_err_set(err, BW_ERR_FATAL, "rd_kafka_new(producer): %s", errstr);
		goto fail;
	}
	conf = NULL; /* owned by pub->rk now */
	if (pthread_create(&pub->poller, NULL, poll_loop, pub) != 0) {
		bw_err_set(err, BW_ERR_FATAL, "cannot start the delivery-report thread");
		goto fail;
	}
	pub->poller_started = 1;
	return pub;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	bw_acked_publisher_destroy(pub, 0);
	return NULL;
}

/* The kind of a produce or delivery error: a message too large never succeeds. */
static enum bw_err_kind publish_err_kind(rd_kafka_resp_err_t rerr)
{
	if (rerr == RD_KAFKA_RESP_ERR__FATAL)
		return BW_ERR_FATAL;
	if (rerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		return BW_ERR_INVALID;
	return BW_ERR_TRANSIENT;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Produces msgs[0..n) (headers on the first, taken over) and waits for their reports. */
static int publish_all(struct bw_acked_publisher *pub, const char *topic,
		       const struct bw_acked_msg *msgs, size_t n, rd_kafka_headers_t *headers,
		       struct bw_acked_delivery *out, struct bw_err *err)
{
	struct pending *pm = NULL;
	struct timespec deadline;
	rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
	size_t produced = 0;
	int rc = -1;

	if (atomic_load(&pub->fatal)) {
		bw_err_set(err, BW_ERR_FATAL, "producer fatal error");
		goto done;
	}
	pm = pending_new();
	if (!pm) {
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory");
		goto done;
	}
	for (; produced < n; produced++) {
		const struct bw_acked_msg *m = &msgs[produced];
		pthread_mutex_lock(&pm->mu);
		pm->outstanding++;
		pthread_mutex_unlock(&pm->mu);
		atomic_fetch_add(&pm->refs, 1); /* this message's delivery callback */
		rerr = rd_kafka_producev(pub->rk, RD_KAFKA_V_TOPIC(topic),
					 RD_KAFKA_V_KEY((void *)m->key, m->key_len),
					 RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
					 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					 RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(pm),
					 RD_KAFKA_V_END);
		if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
			atomic_fetch_sub(&pm->refs, 1); /* no delivery report will come */
			pthread_mutex_lock(&pm->mu);
			pm->outstanding--;
			pthread_mutex_unlock(&pm->mu);
			break;
		}
		headers = NULL; /* owned by the message now */
	}
	/* Wait for what was produced, even after a produce failure: the caller must not answer
	 * before knowing. */
	deadline_after(&deadline, pub->timeout_ms + WAIT_GRACE_MS);
	pthread_mutex_lock(&pm->mu);
	while (pm->outstanding > 0) {
		int w = pthread_cond_timedwait(&pm->cv, &pm->mu, &deadline);
		if (w == ETIMEDOUT)
			break;
	}
	if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR)
		bw_err_set(err, publish_err_kind(rerr), "produce to %s (message %zu of %zu): %s",
			   topic, produced + 1, n, rd_kafka_err2str(rerr));
	else if (pm->outstanding > 0)
		bw_err_set(err, BW_ERR_TRANSIENT, "%zu of %zu delivery reports missing after %d ms",
			   pm->outstanding, n, pub->timeout_ms + WAIT_GRACE_MS);
	else if (pm->err)
		bw_err_set(err, publish_err_kind(pm->err), "delivery to %s failed: %s", topic,
			   rd_kafka_err2str(pm->err));
	else {
		if (out) {
			out->partition = pm->partition;
			out->offset = pm->offset;
		}
		rc = 0;
	}
	pthread_mutex_unlock(&pm->mu);
done:
	if (headers)
		rd_kafka_headers_destroy(headers);
	if (pm)
		pending_unref(pm);
	return rc;
}

int bw_acked_publish(struct bw_acked_publisher *pub, const char *topic, const void *key,
		     size_t key_len, const void *value, size_t value_len,
		     rd_kafka_headers_t *headers, struct bw_acked_delivery *out,
		     struct bw_err *err)
{
	struct bw_acked_msg m = { key, key_len, value, value_len };

	return publish_all(pub, topic, &m, 1, headers, out, err);
}

int bw_acked_publish_batch(struct bw_acked_publisher *pub, const char *topic,
			   const struct bw_acked_msg *msgs, size_t n, struct bw_err *err)
{
	if (n == 0)
		return 0;
	return publish_all(pub, topic, msgs, n, NULL, NULL, err);
}

int bw_acked_publisher_ready(struct bw_acked_publisher *pub, int timeout_ms)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rerr;

	if (atomic_load(&pub->fatal))
		return 0;
	rerr = rd_kafka_metadata(pub->rk, 0, NULL, &md, timeout_ms);
	if (md)
		rd_kafka_metadata_destroy(md);
	return rerr == RD_KAFKA_RESP_ERR_NO_ERROR;
}

int bw_acked_publisher_failed(struct bw_acked_publisher *pub)
{
	return atomic_load(&pub->fatal);
}

void bw_acked_publisher_destroy(struct bw_acked_publisher *pub, int flush_ms)
{
	if (!pub)
		return;
	if (pub->poller_started) {
		atomic_store(&pub->stop, 1);
		pthread_join(pub->poller, NULL);
	}
	if (pub->rk) {
		if (rd_kafka_flush(pub->rk, flush_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
			bw_log(BW_LOG_WARN, NULL, "%d messages still queued at shutdown",
			       rd_kafka_outq_len(pub->rk));
		rd_kafka_destroy(pub->rk);
	}
	free(pub);
}
