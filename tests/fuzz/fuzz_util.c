/* fuzz_util: see fuzz_util.h. */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char scratch[64];

static void remove_scratch(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", scratch);
}

const char *lm_fuzz_dir(void) {
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/lyricmt-fuzz-XXXXXX");
        if (!mkdtemp(scratch)) { perror("mkdtemp"); abort(); }
        atexit(remove_scratch);
    }
    return scratch;
}

const char *lm_fuzz_write(const char *name, const void *data, size_t size) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", lm_fuzz_dir(), name);
    if (!data) { unlink(path); return path; }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) { perror(path); abort(); }
    return path;
}

void lm_fuzz_copy_fixture(const char *fixture, const char *name) {
    char from[256];
    snprintf(from, sizeof from, "tests/fixtures/%s/%s", fixture, name);
    FILE *f = fopen(from, "rb");
    if (!f) { perror(from); abort(); }
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    lm_fuzz_write(name, buf, n);
}
