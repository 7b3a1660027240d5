/* json_scan: see json_scan.h. The acceptance rules are jansson 2.14's (load.c, utf8.c); the
 * fuzz target fuzz_usage_event compares the two on every input. */
#include "json_scan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK 64

/* Byte classes inside a string: 0 plain ASCII, 1 stop (quote, backslash, control, non-ASCII). */
static const unsigned char str_stop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

struct sc {
	const unsigned char *p, *end, *base;
	struct bw_json_scan *s;
	int has_real;
};

static struct bw_json_tok *push(struct sc *c, uint8_t type, const unsigned char *start)
{
	struct bw_json_scan *s = c->s;
	struct bw_json_tok *t;

	if (s->n == s->cap) {
		uint32_t cap = s->cap * 2;
		struct bw_json_tok *grown;
		if (s->tok == s->small) {
			grown = malloc(cap * sizeof(*grown));
			if (grown)
				memcpy(grown, s->small, sizeof(s->small));
		} else {
			grown = realloc(s->tok, cap * sizeof(*grown));
		}
		if (!grown) {
			s->oom = 1;
			return NULL;
		}
		s->tok = grown;
		s->cap = cap;
	}
	t = &s->tok[s->n];
	t->start = (uint32_t)(start - c->base);
	t->len = 0;
	t->end = ++s->n;
	t->n = 0;
	t->v.i = 0;
	t->type = type;
	t->flags = 0;
	return t;
}

static void skip_ws(struct sc *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
		c->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char h = p[i];
		v <<= 4;
		if (h >= '0' && h <= '9')
			v |= (unsigned)(h - '0');
		else if (h >= 'a' && h <= 'f')
			v |= (unsigned)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			v |= (unsigned)(h - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (before end), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned char b = p[0];
	size_t n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;

	if (b < 0xC2 || b > 0xF4 || (size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	if ((b == 0xE0 && p[1] < 0xA0) || (b == 0xED && p[1] > 0x9F) ||  /* overlong, surrogate */
	    (b == 0xF0 && p[1] < 0x90) || (b == 0xF4 && p[1] > 0x8F))    /* overlong, > U+10FFFF */
		return 0;
	return n;
}

/* jansson reads one byte past a number or a literal and puts it back; a NUL byte put back is
 * lost (its stream takes NUL for "nothing buffered"), so one NUL right after such a token
 * is skipped. Matched here so that both accept the same texts (the fuzz target checks). */
static const unsigned char *skip_nul(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p == '\0' ? p + 1 : p;
}

/* A string at c->p (the opening quote) as a token. */
static int scan_string(struct sc *c, uint8_t flags)
{
	const unsigned char *p = c->p + 1, *end = c->end;
	struct bw_json_tok *t = push(c, BW_JT_STRING, p);

	if (!t)
		return -1;
	t->flags = flags;
	for (;;) {
		while (p < end && !str_stop[*p])
			p++;
		if (p >= end)
			return -1;
		if (*p == '"')
			break;
		if (*p >= 0x80) {
			size_t n = utf8_seq(p, end);
			if (!n)
				return -1;
			p += n;
			continue;
		}
		if (*p != '\\')
			return -1;  /* control character */
		t->flags |= BW_JT_ESCAPED;
		if (end - p < 2)
			return -1;
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			continue;
		case 'u':
			break;
		default:
			return -1;
		}
		unsigned u, lo;
		if (end - p < 6 || hex4(p + 2, &u) || u == 0)
			return -1;
		p += 6;
		if (u >= 0xDC00 && u <= 0xDFFF)
			return -1;
		if (u >= 0xD800 && u <= 0xDBFF) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) ||
			    lo < 0xDC00 || lo > 0xDFFF)
				return -1;
			p += 6;
		}
	}
	t->len = (uint32_t)(p - c->base) - t->start;
	t->n = t->len;
	c->p = p + 1;
	return 0;
}

static int scan_number(struct sc *c)
{
	const unsigned char *p = c->p, *end = c->end;
	struct bw_json_tok *t = push(c, BW_JT_INT, p);
	int neg = 0, real = 0;
	uint64_t acc = 0, limit;

	if (!t)
		return -1;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (p >= end || *p < '0' || *p > '9')
		return -1;
	if (*p == '0') {
		p++;
		if (p < end && *p >= '0' && *p <= '9')
			return -1;  /* leading zero */
	} else {
		while (p < end && *p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p++ - '0');
			if (acc > (limit - d) / 10)
				acc = limit + 1;  /* overflow: refused below unless it is a real */
			else
				acc = acc * 10 + d;
		}
	}
	if (p < end && *p == '.') {
		real = 1;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = 1;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	t->len = (uint32_t)(p - c->p);
	c->p = skip_nul(p, end);
	if (real) {
		/* converted once the whole text is known valid: strtod then stops at a delimiter */
		t->type = BW_JT_REAL;
		c->has_real = 1;
		return 0;
	}
	if (acc > limit)
		return -1;  /* jansson: too big (negative) integer */
	t->v.i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return 0;
}

static int scan_literal(struct sc *c, const char *word, size_t n, uint8_t type)
{
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return -1;
	if (!push(c, type, c->p))
		return -1;
	c->s->tok[c->s->n - 1].len = (uint32_t)n;
	c->p = skip_nul(c->p + n, c->end);
	return 0;
}

/* Reals: strtod as jansson's jsonp_strtod (the "C" numeric locale the workers run in);
 * an overflow to infinity is refused, an underflow reads 0 as in jansson. */
static int convert_reals(struct sc *c)
{
	for (uint32_t i = 0; i < c->s->n; i++) {
		struct bw_json_tok *t = &c->s->tok[i];
		if (t->type != BW_JT_REAL)
			continue;
		t->v.d = strtod((const char *)c->base + t->start, NULL);
		if (isinf(t->v.d))
			return -1;
	}
	return 0;
}

int bw_json_scan(const unsigned char *buf, size_t len, int max_depth, struct bw_json_scan *s)
{
	uint32_t stack[MAX_STACK];
	int depth = 0;
	struct sc c = { buf, buf + len, buf, s, 0 };

	s->tok = s->small;
	s->n = 0;
	s->cap = BW_JSON_SCAN_INLINE;
	s->oom = 0;
	if (len >= UINT32_MAX || max_depth < 1 || max_depth > MAX_STACK)
		return -1;
	skip_ws(&c);
	if (c.p >= c.end || (*c.p != '{' && *c.p != '['))
		return -1;
	for (;;) {
		/* a value at c.p */
		skip_ws(&c);
		if (c.p >= c.end)
			return -1;
		switch (*c.p) {
		case '{':
		case '[': {
			uint8_t type = *c.p == '{' ? BW_JT_OBJECT : BW_JT_ARRAY;
			if (depth == max_depth || !push(&c, type, c.p))
				return -1;
			stack[depth++] = s->n - 1;
			c.p++;
			skip_ws(&c);
			if (c.p < c.end && *c.p == (type == BW_JT_OBJECT ? '}' : ']')) {
				c.p++;
				goto close;
			}
			if (type == BW_JT_ARRAY)
				continue;
			goto key;
		}
		case '"':
			if (scan_string(&c, 0))
				return -1;
			break;
		case 't':
			if (scan_literal(&c, "true", 4, BW_JT_TRUE))
				return -1;
			break;
		case 'f':
			if (scan_literal(&c, "false", 5, BW_JT_FALSE))
				return -1;
			break;
		case 'n':
			if (scan_literal(&c, "null", 4, BW_JT_NULL))
				return -1;
			break;
		default:
			if (*c.p != '-' && (*c.p < '0' || *c.p > '9'))
				return -1;
			if (scan_number(&c))
				return -1;
			break;
		}
		/* after a value inside the container on top */
		for (;;) {
			struct bw_json_tok *top = &s->tok[stack[depth - 1]];
			top->n++;
			skip_ws(&c);
			if (c.p >= c.end)
				return -1;
			if (*c.p == ',') {
				c.p++;
				if (top->type == BW_JT_ARRAY)
					break;
				goto key;
			}
			if (*c.p != (top->type == BW_JT_OBJECT ? '}' : ']'))
				return -1;
			c.p++;
		close:
			top = &s->tok[stack[--depth]];
			top->end = s->n;
			top->len = (uint32_t)(c.p - buf) - top->start;
			if (depth == 0)
				goto done;
		}
		continue;
	key:
		skip_ws(&c);
		if (c.p >= c.end || *c.p != '"' || scan_string(&c, BW_JT_KEY))
			return -1;
		skip_ws(&c);
		if (c.p >= c.end || *c.p != ':')
			return -1;
		c.p++;
	}
done:
	skip_ws(&c);
	if (c.p != c.end)
		return -1;
	return c.has_real ? convert_reals(&c) : 0;
}

void bw_json_scan_cleanup(struct bw_json_scan *s)
{
	if (s && s->tok != s->small)
		free(s->tok);
	if (s) {
		s->tok = s->small;
		s->n = 0;
	}
}

static char *put_utf8(char *d, unsigned cp)
{
	if (cp < 0x80) {
		*d++ = (char)cp;
	} else if (cp < 0x800) {
		*d++ = (char)(0xC0 | (cp >> 6));
		*d++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*d++ = (char)(0xE0 | (cp >> 12));
		*d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*d++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*d++ = (char)(0xF0 | (cp >> 18));
		*d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*d++ = (char)(0x80 | (cp & 0x3F));
	}
	return d;
}

/* Decodes the escaped string s[0..len) in place (validated by the scan); returns its length. */
static uint32_t decode(char *s, uint32_t len)
{
	const char *r = s, *end = s + len;
	char *w = s;

	while (r < end) {
		unsigned u, lo;
		if (*r != '\\') {
			*w++ = *r++;
			continue;
		}
		switch (r[1]) {
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u':
			hex4((const unsigned char *)r + 2, &u);
			if (u >= 0xD800 && u <= 0xDBFF) {
				hex4((const unsigned char *)r + 8, &lo);
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				r += 6;
			}
			w = put_utf8(w, u);
			r += 6;
			continue;
		default: *w++ = r[1]; break;  /* " \ / */
		}
		r += 2;
	}
	return (uint32_t)(w - s);
}

void bw_json_scan_decode(char *text, struct bw_json_tok *tok, uint32_t ntok)
{
	for (uint32_t i = 0; i < ntok; i++) {
		struct bw_json_tok *t = &tok[i];
		if (t->type != BW_JT_STRING)
			continue;
		if (t->flags & BW_JT_ESCAPED)
			t->n = decode(text + t->start, t->len);
		text[t->start + t->n] = '\0';
	}
}

int bw_json_scan_names_storable(const char *text, const struct bw_json_tok *tok, uint32_t ntok)
{
	for (uint32_t i = 0; i < ntok; i++) {
		const struct bw_json_tok *t = &tok[i];
		if (!(t->flags & BW_JT_KEY))
			continue;
		if (t->n == 0 || text[t->start] == '$' || memchr(text + t->start, '.', t->n))
			return -1;
	}
	return 0;
}
