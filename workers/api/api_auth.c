/* api_auth: see api_auth.h. */
#include "api_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIN_KEY_LEN 16
#define MAX_KEYS 16

struct bw_api_keys {
	size_t n;
	unsigned char digest[MAX_KEYS][SHA256_DIGEST_LENGTH];
};

struct bw_api_keys *bw_api_keys_new(const char *list, char *problem, size_t problem_len)
{
	struct bw_api_keys *keys = calloc(1, sizeof(*keys));
	const char *s = list;

	if (!keys) {
		snprintf(problem, problem_len, "BW_API_KEYS: out of memory");
		return NULL;
	}
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		if (keys->n == MAX_KEYS) {
			snprintf(problem, problem_len, "BW_API_KEYS: more than %d keys", MAX_KEYS);
			goto fail;
		}
		if (len < MIN_KEY_LEN) {
			snprintf(problem, problem_len,
				 "BW_API_KEYS: item %zu is shorter than %d characters", keys->n + 1,
				 MIN_KEY_LEN);
			goto fail;
		}
		for (size_t k = 0; k < len; k++)
			if ((unsigned char)s[k] <= 0x20 || (unsigned char)s[k] >= 0x7f) {
				snprintf(problem, problem_len,
					 "BW_API_KEYS: item %zu holds whitespace or non-ASCII bytes",
					 keys->n + 1);
				goto fail;
			}
		SHA256((const unsigned char *)s, len, keys->digest[keys->n++]);
		if (!comma)
			return keys;
		s = comma + 1;
	}
fail:
	free(keys);
	return NULL;
}

int bw_api_keys_check(const struct bw_api_keys *keys, const char *header)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	const char *token;
	int match = 0;

	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return 0;
	token = header + 7;
	while (*token == ' ')
		token++;
	if (!*token)
		return 0;
	SHA256((const unsigned char *)token, strlen(token), digest);
	/* Every key is compared, whichever matches. */
	for (size_t i = 0; i < keys->n; i++)
		match |= CRYPTO_memcmp(digest, keys->digest[i], sizeof(digest)) == 0;
	return match;
}

void bw_api_keys_free(struct bw_api_keys *keys)
{
	free(keys);
}
