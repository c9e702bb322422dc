/* convert: weights to the compute precision, once, when the model is uploaded. */
#include "common.cuh"

__global__ void convert_kernel(const float *src, void *dst, int dtype, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        lm_store(dst, dtype, i, src[i]);
}

extern "C" int lm_k_convert(const float *src, void *dst, int dtype, size_t n, cudaStream_t s, const char **msg) {
    if (n == 0) return 0;
    size_t blocks = (n + 255) / 256;
    convert_kernel<<<blocks < 65535 ? (unsigned)blocks : 65535u, 256, 0, s>>>(src, dst, dtype, n);
    return lm_k_launched(msg);
}
