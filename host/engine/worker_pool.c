/* worker_pool: see worker_pool.h. */
#include "engine/worker_pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    lm_batch *head, *tail;
} batch_list;

struct lm_pool {
    pthread_mutex_t lock;
    pthread_cond_t queued, finished;
    batch_list queue, done;
    bool closed;
    const volatile int *cancel;
    lm_pool_setup_fn setup;
    lm_pool_run_fn run;
    void *ctx;
    int n_workers, started;
    pthread_t *threads;
    long *ran;                 /* batches each worker ran */
    bool setup_failed;
    lm_err setup_err;
};

typedef struct {
    lm_pool *p;
    int w;
} worker_arg;

lm_batch *lm_batch_new(int n, int total_tokens, lm_err *err) {
    lm_batch *b = lm_calloc(1, sizeof *b, err);
    if (!b) return NULL;
    b->n = n;
    b->tokens = lm_malloc((size_t)(total_tokens ? total_tokens : 1) * sizeof *b->tokens, err);
    b->lens = lm_malloc((size_t)(n ? n : 1) * sizeof *b->lens, err);
    b->index = lm_malloc((size_t)(n ? n : 1) * sizeof *b->index, err);
    b->out = lm_calloc((size_t)(n ? n : 1), sizeof *b->out, err);
    if (!b->tokens || !b->lens || !b->index || !b->out) { lm_batch_free(b); return NULL; }
    return b;
}

void lm_batch_free(lm_batch *b) {
    if (!b) return;
    for (int i = 0; b->out && i < b->n; i++) lm_translation_free(&b->out[i]);
    free(b->out); free(b->tokens); free(b->lens); free(b->index);
    free(b);
}

static void list_push(batch_list *l, lm_batch *b) {
    b->next = NULL;
    if (l->tail) l->tail->next = b;
    else l->head = b;
    l->tail = b;
}

static lm_batch *list_pop(batch_list *l) {
    lm_batch *b = l->head;
    if (b && !(l->head = b->next)) l->tail = NULL;
    return b;
}

static void *worker_main(void *arg) {
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    lm_pool *p = a.p;
    lm_err e = {{0}};
    if (p->setup && p->setup(p->ctx, a.w, &e) != 0) {
        pthread_mutex_lock(&p->lock);
        if (!p->setup_failed) p->setup_err = e;
        p->setup_failed = true;
        pthread_cond_broadcast(&p->finished);
        pthread_mutex_unlock(&p->lock);
        return NULL;
    }
    for (lm_batch *b; (b = lm_pool_take(p, true));) {
        if (p->cancel && *p->cancel) b->rc = 1;
        else p->run(p->ctx, a.w, b);
        if (b->rc == 0) __atomic_fetch_add(&p->ran[a.w], 1, __ATOMIC_RELAXED);
        lm_pool_finish(p, b);
    }
    return NULL;
}

lm_pool *lm_pool_create(int n_workers, lm_pool_setup_fn setup, lm_pool_run_fn run, void *ctx, lm_err *err) {
    lm_pool *p = lm_calloc(1, sizeof *p, err);
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->queued, NULL);
    pthread_cond_init(&p->finished, NULL);
    p->setup = setup;
    p->run = run;
    p->ctx = ctx;
    p->n_workers = n_workers;
    p->threads = lm_calloc((size_t)(n_workers ? n_workers : 1), sizeof *p->threads, err);
    p->ran = lm_calloc((size_t)(n_workers ? n_workers : 1), sizeof *p->ran, err);
    if (!p->threads || !p->ran) { lm_pool_free(p); return NULL; }
    for (; p->started < n_workers; p->started++) {
        worker_arg *a = lm_malloc(sizeof *a, err);
        if (!a) { lm_pool_free(p); return NULL; }
        *a = (worker_arg){p, p->started};
        if (pthread_create(&p->threads[p->started], NULL, worker_main, a) != 0) {
            free(a);
            lm_fail(err, "cannot start model worker %d", p->started);
            lm_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void lm_pool_free(lm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    pthread_cond_broadcast(&p->queued);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    for (lm_batch *b; (b = list_pop(&p->queue));) lm_batch_free(b);
    for (lm_batch *b; (b = list_pop(&p->done));) lm_batch_free(b);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->queued);
    pthread_cond_destroy(&p->finished);
    free(p->threads);
    free(p->ran);
    free(p);
}

void lm_pool_set_cancel(lm_pool *p, const volatile int *cancel) {
    pthread_mutex_lock(&p->lock);
    p->cancel = cancel;
    pthread_mutex_unlock(&p->lock);
}

bool lm_pool_cancelled(lm_pool *p) {
    pthread_mutex_lock(&p->lock);
    bool c = p->cancel && *p->cancel;
    pthread_mutex_unlock(&p->lock);
    return c;
}

void lm_pool_submit(lm_pool *p, lm_batch *b) {
    pthread_mutex_lock(&p->lock);
    list_push(&p->queue, b);
    pthread_cond_signal(&p->queued);
    pthread_mutex_unlock(&p->lock);
}

lm_batch *lm_pool_take(lm_pool *p, bool wait) {
    pthread_mutex_lock(&p->lock);
    while (wait && !p->queue.head && !p->closed) pthread_cond_wait(&p->queued, &p->lock);
    lm_batch *b = p->closed ? NULL : list_pop(&p->queue);
    pthread_mutex_unlock(&p->lock);
    return b;
}

void lm_pool_finish(lm_pool *p, lm_batch *b) {
    pthread_mutex_lock(&p->lock);
    list_push(&p->done, b);
    pthread_cond_broadcast(&p->finished);
    pthread_mutex_unlock(&p->lock);
}

lm_batch *lm_pool_collect(lm_pool *p, bool wait) {
    pthread_mutex_lock(&p->lock);
    /* a worker whose setup failed never takes its share: the caller must hear of it */
    while (wait && !p->done.head && !p->setup_failed) pthread_cond_wait(&p->finished, &p->lock);
    lm_batch *b = list_pop(&p->done);
    pthread_mutex_unlock(&p->lock);
    return b;
}

int lm_pool_error(lm_pool *p, lm_err *err) {
    pthread_mutex_lock(&p->lock);
    bool failed = p->setup_failed;
    if (failed && err) *err = p->setup_err;
    pthread_mutex_unlock(&p->lock);
    return failed ? -1 : 0;
}

int lm_pool_workers(const lm_pool *p) { return p->n_workers; }

long lm_pool_batches_run(lm_pool *p, int w) { return __atomic_load_n(&p->ran[w], __ATOMIC_RELAXED); }
