/*
 * backend: the small interface every compute backend implements (CPU here,
 * CUDA in cuda/). Search and scheduling drive a backend only through these
 * calls and never know which one runs.
 *
 * A batch is encoded once; decoding then runs "rows" (hypotheses: one per
 * sentence for greedy, num_beams per sentence for beam search) that each
 * attend to one sentence's encoder output. Between steps the search tells
 * the backend which rows survive and whom they continue (reorder), which is
 * how beams fork and how finished sentences leave the batch.
 *
 * In-flight batching (backends with encode_more): sentences encoded later
 * join a running decode as new rows (reorder with parent -1), so every row
 * sits at its own decoder position. A row's logits depend only on its own
 * tokens and its sentence, never on the other rows or where it sits, which
 * keeps outputs identical however sentences are grouped.
 */
#ifndef LM_BACKEND_H
#define LM_BACKEND_H

#include "backend/logits.h"
#include "model/model.h"

typedef struct lm_backend lm_backend;

/* What the search wants from each row after a step when the backend picks the
 * candidates itself (decode_step_topk), so that only rows x k numbers leave it.
 * Row r's edits are edits[edit_start[r] .. edit_start[r + 1]). */
typedef struct {
    int k;                    /* candidates per row */
    bool greedy;              /* k = 1, as lm_greedy_pick; otherwise as lm_logprob_topk */
    float penalty;            /* repetition penalty for LM_EDIT_PENALIZE */
    const lm_edit *edits;
    const int32_t *edit_start; /* (rows + 1) */
} lm_topk_request;

/* Sampling's step (decode_step_sample), for rows that each draw one token
 * from their edited row with its own random stream (backend/sample.h): the
 * warpers of transformers' sampling and the stream's position per row. */
typedef struct {
    float temperature;         /* > 0 */
    int top_k;                 /* 0: no cut */
    float top_p;               /* 0 .. 1; 1: no cut */
    float penalty;             /* repetition penalty for LM_EDIT_PENALIZE */
    const lm_edit *edits;
    const int32_t *edit_start; /* (rows + 1), as lm_topk_request's */
    const uint64_t *key;       /* (rows) each row's stream */
    uint64_t *draws;           /* (rows) draws taken so far; advanced by the draws this step takes */
    const bool *skip;          /* (rows) or NULL: rows whose token the search forces (no draw, no check) */
    /* (rows) or NULL: the token whose raw log-prob (decode_step_sample's
     * raw_logprobs) a skipped row reports: the forced token it is fed next,
     * whose log-prob augmentation's rescoring still counts. Read only for
     * skipped rows, and only when raw_logprobs is wanted. */
    const int32_t *skip_label;
} lm_sample_request;

typedef struct {
    const char *name;
    /* Encodes n sentences given back to back in tokens (lens[i] each, all > 0)
     * as sentences 0 .. n-1; computes and keeps their cross-attention keys and
     * values. Forgets any earlier batch. */
    int (*encode)(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err);
    /* Optional (NULL when the backend cannot admit sentences mid-decode): encodes
     * n more sentences and appends them as the next sentence numbers (after every
     * sentence encoded since encode), while decoding goes on. Sentences that no
     * current row refers to may be dropped here to reclaim their memory; rows
     * must not refer to them again. */
    int (*encode_more)(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err);
    /* encode_more returns before its work is done, which then runs beside
     * the decode steps that follow until a row refers to its sentences
     * (CUDA: on a stream of its own). The scheduler then encodes a group a
     * step before its rows join (sched.h), so that the encoder has a step to
     * overlap; for the others that step would only leave rows empty. */
    bool encode_async;
    /* Copies sentence i's encoder output (lens[i] x D) into out; for tests. */
    int (*encoder_output)(lm_backend *b, int sentence, float *out, lm_err *err);
    /* Starts decoding `rows` hypotheses; row r belongs to sentence row_sentence[r].
     * rows is also the most rows later reorders may ask for; max_steps the most
     * tokens any row will be fed. */
    int (*decode_start)(lm_backend *b, const int32_t *row_sentence, int rows, int max_steps, lm_err *err);
    /* Feeds tokens[r] to every row at the row's own next decoder position (the
     * tokens it was fed before, its parents' included) and writes logits (rows x V).
     * step counts the calls since decode_start (0-based, checked in order); when
     * every row started together it is every row's position.
     * logits may be NULL when the search needs none this step (a forced token): the
     * cache is still filled but the output projection is skipped. */
    int (*decode_step)(lm_backend *b, const int32_t *tokens, int step, float *logits, lm_err *err);
    /* Optional (NULL: the search allocates its own): host memory of at least
     * `bytes` for decode_step's whole rows, which the backend copies into
     * fastest (CUDA: pinned, so the copy is the GPU's DMA at full speed where
     * pageable memory goes through a bounce buffer). The backend keeps it,
     * grown as asked, until destroy. NULL with err when it cannot: the
     * search then uses memory of its own. */
    float *(*row_buffer)(lm_backend *b, size_t bytes, lm_err *err);
    /* Optional (NULL when absent): decode_step, then each row's candidates as
     * req asks, written to ids and vals (rows x k), for req->k <= topk_max. The
     * search uses it for greedy and beam search when k fits; otherwise, and for
     * sampling, it takes decode_step's whole rows. */
    int (*decode_step_topk)(lm_backend *b, const int32_t *tokens, int step, const lm_topk_request *req, int32_t *ids,
                            float *vals, lm_err *err);
    int topk_max;
    /* Optional: decode_step, then sampling's draw on every row req->skip leaves
     * in, as lm_sample_row (backend/sample.h) draws it: ids the tokens, logprobs
     * their log-probs under the edited rows (low bits may differ between
     * backends; the tokens and draws may not). Only these leave the backend,
     * not the rows. The search uses it for sampling when present; otherwise
     * it samples decode_step's whole rows itself.
     * raw_logprobs (rows), or NULL when not wanted: for a drawn row, the drawn
     * token's lm_label_logprob under the row as the model gave it, before the
     * edits (lm_sample_row's raw_logprob: what `lyricmt score` reads off that
     * row); for a skipped row, req->skip_label[r]'s (left as it was when
     * skip_label is NULL). Augmentation's rescoring sums these, so that it
     * needs no whole rows either. Low bits may differ between backends. */
    int (*decode_step_sample)(lm_backend *b, const int32_t *tokens, int step, const lm_sample_request *req, int32_t *ids,
                              float *logprobs, float *raw_logprobs, lm_err *err);
    /* Optional (NULL when absent): decode_step, then each row's
     * lm_label_logprob at token labels[r] into out[r], the rows themselves
     * never leaving the backend: what scoring by steps (lm_backend_decode_forced
     * without decode_forced) reads of a step. Low bits may differ from
     * lm_label_logprob over decode_step's rows. */
    int (*decode_step_labels)(lm_backend *b, const int32_t *tokens, int step, const int32_t *labels, float *out, lm_err *err);
    /* Optional (NULL when absent): teacher forcing, for scoring (score.h). Row r,
     * of sentence row_sentence[r], is fed its lens[r] tokens (tokens[at .. at +
     * lens[r]), at = the lens of the rows before it summed) at positions 0 ..
     * lens[r] - 1 all in one pass, and out[at + p] receives
     * lm_label_logprob(position p's logits, want[at + p]): the number decode_step
     * would give at that position, fed the same tokens one step at a time, bit
     * for bit where a row's numbers do not depend on its batch. No row is kept:
     * a running decode (decode_start's rows and caches) is left as it was. */
    int (*decode_forced)(lm_backend *b, const int32_t *row_sentence, const int32_t *tokens, const int32_t *lens, int rows,
                         const int32_t *want, float *out, lm_err *err);
    /* Keeps `rows` rows: new row r continues old row parent[r] and belongs to sentence row_sentence[r].
     * Parents may repeat, and rows may grow back up to the count given to decode_start
     * (beam search runs one row while a sentence's beams are still identical).
     * With encode_more, parent[r] = -1 starts a fresh row at position 0. */
    int (*reorder)(lm_backend *b, const int32_t *parent, const int32_t *row_sentence, int rows, lm_err *err);
    void (*destroy)(lm_backend *b);
} lm_backend_ops;

struct lm_backend {
    const lm_backend_ops *ops;
    const lm_model *model;
};

/* decode_forced where the backend has it; elsewhere the same numbers by
 * steps (backend.c): decode_start over the rows, one decode_step_labels (or
 * decode_step and lm_label_logprob over its rows) a position, each row
 * leaving once its tokens are fed, so that every backend scores through one
 * piece of code. The fallback starts a decode of its own: a
 * running one is lost (scoring, its caller, has none). */
int lm_backend_decode_forced(lm_backend *b, const int32_t *row_sentence, const int32_t *tokens, const int32_t *lens, int rows,
                             const int32_t *want, float *out, lm_err *err);

/* The checks of the contract above, shared by every backend (backend.c):
 * each returns 0, or -1 with the one message that call gets on any backend.
 * len (n_sent) holds each encoded sentence's length, 0 once dropped;
 * row_len each row's tokens fed so far. */
bool lm_backend_sentence_known(const int32_t *len, int n_sent, int s);
/* encode, encode_more: n sentences numbered from `first`; *total = their tokens. */
int lm_backend_check_sources(const lm_model_config *mc, int first, const int32_t *tokens, const int32_t *lens, int n, int *total,
                             lm_err *err);
/* encoder_output */
int lm_backend_check_sentence(const int32_t *len, int n_sent, int s, lm_err *err);
/* decode_start: the steps fit the model's positions; every row has a sentence. */
int lm_backend_check_steps(const lm_model_config *mc, int max_steps, lm_err *err);
int lm_backend_check_rows(const int32_t *len, int n_sent, const int32_t *row_sentence, int rows, lm_err *err);
/* decode_step, decode_step_topk: in order, tokens in the vocabulary, room left in every row. */
int lm_backend_check_feed(const lm_model_config *mc, const int32_t *tokens, int step, int steps_done, const int32_t *row_len, int rows,
                          int max_steps, lm_err *err);
/* decode_step_sample: the warpers in range, and with raw_logprobs wanted the
 * skipped rows' labels in the vocabulary (before any work is done). */
int lm_backend_check_sample(const lm_model_config *mc, const lm_sample_request *req, int rows, bool want_raw, lm_err *err);
int lm_backend_check_labels(const lm_model_config *mc, const int32_t *labels, int rows, lm_err *err);
/* decode_forced: every row has a sentence and 1 to max_positions tokens, every
 * token and wanted label is in the vocabulary; *total = the tokens. */
int lm_backend_check_forced(const lm_model_config *mc, const int32_t *len, int n_sent, const int32_t *row_sentence, const int32_t *tokens,
                            const int32_t *lens, int rows, const int32_t *want, int *total, lm_err *err);
/* reorder: old_rows running, max_rows given to decode_start. */
int lm_backend_check_reorder(const int32_t *parent, const int32_t *row_sentence, int rows, int old_rows, int max_rows, const int32_t *len,
                             int n_sent, lm_err *err);

/* The decoder's self-attention cache as slots of max_steps positions, one a
 * row, planned here once for every backend (backend.c). A reorder renumbers
 * slots rather than moving rows: a row that is its parent's first child keeps
 * the parent's slot, so a beam that does not fork costs no copy; the other
 * children (forks) and fresh rows (parent -1) take slots no row keeps. */
typedef struct {
    int32_t *slot;     /* (max_rows) row r's slot */
    int32_t *slot_new; /* (max_rows) reorder scratch */
    bool *kept;        /* (max_rows) reorder scratch: the slots a row keeps */
    int max_rows;
} lm_kv_slots;

/* decode_start: room for `rows` rows, row r in slot r (forgets earlier slots). */
int lm_kv_slots_start(lm_kv_slots *s, int rows, lm_err *err);
void lm_kv_slots_free(lm_kv_slots *s);
/* reorder, once lm_backend_check_reorder passed: new row r continues old row
 * parent[r] (-1: fresh), row_len holds the old rows' lengths. Updates
 * s->slot and returns the forks' count; fork f is a copy of positions
 * 0 .. len[f] - 1 (its parent's tokens, the rest never written) from slot
 * src[f] into slot dst[f], each array with room for `rows`. Every src is a
 * slot some row keeps and no dst is, so the copies run in place in any order. */
int lm_kv_slots_reorder(lm_kv_slots *s, const int32_t *parent, int rows, const int32_t *row_len, int32_t *src, int32_t *dst,
                        int32_t *len);

#endif
