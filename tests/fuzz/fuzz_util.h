/*
 * fuzz_util: what the libFuzzer targets share. Every target hands its input
 * to the same public function the program calls, so inputs that are files
 * to the program are written to files in a scratch directory first.
 */
#ifndef LM_FUZZ_UTIL_H
#define LM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* This process's scratch directory (made on first use, removed at exit). */
const char *lm_fuzz_dir(void);

/* Writes bytes to lm_fuzz_dir()/name (or removes it when data is NULL) and
 * returns the full path in a static buffer. */
const char *lm_fuzz_write(const char *name, const void *data, size_t size);

/* Copies tests/fixtures/<fixture>/<name> into the scratch directory (the
 * targets run from the repository root). */
void lm_fuzz_copy_fixture(const char *fixture, const char *name);

#endif
