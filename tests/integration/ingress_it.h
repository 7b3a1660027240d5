/* ingress_it: what the two webhook-ingress integration tests (test_ingress.c, accepted
 * events; test_ingress_refusals.c) share on top of tests/support/ingress_kit: the secrets
 * (two, as during a rotation), the path, the configured body limit, and an ingress started
 * with them. */
#ifndef BW_INGRESS_IT_H
#define BW_INGRESS_IT_H

#include <check.h>

#include "ingress_kit.h"

#define SECRET_OLD "whsec_it_old_8dJ2kLmN4pQrS6tUvW"
#define SECRET_NEW "whsec_it_new_Zx9Cv8Bn7Mq6Wr5Ty4"
#define HOOK_PATH "/hooks/stripe-it"
#define MAX_BODY 4096
#define MAX_BODY_VAR "WEBHOOK_MAX_BODY_BYTES=4096"

/* Starts an ingress with both secrets on HOOK_PATH, publishing to brokers (NULL: the local
 * broker); max_body: a "WEBHOOK_MAX_BODY_BYTES=..." variable, or NULL for the derived one. */
static inline void start(struct ik *ing, const char *brokers, const char *max_body)
{
	const char *extra[] = { "INGRESS_PUBLISH_TIMEOUT_MS=1500", "INGRESS_READY_TIMEOUT_MS=500",
				max_body, NULL };

	ik_start_with(ing, "it_ingress", brokers, HOOK_PATH, SECRET_OLD "," SECRET_NEW, extra);
}

static inline void stop(struct ik *ing)
{
	ck_assert_int_eq(ik_stop(ing), 0);
}

#endif
