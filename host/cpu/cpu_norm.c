/* cpu_norm: see cpu_norm.h. */
#include "cpu/cpu_norm.h"
#include "simd/cpu_features.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

void lm_cpu_norm_row_scalar(float *x, const float *add, int d, const float *gamma, const float *beta, float eps, float *y) {
    if (add)
        for (int j = 0; j < d; j++) x[j] += add[j];
    double mean = 0, var = 0;
    for (int j = 0; j < d; j++) mean += x[j];
    mean /= d;
    for (int j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
    var /= d;
    float rstd = (float)(1.0 / sqrt(var + eps));
    for (int j = 0; j < d; j++) y[j] = ((x[j] - (float)mean) * rstd) * gamma[j] + beta[j];
}

static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* 16 floats as two vectors of 8 doubles */
#define LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define HI(v) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))

/* Three passes as in the scalar kernel (a one-pass variance cancels badly
 * when the mean is large against the spread); the rows are a few KiB, so
 * the second and third read L1. The output uses mul and add, not FMA, to
 * round as the scalar kernel does. */
__attribute__((target("avx512f"))) void lm_cpu_norm_row_avx512(float *x, const float *add, int d, const float *gamma,
                                                           const float *beta, float eps, float *y) {
    __m512d s0 = _mm512_setzero_pd(), s1 = s0;
    for (int j = 0; j < d; j += 16) {
        __mmask16 m = lanes(d - j);
        __m512 v = _mm512_maskz_loadu_ps(m, x + j);
        if (add) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, add + j));
            _mm512_mask_storeu_ps(x + j, m, v);
        }
        s0 = _mm512_add_pd(s0, LO(v));
        s1 = _mm512_add_pd(s1, HI(v));
    }
    double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / d;
    const __m512d vmean = _mm512_set1_pd(mean);
    s0 = s1 = _mm512_setzero_pd();
    for (int j = 0; j < d; j += 16) {
        __mmask16 m = lanes(d - j);
        __m512 v = _mm512_maskz_loadu_ps(m, x + j);
        __m512d t0 = _mm512_maskz_sub_pd((__mmask8)m, LO(v), vmean), t1 = _mm512_maskz_sub_pd((__mmask8)(m >> 8), HI(v), vmean);
        s0 = _mm512_fmadd_pd(t0, t0, s0);
        s1 = _mm512_fmadd_pd(t1, t1, s1);
    }
    double var = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / d;
    const __m512 meanf = _mm512_set1_ps((float)mean), rstd = _mm512_set1_ps((float)(1.0 / sqrt(var + eps)));
    for (int j = 0; j < d; j += 16) {
        __mmask16 m = lanes(d - j);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), meanf), rstd);
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + j)), _mm512_maskz_loadu_ps(m, beta + j));
        _mm512_mask_storeu_ps(y + j, m, v);
    }
}

lm_cpu_norm_row_fn lm_cpu_norm_row_best(void) { return lm_cpu_features() & LM_CPU_AVX512 ? lm_cpu_norm_row_avx512 : lm_cpu_norm_row_scalar; }
