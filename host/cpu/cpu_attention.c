/* cpu_attention: see cpu_attention.h. */
#include "cpu/cpu_attention.h"
#include "simd/cpu_features.h"
#include "simd/vec_exp.h"

#include <immintrin.h>
#include <math.h>

/* the scores, padded to whole blocks of 16, then q * scale */
static size_t padded(int n_keys) { return (size_t)(n_keys + 15) / 16 * 16; }

size_t lm_cpu_attention_scratch(int n_keys, int hd) { return padded(n_keys) + (size_t)hd; }

void lm_cpu_attention_scalar(const float *q, float scale, const float *keys, const float *values, int n_keys, int stride,
                      int hd, float *scores, float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        const float *kj = keys + (size_t)j * stride;
        float s = 0;
        for (int c = 0; c < hd; c++) s += (q[c] * scale) * kj[c];
        scores[j] = s;
        mx = s > mx ? s : mx;
    }
    float sum = 0;
    for (int j = 0; j < n_keys; j++) {
        scores[j] = expf(scores[j] - mx);
        sum += scores[j];
    }
    float inv = 1.0f / sum;
    for (int c = 0; c < hd; c++) out[c] = 0;
    for (int j = 0; j < n_keys; j++) {
        const float *vj = values + (size_t)j * stride;
        float p = scores[j] * inv;
        for (int c = 0; c < hd; c++) out[c] += p * vj[c];
    }
}

/* The first n of 16 lanes. */
static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1); }

/* The 16 scores of a block, lane j the sum of v_j's 16 partial sums: a
 * transpose folded into the adds (unpack, shuffle, then 128-bit shuffles),
 * 15 steps of 3 instructions instead of 16 reductions. */
__attribute__((target("avx512f"), always_inline)) static inline __m512
sum16(__m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512 v4, __m512 v5, __m512 v6, __m512 v7, __m512 v8, __m512 v9,
      __m512 v10, __m512 v11, __m512 v12, __m512 v13, __m512 v14, __m512 v15) {
#define UNPACK_ADD(x, y) _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y))
    /* per 128-bit lane: (x, y, x, y) */
    __m512 a0 = UNPACK_ADD(v0, v1), a1 = UNPACK_ADD(v2, v3), a2 = UNPACK_ADD(v4, v5), a3 = UNPACK_ADD(v6, v7);
    __m512 a4 = UNPACK_ADD(v8, v9), a5 = UNPACK_ADD(v10, v11), a6 = UNPACK_ADD(v12, v13), a7 = UNPACK_ADD(v14, v15);
#undef UNPACK_ADD
    /* per 128-bit lane: keys 4i .. 4i+3 */
#define SHUF_ADD(x, y) \
    _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2)))
    __m512 b0 = SHUF_ADD(a0, a1), b1 = SHUF_ADD(a2, a3), b2 = SHUF_ADD(a4, a5), b3 = SHUF_ADD(a6, a7);
#undef SHUF_ADD
    /* 128-bit lanes, then the same once more: lane quarter i ends with keys 4i .. 4i+3 */
#define LANE_ADD(x, y)                                                          \
    _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)), \
                  _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)))
    __m512 c0 = LANE_ADD(b0, b1), c1 = LANE_ADD(b2, b3);
    __m512 r = LANE_ADD(c0, c1);
#undef LANE_ADD
    return r;
}

/* Scores of keys kb[0 .. 16) (rows of `stride`) against the scaled query,
 * into scores[0 .. 16). Keys at m and beyond (a last, partial block) read
 * key m - 1 again: always valid memory, and a duplicate cannot change the
 * maximum; the sums mask them out. Returns the 16 scores for the maximum. */
__attribute__((target("avx512f"), always_inline)) static inline __m512
score_block(const float *qs, const float *kb, int stride, int hd, int m, float *scores) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    __m512 s8 = s0, s9 = s0, s10 = s0, s11 = s0, s12 = s0, s13 = s0, s14 = s0, s15 = s0;
    for (int c = 0; c < hd; c += 64) {
        __mmask16 m0 = lanes(hd - c), m1 = lanes(hd - c - 16), m2 = lanes(hd - c - 32), m3 = lanes(hd - c - 48);
        __m512 q0 = _mm512_maskz_loadu_ps(m0, qs + c), q1 = _mm512_maskz_loadu_ps(m1, qs + c + 16);
        __m512 q2 = _mm512_maskz_loadu_ps(m2, qs + c + 32), q3 = _mm512_maskz_loadu_ps(m3, qs + c + 48);
#define KEY(j, acc)                                                                        \
    do {                                                                                   \
        const float *k = kb + (size_t)((j) < m ? (j) : m - 1) * stride + c;                \
        acc = _mm512_fmadd_ps(q0, _mm512_maskz_loadu_ps(m0, k), acc);                      \
        acc = _mm512_fmadd_ps(q1, _mm512_maskz_loadu_ps(m1, k + 16), acc);                 \
        acc = _mm512_fmadd_ps(q2, _mm512_maskz_loadu_ps(m2, k + 32), acc);                 \
        acc = _mm512_fmadd_ps(q3, _mm512_maskz_loadu_ps(m3, k + 48), acc);                 \
    } while (0)
        KEY(0, s0); KEY(1, s1); KEY(2, s2); KEY(3, s3); KEY(4, s4); KEY(5, s5); KEY(6, s6); KEY(7, s7);
        KEY(8, s8); KEY(9, s9); KEY(10, s10); KEY(11, s11); KEY(12, s12); KEY(13, s13); KEY(14, s14); KEY(15, s15);
#undef KEY
    }
    __m512 s = sum16(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15);
    _mm512_storeu_ps(scores, s);
    return s;
}

/* Scores 16 keys at a time: a transposed key layout is not at hand (keys are
 * rows of the cache), so each key gets its own accumulator over the head
 * dimension and sum16 turns the 16 into one vector of scores. The values are
 * summed over the head dimension, 64 columns at a time, with two
 * accumulators per column vector (even and odd keys) to hide the FMA
 * latency; the 1/sum is applied once at the end. q * scale is kept after the
 * scores, in the scratch. */
__attribute__((target("avx512f"))) void lm_cpu_attention_avx512(const float *q, float scale, const float *keys,
                                                         const float *values, int n_keys, int stride, int hd,
                                                         float *scores, float *out) {
    float *qs = scores + padded(n_keys);
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int c = 0; c < hd; c += 16) {
        __mmask16 cm = lanes(hd - c);
        _mm512_mask_storeu_ps(qs + c, cm, _mm512_mul_ps(_mm512_maskz_loadu_ps(cm, q + c), vscale));
    }
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int j0 = 0;
    for (; j0 + 16 <= n_keys; j0 += 16)
        vmax = _mm512_max_ps(vmax, score_block(qs, keys + (size_t)j0 * stride, stride, hd, 16, scores + j0));
    if (j0 < n_keys)
        vmax = _mm512_max_ps(vmax, score_block(qs, keys + (size_t)j0 * stride, stride, hd, n_keys - j0, scores + j0));
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int j0 = 0; j0 < n_keys; j0 += 16) {
        __m512 e = _mm512_maskz_mov_ps(lanes(n_keys - j0), lm_exp16(_mm512_sub_ps(_mm512_loadu_ps(scores + j0), mx)));
        _mm512_storeu_ps(scores + j0, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int c = 0; c < hd; c += 64) {
        __mmask16 m0 = lanes(hd - c), m1 = lanes(hd - c - 16), m2 = lanes(hd - c - 32), m3 = lanes(hd - c - 48);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int j = 0;
        for (; j + 2 <= n_keys; j += 2) {
            const float *v = values + (size_t)j * stride + c, *w = v + stride;
            __m512 p = _mm512_set1_ps(scores[j]), r = _mm512_set1_ps(scores[j + 1]);
            a0 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m0, v), a0);
            a1 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m1, v + 16), a1);
            a2 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m2, v + 32), a2);
            a3 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m3, v + 48), a3);
            b0 = _mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(m0, w), b0);
            b1 = _mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(m1, w + 16), b1);
            b2 = _mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(m2, w + 32), b2);
            b3 = _mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(m3, w + 48), b3);
        }
        if (j < n_keys) {
            const float *v = values + (size_t)j * stride + c;
            __m512 p = _mm512_set1_ps(scores[j]);
            a0 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m0, v), a0);
            a1 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m1, v + 16), a1);
            a2 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m2, v + 32), a2);
            a3 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m3, v + 48), a3);
        }
        _mm512_mask_storeu_ps(out + c, m0, _mm512_mul_ps(_mm512_add_ps(a0, b0), inv));
        _mm512_mask_storeu_ps(out + c + 16, m1, _mm512_mul_ps(_mm512_add_ps(a1, b1), inv));
        _mm512_mask_storeu_ps(out + c + 32, m2, _mm512_mul_ps(_mm512_add_ps(a2, b2), inv));
        _mm512_mask_storeu_ps(out + c + 48, m3, _mm512_mul_ps(_mm512_add_ps(a3, b3), inv));
    }
}

lm_cpu_attention_fn lm_cpu_attention_best(void) { return lm_cpu_features() & LM_CPU_AVX512 ? lm_cpu_attention_avx512 : lm_cpu_attention_scalar; }
