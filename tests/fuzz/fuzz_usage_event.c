/* fuzz_usage_event: the usage event parser (workers/usage/usage_event.c) with the canonical
 * hash (shared/json_canonical.c) and the RFC 3339 check (shared/json.c).
 *
 * Input: one usage.events message. Properties:
 *  - a parsed event has its ids (1..256 bytes, no NUL), spus >= 1, and its hash is the
 *    SHA-256 of jansson's own json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
 *    (the form stored hashes were made with); a rejected one has an INVALID reason;
 *  - for any JSON value at all, bw_json_canonical_dump() is byte for byte that jansson dump,
 *    and parsing the canonical text back gives the same text (it is canonical);
 *  - the RFC 3339 check never reads past the string. */
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "usage_event.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

static void sha256_hex(const char *s, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	FUZZ_CHECK(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) == 1 && n == 32);
	for (unsigned int i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static void check_event(const struct bw_usage_event *ev)
{
	char *text = json_dumps(ev->raw, DUMP_FLAGS);
	char want[65];

	FUZZ_CHECK(json_is_object(ev->raw));
	FUZZ_CHECK(ev->event_id && strlen(ev->event_id) >= 1 &&
		   strlen(ev->event_id) <= BW_USAGE_ID_MAX);
	FUZZ_CHECK(ev->org_id && strlen(ev->org_id) >= 1 && strlen(ev->org_id) <= BW_USAGE_ID_MAX);
	FUZZ_CHECK(ev->spus >= 1);
	FUZZ_CHECK(text != NULL);
	sha256_hex(text, want);
	FUZZ_CHECK(strcmp(want, ev->hash) == 0);
	free(text);
}

/* The canonical form of any JSON value against jansson's. */
static void check_canonical(const uint8_t *data, size_t size)
{
	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	json_t *again = NULL;
	char *ours = NULL, *theirs = NULL, *ours_again = NULL;

	if (!v)
		return;
	ours = bw_json_canonical_dump(v);
	theirs = json_dumps(v, DUMP_FLAGS);
	FUZZ_CHECK(ours != NULL && theirs != NULL);
	FUZZ_CHECK(strcmp(ours, theirs) == 0);
	again = json_loads(ours, JSON_DECODE_ANY, NULL);
	FUZZ_CHECK(again != NULL);
	ours_again = bw_json_canonical_dump(again);
	FUZZ_CHECK(ours_again != NULL && strcmp(ours, ours_again) == 0);
	free(ours_again);
	json_decref(again);
	free(theirs);
	free(ours);
	json_decref(v);
}

int BW_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	struct bw_usage_event ev;
	struct bw_err err;
	char *event_id = NULL, *org_id = NULL, *s;

	bw_err_clear(&err);
	if (bw_usage_event_parse(data, size, BW_FUZZ_MAX_MESSAGE, &ev, &event_id, &org_id,
				 &err) == 0) {
		check_event(&ev);
		FUZZ_CHECK(event_id && strcmp(event_id, ev.event_id) == 0);
		FUZZ_CHECK(org_id && strcmp(org_id, ev.org_id) == 0);
	} else {
		FUZZ_CHECK(err.kind == BW_ERR_INVALID && err.msg[0] != '\0');
		FUZZ_CHECK(ev.raw == NULL && ev.event_id == NULL);
	}
	free(event_id);
	free(org_id);
	bw_usage_event_cleanup(&ev);

	check_canonical(data, size);

	/* Timestamps are short: the check on the raw bytes as one string (exact-size copy, so
	 * ASan sees any read past its NUL). */
	if (size <= 64) {
		s = fuzz_strndup(data, size);
		(void)bw_json_check_rfc3339(s);
		free(s);
	}
	return 0;
}
