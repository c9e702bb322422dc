/*
 * sched: which sentences decode together, and when.
 *
 * One budget rule for every batch (lm_budget): the bulk job's length-sorted
 * batches (translator.c) and the in-flight scheduler below both count a batch
 * as a padded one holds it, longest source x sentences x rows per sentence,
 * within max_tokens and at most max_sentences; a sentence over budget on its
 * own still runs, alone.
 *
 * The scheduler (lm_sched) runs under the search (search.c). Sentences
 * start in order. lm_search_run starts them all together; the
 * stream starts as many as its budget allows and, whenever sentences finish,
 * encodes the next ones and adds their rows to the running decode (reorder
 * with parent -1), so the batch stays full instead of draining. Both paths
 * run the same loop, and a sentence's result does not depend on its company.
 *
 * Ahead (backends whose encode_more is asynchronous, backend.h): the next
 * group is encoded once the rows have been reordered (lm_sched_prefetch)
 * and joins at the next step's admission, so that its encoder runs beside
 * the step between; its room is held for it meanwhile. A group that would
 * join an empty decode joins at once: there is no step to overlap.
 */
#ifndef LM_SCHED_H
#define LM_SCHED_H

#include "backend/backend.h"
#include "config/engine_config.h"

typedef struct {
    int max_sentences;
    long max_tokens; /* longest source x sentences x rows */
    long rows;       /* rows a sentence takes: its beams (1 when force-decoding) */
} lm_budget;

/* Whether a sentence of len tokens joins `count` others whose longest has
 * *longest tokens; when it does, *longest takes it into account. The first
 * sentence is always admitted. */
bool lm_budget_admits(const lm_budget *b, int count, int *longest, int len);
/* The most sentences the budget ever admits together (shortest: the
 * shortest source there is), at least 1. */
int lm_budget_most(const lm_budget *b, int shortest);

/* The GPU's batch limits (config "auto", lm_engine_config_resolve) from its
 * free memory: a decoder row takes row_bytes (its KV cache for max_length
 * tokens, logits, work rows), a source token token_bytes (encoder state,
 * cross-attention keys and values, work rows), both as the backend lays them
 * out (lm_cuda_backend_memory). Half of what is free is spent; rows stop at
 * LM_GPU_ROWS, where a decoder step's products have long turned
 * compute-bound and more rows only add latency and host work per step
 * (benchmarks/step_model.c). */
#define LM_GPU_ROWS 1280
#define LM_GPU_SOURCE_TOKENS 64 /* the longest source a batch is sized for, on average (tokens counted x beams) */
void lm_budget_for_memory(size_t free_bytes, size_t row_bytes, size_t token_bytes, int beams, lm_batch_limits *out);

typedef struct {
    lm_backend *be;
    int beams, max_length;      /* rows a sentence takes; the most tokens a row is fed */
    const int32_t *tokens, *lens;
    size_t *src;                /* (n) where sentence s starts in tokens */
    int n, next;                /* sentences; the next one to start */
    bool limited;               /* in flight, under `limit`; otherwise everything at once */
    bool ahead;                 /* in flight, on a backend with encode_async */
    int n_pending;              /* encoded ahead, joining at the next admission: next - n_pending .. next - 1 */
    lm_budget limit;
    const volatile int *cancel; /* when set, no more sentences start */
    int cap;                    /* sentences live at once */
    int32_t *live;              /* (cap) live sentences (with rows), in the order they started */
    int n_live;
    bool encoded;               /* the first group went through encode */
} lm_sched;

/* n sentences, tokens back to back (lens[s] each), of `beams` rows each,
 * decoded for up to max_length tokens. limit NULL: all start at once;
 * otherwise in flight under limit (its rows are taken from beams). */
int  lm_sched_init(lm_sched *q, lm_backend *be, int beams, int max_length, const int32_t *tokens, const int32_t *lens, int n,
                   const lm_budget *limit, const volatile int *cancel, lm_err *err);
void lm_sched_free(lm_sched *q);
/* The sentences that start now, *first .. *first + *count - 1, for the
 * caller to give rows: those encoded ahead, and (not ahead, or when nothing
 * runs) the next ones the budget admits beside the live ones (with a feed,
 * once an eighth of the room is free), encoded here. */
int  lm_sched_admit(lm_sched *q, int *first, int *count, lm_err *err);
/* Ahead only (otherwise nothing): encodes the next sentences the budget
 * admits, to start at the next lm_sched_admit. Called once the live rows
 * are reordered, as encode_more drops sentences no row refers to. */
int  lm_sched_prefetch(lm_sched *q, lm_err *err);
/* Sentence s has its result: it leaves the live list. */
void lm_sched_done(lm_sched *q, int s);
/* Backend rows to start decoding with: the first group's rows, then room up
 * to `cap_rows` (held by copies of the last row and dropped at once). */
int  lm_sched_start_rows(lm_sched *q, int32_t *sent, int rows, int cap_rows, int32_t *parent, lm_err *err);

#endif
