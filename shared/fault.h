/* fault: failure injection for crash tests.
 *
 * BW_FAULT_AT="<step>" (or "<step>:<n>" for the n-th time the step is reached) makes the
 * process abort() at that named step, as a crash would: no flush, no commit, no cleanup.
 * BW_FAULT_FAIL="<step>" makes bw_fault_fails(step) answer 1 every time that step is reached:
 * a call the code cannot make fail on demand (e.g. librdkafka's seek) reports a failure.
 * Unset (production), both are a cheap comparison. */
#ifndef BW_FAULT_H
#define BW_FAULT_H

/* Reads BW_FAULT_AT once. Returns -1 when it is malformed (main treats it as bad config). */
int bw_fault_init(void);

/* Aborts the process if step is the armed one and its count is reached. */
void bw_fault_point(const char *step);

/* 1 when BW_FAULT_FAIL names step (the caller then takes its failure path), else 0. */
int bw_fault_fails(const char *step);

#endif
