/* gather_rows: the KV-cache reorder by beam (dst row r = src row parent[r];
 * parent -1: a fresh row, nothing to copy), into the other half of a double
 * buffer, so no copy goes through a scratch. Also moves encoder rows when
 * finished sentences are dropped.
 * Each row copies only its own length (a cache row's tokens): what lies
 * beyond was never written, and a GPU's initcheck reports reading it.
 * One grid-stride loop over rows x the longest row: any row count fits the
 * grid (rows on gridDim.y stopped at 65,535). */
#include "common.cuh"

__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *parent, const int32_t *row_len, size_t rows,
                                   size_t stride, size_t width, size_t used) {
    size_t total = rows * used;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        size_t r = idx / used, j = idx % used;
        int32_t p = parent[r];
        if (p >= 0 && (!row_len || j < (size_t)row_len[r] * width)) dst[r * stride + j] = src[(size_t)p * stride + j];
    }
}

extern "C" int lm_k_gather_rows(float *dst, const float *src, const int32_t *parent, const int32_t *row_len, int rows, size_t stride,
                                size_t width, int max_len, cudaStream_t s, const char **msg) {
    size_t used = (size_t)max_len * width;
    if (rows <= 0 || used == 0) return 0;
    size_t total = (size_t)rows * used;
    LM_LAUNCH(gather_rows_kernel, lm_k_blocks(total, 256), 256, 0, s)(dst, src, parent, row_len, (size_t)rows, stride, width, used);
    return lm_k_launched(msg);
}
