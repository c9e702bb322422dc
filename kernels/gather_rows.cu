/* gather_rows: the KV-cache reorder by beam (dst row r = src row parent[r]),
 * into the other half of a double buffer, so no copy goes through a scratch. */
#include "common.cuh"

__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *parent, size_t stride, size_t used) {
    int r = blockIdx.y;
    const float *from = src + (size_t)parent[r] * stride;
    float *to = dst + (size_t)r * stride;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < used; j += (size_t)gridDim.x * blockDim.x) to[j] = from[j];
}

extern "C" int lm_k_gather_rows(float *dst, const float *src, const int32_t *parent, int rows, size_t stride, size_t used,
                                cudaStream_t s, const char **msg) {
    if (rows == 0 || used == 0) return 0;
    size_t bx = (used + 255) / 256;
    dim3 grid(bx < 1024 ? (unsigned)bx : 1024u, (unsigned)rows);
    gather_rows_kernel<<<grid, 256, 0, s>>>(dst, src, parent, stride, used);
    return lm_k_launched(msg);
}
