/* testing: see testing.h. */
#include "testing.h"
#include "base/util.h"

#include <stdlib.h>

int lm_test_passed, lm_test_failed;

int lm_test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, lm_test_passed, lm_test_failed);
    return lm_test_failed ? 1 : 0;
}

char *lm_test_read(const char *path) {
    char *s;
    lm_err err;
    if (lm_read_file(path, 1u << 30, &s, NULL, &err) != 0) {
        fprintf(stderr, "cannot read fixture: %s\n", err.msg);
        exit(2);
    }
    return s;
}
