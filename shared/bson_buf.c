/* bson_buf: see bson_buf.h. */
#include "bson_buf.h"

#include <stdlib.h>
#include <string.h>

/* Room for n more bytes; 0 (and sticky failure) past the maximum or out of memory. */
static int grow(struct bw_bson_buf *b, size_t n)
{
	if (b->failed || b->depth == 0)
		goto fail;
	if (n > b->max || b->len > b->max - n)
		goto fail;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap = cap > b->max / 2 ? b->max : cap * 2;
		if (cap > b->max)
			cap = b->max;
		uint8_t *grown = realloc(b->p, cap);
		if (!grown)
			goto fail;
		b->p = grown;
		b->cap = cap;
	}
	return 1;
fail:
	b->failed = 1;
	return 0;
}

/* grow() with its common case (room left, no failure) inline: a member costs tens of
 * instructions, so a call per member would be a good part of it. */
static inline int reserve(struct bw_bson_buf *b, size_t n)
{
	if (BSON_LIKELY(n <= b->cap - b->len && !b->failed && b->depth > 0 && b->len + n <= b->max))
		return 1;
	return grow(b, n);
}

static void put_le32(uint8_t *at, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		at[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *at, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		at[i] = (uint8_t)(v >> (8 * i));
}

/* v in decimal, written backwards from the end of buf[16] (snprintf costs ~600 instructions). */
static const char *index_key(char buf[16], uint32_t v)
{
	char *p = buf + 15;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

/* The element's type byte and key (or the array's next index), then room for value bytes. */
static uint8_t *header(struct bw_bson_buf *b, uint8_t type, const char *key, size_t value)
{
	char idx[16];
	size_t klen;

	if (b->failed || b->depth == 0) {
		b->failed = 1;
		return NULL;
	}
	if (!key) /* an array member: the same decimal keys libbson's callers write */
		key = index_key(idx, b->next_index[b->depth - 1]);
	b->next_index[b->depth - 1]++;
	klen = strlen(key);
	if (value > b->max || !reserve(b, 1 + klen + 1 + value))
		return NULL;
	uint8_t *at = b->p + b->len;
	at[0] = type;
	memcpy(at + 1, key, klen + 1);
	b->len += 1 + klen + 1 + value;
	return at + 1 + klen + 1;
}

static void open_doc(struct bw_bson_buf *b)
{
	if (b->depth >= BW_BSON_BUF_DEPTH) {
		b->failed = 1;
		return;
	}
	if (!reserve(b, 4))
		return;
	b->open[b->depth] = b->len;
	b->next_index[b->depth] = 0;
	b->depth++;
	b->len += 4;
}

/* Ends the innermost open document: its terminating 0 and its length. */
static void close_doc(struct bw_bson_buf *b)
{
	if (!reserve(b, 1))
		return;
	b->p[b->len++] = 0;
	b->depth--;
	put_le32(b->p + b->open[b->depth], (uint32_t)(b->len - b->open[b->depth]));
}

void bw_bson_buf_init(struct bw_bson_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max < INT32_MAX ? max : INT32_MAX;
	bw_bson_buf_reset(b);
}

void bw_bson_buf_reset(struct bw_bson_buf *b)
{
	b->len = 0;
	b->depth = 1; /* reserve() needs an open document */
	b->failed = 0;
	if (!reserve(b, 4))
		return;
	b->open[0] = 0;
	b->next_index[0] = 0;
	b->len = 4;
}

void bw_bson_buf_cleanup(struct bw_bson_buf *b)
{
	if (!b)
		return;
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void bw_bson_buf_utf8(struct bw_bson_buf *b, const char *key, const char *s)
{
	size_t n = strlen(s) + 1;
	uint8_t *at = header(b, BSON_TYPE_UTF8, key, 4 + n);
	if (!at)
		return;
	put_le32(at, (uint32_t)n);
	memcpy(at + 4, s, n);
}

void bw_bson_buf_int64(struct bw_bson_buf *b, const char *key, int64_t v)
{
	uint8_t *at = header(b, BSON_TYPE_INT64, key, 8);
	if (at)
		put_le64(at, (uint64_t)v);
}

void bw_bson_buf_int32(struct bw_bson_buf *b, const char *key, int32_t v)
{
	uint8_t *at = header(b, BSON_TYPE_INT32, key, 4);
	if (at)
		put_le32(at, (uint32_t)v);
}

void bw_bson_buf_bool(struct bw_bson_buf *b, const char *key, int v)
{
	uint8_t *at = header(b, BSON_TYPE_BOOL, key, 1);
	if (at)
		*at = v ? 1 : 0;
}

void bw_bson_buf_date_time(struct bw_bson_buf *b, const char *key, int64_t ms)
{
	uint8_t *at = header(b, BSON_TYPE_DATE_TIME, key, 8);
	if (at)
		put_le64(at, (uint64_t)ms);
}

void bw_bson_buf_document(struct bw_bson_buf *b, const char *key, const bson_t *doc)
{
	uint8_t *at = header(b, BSON_TYPE_DOCUMENT, key, doc->len);
	if (at)
		memcpy(at, bson_get_data(doc), doc->len);
}

void bw_bson_buf_members(struct bw_bson_buf *b, const bson_t *doc)
{
	size_t n = doc->len - 5; /* between the length and the terminating 0 */

	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, bson_get_data(doc) + 4, n);
	b->len += n;
}

void bw_bson_buf_begin_document(struct bw_bson_buf *b, const char *key)
{
	if (header(b, BSON_TYPE_DOCUMENT, key, 0))
		open_doc(b);
}

void bw_bson_buf_begin_array(struct bw_bson_buf *b, const char *key)
{
	if (header(b, BSON_TYPE_ARRAY, key, 0))
		open_doc(b);
}

void bw_bson_buf_end(struct bw_bson_buf *b)
{
	if (b->depth < 2) { /* the top-level document closes in bw_bson_buf_view() */
		b->failed = 1;
		return;
	}
	close_doc(b);
}

int bw_bson_buf_view(struct bw_bson_buf *b, bson_t *view)
{
	if (b->depth != 1)
		b->failed = 1;
	else
		close_doc(b);
	if (b->failed)
		return -1;
	b->depth = 0; /* closed: a write now fails until a reset */
	return bson_init_static(view, b->p, b->len) ? 0 : -1;
}
