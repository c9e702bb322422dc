/*
 * logits: what decoding does to one row of logits, shared by every backend.
 *
 * transformers' logits processors (repetition penalty, no-repeat n-gram, min
 * length) touch only a few tokens of a 128k row, so they are expressed as a
 * short list of edits, and beam search never needs the whole processed row:
 * only each row's best 2 x num_beams tokens. lm_logprob_topk reads a row once
 * (max, sum of exponentials and block maxima: row_stats.h), then only the few
 * blocks whose max could beat the k-th candidate, and writes nothing; it is
 * the CPU reference for the CUDA kernel that does the same on the device.
 */
#ifndef LM_LOGITS_H
#define LM_LOGITS_H

#include "backend/logit_rules.h"
#include "model/model_config.h"

/* Upper bound on the edits of a row whose sequence has cur_len tokens. */
#define LM_MAX_EDITS(cur_len) (2 * (cur_len) + 1)

/* The edits transformers' processors make to a row, in their order, given the
 * row's sequence so far (seq, cur_len tokens). Forced BOS is not an edit: the
 * search handles a forced step without logits. Returns the number written. */
int lm_logits_edits(const lm_gen_config *g, int eos_id, const int32_t *seq, int cur_len, lm_edit *out);

/* Applies edits, in order, to a whole row of scores. */
void lm_logits_apply(float *scores, const lm_edit *edits, int n_edits, float penalty);

/* NaN rows: both functions below, and the CUDA kernel that mirrors them,
 * refuse (return -1) a row holding a NaN or +inf logit or no finite logit,
 * and greedy a row whose every token is banned; the search then fails the
 * batch with lm_bad_logits. -inf logits are fine (probability 0). */

/* The k best tokens of log_softmax(x) after the edits, best first, ties to the
 * lower token (as a scan over the row would find them). vals are bit-identical
 * to lm_log_softmax followed by lm_logits_apply. 0, or -1 for a refused row. */
int lm_logprob_topk(const float *x, int V, const lm_edit *edits, int n_edits, float penalty, int k, int32_t *ids,
                    float *vals);

/* Greedy's pick: the best token of the edited raw logits (ties to the lower
 * token) and its log-prob under the edited row. Applies the edits to x.
 * 0, or -1 for a refused row. */
int lm_greedy_pick(float *x, int V, const lm_edit *edits, int n_edits, float penalty, int32_t *id, float *logprob);

/* The error for a refused row (always returns -1). */
int lm_bad_logits(lm_err *err, int step, int row);

/* Inserts (id, val) into a ranked list of at most k (val descending, then id
 * ascending); *have counts the entries. */
void lm_rank_insert(int32_t *ids, float *vals, int *have, int k, int32_t id, float val);

/* log_softmax of one row, in place. */
void lm_log_softmax(float *x, int n);

/* The log-probability of `label` under one raw row of logits (no edits), as
 * lm_log_softmax computes it: x[label] - max - logf(sum of exp(x - max)) in
 * float, from row_stats' one pass. What `lyricmt score` sums per label
 * (score.h), wherever the row was computed: the same row gives the same
 * number. NaN when the row holds a NaN or +inf or nothing above -inf. */
float lm_label_logprob(const float *x, int V, int32_t label);
/* That arithmetic given the row's max and sum of exp(x - max) (row_stats.h):
 * x_label - max - logf(sum), in float. */
float lm_logprob_of(float x_label, float max, float sum);

#endif
