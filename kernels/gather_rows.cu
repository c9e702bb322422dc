/* gather_rows: dst row dst_row[r] (r itself without dst_row) = src row
 * parent[r]; parent -1: nothing to copy. The KV cache's reorder copies only
 * the rows a beam forks into, in place (dst_row: free slots, parent: slots
 * that stay; the two never meet, cuda_backend.c's reorder); encoder rows move
 * into the other half of their double buffer when finished sentences are
 * dropped. Rows are counted in floats: 16-bit rows pass as half as many.
 * Each row copies only its own length (a cache row's tokens): what lies
 * beyond was never written, and a GPU's initcheck reports reading it.
 * One grid-stride loop over rows x the longest row: any row count fits the
 * grid (rows on gridDim.y stopped at 65,535). */
#include "common.cuh"

__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *parent, const int32_t *dst_row, const int32_t *row_len,
                                   size_t rows, size_t stride, size_t width, size_t used) {
    size_t total = rows * used;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        size_t r = idx / used, j = idx % used;
        int32_t p = parent[r];
        size_t d = dst_row ? (size_t)dst_row[r] : r;
        if (p >= 0 && (!row_len || j < (size_t)row_len[r] * width)) dst[d * stride + j] = src[(size_t)p * stride + j];
    }
}

extern "C" int lm_k_gather_rows(float *dst, const float *src, const int32_t *parent, const int32_t *dst_row, const int32_t *row_len, int rows,
                                size_t stride, size_t width, int max_len, cudaStream_t s, const char **msg) {
    size_t used = (size_t)max_len * width;
    if (rows <= 0 || used == 0) return 0;
    size_t total = (size_t)rows * used;
    LM_LAUNCH(gather_rows_kernel, lm_k_blocks(total, 256), 256, 0, s)(dst, src, parent, dst_row, row_len, (size_t)rows, stride, width,
                                                                                      used);
    return lm_k_launched(msg);
}
