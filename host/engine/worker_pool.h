/*
 * worker_pool: model workers that share one queue of batches, so whichever
 * worker is free takes the next batch and a slow device never holds the
 * others back (CTranslate2's replica pool, without its futures).
 *
 * Each worker is a thread that owns one backend: its setup callback runs on
 * that thread first (OpenMP thread count, CUDA device), then it takes
 * batches until the pool is closed. Batches come back through one "done"
 * list in the order they finish; the caller puts results where they belong,
 * which is how input order survives. Other consumers than the threads (the
 * MPI link on rank 0 hands batches to other machines) take batches with
 * lm_pool_take(..., false) and give them back with lm_pool_finish.
 */
#ifndef LM_WORKER_POOL_H
#define LM_WORKER_POOL_H

#include "engine/translation.h"

#include <pthread.h>

/* One length-sorted batch: sources in, translations out. */
typedef struct lm_batch {
    int32_t *tokens;     /* sources back to back */
    int32_t *lens;       /* (n) */
    int *index;          /* (n) caller's position of each source */
    int n;
    lm_translation *out; /* (n), filled by the worker */
    long tokens_out;     /* target tokens generated */
    int rc;              /* 0 done, 1 not run (cancelled), -1 failed: err says why */
    lm_err err;
    struct lm_batch *next;
} lm_batch;

lm_batch *lm_batch_new(int n, int total_tokens, lm_err *err);
void lm_batch_free(lm_batch *b);

/* Runs batch b on worker w (its backend); sets b->rc and b->err. */
typedef void (*lm_pool_run_fn)(void *ctx, int w, lm_batch *b);
/* Runs once on worker w's thread before its first batch; non-zero stops it. */
typedef int (*lm_pool_setup_fn)(void *ctx, int w, lm_err *err);

typedef struct lm_pool lm_pool;

/* n_workers threads (0 is valid: batches are then only taken from outside). */
lm_pool *lm_pool_create(int n_workers, lm_pool_setup_fn setup, lm_pool_run_fn run, void *ctx, lm_err *err);
/* Closes the queue, joins the threads; batches still queued or done are freed. */
void lm_pool_free(lm_pool *p);

/* Polled by the workers before each batch: a batch taken after it is set
 * comes back with rc 1, not run. */
void lm_pool_set_cancel(lm_pool *p, const volatile int *cancel);
bool lm_pool_cancelled(lm_pool *p);

void lm_pool_submit(lm_pool *p, lm_batch *b);
/* The next queued batch, or NULL: when the pool is closed, or at once when
 * the queue is empty and wait is false. */
lm_batch *lm_pool_take(lm_pool *p, bool wait);
/* Hands a taken batch back as finished (rc set). */
void lm_pool_finish(lm_pool *p, lm_batch *b);
/* A finished batch, oldest first, or NULL when none (wait false). With wait,
 * blocks until one finishes. */
lm_batch *lm_pool_collect(lm_pool *p, bool wait);
/* A worker whose setup failed: -1 with its error; 0 while all are well. */
int lm_pool_error(lm_pool *p, lm_err *err);

int lm_pool_workers(const lm_pool *p);
/* Batches worker w has run so far (for the job's summary). */
long lm_pool_batches_run(lm_pool *p, int w);

#endif
