/* convert: weights to the compute precision, once, when the model is uploaded. */
#include "common.cuh"

__global__ void convert_kernel(const float *src, void *dst, int dtype, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        lm_store(dst, dtype, i, src[i]);
}

extern "C" int lm_k_convert(const float *src, void *dst, int dtype, size_t n, cudaStream_t s, const char **msg) {
    if (n == 0) return 0;
    LM_LAUNCH(convert_kernel, lm_k_blocks(n, 256), 256, 0, s)(src, dst, dtype, n);
    return lm_k_launched(msg);
}
