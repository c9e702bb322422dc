/* test_worker_pool: the pool's contract without a model (host/engine/worker_pool.h):
 * each batch comes back exactly once, a slow worker takes fewer batches than
 * fast ones (dynamic hand-out), each worker runs on its own thread with its own
 * OpenMP thread count, cancellation, a worker whose setup fails, and batches
 * taken from outside (the MPI link's way). */
#include "testing.h"
#include "engine/worker_pool.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORKERS 3

typedef struct {
    pthread_t thread[WORKERS];
    int fail_setup;          /* worker whose setup fails, or -1 */
    int slow;                /* worker that takes 20 ms a batch */
    int wrong_thread, wrong_omp;
    int runs[64];            /* times each batch id ran */
    pthread_mutex_t lock;
} ctx;

static void nap(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void *arg, int w, lm_err *err) {
    ctx *c = arg;
    if (w == c->fail_setup) return lm_fail(err, "worker %d cannot start", w);
    c->thread[w] = pthread_self();
    omp_set_num_threads(w + 1); /* per calling thread in libgomp: each worker its own */
    return 0;
}

static void run(void *arg, int w, lm_batch *b) {
    ctx *c = arg;
    pthread_mutex_lock(&c->lock);
    if (!pthread_equal(c->thread[w], pthread_self())) c->wrong_thread++;
    if (omp_get_max_threads() != w + 1) c->wrong_omp++;
    c->runs[b->index[0]]++;
    pthread_mutex_unlock(&c->lock);
    nap(w == c->slow ? 20 : 1);
    b->tokens_out = w; /* which worker ran it */
    b->rc = 0;
}

static lm_batch *batch(int id) {
    lm_err err;
    lm_batch *b = lm_batch_new(1, 1, &err);
    b->index[0] = id;
    b->tokens[0] = b->lens[0] = 1;
    return b;
}

static void test_dynamic(void) {
    ctx c = {.fail_setup = -1, .slow = 0};
    pthread_mutex_init(&c.lock, NULL);
    lm_err err;
    lm_pool *p = lm_pool_create(WORKERS, setup, run, &c, &err);
    CHECK(p != NULL, "pool created");
    if (!p) return;
    int n = 60, per[WORKERS] = {0}, back = 0, twice = 0;
    for (int i = 0; i < n; i++) lm_pool_submit(p, batch(i));
    for (lm_batch *b; back < n && (b = lm_pool_collect(p, true)); back++) {
        per[b->tokens_out]++;
        lm_batch_free(b);
    }
    for (int i = 0; i < n; i++) twice += c.runs[i] != 1;
    CHECK(back == n && twice == 0, "every batch back exactly once (%d back, %d not run once)", back, twice);
    CHECK(per[0] + per[1] + per[2] == n && per[0] < per[1] && per[0] < per[2] && per[1] > 0 && per[2] > 0,
          "the slow worker took fewer: %d, %d, %d", per[0], per[1], per[2]);
    for (int w = 0; w < WORKERS; w++) CHECK(lm_pool_batches_run(p, w) == per[w], "worker %d's count", w);
    CHECK(c.wrong_thread == 0, "each worker ran its batches on its own thread");
    CHECK(c.wrong_omp == 0, "each worker kept its own OpenMP thread count");
    CHECK(lm_pool_collect(p, false) == NULL && lm_pool_error(p, &err) == 0, "nothing left, no error");
    lm_pool_free(p);
    pthread_mutex_destroy(&c.lock);
}

static void test_cancel(void) {
    ctx c = {.fail_setup = -1, .slow = -1};
    pthread_mutex_init(&c.lock, NULL);
    lm_err err;
    volatile int stop = 1;
    lm_pool *p = lm_pool_create(WORKERS, setup, run, &c, &err);
    lm_pool_set_cancel(p, &stop);
    CHECK(lm_pool_cancelled(p), "cancel seen");
    for (int i = 0; i < 10; i++) lm_pool_submit(p, batch(i));
    int not_run = 0;
    for (int k = 0; k < 10; k++) {
        lm_batch *b = lm_pool_collect(p, true);
        not_run += b && b->rc == 1;
        lm_batch_free(b);
    }
    int ran = 0;
    for (int i = 0; i < 10; i++) ran += c.runs[i];
    CHECK(not_run == 10 && ran == 0, "cancelled batches come back not run (%d of 10; %d ran)", not_run, ran);
    lm_pool_free(p);
    pthread_mutex_destroy(&c.lock);
}

static void test_setup_failure(void) {
    ctx c = {.fail_setup = 1, .slow = -1};
    pthread_mutex_init(&c.lock, NULL);
    lm_err err = {{0}};
    lm_pool *p = lm_pool_create(WORKERS, setup, run, &c, &err);
    CHECK(lm_pool_collect(p, true) == NULL, "a waiting collect returns when a worker cannot start");
    CHECK(lm_pool_error(p, &err) == -1 && strstr(err.msg, "worker 1 cannot start"), "its error: %s", err.msg);
    lm_pool_submit(p, batch(0)); /* freed by lm_pool_free if no worker took it */
    lm_pool_free(p);
    pthread_mutex_destroy(&c.lock);
}

static void test_outside(void) {
    lm_err err;
    lm_pool *p = lm_pool_create(0, NULL, NULL, NULL, &err);
    CHECK(p && lm_pool_workers(p) == 0, "a pool without threads");
    CHECK(lm_pool_take(p, false) == NULL, "nothing to take");
    lm_pool_submit(p, batch(7));
    lm_pool_submit(p, batch(8));
    lm_batch *b = lm_pool_take(p, false);
    CHECK(b && b->index[0] == 7, "taken in queue order");
    b->rc = 0;
    lm_pool_finish(p, b);
    lm_batch *d = lm_pool_collect(p, false);
    CHECK(d == b, "finished from outside, collected");
    lm_batch_free(d);
    lm_pool_free(p); /* batch 8 still queued: freed here */
}

int main(void) {
    test_dynamic();
    test_cancel();
    test_setup_failure();
    test_outside();
    return lm_test_summary("test_worker_pool");
}
