/* fuzz: what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each fuzz_<name>.c defines one entry point, BW_FUZZ_ENTRY: LLVMFuzzerTestOneInput in the
 * clang fuzz build (BW_FUZZ=ON), bw_fuzz_<name> in the normal build, where
 * tests/unit/test_fuzz_replay.c replays the committed seeds and every crash input kept under
 * tests/fuzz/regressions/<name>/ through the same code (so a fixed crash stays fixed under gcc).
 *
 * A target checks properties, not just "no crash": FUZZ_CHECK aborts with the failed
 * condition, which libFuzzer reports as a crash and saves the input. */
#ifndef BW_FUZZ_H
#define BW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef BW_FUZZ_ENTRY
#define BW_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int BW_FUZZ_ENTRY(const uint8_t *data, size_t size);

/* The message size limit the targets pass to the parsers: below tests/fuzz/run's -max_len
 * (16384), so the fuzzer also reaches the "too big" path. */
#define BW_FUZZ_MAX_MESSAGE 12288

static inline void fuzz_fail(const char *file, int line, const char *cond)
{
	fprintf(stderr, "%s:%d: fuzz property failed: %s\n", file, line, cond);
	abort();
}

#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))

/* A NUL-terminated copy of data[0..size) (free()), or abort on OOM: the targets need C
 * strings for the parsers that take them. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s != NULL);
	for (size_t i = 0; i < size; i++)
		s[i] = (char)data[i];
	s[size] = '\0';
	return s;
}

#endif
