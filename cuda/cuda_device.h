/*
 * cuda_device: what the CUDA backend and its tests share besides the kernels:
 * whether a GPU can be used at all (and, when it cannot, whether that is "no
 * GPU here" or a broken setup), the one matrix-product wrapper, and what the
 * weight broadcast reads of a backend.
 */
#ifndef LM_CUDA_DEVICE_H
#define LM_CUDA_DEVICE_H

#include "base/util.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

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

/* A linear layer's weight on the device: (out, in) row-major, as PyTorch stores it. */
typedef struct {
    void *w;  /* (out, in), of the product's input type */
    float *b; /* (out); the caller adds it (kernels' bias_act or add_layernorm) */
    int in, out;
} lm_dev_linear;

/* y (rows, out) fp32 = x (rows, in) . W^T, x and W of `type` (CUDA_R_32F, _16F,
 * _16BF), fp32 accumulation, on the handle's stream. */
int lm_cuda_linear(cublasHandle_t blas, cudaDataType_t type, int rows, const lm_dev_linear *l, const void *x, float *y,
                   lm_err *err);

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
