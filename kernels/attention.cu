/* attention: one warp per (query row, head). Keys are visited once with an
 * online softmax (running max, running sum, rescaled accumulator), so scores
 * never reach memory; each lane owns hd / 32 output columns. Keys and values
 * are read in kv_dtype: the decoder's self-attention cache is kept in the
 * compute precision (half the bytes a step reads at 16 bits). */
#include "common.cuh"

#define MAX_PER_LANE 8 /* head width up to 256 */

__global__ void attention_kernel(const float *q, int ld_q, float q_scale, const void *k, const void *v, int kv_dtype, int ld_kv, const int32_t *key_start,
                                 const int32_t *key_len, void *out, int out_dtype, int ld_out, int rows, int heads, int hd) {
    int warp = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (warp >= rows * heads) return;
    int i = warp / heads, h = warp % heads;
    int per = (hd + 31) / 32;
    float qv[MAX_PER_LANE], acc[MAX_PER_LANE];
    const float *qi = q + (size_t)i * ld_q + (size_t)h * hd;
    for (int c = 0; c < per; c++) {
        int col = lane + 32 * c;
        qv[c] = col < hd ? qi[col] * q_scale : 0.0f;
        acc[c] = 0;
    }
    float m = -INFINITY, l = 0;
    int n_keys = key_len[i];
    size_t start = (size_t)key_start[i];
    for (int j = 0; j < n_keys; j++) {
        size_t kj = (start + j) * ld_kv + (size_t)h * hd, vj = kj;
        float s = 0;
        for (int c = 0; c < per; c++) {
            int col = lane + 32 * c;
            if (col < hd) s += qv[c] * lm_load(k, kv_dtype, kj + col);
        }
        s = lm_warp_sum(s);
        float m_new = fmaxf(m, s);
        float correction = expf(m - m_new), p = expf(s - m_new);
        l = l * correction + p;
        for (int c = 0; c < per; c++) {
            int col = lane + 32 * c;
            acc[c] = acc[c] * correction + (col < hd ? p * lm_load(v, kv_dtype, vj + col) : 0.0f);
        }
        m = m_new;
    }
    float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int c = 0; c < per; c++) {
        int col = lane + 32 * c;
        if (col < hd) lm_store(out, out_dtype, (size_t)i * ld_out + (size_t)h * hd + col, acc[c] * inv);
    }
}

extern "C" int lm_k_attention(const float *q, int ld_q, float q_scale, const void *k, const void *v, int kv_dtype, int ld_kv, const int32_t *key_start,
                              const int32_t *key_len, void *out, int out_dtype, int ld_out, int rows, int heads, int hd,
                              cudaStream_t s, const char **msg) {
    if (hd > 32 * MAX_PER_LANE) {
        if (msg) *msg = "attention head width above 256";
        return -1;
    }
    size_t warps = (size_t)rows * heads;
    if (warps == 0) return 0;
    size_t blocks = (warps * 32 + 127) / 128; /* on gridDim.x: up to 2^31 - 1 */
    if (blocks > 0x7fffffffu) {
        if (msg) *msg = "attention: more (row, head) pairs than one grid holds";
        return -1;
    }
    LM_LAUNCH(attention_kernel, (unsigned)blocks, 128, 0, s)(q, ld_q, q_scale, k, v, kv_dtype, ld_kv, key_start, key_len, out, out_dtype, ld_out, rows,
                                                     heads, hd);
    return lm_k_launched(msg);
}
