/*
 * sample: sampling's draw from one row of logits, with transformers' warpers
 * in its order (temperature, top-k, top-p), and the random stream it draws
 * from.
 *
 * The draw is defined by a sorted list, as a full sort of the row gives it:
 * the tokens whose warped logit x / T is above -inf, highest first, ties to
 * the lower token; top-k keeps the first k and every later one tied with the
 * k-th; the rest is softmax, top-p and one uniform number, in double, in the
 * list's order. lm_sample_reference does exactly that (the sampler before the
 * fast path, kept for the tests). lm_sample_token builds the same list without
 * sorting the row: division by T > 0 is monotonic, so the k-th value and the
 * blocks worth reading are found on the raw row (a bounded heap over the
 * blocks that row_stats' block maxima leave in), only the tokens that survive
 * top-k are divided and sorted (a radix sort: linear also when top-k keeps
 * the whole row), and the same code then draws from the list. Same tokens,
 * bit for bit, at a cost linear in the vocabulary.
 *
 * The random stream is counter-based: a hypothesis has a key (its seed and
 * source) and its d-th draw is splitmix64's output at position d + 1 of that
 * key, a function of (key, d) alone. A kernel can draw row by row without
 * state or order between rows, and no draw depends on the batch: the CUDA
 * backend's kernel (kernels/sample.cu) draws the same tokens as this file,
 * with the arithmetic both take from sample_rules.h.
 */
#ifndef LM_SAMPLE_H
#define LM_SAMPLE_H

#include "backend/backend.h"
#include "backend/sample_rules.h"
#include "model/model_config.h"

/* Scratch of one thread's draws, grown to the row's needs. */
typedef struct {
    void *cand, *spare; /* the sorted list and the radix sort's other buffer */
    double *exps;
    float *heap;
    int cap;
    float *raw;         /* the edited tokens' values before the edits (lm_sample_row's raw_logprob) */
    int raw_cap;
} lm_sampler;

void lm_sampler_free(lm_sampler *s);

/* A token drawn from the edited row x (V values, no NaN or +inf) with the
 * stream (key, *draws); *draws advances when the draw takes a number (every
 * time but when no token's x / T is above -inf: then token 0, as before).
 * block_max: row_stats' block maxima of x. -1 when out of memory. */
int32_t lm_sample_token(const lm_gen_config *g, const float *x, int V, const float *block_max, uint64_t key, uint64_t *draws,
                        lm_sampler *s);

/* The same draw by a full sort of the row (qsort), as the sampler was before
 * the fast path: the tests' reference. -1 when out of memory. */
int32_t lm_sample_reference(const lm_gen_config *g, const float *x, int V, uint64_t key, uint64_t *draws);

/* Sampling's step on one row: applies the edits to x, refuses a row that
 * holds NaN or +inf or nothing above -inf after them (-1, as logits.h's
 * functions do; -2 when out of memory), draws a token and gives its log-prob
 * under the edited row before warping (as lm_log_softmax computes it).
 * raw_logprob, when not NULL, receives the token's lm_label_logprob under x as
 * it was given, before the edits (what `lyricmt score` reads off that row). */
int lm_sample_row(float *x, int V, const lm_edit *edits, int n_edits, const lm_gen_config *g, uint64_t key, uint64_t *draws,
                  lm_sampler *s, int32_t *token, float *logprob, float *raw_logprob);

/* Sampling's step on rows of logits (rows x V), as a backend's
 * decode_step_sample gives it (backend.h): lm_sample_row on every row that
 * req->skip leaves in, in parallel on n_samplers threads (at least 1), each
 * with its own of samplers[0 .. n_samplers). The CPU backend's sampling and the
 * search's own for backends without the op. raw_logprobs (rows, or NULL):
 * each drawn row's raw_logprob as lm_sample_row gives it, and each skipped
 * row's lm_label_logprob of req->skip_label[r] when skip_label is given
 * (backend.h). 0; or -1 with lm_bad_logits' message for the first refused
 * row, or out of memory. */
int lm_sample_rows(float *logits, int rows, int V, int step, const lm_sample_request *req, lm_sampler *samplers, int n_samplers,
                   int32_t *ids, float *logprobs, float *raw_logprobs, lm_err *err);

#endif
