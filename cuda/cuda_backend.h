/*
 * cuda_backend: the backend (backend.h) on NVIDIA GPUs, in builds made where
 * nvcc was found (LM_WITH_CUDA): kernels/ for every op but the products,
 * which are cuBLAS's; NCCL, opened at run time, copies the weights across
 * GPUs (cuda_nccl.c).
 */
#ifndef LM_CUDA_BACKEND_H
#define LM_CUDA_BACKEND_H

#include "backend/backend.h"

/* precision is an lm_precision; reserve_tokens sizes the first buffers (the
 * config's batch.max_tokens); larger batches grow them, never per step. */
lm_backend *lm_cuda_backend_create(const lm_model *model, int precision, int reserve_tokens, lm_err *err);
/* The same on CUDA device `device`. fill false: the weights' memory is made but
 * left for lm_cuda_broadcast_weights (cuda/cuda_nccl.c) to fill from another
 * backend. */
lm_backend *lm_cuda_backend_create_on(const lm_model *model, int precision, int reserve_tokens, int device, bool fill, lm_err *err);
/* What the batch limits are sized from (lm_budget_for_memory): the device's
 * free memory now, a decoder row's bytes for max_length tokens, what a
 * sampled row needs on top, and a source token's, as this backend lays them out. */
int lm_cuda_backend_memory(lm_backend *b, int max_length, size_t *free_bytes, size_t *row_bytes, size_t *sample_row_bytes,
                           size_t *token_bytes, lm_err *err);
/* CUDA graphs for the decoder step (cuda/cuda_graph.h): on unless
 * LYRICMT_CUDA_GRAPHS=0; switched here by tests and cuda_steps, which also
 * read how many were captured and launched. */
void lm_cuda_backend_set_graphs(lm_backend *b, bool on);
void lm_cuda_backend_graph_counts(lm_backend *b, long *captured, long *launched);
/* Biases and ReLU in the products' cuBLASLt epilogues: on unless
 * LYRICMT_CUDA_EPILOGUES=0; switched here by cuda_steps. The count is of
 * products the host enqueued with one (a graph's, once, at its capture). */
void lm_cuda_backend_set_epilogues(lm_backend *b, bool on);
long lm_cuda_backend_epilogue_products(lm_backend *b);
/* An admission's encoder beside the decoder steps (cuda_backend.c's
 * encode_append; the scheduler encodes a step ahead): on unless
 * LYRICMT_CUDA_OVERLAP=0, which issues each encode at its call, waits for
 * it and joins its sentences at once; switched here by tests and cuda_steps. */
void lm_cuda_backend_set_overlap(lm_backend *b, bool on);
/* Encodes whose launches have been issued: an encode is planned at the call
 * and issued by the next decoder step, after its own launches, or by the
 * first call that reads it; for tests. */
long lm_cuda_backend_encodes_issued(lm_backend *b);
/* Makes the backend's device current on the calling thread (a worker's first act). */
int lm_cuda_backend_bind(lm_backend *b, lm_err *err);
/* CUDA devices on this machine (0 when none), or -1 for a broken setup. */
int lm_cuda_device_count(lm_err *err);
/* Copies backends[0]'s weights into backends[1..n) with one NCCL
 * communicator over their devices (ncclBroadcast, cuda_nccl.c); an error in
 * builds without NCCL. */
int lm_cuda_broadcast_weights(lm_backend *const *backends, int n, lm_err *err);
/* "built, NCCL 2.28.3 opened at run time", or why not, for --version. */
const char *lm_cuda_nccl_describe(char *buf, size_t n);

#endif
