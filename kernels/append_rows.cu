/* append_rows: the decoder's new keys and values (plus bias) into the KV
 * cache, in its dtype, both in one launch: row r's at cache row start[r] +
 * pos[r] (its slot's first row, and its own position: with in-flight
 * batching, rows that joined later sit at earlier positions). y_k, y_v are
 * the products' fp32 outputs, ld_y apart (the fused QKV product's columns).
 * One grid-stride loop over n x cols. */
#include "common.cuh"

__global__ void append_kv_kernel(void *k_cache, void *v_cache, int dtype, const int32_t *start, const int32_t *pos, const float *y_k,
                                 const float *y_v, size_t ld_y, const float *b_k, const float *b_v, size_t n, size_t cols) {
    size_t total = n * cols;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        size_t r = idx / cols, j = idx % cols, at = ((size_t)start[r] + (size_t)pos[r]) * cols + j;
        lm_store(k_cache, dtype, at, y_k[r * ld_y + j] + (b_k ? b_k[j] : 0.0f));
        lm_store(v_cache, dtype, at, y_v[r * ld_y + j] + (b_v ? b_v[j] : 0.0f));
    }
}

extern "C" int lm_k_append_kv(void *k_cache, void *v_cache, int dtype, const int32_t *start, const int32_t *pos, const float *y_k,
                              const float *y_v, size_t ld_y, const float *b_k, const float *b_v, int n, int cols, cudaStream_t s,
                              const char **msg) {
    if (n <= 0 || cols <= 0) return 0;
    size_t total = (size_t)n * cols;
    LM_LAUNCH(append_kv_kernel, lm_k_blocks(total, 256), 256, 0, s)(k_cache, v_cache, dtype, start, pos, y_k, y_v, ld_y, b_k, b_v,
                                                                   (size_t)n, (size_t)cols);
    return lm_k_launched(msg);
}
