/* translation: see translation.h. */
#include "engine/translation.h"

#include <stdlib.h>
#include <string.h>

void lm_translation_free(lm_translation *tr) {
    for (int i = 0; i < tr->n_hyps; i++) free(tr->texts[i]);
    free(tr->texts);
    free(tr->scores);
    free(tr->sample);
    memset(tr, 0, sizeof *tr);
}

int lm_translation_copy(lm_translation *dst, const lm_translation *src) {
    memset(dst, 0, sizeof *dst);
    dst->texts = calloc((size_t)src->n_hyps + 1, sizeof *dst->texts);
    dst->scores = calloc((size_t)src->n_hyps + 1, sizeof *dst->scores);
    if (!dst->texts || !dst->scores) { lm_translation_free(dst); return -1; }
    if (src->sample) {
        if (!(dst->sample = calloc((size_t)src->n_hyps + 1, sizeof *dst->sample))) { lm_translation_free(dst); return -1; }
        memcpy(dst->sample, src->sample, (size_t)src->n_hyps * sizeof *dst->sample);
    }
    dst->n_hyps = src->n_hyps;
    dst->n_tokens = src->n_tokens;
    for (int h = 0; h < src->n_hyps; h++) {
        dst->scores[h] = src->scores[h];
        if (!(dst->texts[h] = strdup(src->texts[h]))) { lm_translation_free(dst); return -1; }
    }
    return 0;
}
