/* add_layernorm: residual add (with the product's bias) fused with the next
 * layer norm, one block per row; the row is read once into registers' reach
 * (shared memory) and normalised in fp32. */
#include "common.cuh"

#define LN_EPS 1e-5f

__global__ void add_layernorm_kernel(float *x, const float *y, const float *bias, const float *gamma, const float *beta,
                                     void *out, int out_dtype, int d) {
    LM_DYNAMIC_SHARED(float, row);
    size_t base = (size_t)blockIdx.x * d;
    float sum = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = x[base + j];
        if (y) {
            v += y[base + j] + (bias ? bias[j] : 0.0f);
            x[base + j] = v;
        }
        row[j] = v;
        sum += v;
    }
    float mean = lm_block_reduce(sum, false) / d;
    float var = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) var += (row[j] - mean) * (row[j] - mean);
    float rstd = rsqrtf(lm_block_reduce(var, false) / d + LN_EPS);
    for (int j = threadIdx.x; j < d; j += blockDim.x) lm_store(out, out_dtype, base + j, (row[j] - mean) * rstd * gamma[j] + beta[j]);
}

extern "C" int lm_k_add_layernorm(float *x, const float *y, const float *bias, const float *gamma, const float *beta,
                                  void *out, int out_dtype, int n, int d, cudaStream_t s, const char **msg) {
    if (n == 0) return 0;
    if ((size_t)d * sizeof(float) > 48 * 1024) { /* the row is held in shared memory */
        if (msg) *msg = "add_layernorm: rows wider than 12,288";
        return -1;
    }
    /* one block per row on gridDim.x (limit 2^31 - 1, above any int n) */
    LM_LAUNCH(add_layernorm_kernel, n, 256, (size_t)d * sizeof(float), s)(x, y, bias, gamma, beta, out, out_dtype, d);
    return lm_k_launched(msg);
}
