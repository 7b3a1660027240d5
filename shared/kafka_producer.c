/* kafka_producer: see kafka_producer.h. */
#include "kafka_producer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_env.h"
#include "log.h"

struct bw_producer {
	rd_kafka_t *rk;
	_Atomic long failed;            /* delivery failures since the last flush */
	_Atomic int last_err;           /* rd_kafka_resp_err_t of the last failure */
	_Atomic int too_large;          /* a delivery failed with MSG_SIZE_TOO_LARGE */
	size_t max_message_bytes;
};

/* librdkafka's own log lines, as our JSON lines. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum bw_log_level lvl = level <= 3 ? BW_LOG_ERROR : level == 4 ? BW_LOG_WARN
					   : level <= 6 ? BW_LOG_INFO : BW_LOG_DEBUG;
	bw_log(lvl, NULL, "librdkafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

int bw_kafka_conf_apply(rd_kafka_conf_t *conf, const char *brokers,
			const char *const *extra_props, struct bw_err *err)
{
	char errstr[512];

	rd_kafka_conf_set_log_cb(conf, on_kafka_log);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK)
		return bw_err_set(err, BW_ERR_FATAL, "bootstrap.servers: %s", errstr);
	if (bw_kafka_env_apply(conf, err) != 0)
		return -1;
	for (const char *const *kv = extra_props; kv && *kv; kv++) {
		char name[128];
		const char *eq = strchr(*kv, '=');
		size_t n = eq ? (size_t)(eq - *kv) : 0;
		if (!eq || n == 0 || n >= sizeof(name))
			return bw_err_set(err, BW_ERR_FATAL, "bad property '%s'", *kv);
		memcpy(name, *kv, n);
		name[n] = '\0';
		if (rd_kafka_conf_set(conf, name, eq + 1, errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK)
			return bw_err_set(err, BW_ERR_FATAL, "%s: %s", name, errstr);
	}
	return 0;
}

size_t bw_kafka_record_size(size_t key_len, size_t value_len, const rd_kafka_headers_t *hdrs)
{
	size_t n = BW_KAFKA_RECORD_OVERHEAD + key_len + value_len;
	const char *name;
	const void *value;
	size_t size;

	/* per header: two varints (at most 5 bytes each), the name and the value */
	for (size_t i = 0; hdrs && rd_kafka_header_get_all(hdrs, i, &name, &value, &size) ==
					   RD_KAFKA_RESP_ERR_NO_ERROR; i++)
		n += 10 + strlen(name) + size;
	return n;
}

static size_t conf_max_message_bytes(const rd_kafka_conf_t *conf)
{
	char buf[32];
	size_t len = sizeof(buf);
	char *end;

	if (rd_kafka_conf_get(conf, "message.max.bytes", buf, &len) != RD_KAFKA_CONF_OK)
		return BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
	unsigned long long v = strtoull(buf, &end, 10);
	return *end == '\0' && v > 0 ? (size_t)v : BW_KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
}

size_t bw_kafka_max_message_bytes(const char *brokers, struct bw_err *err)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	size_t n = 0;

	if (bw_kafka_conf_apply(conf, brokers, NULL, err) == 0)
		n = conf_max_message_bytes(conf);
	rd_kafka_conf_destroy(conf);
	return n;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	struct bw_producer *p = opaque;

	(void)rk;
	const struct bw_producer_fallback *fb = msg->_private;
	if (msg->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && fb && fb->too_large &&
	    fb->too_large(p, msg) == 0)
		return; /* replaced; the flush waits for the replacement */
	if (msg->err) {
		atomic_fetch_add(&p->failed, 1);
		atomic_store(&p->last_err, (int)msg->err);
		if (msg->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
			atomic_store(&p->too_large, 1);
	}
}

struct bw_producer *bw_producer_new(const char *brokers, const char *const *extra_props,
				    struct bw_err *err)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct bw_producer *p = calloc(1, sizeof(*p));

	if (!p) {
		bw_err_set(err, BW_ERR_FATAL, "out of memory");
		goto fail;
	}
	/* Default, overridable by RDKAFKA_LINGER_MS: a caller queues a batch's messages at once,
	 * and a pipelined one (kafka_consumer.h) flushes only later, so waiting for more would
	 * only delay them (measured: +5 ms on the usage worker's p50 with librdkafka's 5 ms). */
	rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr));
	if (bw_kafka_conf_apply(conf, brokers, extra_props, err) != 0)
		goto fail;
	/* Not overridable: results and DLQ records must not be lost or duplicated by retries. */
	if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr))) {
		bw_err_set(err, BW_ERR_FATAL, "producer config: %s", errstr);
		goto fail;
	}
	p->max_message_bytes = conf_max_message_bytes(conf);
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!p->rk) {
		bw_err_set(err, BW_ERR_FATAL, "rd_kafka_new(producer): %s", errstr);
		goto fail;
	}
	conf = NULL; /* owned by p->rk now */
	return p;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	free(p);
	return NULL;
}

int bw_producer_send(struct bw_producer *p, const char *topic, const void *key, size_t key_len,
		     const void *value, size_t value_len, rd_kafka_headers_t *headers,
		     struct bw_err *err)
{
	return bw_producer_send_fb(p, topic, key, key_len, value, value_len, headers, NULL, err);
}

int bw_producer_send_fb(struct bw_producer *p, const char *topic, const void *key,
			size_t key_len, const void *value, size_t value_len,
			rd_kafka_headers_t *headers, const struct bw_producer_fallback *fb,
			struct bw_err *err)
{
	rd_kafka_resp_err_t rerr;

	for (int attempt = 0; attempt < 100; attempt++) {
		rerr = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
					 RD_KAFKA_V_KEY((void *)key, key_len),
					 RD_KAFKA_V_VALUE((void *)value, value_len),
					 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					 RD_KAFKA_V_HEADERS(headers),
					 RD_KAFKA_V_OPAQUE((void *)fb), RD_KAFKA_V_END);
		if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(p->rk, 100); /* let deliveries drain the queue */
	}
	if (rerr == RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0; /* headers now owned by the message */
	if (headers)
		rd_kafka_headers_destroy(headers);
	if (rerr == RD_KAFKA_RESP_ERR__FATAL)
		return bw_err_set(err, BW_ERR_FATAL, "producer fatal error");
	if (rerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		return bw_err_set(err, BW_ERR_INVALID,
				  "produce to %s: a record of about %zu bytes exceeds "
				  "message.max.bytes %zu", topic,
				  bw_kafka_record_size(key_len, value_len, NULL), p->max_message_bytes);
	return bw_err_set(err, BW_ERR_TRANSIENT, "produce to %s: %s", topic,
			  rd_kafka_err2str(rerr));
}

int bw_producer_flush(struct bw_producer *p, int timeout_ms, struct bw_err *err)
{
	char fatal[256];
	rd_kafka_resp_err_t rerr = rd_kafka_flush(p->rk, timeout_ms);
	long failed = atomic_exchange(&p->failed, 0);

	if (rd_kafka_fatal_error(p->rk, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return bw_err_set(err, BW_ERR_FATAL, "producer fatal error: %s", fatal);
	if (rerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
		return bw_err_set(err, BW_ERR_TRANSIENT,
				  "%d messages not acknowledged within %d ms",
				  rd_kafka_outq_len(p->rk), timeout_ms);
	if (failed > 0 && atomic_exchange(&p->too_large, 0))
		return bw_err_set(err, BW_ERR_FATAL,
				  "the broker refused a message as too large: its message.max.bytes "
				  "or the topic's max.message.bytes is below the producer's "
				  "message.max.bytes %zu (KAFKA_MESSAGE_MAX_BYTES); lower that",
				  p->max_message_bytes);
	if (failed > 0)
		return bw_err_set(err, BW_ERR_TRANSIENT, "%ld messages failed delivery: %s", failed,
				  rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&p->last_err)));
	return 0;
}

void bw_producer_warm(struct bw_producer *p, const char *topic, int timeout_ms)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	rd_kafka_resp_err_t rerr;

	if (!rkt)
		return;
	rerr = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
	if (rerr)
		bw_log(BW_LOG_WARN, NULL, "metadata of %s: %s", topic, rd_kafka_err2str(rerr));
	else if (md->topic_cnt == 1 && md->topics[0].err)
		bw_log(BW_LOG_WARN, NULL, "topic %s: %s", topic,
		       rd_kafka_err2str(md->topics[0].err));
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
}

size_t bw_producer_max_message_bytes(const struct bw_producer *p)
{
	return p->max_message_bytes;
}

void bw_producer_poll(struct bw_producer *p)
{
	rd_kafka_poll(p->rk, 0);
}

rd_kafka_t *bw_producer_handle(struct bw_producer *p)
{
	return p->rk;
}

void bw_producer_destroy(struct bw_producer *p)
{
	if (!p)
		return;
	if (p->rk) {
		rd_kafka_flush(p->rk, 5000);
		rd_kafka_destroy(p->rk);
	}
	free(p);
}
