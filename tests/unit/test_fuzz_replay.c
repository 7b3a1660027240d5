/* Replays every fuzz target's inputs in the normal build: the seeds listed in
 * tests/fuzz/seeds.txt and every crash input kept under tests/fuzz/regressions/<target>/
 * go through the same target code (tests/fuzz/fuzz_<target>.c, its properties included)
 * that libFuzzer runs in the clang build. A crash or failed property fails the target's
 * test; BW_FUZZ_REPLAY_VERBOSE=1 names each input before it runs. */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testkit.h"

int bw_fuzz_stripe_sig(const uint8_t *data, size_t size);
int bw_fuzz_usage_event(const uint8_t *data, size_t size);
int bw_fuzz_stripe_event(const uint8_t *data, size_t size);
int bw_fuzz_sync_tick(const uint8_t *data, size_t size);

static const struct {
	const char *name;
	int (*run)(const uint8_t *, size_t);
} targets[] = {
	{ "stripe_sig", bw_fuzz_stripe_sig },
	{ "usage_event", bw_fuzz_usage_event },
	{ "stripe_event", bw_fuzz_stripe_event },
	{ "sync_tick", bw_fuzz_sync_tick },
};

/* Runs every regular file of dir through run; returns how many (0 for a missing dir). */
static int replay_dir(const char *dir, int (*run)(const uint8_t *, size_t))
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int count = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char path[1024];
		struct stat st;
		unsigned char *buf;
		FILE *f;
		size_t size;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		/* Exactly the file's size, as libFuzzer hands an input over, so ASan sees any
		 * read past its end. */
		size = (size_t)st.st_size;
		buf = malloc(size ? size : 1);
		ck_assert_ptr_nonnull(buf);
		f = fopen(path, "rb");
		ck_assert_msg(f != NULL, "cannot open %s", path);
		ck_assert(fread(buf, 1, size, f) == size);
		fclose(f);
		if (getenv("BW_FUZZ_REPLAY_VERBOSE"))
			fprintf(stderr, "replay %s\n", path);
		run(buf, size);
		free(buf);
		count++;
	}
	closedir(d);
	return count;
}

START_TEST(replays_seeds_and_regressions)
{
	const char *name = targets[_i].name;
	char seeds_path[512], line[512], dir[1024];
	FILE *f;
	int seeds = 0, regressions;

	snprintf(seeds_path, sizeof(seeds_path), "%s/tests/fuzz/seeds.txt", BW_SOURCE_DIR);
	f = fopen(seeds_path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", seeds_path);
	/* Lines "<target> <dir>": the target name, blanks, the directory up to the end. */
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, " \t\r\n");
		char *rel = line + n + strspn(line + n, " \t");
		if (line[0] == '#' || n != strlen(name) || strncmp(line, name, n) != 0)
			continue;
		rel[strcspn(rel, " \t\r\n")] = '\0';
		snprintf(dir, sizeof(dir), "%s/%s", BW_SOURCE_DIR, rel);
		seeds += replay_dir(dir, targets[_i].run);
	}
	fclose(f);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/regressions/%s", BW_SOURCE_DIR, name);
	regressions = replay_dir(dir, targets[_i].run);
	printf("fuzz replay %s: %d seeds, %d regression cases\n", name, seeds, regressions);
	ck_assert_msg(seeds > 0, "%s: no seed inputs found via %s", name, seeds_path);
}
END_TEST

static Suite *fuzz_replay_suite(void)
{
	Suite *s = suite_create("fuzz_replay");
	TCase *tc = tcase_create("replay");

	tcase_add_loop_test(tc, replays_seeds_and_regressions, 0,
			    (int)(sizeof(targets) / sizeof(targets[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tk_run_suite(fuzz_replay_suite());
}
