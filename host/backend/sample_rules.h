/*
 * sample_rules: the arithmetic of a sampled draw that the host sampler
 * (sample.c) and the CUDA sampling kernel (kernels/sample.cu) must compute
 * bit for bit alike, in one place both compile, as logit_rules.h is for the
 * candidates' order.
 *
 * A draw compares one uniform number against running sums of exponentials,
 * so a token flips if any of these differs in its last bit. Both sides take:
 *   - the uniform number from lm_sample_uniform (integer arithmetic, then an
 *     exact scaling);
 *   - each exponential from lm_sample_exp below, not from the math library:
 *     CUDA's exp and glibc's may differ by an ulp. It uses only additions
 *     and multiplications, rounded one by one: on the device through
 *     __dadd_rn / __dmul_rn, which nvcc never fuses into an FMA (it fuses
 *     a * b + c otherwise); on the host the C11 build does not contract, and
 *     the emulated build (tests/cuda_emu) passes -ffp-contract=off;
 *   - the warped logit as the float quotient x / T (IEEE division on both:
 *     nvcc's default -prec-div=true; no fast-math);
 *   - the sums in double, sequentially, in the sorted list's order (value
 *     descending, then token ascending: a total order, so any correct sort
 *     gives the same list).
 * The log-prob returned beside the token is not part of the draw: its sum
 * over the row runs in each side's own order and may differ in low bits.
 */
#ifndef LM_SAMPLE_RULES_H
#define LM_SAMPLE_RULES_H

#include "backend/logit_rules.h"

#include <stdint.h>

/* Draw d of stream key: a uniform number in [0, 1) with 53 random bits. */
static inline LM_HOST_DEVICE double lm_sample_uniform(uint64_t key, uint64_t d) {
    uint64_t z = key + (d + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

#ifdef __CUDA_ARCH__
#define LM_SAMPLE_MUL(a, b) __dmul_rn(a, b)
#define LM_SAMPLE_ADD(a, b) __dadd_rn(a, b)
#else
#define LM_SAMPLE_MUL(a, b) ((a) * (b))
#define LM_SAMPLE_ADD(a, b) ((a) + (b))
#endif

/* exp(a) for the draw's terms (a <= 0: a value less the list's max), within
 * 2 ulp of the true value. Below -707 it gives 0 instead of a tiny or
 * subnormal value: the list's first term is exp(0) = 1, so every sum the
 * draw compares is at least 1 and a term under 2^-1020 cannot change one.
 * NaN stays NaN (a list whose max is +inf, as x / T gives for a tiny T,
 * draws its last token on both sides). */
static inline LM_HOST_DEVICE double lm_sample_exp(double a) {
    if (!(a >= -707.0)) return a != a ? a : 0.0;
    if (a > 709.0) return INFINITY;
    /* a = k ln2 + r, |r| <= ln2 / 2: k by the 1.5 * 2^52 shifter (round to
     * nearest), ln2 in two parts so that k * hi is exact */
    const double shifter = 0x1.8p52, ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    double k = LM_SAMPLE_ADD(LM_SAMPLE_MUL(a, 0x1.71547652b82fep0), shifter) - shifter;
    double r = LM_SAMPLE_ADD(a, LM_SAMPLE_MUL(-k, ln2_hi));
    r = LM_SAMPLE_ADD(r, LM_SAMPLE_MUL(-k, ln2_lo));
    /* Taylor to r^13 / 13!: the next term is under 2^-57 of the sum on |r| <= 0.35 */
    const double c[14] = {1.0,
                          1.0,
                          0.5,
                          1.0 / 6,
                          1.0 / 24,
                          1.0 / 120,
                          1.0 / 720,
                          1.0 / 5040,
                          1.0 / 40320,
                          1.0 / 362880,
                          1.0 / 3628800,
                          1.0 / 39916800,
                          1.0 / 479001600,
                          1.0 / 6227020800.0};
    double p = c[13];
    for (int i = 12; i >= 0; i--) p = LM_SAMPLE_ADD(LM_SAMPLE_MUL(p, r), c[i]);
    /* times 2^k, exactly: k is in [-1020, 1023], the result a normal number */
    union {
        uint64_t u;
        double d;
    } two_k;
    two_k.u = (uint64_t)((int64_t)k + 1023) << 52;
    return LM_SAMPLE_MUL(p, two_k.d);
}

#endif
