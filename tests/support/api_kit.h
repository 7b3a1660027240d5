/* api_kit: what bw-api's tests share: starting the binary on a free port (waiting until it
 * answers), stopping it, and HTTP requests with libcurl. Failures fail the calling test. */
#ifndef BW_API_KIT_H
#define BW_API_KIT_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#define AK_KEY "it-key-0123456789abcdef"
#define AK_KEY2 "it-key-rotated-9876543210"

struct ak_api {
	pid_t pid;
	int port;
	char log[300];
};

/* Starts bw-api with BW_API_KEYS=AK_KEY,AK_KEY2, the given brokers, topic and database, and
 * extra "K=V" variables (NULL-terminated, may be NULL). */
void ak_start(struct ak_api *api, const char *brokers, const char *topic, const char *db,
	      const char *const *extra);

/* SIGTERM and expect exit 0. */
void ak_stop(struct ak_api *api);

struct ak_resp {
	long status;
	char *body;     /* owned (ak_resp_free) */
	json_t *json;   /* parsed body or NULL */
};

/* One request; key NULL sends no Authorization header; body NULL: no body. */
void ak_http(const struct ak_api *api, const char *method, const char *path, const char *key,
	     const char *body, struct ak_resp *out);
void ak_resp_free(struct ak_resp *r);

/* As ak_http with one more request header ("Name: value", may be NULL). */
void ak_http_hdr(const struct ak_api *api, const char *method, const char *path,
		 const char *key, const char *header, const char *body, struct ak_resp *out);

/* One request with AK_KEY and header (may be NULL) that must answer status with a JSON body:
 * the body (new reference). */
json_t *ak_call(const struct ak_api *api, const char *method, const char *path,
		const char *header, const char *body, long status);

/* o[key], which must be a string. */
const char *ak_str(const json_t *o, const char *key);

/* GETs path twice with the key on one curl handle; returns how many new connections the second
 * request opened (0: the connection was kept alive). */
long ak_new_connections_on_reuse(const struct ak_api *api, const char *path, const char *key);

#endif
