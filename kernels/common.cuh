/* common: what every kernel file shares: dtype loads and stores, block
 * reductions, the launch check. */
#ifndef LM_KERNELS_COMMON_CUH
#define LM_KERNELS_COMMON_CUH

#include "kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

/* The two spellings plain C++ cannot parse, so that tests/cuda_emu (which
 * defines its own) compiles these files unchanged for the CPU:
 * LM_LAUNCH(kernel, grid, block, shmem, stream)(args...) is the launch, and
 * LM_DYNAMIC_SHARED(T, name) declares the launch's dynamic shared memory. */
#ifndef LM_LAUNCH
#define LM_LAUNCH(kernel, grid, block, shmem, stream) kernel<<<grid, block, shmem, stream>>>
#define LM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

/* Grids: one-block-per-row kernels put rows on gridDim.x, whose limit (2^31 - 1)
 * is above any int row count; only y and z stop at 65,535, and no kernel uses
 * them. Element-wise kernels loop grid-stride over a grid of at most this many
 * blocks (plenty to fill a GPU: an H100 has 132 SMs). */
#define LM_K_MAX_BLOCKS 65535u

static inline unsigned lm_k_blocks(size_t work, unsigned threads) {
    size_t b = (work + threads - 1) / threads;
    return b < LM_K_MAX_BLOCKS ? (unsigned)b : LM_K_MAX_BLOCKS;
}

/* Every launch function ends with this: the launch error, if any, as text. */
static inline int lm_k_launched(const char **msg) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    if (msg) *msg = cudaGetErrorString(e);
    return -1;
}

static __device__ __forceinline__ float lm_load(const void *p, int dtype, size_t i) {
    if (dtype == LM_K_F16) return __half2float(((const __half *)p)[i]);
    if (dtype == LM_K_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

static __device__ __forceinline__ void lm_store(void *p, int dtype, size_t i, float v) {
    if (dtype == LM_K_F16) ((__half *)p)[i] = __float2half(v);
    else if (dtype == LM_K_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
    else ((float *)p)[i] = v;
}

static __device__ __forceinline__ float lm_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float lm_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum (or max) over the block, returned to every thread; blockDim.x a multiple of 32, at most 1024. */
static __device__ __forceinline__ float lm_block_reduce(float v, bool is_max) {
    __shared__ float part[32];
    __shared__ float result;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = is_max ? lm_warp_max(v) : lm_warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < warps ? part[lane] : (is_max ? -INFINITY : 0.0f);
        w = is_max ? lm_warp_max(w) : lm_warp_sum(w);
        if (lane == 0) result = w;
    }
    __syncthreads();
    float r = result;
    __syncthreads(); /* part and result are reused by the next call */
    return r;
}

/* A row's max and sum of exp(x - max), both returned to every thread: the
 * softmax statistics of the one-block-per-row kernels (logprob_topk,
 * label_logprob). The sum is NaN for a row holding a NaN or +inf, or nothing
 * above -inf. */
static __device__ __forceinline__ void lm_row_max_sum(const float *x, int V, float *max, float *sum) {
    float mx = -INFINITY, s = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, x[i]);
    mx = lm_block_reduce(mx, true);
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(x[i] - mx);
    *max = mx;
    *sum = lm_block_reduce(s, false);
}

#endif
