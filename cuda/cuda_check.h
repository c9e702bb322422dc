/*
 * cuda_check: every CUDA, cuBLAS and kernel call in the backend goes through
 * one of these. Each turns a failure into an lm_err naming the call, file and
 * line, and returns -1 from the enclosing function (llm.c's habit, made
 * recoverable: a bad batch is an error, not an abort).
 */
#ifndef LM_CUDA_CHECK_H
#define LM_CUDA_CHECK_H

#include "base/util.h"

#include "cuda/cuda_blas.h"

#include <cuda_runtime.h>

#define CUDA_TRY(call)                                                                                   \
    do {                                                                                                 \
        cudaError_t e_ = (call);                                                                         \
        if (e_ != cudaSuccess)                                                                           \
            return lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));     \
    } while (0)

#define CUBLAS_TRY(call)                                                                                 \
    do {                                                                                                 \
        cublasStatus_t s_ = (call);                                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                 \
            return lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, lm_cublas_status(s_));     \
    } while (0)

/* Kernel launch functions report through a message pointer (kernels/kernels.h). */
#define KERNEL_TRY(call)                                                                                 \
    do {                                                                                                 \
        const char *kmsg_ = "unknown error";                                                             \
        const char **kmsg = &kmsg_;                                                                      \
        if ((call) != 0) return lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, kmsg_);         \
    } while (0)

#endif
