/* Fuzz target: a hypothesis/reference file as `lyricmt eval` reads it
 * (lm_lines_load; the first byte picks whether lines are right-stripped),
 * then chrF and BLEU (both tokenizers) of each line against the next. */
#include "fuzz_util.h"
#include "tools/lines.h"
#include "tools/metrics.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *path = lm_fuzz_write("lines.txt", data + 1, size - 1);
    lm_lines l;
    lm_err err;
    if (lm_lines_load(path, data[0] & 1, &l, &err) != 0) return 0;
    lm_chrf_stats c;
    lm_bleu_stats b[2];
    memset(&c, 0, sizeof c);
    memset(b, 0, sizeof b);
    for (int i = 0; i + 1 < l.n; i++) {
        size_t h = strlen(l.line[i]), r = strlen(l.line[i + 1]);
        lm_chrf_add(&c, l.line[i], h, l.line[i + 1], r, &err);
        lm_bleu_add(&b[0], LM_BLEU_TOK_CHAR, l.line[i], h, l.line[i + 1], r, &err);
        lm_bleu_add(&b[1], LM_BLEU_TOK_NONE, l.line[i], h, l.line[i + 1], r, &err);
    }
    lm_bleu_result res;
    double s = lm_chrf_score(&c);
    lm_bleu_score(&b[0], &res);
    lm_bleu_score(&b[1], &res);
    (void)s;
    lm_lines_free(&l);
    return 0;
}
