/* bson_buf: a minimal BSON document writer for the hot paths of the workers.
 *
 * libbson's bson_append_*() costs about 400 instructions per member (measured with callgrind
 * on libbson 1.23: varargs copy, length re-encoding, growth by realloc of the whole tree),
 * which made building the usage worker's update documents and $in filters a tenth of its
 * work. This writer appends into one growable buffer (hard maximum set at init), patches a
 * nested document's length when it ends, and hands the result to the driver as a read-only
 * bson_t over its own bytes (bw_bson_buf_view), so nothing is copied on the way.
 *
 * The bytes are exactly what libbson writes for the same calls (unit test: test_bson_buf).
 * Keys are C strings without NUL (as BSON requires); members of an array get the keys
 * "0", "1", ... when key is NULL. A failure (out of memory, the maximum, nesting deeper
 * than BW_BSON_BUF_DEPTH, an end without a begin) is sticky: every later call does nothing
 * and bw_bson_buf_view() returns -1, so a builder checks once at the end.
 *
 * Not thread-safe; one writer per buffer. Ownership: the buffer owns its bytes; a view
 * borrows them until the next write, reset or cleanup. */
#ifndef BW_BSON_BUF_H
#define BW_BSON_BUF_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#define BW_BSON_BUF_DEPTH 16
#define BW_BSON_BUF_MAX (16 * 1024 * 1024) /* MongoDB's largest document */

struct bw_bson_buf {
	uint8_t *p;                        /* owned */
	size_t len, cap, max;
	size_t open[BW_BSON_BUF_DEPTH];    /* start of each document being written */
	uint32_t next_index[BW_BSON_BUF_DEPTH]; /* next array key at that depth */
	int depth;                         /* open documents, the top one included */
	int failed;
};

/* Starts an empty top-level document; max bounds the document's size in bytes. */
void bw_bson_buf_init(struct bw_bson_buf *b, size_t max);
/* Frees the bytes. NULL-safe. */
void bw_bson_buf_cleanup(struct bw_bson_buf *b);
/* Starts a new empty top-level document, keeping the allocation. */
void bw_bson_buf_reset(struct bw_bson_buf *b);

void bw_bson_buf_utf8(struct bw_bson_buf *b, const char *key, const char *s);
void bw_bson_buf_int64(struct bw_bson_buf *b, const char *key, int64_t v);
void bw_bson_buf_int32(struct bw_bson_buf *b, const char *key, int32_t v);
void bw_bson_buf_bool(struct bw_bson_buf *b, const char *key, int v);
void bw_bson_buf_date_time(struct bw_bson_buf *b, const char *key, int64_t ms);
/* Appends doc as an embedded document (its bytes copied once). */
void bw_bson_buf_document(struct bw_bson_buf *b, const char *key, const bson_t *doc);
/* Appends the members of doc to the open document (not an array: the keys are doc's), its
 * bytes copied once: for a part built by a libbson-based helper. */
void bw_bson_buf_members(struct bw_bson_buf *b, const bson_t *doc);
/* Nested document or array, closed by bw_bson_buf_end(). */
void bw_bson_buf_begin_document(struct bw_bson_buf *b, const char *key);
void bw_bson_buf_begin_array(struct bw_bson_buf *b, const char *key);
void bw_bson_buf_end(struct bw_bson_buf *b);

/* Closes the top-level document (every nested one must be ended) and sets *view to a
 * read-only bson_t over the buffer's bytes. Returns 0, or -1 when a write failed. */
int bw_bson_buf_view(struct bw_bson_buf *b, bson_t *view);

#endif
