/* fuzz_usage_event: the usage event parser (workers/usage/usage_event.c) with the canonical
 * hash (shared/json_canonical.c) and the RFC 3339 check (shared/json.c).
 *
 * Input: one usage.events message. Properties:
 *  - a parsed event has its ids (1..256 bytes, no NUL), spus >= 1, and its hash is the
 *    SHA-256 of jansson's own json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
 *    (the form stored hashes were made with); a rejected one has an INVALID reason, and
 *    never the one that says the scan and jansson disagreed;
 *  - the one-pass scan (shared/json_scan.c) accepts exactly what jansson's
 *    json_loadb(JSON_REJECT_DUPLICATES) accepts with a container at the root (nesting within
 *    the scan's limit), and its canonical form is jansson's byte for byte;
 *  - for any JSON value at all, bw_json_canonical_dump() is byte for byte that jansson dump,
 *    and parsing the canonical text back gives the same text (it is canonical);
 *  - the RFC 3339 check never reads past the string. */
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "json_scan.h"
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

static void check_event(const struct bw_usage_event *ev, const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	char *text = root ? json_dumps(root, DUMP_FLAGS) : NULL;
	char want[65];

	FUZZ_CHECK(json_is_object(root));
	FUZZ_CHECK(ev->event_id && strlen(ev->event_id) >= 1 &&
		   strlen(ev->event_id) <= BW_USAGE_ID_MAX);
	FUZZ_CHECK(ev->org_id && strlen(ev->org_id) >= 1 && strlen(ev->org_id) <= BW_USAGE_ID_MAX);
	FUZZ_CHECK(strcmp(ev->event_id, json_string_value(json_object_get(root, "event_id"))) == 0);
	FUZZ_CHECK(strcmp(ev->org_id, json_string_value(json_object_get(root, "org_id"))) == 0);
	FUZZ_CHECK(ev->spus >= 1 && ev->spus == json_integer_value(json_object_get(root, "spus")));
	FUZZ_CHECK(text != NULL);
	sha256_hex(text, want);
	FUZZ_CHECK(strcmp(want, ev->hash) == 0);
	free(text);
	json_decref(root);
}

static int depth_of(const json_t *v)
{
	const char *key;
	json_t *sub;
	size_t i;
	int d = 0, sd;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, sub)
			if ((sd = depth_of(sub)) > d)
				d = sd;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, sub)
			if ((sd = depth_of(sub)) > d)
				d = sd;
	} else {
		return 0;
	}
	return d + 1;
}

/* The scan against jansson: same verdict (within the scan's depth), same canonical bytes. */
static void check_scan(const uint8_t *data, size_t size)
{
	enum { DEPTH = 32 };
	json_t *v = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	struct bw_json_scan sc;
	int scanned = bw_json_scan(data, size, DEPTH, &sc) == 0;
	char *text = NULL, *ours = NULL, *theirs = NULL;

	if (v && depth_of(v) > DEPTH) {
		FUZZ_CHECK(!scanned);
		goto done;
	}
	if (scanned) {
		FUZZ_CHECK((text = malloc(size + 1)) != NULL);
		memcpy(text, data, size);
		bw_json_scan_decode(text, sc.tok, sc.n);
		ours = bw_json_tok_canonical_dump(data, text, sc.tok);  /* NULL: duplicate key */
	}
	FUZZ_CHECK((v != NULL) == (ours != NULL));
	if (v) {
		theirs = json_dumps(v, DUMP_FLAGS);
		FUZZ_CHECK(theirs != NULL && strcmp(ours, theirs) == 0);
	}
done:
	free(theirs);
	free(ours);
	free(text);
	bw_json_scan_cleanup(&sc);
	json_decref(v);
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
		check_event(&ev, data, size);
		FUZZ_CHECK(event_id && strcmp(event_id, ev.event_id) == 0);
		FUZZ_CHECK(org_id && strcmp(org_id, ev.org_id) == 0);
	} else {
		FUZZ_CHECK(err.kind == BW_ERR_INVALID && err.msg[0] != '\0');
		FUZZ_CHECK(strncmp(err.msg, "event cannot be read", 20) != 0);
		FUZZ_CHECK(ev.block == NULL && ev.event_id == NULL);
	}
	free(event_id);
	free(org_id);
	bw_usage_event_cleanup(&ev);

	check_canonical(data, size);
	check_scan(data, size);

	/* Timestamps are short: the check on the raw bytes as one string (exact-size copy, so
	 * ASan sees any read past its NUL). */
	if (size <= 64) {
		s = fuzz_strndup(data, size);
		(void)bw_json_check_rfc3339(s);
		free(s);
	}
	return 0;
}
