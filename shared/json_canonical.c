/* json_canonical: the canonical JSON text behind event hashes (see json.h). It must stay
 * byte-identical to jansson's json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY):
 * stored hashes were made that way, and test_json compares the two on many inputs. */
#include "json.h"
#include "json_scan.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct cbuf {
	char *p;
	size_t len, cap;
	int failed;
	char stack[2048]; /* most events fit: no allocation */
};

static void put_grow(struct cbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	size_t cap = b->cap * 2;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *grown = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
	if (!grown) {
		b->failed = 1;
		return;
	}
	if (b->p == b->stack)
		memcpy(grown, b->stack, b->len);
	b->p = grown;
	b->cap = cap;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Appends s[0..n) (NUL kept after it). Inline: most pieces are a byte or a short span. */
static inline void put(struct cbuf *b, const char *s, size_t n)
{
	if (b->failed || b->len + n + 1 > b->cap) {
		put_grow(b, s, n);
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* jansson's dump_string without flags: escape '"', '\\' and code points below 0x20
 * (\b \f \n \r \t by name, others as \u00XX with upper-case hex); all else as is. */
static void put_string(struct cbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0;

	put(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[6];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			memcpy(u, "\\u00", 4);
			u[4] = hex[c >> 4];
			u[5] = hex[c & 15];
			put(b, u, 6);
			continue;
		}
		put(b, esc, 2);
	}
	put(b, s + run, len - run);
	put(b, "\"", 1);
}

size_t bw_json_format_int64(char buf[BW_JSON_INT64_LEN], int64_t v)
{
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	size_t n = v < 0 ? 2 : 1;
	char *p;

	/* digits written backwards in place: no copy (results write ~20 numbers each) */
	for (unsigned long long t = u; t >= 10; t /= 10)
		n++;
	p = buf + n;
	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[0] = '-';
	return n;
}

static void put_int(struct cbuf *b, json_int_t v)
{
	char num[BW_JSON_INT64_LEN];
	put(b, num, bw_json_format_int64(num, (int64_t)v));
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void put_value(struct cbuf *b, const json_t *v);

static void put_object(struct cbuf *b, const json_t *v)
{
	const char *small[32];
	const char **keys = small;
	size_t n = json_object_size(v), i = 0;
	const char *key;
	json_t *sub;

	if (n > 32 && !(keys = malloc(n * sizeof(*keys)))) {
		b->failed = 1;
		return;
	}
	json_object_foreach((json_t *)v, key, sub)
		keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	put(b, "{", 1);
	for (i = 0; i < n && !b->failed; i++) {
		if (i)
			put(b, ",", 1);
		put_string(b, keys[i], strlen(keys[i]));
		put(b, ":", 1);
		put_value(b, json_object_get(v, keys[i]));
	}
	put(b, "}", 1);
	if (keys != small)
		free(keys);
}

static void put_value(struct cbuf *b, const json_t *v)
{
	size_t i;
	json_t *sub;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		put_object(b, v);
		return;
	case JSON_ARRAY:
		put(b, "[", 1);
		json_array_foreach(v, i, sub) {
			if (i)
				put(b, ",", 1);
			put_value(b, sub);
		}
		put(b, "]", 1);
		return;
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v));
		return;
	case JSON_INTEGER:
		put_int(b, json_integer_value(v));
		return;
	case JSON_REAL: {
		/* Rare (actual_cost): jansson's own number formatting, so the bytes agree. */
		char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		if (!text) {
			b->failed = 1;
			return;
		}
		put(b, text, strlen(text));
		free(text);
		return;
	}
	case JSON_TRUE:
		put(b, "true", 4);
		return;
	case JSON_FALSE:
		put(b, "false", 5);
		return;
	case JSON_NULL:
		put(b, "null", 4);
		return;
	}
	b->failed = 1;
}

static void buf_init(struct cbuf *b)
{
	b->p = b->stack;
	b->len = 0;
	b->cap = sizeof(b->stack);
	b->failed = 0;
	b->stack[0] = '\0';
}

static void buf_cleanup(struct cbuf *b)
{
	if (b->p != b->stack)
		free(b->p);
}

char *bw_json_canonical_dump(const json_t *obj)
{
	struct cbuf b;
	char *out = NULL;

	buf_init(&b);
	put_value(&b, obj);
	if (!b.failed && (out = malloc(b.len + 1)))
		memcpy(out, b.p, b.len + 1);
	buf_cleanup(&b);
	return out;
}

/* SHA-256 fetched once: the one-shot SHA256() fetches the algorithm on every call. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256 of b's bytes as hex into out. 0 or -1. */
static int hash_hex(const struct cbuf *b, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	pthread_once(&sha256_once, sha256_fetch);
	if (b->failed || !sha256_md || !EVP_Digest(b->p, b->len, md, &mdlen, sha256_md, NULL) ||
	    mdlen != 32)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

int bw_json_canonical_hash(const json_t *obj, char out[65])
{
	struct cbuf b;
	int rc;

	buf_init(&b);
	put_value(&b, obj);
	rc = hash_hex(&b, out);
	buf_cleanup(&b);
	return rc;
}

/* The token form (json_scan.h). An object's members are emitted in key order; a member of an
 * unescaped key and an unescaped scalar written without spaces ("k":v) is one copy of the
 * input. */
struct member {
	const char *key;
	uint32_t n;    /* key bytes (decoded) */
	uint32_t tok;  /* the key's token */
};

static int member_cmp(const struct member *a, const struct member *b)
{
	uint32_t n = a->n < b->n ? a->n : b->n;
	int c;

	/* most keys differ in their first byte: no call for those */
	if (n && a->key[0] != b->key[0])
		return (unsigned char)a->key[0] < (unsigned char)b->key[0] ? -1 : 1;
	c = memcmp(a->key, b->key, n);
	return c ? c : (a->n > b->n) - (a->n < b->n);
}

struct tctx {
	struct cbuf b;
	const unsigned char *raw;
	const char *text;
	const struct bw_json_tok *tok;
	int dup;
};

static void tput_string(struct tctx *c, const struct bw_json_tok *t)
{
	if (t->flags & BW_JT_ESCAPED)
		put_string(&c->b, c->text + t->start, t->n);
	else
		put(&c->b, (const char *)c->raw + t->start - 1, t->len + 2);
}

/* A scalar as jansson dumps it: integers in shortest decimal (only "-0" differs from its
 * input), reals through jansson itself (rare: actual_cost), literals and containers as is. */
static void tput_scalar(struct tctx *c, const struct bw_json_tok *t)
{
	if (t->type == BW_JT_STRING) {
		tput_string(c, t);
	} else if (t->type == BW_JT_REAL) {
		json_t *v = json_real(t->v.d);
		char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
		if (s)
			put(&c->b, s, strlen(s));
		else
			c->b.failed = 1;
		free(s);
		json_decref(v);
	} else if (t->type == BW_JT_INT && t->v.i == 0) {
		put(&c->b, "0", 1);  /* also "-0" */
	} else {
		put(&c->b, (const char *)c->raw + t->start, t->len);
	}
}

static int plain(const struct bw_json_tok *t)
{
	return !(t->flags & BW_JT_ESCAPED) && t->type != BW_JT_REAL && t->type != BW_JT_OBJECT &&
	       t->type != BW_JT_ARRAY && !(t->type == BW_JT_INT && t->len == 2 && t->v.i == 0);
}

static void tput_value(struct tctx *c, uint32_t i);

static void tput_object(struct tctx *c, uint32_t i)
{
	const struct bw_json_tok *tok = c->tok;
	struct member small[32], *m = small;
	uint32_t n = tok[i].n, k = i + 1;

	if (n > 32 && !(m = malloc(n * sizeof(*m)))) {
		c->b.failed = 1;
		return;
	}
	for (uint32_t j = 0; j < n; j++) {
		struct member x = { c->text + tok[k].start, tok[k].n, k };
		uint32_t at = j;
		/* insertion sort: events have a dozen keys, often nearly in order */
		while (at > 0 && member_cmp(&m[at - 1], &x) > 0) {
			m[at] = m[at - 1];
			at--;
		}
		m[at] = x;
		k = tok[k + 1].end;
	}
	put(&c->b, "{", 1);
	for (uint32_t j = 0; j < n && !c->b.failed; j++) {
		const struct bw_json_tok *key = &tok[m[j].tok], *val = key + 1;
		if (j && member_cmp(&m[j - 1], &m[j]) == 0) {
			c->dup = 1;
			c->b.failed = 1;
			break;
		}
		if (j)
			put(&c->b, ",", 1);
		if (plain(key) && plain(val) &&
		    val->start == key->start + key->len + 2 + (val->type == BW_JT_STRING)) {
			/* "key":value exactly as in the input */
			uint32_t from = key->start - 1;
			uint32_t to = val->start + val->len + (val->type == BW_JT_STRING);
			put(&c->b, (const char *)c->raw + from, to - from);
			continue;
		}
		tput_string(c, key);
		put(&c->b, ":", 1);
		tput_value(c, m[j].tok + 1);
	}
	put(&c->b, "}", 1);
	if (m != small)
		free(m);
}

static void tput_value(struct tctx *c, uint32_t i)
{
	const struct bw_json_tok *t = &c->tok[i];

	if (t->type == BW_JT_OBJECT) {
		tput_object(c, i);
	} else if (t->type == BW_JT_ARRAY) {
		uint32_t k = i + 1;
		put(&c->b, "[", 1);
		for (uint32_t j = 0; j < t->n && !c->b.failed; j++) {
			if (j)
				put(&c->b, ",", 1);
			tput_value(c, k);
			k = c->tok[k].end;
		}
		put(&c->b, "]", 1);
	} else {
		tput_scalar(c, t);
	}
}

static void tctx_run(struct tctx *c, const unsigned char *raw, const char *text,
		     const struct bw_json_tok *tok)
{
	buf_init(&c->b);
	c->raw = raw;
	c->text = text;
	c->tok = tok;
	c->dup = 0;
	tput_value(c, 0);
}

int bw_json_tok_canonical_hash(const unsigned char *raw, const char *text,
			       const struct bw_json_tok *tok, char out[65])
{
	struct tctx c;
	int rc;

	tctx_run(&c, raw, text, tok);
	rc = c.dup ? 1 : hash_hex(&c.b, out);
	buf_cleanup(&c.b);
	return rc;
}

char *bw_json_tok_canonical_dump(const unsigned char *raw, const char *text,
				 const struct bw_json_tok *tok)
{
	struct tctx c;
	char *out = NULL;

	tctx_run(&c, raw, text, tok);
	if (!c.b.failed && (out = malloc(c.b.len + 1)))
		memcpy(out, c.b.p, c.b.len + 1);
	buf_cleanup(&c.b);
	return out;
}
