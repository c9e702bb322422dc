/*
 * search: decoding strategies over any backend, shared by all backends.
 *
 * Greedy and beam search reproduce transformers' generate() (v4.5x+/v5
 * vectorised beam search; logits processors in its order: repetition
 * penalty, no-repeat n-gram, min length, forced BOS). Sampling (temperature,
 * top-k, top-p) uses its own seeded generator: reproducible run to run and
 * independent of batching, but not the same random stream as PyTorch.
 * Sentences that finish leave the batch; with lm_search_stream (in-flight
 * batching) the next sentences join it in their place.
 */
#ifndef LM_SEARCH_H
#define LM_SEARCH_H

#include "backend/backend.h"
#include "backend/logits.h"

typedef struct {
    int32_t *ids;   /* decoder start token first, </s> last if it finished */
    int n;
    float score;    /* beam: length-normalised log-prob; greedy/sampling: summed log-prob */
    /* With lm_search_opts.label_logprobs (sampling): the hypothesis scored as
     * `lyricmt score` scores the labels ids[1 .. n), plus </s> when it stopped at
     * max_length without one (the search then runs its row one step further):
     * each label's lm_label_logprob under the raw row that predicted it (the
     * forced language token's included), summed in label order in double, as
     * score.h sums a pair. n_labels counts them; 0 when not recorded. */
    double label_sum;
    int n_labels;
} lm_hypothesis;

typedef struct {
    lm_hypothesis *hyps; /* best first; num_return_sequences of them */
    int n_hyps;
} lm_search_result;

typedef struct {
    lm_gen_config gen;
    int decoder_start_id, eos_id, vocab_size;
    uint64_t seed;       /* sampling only */
    bool label_logprobs; /* sampling: record each hypothesis's label_sum (augmentation's rescoring reuses it) */
} lm_search_opts;

/* Translates n source sentences (tokens back to back, lens[i] each).
 * results must have room for n entries; free each with lm_search_result_free. */
int  lm_search_run(lm_backend *be, const lm_search_opts *opts, const int32_t *tokens, const int32_t *lens, int n,
                   lm_search_result *results, lm_err *err);
void lm_search_result_free(lm_search_result *r);

/* How lm_search_stream lets sentences in. */
typedef struct {
    int max_sentences;          /* live at once */
    long max_tokens;            /* longest live source x live sentences x num_beams, as a padded batch counts them */
    const volatile int *cancel; /* when set, no more sentences start; the running ones finish */
    /* Optional: called as sentence s finishes, with its result; it may take
     * the result over (then leave *r zeroed). Nonzero stops the search. */
    int (*on_done)(void *ctx, int s, lm_search_result *r, lm_err *err);
    void *ctx;
} lm_search_feed;

/* In-flight batching: as lm_search_run, but sentences start in order as room
 * frees under feed's budgets, each encoded and added to the running decode
 * (the backend needs encode_more), so the batch stays full. Results are the
 * same as lm_search_run's. Returns 0 when all are done, 1 when cancel stopped
 * it (sentences never started have no hypotheses), -1 on error. */
int lm_search_stream(lm_backend *be, const lm_search_opts *opts, const int32_t *tokens, const int32_t *lens, int n,
                     const lm_search_feed *feed, lm_search_result *results, lm_err *err);

#endif
