/*
 * translation: what the engine gives back for one source line, as every
 * later stage (line cache, worker pool, MPI link, output) holds it.
 */
#ifndef LM_TRANSLATION_H
#define LM_TRANSLATION_H

#include "base/util.h"

/* One line's result: its hypotheses, detokenised, best first. */
typedef struct {
    char **texts;
    float *scores;  /* as lm_hypothesis.score; after augmentation's rescoring, the length-normalised model score;
                     * a scored pair (score.h): scores[0], the summed log-probability of its n_tokens labels */
    int *sample;    /* NULL, or each hypothesis's index among the search's (augmentation dropped some) */
    int n_hyps;
    int n_tokens;   /* target tokens generated over all hypotheses */
} lm_translation;

void lm_translation_free(lm_translation *tr);
/* A deep copy into dst (overwritten); -1 when out of memory, dst then empty. */
int  lm_translation_copy(lm_translation *dst, const lm_translation *src);

#endif
