/* Fuzz target: the resume journal (lm_journal_load, then lm_journal_compare
 * as a resuming job does, here against itself). */
#include "fuzz_util.h"
#include "job/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_journal j;
    lm_err err;
    if (lm_journal_load(lm_fuzz_write("out.journal", data, size), &j, &err) == 1) {
        (void)lm_journal_compare(&j, &j, &err);
        lm_journal_free(&j);
    }
    return 0;
}
