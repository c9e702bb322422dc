/* bias_act: the epilogue of a matrix product: + bias, activation, scale, cast,
 * written with any row stride (so it also appends keys and values to the cache). */
#include "common.cuh"

__global__ void bias_act_kernel(const float *y, const float *bias, void *out, int out_dtype, size_t ld_out, int n, int cols,
                                int act, float scale) {
    size_t total = (size_t)n * cols;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        size_t i = idx / cols;
        int j = (int)(idx % cols);
        float v = y[idx] + (bias ? bias[j] : 0.0f);
        if (act == LM_K_ACT_RELU) v = v > 0 ? v : 0;
        else if (act == LM_K_ACT_GELU) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        lm_store(out, out_dtype, i * ld_out + j, v * scale);
    }
}

extern "C" int lm_k_bias_act(const float *y, const float *bias, void *out, int out_dtype, size_t ld_out, int n, int cols,
                             int act, float scale, cudaStream_t s, const char **msg) {
    size_t total = (size_t)n * cols;
    if (total == 0) return 0;
    LM_LAUNCH(bias_act_kernel, lm_k_blocks(total, 256), 256, 0, s)(y, bias, out, out_dtype, ld_out, n, cols, act, scale);
    return lm_k_launched(msg);
}
