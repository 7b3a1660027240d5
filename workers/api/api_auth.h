/* api_auth: the API keys of bw-api (BW_API_KEYS, comma-separated so a key can be rotated)
 * and the check of an "Authorization: Bearer <key>" header.
 *
 * Only SHA-256 digests of the keys are kept; a presented key is hashed and compared with
 * every configured digest by CRYPTO_memcmp (equal lengths, constant time, no early exit),
 * so neither a key's content nor its length leaks through timing. */
#ifndef BW_API_AUTH_H
#define BW_API_AUTH_H

#include <stddef.h>

struct bw_api_keys;

/* Parses list. NULL with problem filled (naming the item's position, never its text) when an
 * item is empty, shorter than 16 bytes, or holds whitespace or non-ASCII bytes. */
struct bw_api_keys *bw_api_keys_new(const char *list, char *problem, size_t problem_len);

/* 1 when header is "Bearer <key>" with a configured key, else 0 (header may be NULL). */
int bw_api_keys_check(const struct bw_api_keys *keys, const char *header);

void bw_api_keys_free(struct bw_api_keys *keys);

#endif
