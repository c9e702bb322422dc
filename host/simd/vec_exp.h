/*
 * vec_exp: expf on 16 floats at once with AVX-512, for the softmax sums of
 * attention and the search (libm's expf, one call per value, was 6-11% of an
 * int8 run in perf). Within 2 ulp of expf on [-104, 89]; below that 0, above
 * +inf, NaN stays NaN, exp(-inf) = 0, exp(0) = 1 exactly. Callers that mix it
 * with a scalar path must use lm_exp1 there, so a value's exp does not depend
 * on whether it fell in a vector or in the tail.
 *
 * Only for code compiled with a target("avx512f") attribute and reached when
 * lm_cpu_features() has LM_CPU_AVX512.
 */
#ifndef LM_VEC_EXP_H
#define LM_VEC_EXP_H

#include <immintrin.h>

/* Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6
 * polynomial for exp(r) (Cephes' expf coefficients) and 2^n by vscalefps,
 * which also gives the subnormals and the overflow to +inf. */
__attribute__((target("avx512f"))) static inline __m512 lm_exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-104.0f); /* exp below this is 0 in float */
    const __m512 hi = _mm512_set1_ps(89.0f);   /* and above this +inf */
    /* max/min return their second operand when either is NaN: x's NaN survives */
    x = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512 y = _mm512_scalef_ps(p, n);
    /* below -104 the clamp would give a tiny subnormal, not 0 */
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ), _mm512_setzero_ps());
}

/* The same function on one value (the tails of vector loops). */
__attribute__((target("avx512f"))) static inline float lm_exp1(float x) {
    return _mm512_cvtss_f32(lm_exp16(_mm512_set1_ps(x)));
}

#endif
