/* ingress_kit: the webhook ingress as a process for the integration and fault tests: started
 * on a free port against a given broker and topic, signed or raw requests sent to it (status,
 * body, latency), and the event an accepted request published read back from Kafka. Used by
 * tests/integration/test_ingress*.c and the fault suite. Failures fail the calling Check
 * test. */
#ifndef BW_INGRESS_KIT_H
#define BW_INGRESS_KIT_H

#include <curl/curl.h>
#include <stddef.h>
#include <sys/types.h>

#include "testkit.h"

#define IK_SECRET "whsec_fault_7hG2kLmN4pQrS6tUvWx"
#define IK_PATH "/hooks/stripe-fault"

struct ik {
	pid_t pid;
	int port;
	char topic[160], log[400];
};

/* An answer: status and the first 2047 bytes of the body (NUL-terminated). */
struct ik_resp {
	long status;
	char body[2048];
	size_t len;
};

/* Creates topic (3 partitions) on tk_brokers(), starts the ingress publishing there (extra
 * "K=V" variables may be NULL) and waits until /healthz answers 200. */
void ik_start(struct ik *ing, const char *name, const char *const *extra);

/* The same with the broker list (NULL: tk_brokers(); the topic is created on tk_brokers()
 * all the same), WEBHOOK_PATH (NULL: IK_PATH) and STRIPE_WEBHOOK_SECRET (NULL: IK_SECRET);
 * waits until /healthz answers at all (a broker that is down does not fail liveness). */
void ik_start_with(struct ik *ing, const char *name, const char *brokers, const char *path,
		   const char *secrets, const char *const *extra);

/* SIGTERM and wait; returns the exit status (as tk_wait). */
int ik_stop(struct ik *ing);

/* POSTs body with the Stripe-Signature header sig (NULL: none). Returns the HTTP status (0
 * when no answer came within timeout_ms) and the latency in *ms when not NULL. */
long ik_post(const struct ik *ing, const char *sig, const char *body, int timeout_ms, long *ms);

/* "t=<t>,v1=<hmac>" of body under IK_SECRET. */
void ik_sign(char *out, size_t len, long long t, const char *body);

/* "t=<t>,v1=<hmac>" of body under secret. */
void ik_sign_with(const char *secret, char *out, size_t len, long long t, const char *body);

/* method path with the Stripe-Signature sig (NULL: none) and body of len bytes (NULL: none);
 * fails the test when no answer came within 30 s. The answer into *out. */
void ik_http(const struct ik *ing, const char *method, const char *path, const char *sig,
	     const void *body, size_t len, struct ik_resp *out);

/* POSTs body to path signed now under secret; the answer into *out (as ik_http). */
void ik_http_signed(const struct ik *ing, const char *secret, const char *path,
		    const char *body, struct ik_resp *out);

/* Fails the test unless r is status with exactly body. */
void ik_expect(const struct ik_resp *r, long status, const char *body);

/* A new easy handle for that request, for a test that drives many at once (curl multi):
 * *hdrs is the header list to free after the transfer; the answer's body goes to *out. */
CURL *ik_request_new(const struct ik *ing, const char *method, const char *path,
		     const char *sig, const void *body, size_t len, struct ik_resp *out,
		     struct curl_slist **hdrs);

/* The message of topic whose stripe.event_id header is id (new; ik_msg_free), or an empty
 * tk_msg (value NULL). Reads every partition up to its high watermark at call time: all the
 * ingress acknowledged before the call is there, so absent is a definite answer. */
struct tk_msg ik_find_event(const char *topic, const char *id);
void ik_msg_free(struct tk_msg *m);

/* POSTs body signed now. */
long ik_post_signed(const struct ik *ing, const char *body, int timeout_ms, long *ms);

/* GET path: the HTTP status, or 0. */
long ik_get(const struct ik *ing, const char *path, int timeout_ms);

/* A Stripe event body with the given id (a customer.created-like event, no customer key). */
void ik_event(char *out, size_t len, const char *id);

#endif
