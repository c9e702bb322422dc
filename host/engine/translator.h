/*
 * translator: text lines in, translated lines out. Owns the model, the
 * tokenizer and a backend, and turns engine settings into search options.
 * Lines are grouped into length-sorted batches under the configured
 * sentence and token limits, or, with in-flight batching, start as earlier
 * ones finish under the same limits; results come back in input order.
 */
#ifndef LM_TRANSLATOR_H
#define LM_TRANSLATOR_H

#include "backend/backend.h"
#include "cpu/cpu_weights.h"
#include "config/engine_config.h"

#include <stdio.h>
#include "engine/search.h"
#include "engine/translation.h"
#include "engine/worker_pool.h"
#include "model/tokenizer.h"

typedef struct lm_translator lm_translator;

/* How one batch runs on a worker's backend: the search, unless a job that
 * uses the model otherwise sets its own (`lyricmt score` force-decodes
 * pairs, score.h; augmentation rescores what the search found, augment.h).
 * Such a batch has the backend to itself, so it runs without in-flight
 * batching. */
typedef struct {
    int (*run)(void *ctx, lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err); /* NULL: the search */
    void *ctx;
    int rows;  /* backend rows a line takes, for the batch budget; 0: the search's num_beams */
} lm_batch_runner;

struct lm_translator {
    lm_model model;
    lm_tokenizer *tok;
    lm_cpu_weights cpu_weights; /* the CPU backend's prepared weights (empty for CUDA) */
    lm_backend *backend;        /* backends[0] */
    lm_backend **backends;      /* one per worker: a GPU each, or a share of the CPU threads */
    int n_backends;
    int worker_threads;         /* CPU threads of each worker */
    struct lm_pool *pool;       /* the workers' threads, when more than the calling thread runs batches */
    lm_engine_config engine;
    lm_convention convention;
    char src_lang[16], tgt_lang[16];
    int src_prefix_id;        /* first encoder token: __src__ (m2m100) or __tgt__ (small100) */
    lm_search_opts search;
    lm_batch_runner runner;   /* set before the first run */
    lm_err failed;            /* set when a worker failed: every later run fails with it */
    /* the GPU's batch limits' inputs (lm_budget_for_memory), measured once
     * when the backends are opened: the least free memory over the devices */
    bool gpu_sized;
    size_t gpu_free, gpu_row_bytes, gpu_sample_row_bytes, gpu_token_bytes;
};

/* Lets a long run report progress and stop early. */
typedef struct {
    const volatile int *cancel;                       /* polled between batches */
    void (*on_batch)(void *ctx, int lines, long tokens); /* after each batch */
    void *ctx;
} lm_run_hooks;

/* 0 when open; -1 when the model cannot be used; -2 when the settings do not
 * fit the model (max_length past its positions, more returned sequences
 * than beams, a GPU precision on the CPU): a usage error. */
int  lm_translator_open(lm_translator *t, const char *model_dir, const lm_engine_config *engine, lm_err *err);
/* Applies engine settings to an open translator: decoding over the model's
 * defaults, languages and convention, batch limits, seed; what opening
 * checks of them is checked again. The settings that made the backends
 * (device, precision, threads, workers, devices, weights_from) cannot
 * change. 0; -1 (an unknown language); -2 (settings that do not fit the
 * model or the backends: a usage error), t unchanged then. */
int  lm_translator_configure(lm_translator *t, const lm_engine_config *engine, lm_err *err);
/* Readies the calling thread to run backend w's batches: OpenMP's thread
 * count is per calling thread in libgomp, and CUDA's current device too.
 * Worker threads do it before their first batch; a caller that runs batches
 * on another thread than the one that opened t calls it first. */
int  lm_translator_bind_thread(lm_translator *t, int w, lm_err *err);
/* Starts the worker pool (worker_pool.h) if it is not running, with a thread
 * per backend (local) or none (batches are then only taken from outside).
 * A translator with several backends starts one at its first run; the MPI
 * link starts one on a single backend too, and rank 0 may keep its own
 * backends idle (mpi.rank0_translates false). */
int  lm_translator_start_pool(lm_translator *t, bool local, lm_err *err);
/* CPU threads to use for a request (0 = all cores), capped at twice the cores. */
int  lm_translator_threads(int asked);
void lm_translator_close(lm_translator *t);
/* On the GPU, the precision and batch limits the start chose (from its free
 * memory) or was given (`asked`, marked "(set)"), one line; nothing on the CPU. */
void lm_translator_describe_limits(const lm_translator *t, const lm_engine_config *asked, FILE *f);

/* Source token ids for one line: prefix + pieces + </s>, cut to the model's
 * positions if too long (*truncated says so). *ids is malloc'd. */
int lm_translator_source_ids(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err);

/* Translates n tokenised sources in length-sorted batches (or in flight)
 * under the configured sentence and token limits; out[i] receives source i's result.
 * Returns 0 when all are done, 1 when hooks->cancel stopped it (the finished
 * ones have out[i].texts set), -1 on error. hooks may be NULL. */
int lm_translator_run(lm_translator *t, int32_t *const *ids, const int *lens, int n, lm_translation *out,
                      const lm_run_hooks *hooks, lm_err *err);

/* The search's batch: b's sources searched on be with options o (NULL:
 * t->search), each result detokenised into b->out (what a runner that adds to
 * the search calls first). found, when not NULL, keeps the search's results
 * (b->n of them; the caller frees each with lm_search_result_free). */
int lm_translator_search_batch(lm_translator *t, lm_backend *be, lm_batch *b, const lm_search_opts *o, lm_search_result *found,
                               lm_err *err);

/* Convenience for tests and small callers: translates n text lines; out[i]
 * receives the best hypothesis (malloc'd). Empty or whitespace-only lines
 * give "" without running the model. */
int lm_translator_translate(lm_translator *t, const char *const *lines, int n, char **out, lm_err *err);

#endif
