/*
 * testing: a minimal harness. CHECK records a failure and carries on;
 * each test binary prints "N passed, N failed" and exits non-zero on any
 * failure. tests/run_all.sh adds the binaries' counts into one line.
 */
#ifndef LM_TESTING_H
#define LM_TESTING_H

#include <stdio.h>

extern int lm_test_passed, lm_test_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            lm_test_passed++;                                              \
        } else {                                                           \
            lm_test_failed++;                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* Prints the summary line and returns the exit status for main. */
int lm_test_summary(const char *name);

/* Reads a whole file (fixtures); aborts the test binary if it cannot. */
char *lm_test_read(const char *path);

#endif
