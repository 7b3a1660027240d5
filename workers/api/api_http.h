/* api_http: the HTTP side of bw-api (libmicrohttpd, one thread per connection, so a request
 * blocked on MongoDB or on its Kafka acknowledgements never delays another). Stateless: any
 * number of processes serve the same API.
 *
 *   GET  /v1/orgs/{org_id}/balance[?spus=N]  balances (api_balance), with the pre-check
 *   POST /v1/usage                           one event or an array of up to max_events,
 *                                            published to the usage topic keyed by org_id;
 *                                            202 only after the broker acknowledged all
 *   GET  /v1/plans, GET /v1/orgs/{org_id}/subscription   (api_plans, MongoDB only)
 *   GET  /v1/orgs/{org_id}/usage?from=&to=&group=        (api_report)
 *   POST /v1/orgs/{org_id}/checkout/credits | checkout/plan | portal,
 *   DELETE /v1/orgs/{org_id}/subscription, POST .../subscription/reactivate
 *                                            the Stripe-backed calls (api_pay: their own
 *                                            statuses and errors, see api_pay.h)
 * Every /v1 request needs "Authorization: Bearer <key>" (api_auth), else 401.
 * Refusals (JSON {"error":"<code>", ...} and one log line each): 400 invalid_json /
 * empty_batch / too_many_events / invalid_events / invalid_spus / invalid_org_id,
 * 401 unauthorized, 404 not_found, 405 method_not_allowed, 413 payload_too_large,
 * 503 unavailable. See docs/INTEGRATION.md. /metrics, /healthz and /readyz are served by the
 * shared ops endpoint on METRICS_PORT. */
#ifndef BW_API_HTTP_H
#define BW_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "acked_publisher.h"
#include "api_auth.h"
#include "api_balance.h"
#include "api_pay.h"
#include "err.h"
#include "mongo.h"

struct bw_api_http_cfg {
	const char *bind;        /* numeric IPv4 or IPv6 address */
	int port;                /* 0: any free port (see bw_api_server_port) */
	size_t max_body;         /* larger bodies: 413 */
	size_t max_events;       /* events per POST /v1/usage */
	size_t max_event_bytes;  /* one event, as the usage worker's MAX_EVENT_BYTES */
	const char *topic;       /* where usage events go */
	int64_t free_grant;      /* FREE_GRANT_SPUS: the balance of an org never seen */
	unsigned max_connections;
	const struct bw_api_pay_cfg *pay; /* the Stripe-backed calls (api_pay.h) */
	int64_t report_max_days;          /* GET .../usage: longest range */
	int64_t report_max_records;       /* GET .../usage: most records read */
};

struct bw_api_server;

/* Starts listening. cfg's strings, keys, pub, mongo and cache (may be NULL) are borrowed and must outlive the
 * server. Returns NULL with err (FATAL: bad address, port in use). */
struct bw_api_server *bw_api_server_start(const struct bw_api_http_cfg *cfg,
					  const struct bw_api_keys *keys,
					  struct bw_acked_publisher *pub, struct bw_mongo *mongo,
					  struct bw_api_balance_cache *cache, struct bw_err *err);

/* The port actually bound. */
int bw_api_server_port(struct bw_api_server *srv);

/* Stops accepting connections, waits up to drain_ms for requests in progress, then closes
 * every connection and frees the server. NULL-safe. */
void bw_api_server_stop(struct bw_api_server *srv, int drain_ms);

#endif
