/*
 * cuda_graph: a decoder step's launches replayed as one CUDA graph.
 *
 * A step issues about 50 kernels and products. Below a few hundred rows
 * each costs the host more to launch (~4 us) than the GPU to run, so the
 * step waits on the host (benchmarks/NOTES.md attempt 26). Captured once
 * into a graph, the step is one launch.
 *
 * A graph holds the pointers and sizes its launches were given, so it is
 * replayed only under the same key: the caller's bytes naming every value
 * the launches read that can change between steps (buffers, row count,
 * lengths). A key is captured the second time in a row it is asked for, so a
 * row count seen once (a batch's last ragged steps) costs no capture; the
 * last LM_CUDA_GRAPHS keys are kept. The body must only enqueue work on the
 * stream: no waits, allocations, pageable copies or host state, as a
 * capture forbids (the emulator refuses each, tests/cuda_emu/README.md).
 *
 * On by default; LYRICMT_CUDA_GRAPHS=0 turns them off. If a capture fails on
 * some driver (a capture error, or a graph that will not instantiate),
 * graphs go off for that backend with one line on stderr and the step runs
 * as plain launches; a step that fails for any other reason while captured
 * returns its error, graphs staying on. (A CUDA call that fails inside a
 * capture mostly invalidates it: then graphs go off and the plain run
 * reports the call's own error.)
 */
#ifndef LM_CUDA_GRAPH_H
#define LM_CUDA_GRAPH_H

#include "base/util.h"

#include <cuda_runtime.h>
#include <stdbool.h>

#define LM_CUDA_GRAPHS 8       /* keys kept: row counts live at once (in-flight batching, a batch's tail) */
#define LM_CUDA_GRAPH_KEY 160  /* bytes of a key at most */

typedef struct {
    unsigned char key[LM_CUDA_GRAPH_KEY];
    cudaGraphExec_t exec;
    unsigned long long used; /* the call that last launched it: the oldest is replaced */
} lm_cuda_graph_slot;

typedef struct {
    bool on;
    int n;
    lm_cuda_graph_slot slot[LM_CUDA_GRAPHS];
    unsigned char last[LM_CUDA_GRAPH_KEY]; /* the previous call's key */
    unsigned long long calls;
    long captured, launched; /* for tests and cuda_steps */
} lm_cuda_graphs;

/* Body: enqueues the step on the stream; 0 or -1 with err set. */
typedef int (*lm_cuda_graph_body)(void *ctx, lm_err *err);

void lm_cuda_graphs_init(lm_cuda_graphs *g);
void lm_cuda_graphs_free(lm_cuda_graphs *g);
/* Runs body's work on s: a graph's launch for a key seen before, a capture
 * then a launch for a key asked twice in a row, body itself otherwise. The
 * key is zero-padded to LM_CUDA_GRAPH_KEY (a caller's struct must be zeroed
 * before it is filled, padding included). */
int lm_cuda_graph_run(lm_cuda_graphs *g, cudaStream_t s, const void *key, size_t key_bytes, lm_cuda_graph_body body, void *ctx, lm_err *err);

#endif
