/* append_rows: the decoder's new keys or values (plus bias) into the KV cache,
 * each row at its own position: with in-flight batching, rows that joined
 * later sit at earlier positions. One grid-stride loop over n x cols. */
#include "common.cuh"

__global__ void append_rows_kernel(float *cache, size_t stride, const int32_t *pos, const float *y, const float *bias, size_t n,
                                   size_t cols) {
    size_t total = n * cols;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        size_t r = idx / cols, j = idx % cols;
        cache[r * stride + (size_t)pos[r] * cols + j] = y[idx] + (bias ? bias[j] : 0.0f);
    }
}

extern "C" int lm_k_append_rows(float *cache, size_t stride, const int32_t *pos, const float *y, const float *bias, int n, int cols,
                                cudaStream_t s, const char **msg) {
    if (n <= 0 || cols <= 0) return 0;
    size_t total = (size_t)n * cols;
    LM_LAUNCH(append_rows_kernel, lm_k_blocks(total, 256), 256, 0, s)(cache, stride, pos, y, bias, (size_t)n, (size_t)cols);
    return lm_k_launched(msg);
}
