/*
 * cuda_device: what the CUDA backend and its tests share besides the kernels:
 * whether a GPU can be used at all (and, when it cannot, whether that is "no
 * GPU here" or a broken setup), the matrix products (plain, and with their
 * bias and ReLU in cuBLASLt's epilogue), a switch read from the environment,
 * and what the weight broadcast reads of a backend.
 */
#ifndef LM_CUDA_DEVICE_H
#define LM_CUDA_DEVICE_H

#include "base/util.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdbool.h>

typedef enum {
    LM_CUDA_READY = 0,   /* at least one device answers */
    LM_CUDA_ABSENT = 1,  /* no GPU on this machine: no NVIDIA driver, or the driver sees no device */
    LM_CUDA_BROKEN = -1, /* a GPU setup that fails: driver older than the runtime, device busy or lost, ... */
} lm_cuda_state;

/* Probes the CUDA runtime. For ABSENT, `why` (size n) gets what was found
 * ("no NVIDIA driver on this machine; CUDA runtime 13.0"), for callers to
 * print as "no GPU (...)"; for BROKEN, the CUDA error with the driver's and
 * the runtime's CUDA versions. */
lm_cuda_state lm_cuda_probe(char *why, size_t n);

/* The probe's judgement from what the runtime said (cudaGetDeviceCount's
 * error and count, cudaDriverGetVersion, cudaRuntimeGetVersion); pure, so the
 * cases a machine without a GPU cannot produce are tested anyway. */
lm_cuda_state lm_cuda_classify(cudaError_t e, int devices, int driver, int runtime, char *why, size_t n);

/* The out-of-memory error: the buffer asked for (rounded up to MB), what is
 * free and the card's total (rounded down). Returns -1. */
int lm_cuda_out_of_memory(lm_err *err, size_t need, size_t free_bytes, size_t total_bytes, const char *cuda_msg);

/* cudaMalloc, its failure the out-of-memory error above. */
int lm_cuda_malloc(void **p, size_t bytes, lm_err *err);

/* A linear layer's weight on the device: (out, in) row-major, as PyTorch stores it. */
typedef struct {
    void *w;   /* (out, in), of the product's input type */
    float *b;  /* (out); the caller adds it (kernels' bias_act or add_layernorm, or an epilogue writing fp32) */
    int in, out;
    void *b16; /* (out) in the 16-bit input type, for an epilogue writing 16-bit output (it takes the output's type); else NULL */
} lm_dev_linear;

/* What one backend's products run with, all on its device: the cuBLAS and
 * cuBLASLt handles, and one workspace both use in stream order. It is the
 * backend's own, set once: without it cuBLAS takes its workspace from a pool
 * per stream, inside a graph capture too, and may pick another algorithm
 * there than outside (NVIDIA recommends 32 MiB on Hopper, 4 MiB before). */
/* cuBLASLt's algorithm for one product: what its heuristic chose given the
 * workspace and the operands' alignment (found false: nothing serves it). */
typedef struct {
    int rows, in, out, type, out_type, ep, align[3]; /* the key: the shape, types, epilogue, alignment of W, x, y */
    bool found;
    cublasLtMatmulAlgo_t algo;
} lm_cuda_lt_plan;

#define LM_CUDA_LT_PLANS 64 /* a model's products at a few row counts (a step's and an encoder batch's) */

typedef struct {
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    cudaStream_t stream;
    lm_cuda_lt_plan plans[LM_CUDA_LT_PLANS]; /* the heuristic's answers, asked once a key (replaced in turn when full) */
    int n_plans, next_plan;
} lm_cuda_gemm;

/* The handles and workspace for `stream`, on the current device. On error,
 * what was made is left for lm_cuda_gemm_close. */
int lm_cuda_gemm_open(lm_cuda_gemm *g, cudaStream_t stream, lm_err *err);
void lm_cuda_gemm_close(lm_cuda_gemm *g);

/* y (rows, out) fp32 = x (rows, in) . W^T, x and W of `type` (CUDA_R_32F, _16F,
 * _16BF), fp32 accumulation, on g's stream. */
int lm_cuda_linear(const lm_cuda_gemm *g, cudaDataType_t type, int rows, const lm_dev_linear *l, const void *x, float *y, lm_err *err);

/* The epilogues lm_cuda_linear_epilogue adds. GELU has none here: cuBLASLt's
 * is the tanh approximation, the models' (transformers' "gelu") erf's. */
enum { LM_CUDA_EP_BIAS, LM_CUDA_EP_RELU_BIAS };

/* y (rows, out) = ep(x . W^T + bias) in one cuBLASLt product: the bias added
 * to the fp32 sum, ReLU on it, the result written in out_type (CUDA_R_32F or
 * `type`); bias is of out_type, as cuBLASLt takes it. 0 when enqueued; 1
 * when this cuBLASLt does not serve it (nothing enqueued: the caller runs
 * the product and the bias as kernels); -1 with err. The algorithm is
 * cuBLASLt's heuristic's for the workspace and the operands' alignment,
 * asked once per shape (g->plans). */
int lm_cuda_linear_epilogue(lm_cuda_gemm *g, cudaDataType_t type, int rows, const lm_dev_linear *l, const void *bias, int ep,
                            const void *x, void *y, cudaDataType_t out_type, lm_err *err);

/* false when the environment sets `name` to 0 (LYRICMT_CUDA_GRAPHS=0 and the
 * like: a mechanism turned off to time or check the path without it). */
bool lm_cuda_switch(const char *name);

/* What the weight broadcast (cuda_nccl.c) needs of a CUDA backend
 * (cuda_backend.c): its weight allocations, in the same order on every
 * backend of one model. */
typedef struct {
    void *const *ptrs;
    const size_t *bytes;
    int n;
    int device;
    cudaStream_t stream;
} lm_cuda_weights;

typedef struct lm_backend lm_backend;
lm_cuda_weights lm_cuda_backend_weights(lm_backend *b);

#endif
