/* ingress_kit: the webhook ingress as a process for fault tests: started on a free port
 * against a given broker and topic, and signed or raw requests sent to it with their status
 * and latency. Failures fail the calling Check test. */
#ifndef BW_INGRESS_KIT_H
#define BW_INGRESS_KIT_H

#include <stddef.h>
#include <sys/types.h>

#define IK_SECRET "whsec_fault_7hG2kLmN4pQrS6tUvWx"
#define IK_PATH "/hooks/stripe-fault"

struct ik {
	pid_t pid;
	int port;
	char topic[160], log[400];
};

/* Creates topic (3 partitions) on tk_brokers(), starts the ingress publishing there (extra
 * "K=V" variables may be NULL) and waits until /healthz answers. */
void ik_start(struct ik *ing, const char *name, const char *const *extra);

/* SIGTERM and wait; returns the exit status (as tk_wait). */
int ik_stop(struct ik *ing);

/* POSTs body with the Stripe-Signature header sig (NULL: none). Returns the HTTP status (0
 * when no answer came within timeout_ms) and the latency in *ms when not NULL. */
long ik_post(const struct ik *ing, const char *sig, const char *body, int timeout_ms, long *ms);

/* "t=<t>,v1=<hmac>" of body under IK_SECRET. */
void ik_sign(char *out, size_t len, long long t, const char *body);

/* POSTs body signed now. */
long ik_post_signed(const struct ik *ing, const char *body, int timeout_ms, long *ms);

/* GET path: the HTTP status, or 0. */
long ik_get(const struct ik *ing, const char *path, int timeout_ms);

/* A Stripe event body with the given id (a customer.created-like event, no customer key). */
void ik_event(char *out, size_t len, const char *id);

#endif
