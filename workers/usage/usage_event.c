/* usage_event: see usage_event.h. The checks mirror schemas/usage-event.schema.json; the
 * schema test validates the same fixture files against both. The fast path (tokens) and the
 * reason path (jansson) apply the same rules; fuzz_usage_event compares them on every input. */
#include "usage_event.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "json.h"

/* ---- fast path: one scan, fields from the tokens ---- */

enum kind { STR_REQ, STR_OPT, SPUS, INT_OPT, NUM_OPT };

enum field {
	F_EVENT_ID, F_ORG_ID, F_SPUS, F_OPERATION, F_SOURCE, F_TIMESTAMP, F_LLM_PROVIDER,
	F_LLM_MODEL, F_PROMPT_TOKENS, F_COMPLETION_TOKENS, F_TOTAL_TOKENS, F_ACTUAL_COST, NFIELDS
};

static const struct {
	const char *name;
	uint32_t len;
	enum kind kind;
	uint32_t max;  /* strings: bytes */
} fields[NFIELDS] = {
	[F_EVENT_ID] = { "event_id", 8, STR_REQ, BW_USAGE_ID_MAX },
	[F_ORG_ID] = { "org_id", 6, STR_REQ, BW_USAGE_ID_MAX },
	[F_SPUS] = { "spus", 4, SPUS, 0 },
	[F_OPERATION] = { "operation", 9, STR_REQ, 128 },
	[F_SOURCE] = { "source", 6, STR_REQ, 128 },
	[F_TIMESTAMP] = { "timestamp", 9, STR_REQ, 64 },
	[F_LLM_PROVIDER] = { "llm_provider", 12, STR_OPT, 256 },
	[F_LLM_MODEL] = { "llm_model", 9, STR_OPT, 256 },
	[F_PROMPT_TOKENS] = { "prompt_tokens", 13, INT_OPT, 0 },
	[F_COMPLETION_TOKENS] = { "completion_tokens", 17, INT_OPT, 0 },
	[F_TOTAL_TOKENS] = { "total_tokens", 12, INT_OPT, 0 },
	[F_ACTUAL_COST] = { "actual_cost", 11, NUM_OPT, 0 },
};

/* The schema field named key[0..n) (NUL-terminated), or -1: one comparison per member. */
static int field_of(const char *key, uint32_t n)
{
	int f;

	switch (key[0]) {
	case 'e': f = F_EVENT_ID; break;
	case 'o': f = n == 6 ? F_ORG_ID : F_OPERATION; break;
	case 's': f = n == 4 ? F_SPUS : F_SOURCE; break;
	case 't': f = n == 9 ? F_TIMESTAMP : F_TOTAL_TOKENS; break;
	case 'l': f = n == 12 ? F_LLM_PROVIDER : F_LLM_MODEL; break;
	case 'p': f = F_PROMPT_TOKENS; break;
	case 'c': f = F_COMPLETION_TOKENS; break;
	case 'a': f = F_ACTUAL_COST; break;
	default: return -1;
	}
	return fields[f].len == n && memcmp(fields[f].name, key, n) == 0 ? f : -1;
}

/* Whether value t (NULL: absent) passes field f's rule. */
static int field_ok(int f, const struct bw_json_tok *t, const char *text)
{
	int absent = !t || t->type == BW_JT_NULL;

	switch (fields[f].kind) {
	case STR_REQ:
	case STR_OPT:
		if (absent)
			return fields[f].kind == STR_OPT;
		if (t->type != BW_JT_STRING || t->n == 0 || t->n > fields[f].max)
			return 0;
		return f != F_TIMESTAMP || bw_json_check_rfc3339(text + t->start) == 0;
	case SPUS:
		return !absent && t->type == BW_JT_INT && t->v.i >= 1;
	case INT_OPT:
		return absent || (t->type == BW_JT_INT && t->v.i >= 0);
	case NUM_OPT:
		return absent || (t->type == BW_JT_INT && t->v.i >= 0) ||
		       (t->type == BW_JT_REAL && !(t->v.d < 0));
	}
	return 0;
}

static int check_fields(struct bw_usage_event *ev)
{
	const struct bw_json_tok *tok = ev->tok, *val[NFIELDS] = { NULL };
	uint32_t k = 1;

	for (uint32_t m = 0; m < tok[0].n; m++) {
		int f = field_of(ev->text + tok[k].start, tok[k].n);
		if (f >= 0)
			val[f] = &tok[k + 1];
		k = tok[k + 1].end;
	}
	for (int f = 0; f < NFIELDS; f++)
		if (!field_ok(f, val[f], ev->text))
			return -1;
	ev->event_id = ev->text + val[F_EVENT_ID]->start;
	ev->org_id = ev->text + val[F_ORG_ID]->start;
	ev->spus = val[F_SPUS]->v.i;
	return 0;
}

/* 0 parsed; 1 refused (the reason path says why); -1 out of memory. */
static int parse_fast(const unsigned char *buf, size_t len, struct bw_usage_event *ev)
{
	struct bw_json_scan sc;
	struct bw_json_tok *tok;
	char *text;
	int rc = 1;

	if (bw_json_scan(buf, len, BW_USAGE_MAX_DEPTH, &sc) != 0 || sc.tok[0].type != BW_JT_OBJECT) {
		if (sc.oom)
			rc = -1;
		goto done;
	}
	rc = -1;
	if (bw_fault_fails("usage_event_alloc") ||
	    !(ev->block = malloc(sc.n * sizeof(*tok) + len + 1)))
		goto done;
	tok = ev->block;
	text = (char *)(tok + sc.n);
	memcpy(tok, sc.tok, sc.n * sizeof(*tok));
	memcpy(text, buf, len);
	text[len] = '\0';
	bw_json_scan_decode(text, tok, sc.n);
	ev->tok = tok;
	ev->ntok = sc.n;
	ev->text = text;
	rc = 1;
	/* The whole event is stored on the usage record: a name MongoDB refuses would fail
	 * the insert on every retry and hold the partition, so it is refused here instead. */
	if (check_fields(ev) || bw_json_scan_names_storable(text, tok, sc.n))
		goto done;
	rc = bw_json_tok_canonical_hash(buf, text, tok, ev->hash);  /* 1: duplicate key */
done:
	bw_json_scan_cleanup(&sc);
	if (rc != 0)
		bw_usage_event_cleanup(ev);
	return rc;
}

/* ---- reason path: jansson, for refused messages only ---- */

static int check_optional(const json_t *obj, struct bw_err *err)
{
	static const char *const str_fields[] = { "llm_provider", "llm_model" };
	static const char *const int_fields[] = { "prompt_tokens", "completion_tokens",
						  "total_tokens" };
	const char *s;
	int64_t x;
	double d;
	int present;

	for (size_t i = 0; i < 2; i++)
		if (bw_json_get_str(obj, str_fields[i], 0, 256, &s, err))
			return -1;
	for (size_t i = 0; i < 3; i++)
		if (bw_json_get_int64(obj, int_fields[i], 0, 0, INT64_MAX, &x, NULL, err))
			return -1;
	if (bw_json_get_number(obj, "actual_cost", 0, &d, &present, err))
		return -1;
	if (present && d < 0)
		return bw_err_set(err, BW_ERR_INVALID, "field 'actual_cost' must be >= 0");
	return 0;
}

static char *dup_member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* The checks of the fast path in jansson's terms, each with its reason. Returns the parsed
 * object when it passes them all (new reference), else NULL with err and, when readable,
 * the ids in *event_id_out / *org_id_out. */
static json_t *parse_reason(const unsigned char *buf, size_t len, size_t max_len,
			    char **event_id_out, char **org_id_out, struct bw_err *err)
{
	json_t *root = NULL;
	const char *s;
	int64_t spus;

	root = bw_json_parse_object(buf, len, max_len, err);
	if (!root)
		return NULL;
	if (event_id_out)
		*event_id_out = dup_member(root, "event_id");
	if (org_id_out)
		*org_id_out = dup_member(root, "org_id");
	if (bw_json_get_str(root, "event_id", 1, BW_USAGE_ID_MAX, &s, err) ||
	    bw_json_get_str(root, "org_id", 1, BW_USAGE_ID_MAX, &s, err) ||
	    bw_json_get_int64(root, "spus", 1, 1, INT64_MAX, &spus, NULL, err) ||
	    bw_json_get_str(root, "operation", 1, 128, &s, err) ||
	    bw_json_get_str(root, "source", 1, 128, &s, err) ||
	    bw_json_get_str(root, "timestamp", 1, 64, &s, err))
		goto fail;
	if (bw_json_check_rfc3339(s) != 0) {
		bw_err_set(err, BW_ERR_INVALID, "field 'timestamp' is not an RFC 3339 date-time");
		goto fail;
	}
	if (check_optional(root, err) || bw_json_check_storable(root, BW_USAGE_MAX_DEPTH, err))
		goto fail;
	return root;
fail:
	json_decref(root);
	return NULL;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

int bw_usage_event_parse(const unsigned char *buf, size_t len, size_t max_len,
			 struct bw_usage_event *ev, char **event_id_out, char **org_id_out,
			 struct bw_err *err)
{
	json_t *root = NULL;
	char *canon = NULL;
	int rc = -1, fast;

	memset(ev, 0, sizeof(*ev));
	if (event_id_out)
		*event_id_out = NULL;
	if (org_id_out)
		*org_id_out = NULL;
	fast = buf && len > 0 && len <= max_len ? parse_fast(buf, len, ev) : 1;
	if (fast > 0) {
		root = parse_reason(buf, len, max_len, event_id_out, org_id_out, err);
		if (!root)
			goto done;
		/* jansson accepts what the scan refused: not expected (the fuzz target checks
		 * they agree), but then its reading stands: the scan takes jansson's canonical
		 * text. */
		canon = bw_json_canonical_dump(root);
		fast = canon ? parse_fast((const unsigned char *)canon, strlen(canon), ev) : -1;
		if (fast > 0) {
			bw_err_set(err, BW_ERR_INVALID,
				   "event cannot be read (the scan refused it, jansson not)");
			goto done;
		}
	}
	if (fast == 0)
		rc = 0;
	else  /* out of memory: the event is not at fault, the batch is retried */
		bw_err_set(err, BW_ERR_TRANSIENT, "out of memory reading the event");
done:
	if (rc == 0 && event_id_out && !*event_id_out)
		*event_id_out = dup_str(ev->event_id);
	if (rc == 0 && org_id_out && !*org_id_out)
		*org_id_out = dup_str(ev->org_id);
	free(canon);
	json_decref(root);
	return rc;
}

void bw_usage_event_cleanup(struct bw_usage_event *ev)
{
	if (!ev)
		return;
	free(ev->block);
	memset(ev, 0, sizeof(*ev));
}
