/*
 * cuda_nccl: the model's weights copied from one GPU to the others of a
 * process with NCCL (ncclBroadcast over one communicator made by
 * ncclCommInitAll), instead of each GPU reading them from host memory.
 * Built with NCCL where the CUDA toolkit has it (LM_WITH_NCCL); without it
 * the broadcast says so and --weights-from disk remains.
 */
#ifndef LM_CUDA_NCCL_H
#define LM_CUDA_NCCL_H

#include "backend/backend.h"

#include <cuda_runtime.h>

/* What the broadcast needs of a CUDA backend (cuda_backend.c): its weight
 * allocations, in the same order on every backend of one model. */
typedef struct {
    void *const *ptrs;
    const size_t *bytes;
    int n;
    int device;
    cudaStream_t stream;
} lm_cuda_weights;

lm_cuda_weights lm_cuda_backend_weights(lm_backend *b);

#endif
