/*
 * augment: turning sampled translations into synthetic parallel data.
 * Applied to each line's hypotheses right after the search, in the batch
 * they were found in:
 *   --dedup-hypotheses  a hypothesis whose text repeats an earlier one of
 *                       the same line is dropped (sampling repeats itself);
 *   --min-score X       every kept hypothesis is force-decoded as the pair
 *                       (source line, hypothesis text), exactly as
 *                       `lyricmt score` scores it (score.h), and dropped when
 *                       its length-normalised score is below X;
 *   --output-format pairs  also rescored that way, so that the corpus carries
 *                       the scores `lyricmt score` would give it.
 * A rescored hypothesis's score is that normalised model score instead of the
 * search's own (which gives a forced language token log-prob 0 and, in beam
 * search, divides by the length differently). Each kept hypothesis keeps its
 * index among the search's (its sample index).
 */
#ifndef LM_AUGMENT_H
#define LM_AUGMENT_H

#include "engine/translator.h"

/* Whether the engine settings ask for any of it; for the rescoring. */
bool lm_augment_wanted(const lm_engine_config *e);
bool lm_augment_rescores(const lm_engine_config *e);

/* Applies it to batch b's translations (b->out, found by the search for
 * b's sources); rescoring runs on be (the worker's backend). found: the
 * search's results for b (NULL: none kept). A hypothesis whose tokens are the
 * labels `lyricmt score` gives its text, and whose label_sum the search
 * recorded, takes that sum: the same rows, so the same number. Every other
 * one is force-decoded, its source encoded again. */
int lm_augment_batch(lm_translator *t, lm_backend *be, lm_batch *b, const lm_search_result *found, lm_err *err);

/* Makes t's batches the search followed by lm_augment_batch. */
void lm_augment_attach(lm_translator *t);

#endif
