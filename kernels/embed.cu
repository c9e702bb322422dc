/* embed: token embedding x scale + sinusoidal position, one block per token. */
#include "common.cuh"

__global__ void embed_kernel(float *x, const void *table, int dtype, const float *positions, const int32_t *tokens,
                             const int32_t *pos, int d, float scale) {
    int i = blockIdx.x;
    size_t e = (size_t)tokens[i] * d, p = (size_t)(pos[i] + 2) * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        x[(size_t)i * d + j] = lm_load(table, dtype, e + j) * scale + positions[p + j];
}

extern "C" int lm_k_embed(float *x, const void *table, int dtype, const float *positions, const int32_t *tokens,
                          const int32_t *pos, int n, int d, float scale, cudaStream_t s, const char **msg) {
    if (n == 0) return 0;
    /* one block per token on gridDim.x (limit 2^31 - 1, above any int n) */
    LM_LAUNCH(embed_kernel, n, 256, 0, s)(x, table, dtype, positions, tokens, pos, d, scale);
    return lm_k_launched(msg);
}
