/* json_scan: one pass over a JSON text that validates it and records its values as a flat
 * array of tokens (spans of the input), for messages read on a hot path (usage events).
 *
 * It accepts exactly what jansson's json_loadb(JSON_REJECT_DUPLICATES) accepts with a container
 * at the root (RFC 8259 grammar; well-formed UTF-8; no \u0000; surrogates only in pairs;
 * integers within int64; finite reals), and on top of that refuses nesting deeper than the
 * caller's limit. Duplicate keys are found later, by bw_json_tok_canonical_hash, which sorts
 * each object's keys anyway. A refusal carries no reason: callers that need one (a message
 * to DLQ) ask jansson for its wording, which the tests pin. No allocation per value. */
#ifndef BW_JSON_SCAN_H
#define BW_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum bw_json_tok_type {
	BW_JT_OBJECT = 1,
	BW_JT_ARRAY,
	BW_JT_STRING,
	BW_JT_INT,
	BW_JT_REAL,
	BW_JT_TRUE,
	BW_JT_FALSE,
	BW_JT_NULL,
};

#define BW_JT_ESCAPED 1u  /* string: has a backslash escape in the input */
#define BW_JT_KEY 2u      /* string: an object member's name (its value is the next token) */

/* One value. An object is followed by its members as (key, value subtree) pairs, an array by
 * its elements; end is the index just past the token's subtree. */
struct bw_json_tok {
	uint32_t start;   /* offset of the first byte; strings: just after the opening quote */
	uint32_t len;     /* bytes in the input; strings: without the quotes */
	uint32_t end;     /* index of the next token after this one's subtree */
	uint32_t n;       /* object: members; array: elements; string: decoded bytes */
	union {
		int64_t i;        /* INT */
		double d;         /* REAL */
	} v;
	uint8_t type;     /* enum bw_json_tok_type */
	uint8_t flags;    /* BW_JT_* */
};

#define BW_JSON_SCAN_INLINE 48

/* A scan's tokens: the first BW_JSON_SCAN_INLINE inline, more on the heap. */
struct bw_json_scan {
	struct bw_json_tok *tok;  /* small, or a heap array (bw_json_scan_cleanup frees it) */
	uint32_t n, cap;
	int oom;                  /* the scan stopped because the token array could not grow */
	struct bw_json_tok small[BW_JSON_SCAN_INLINE];
};

/* Scans buf[0..len) (len below 4 GiB) into s (initialised here). The root must be an object
 * or an array; containers nest at most max_depth deep (the root is level 1). Strings keep
 * n = len until bw_json_scan_decode. Returns 0, or -1 when the text is not accepted or, with
 * s->oom set, memory ran out.
 * Always pair with bw_json_scan_cleanup. */
int bw_json_scan(const unsigned char *buf, size_t len, int max_depth, struct bw_json_scan *s);

void bw_json_scan_cleanup(struct bw_json_scan *s);

/* Rewrites text (a copy of the scanned bytes, owned by the caller) so that every string's
 * decoded bytes sit at text + tok.start, tok.n long and NUL-terminated (escapes decoded in
 * place: a decoded string is never longer than its escaped form, and the NUL takes the
 * closing quote's place). */
void bw_json_scan_decode(char *text, struct bw_json_tok *tok, uint32_t ntok);

/* Checks, after decoding, that every member name could be a MongoDB field name as it is:
 * not empty, no leading '$', no '.'. Returns 0 or -1. */
int bw_json_scan_names_storable(const char *text, const struct bw_json_tok *tok, uint32_t ntok);

/* Whether the decoded string of t equals the NUL-free name (length n). */
static inline int bw_json_tok_eq(const char *text, const struct bw_json_tok *t, const char *name,
				 uint32_t n)
{
	const char *s = text + t->start;
	if (t->n != n)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		if (s[i] != name[i])
			return 0;
	return 1;
}

/* SHA-256 (64 hex chars + NUL) of the canonical form of a scan: byte for byte jansson's
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) of the same value, like
 * bw_json_canonical_hash. raw is the scanned input (unescaped strings and numbers are copied
 * from it as they are), text the decoded copy (bw_json_scan_decode) for escaped strings and
 * key order. Returns 0; 1 when an object has a duplicate key (jansson's
 * JSON_REJECT_DUPLICATES refuses the text); -1 on OOM. Thread-safe. */
int bw_json_tok_canonical_hash(const unsigned char *raw, const char *text,
			       const struct bw_json_tok *tok, char out[65]);

/* The canonical form itself, as a new string (caller free()), or NULL (duplicate key, OOM). */
char *bw_json_tok_canonical_dump(const unsigned char *raw, const char *text,
				 const struct bw_json_tok *tok);

#endif
