/*
 * test_attention: the CPU backend's attention and layer-norm kernels
 * (cpu_attention, cpu_norm), AVX-512 against the scalar reference and both
 * against a double-precision evaluation, on fresh random inputs: head dims
 * 1 to 128 (partial column vectors), 1 to 200 keys (partial key blocks),
 * scores up to about +-1000 (softmax stability), rows of any width and with a
 * large mean (cancellation). Also: a query's result is bit-identical whatever
 * lies between the rows it reads and in its scratch (batch invariance), the
 * scratch is not overrun, and LYRICMT_CPU_FEATURES sends a CPU to the
 * scalar kernels.
 *
 * Tolerance: errors are measured in units of u = 2^-24 (fp32 rounding) times
 * the quantity that governs them: max|v| * (1 + S) for attention, where S is
 * the largest sum_c |q_c scale k_c| (a score's rounding is about u S, and the
 * exp turns it into a relative error of the weights), and
 * (|x - mean| + |mean|) rstd |gamma| + |beta| for the norm (both kernels
 * subtract the mean rounded to float, as before them). Measured worst
 * over these cases (printed): attention 1.4 u scalar, 1.2 u AVX-512, held to
 * 4 u; norm 2.9 u in both, held to 4 u (its first-order worst case is 3.5 u:
 * seven roundings of at most u/2).
 */
#include "testing.h"
#include "cpu/cpu_attention.h"
#include "simd/cpu_features.h"
#include "cpu/cpu_norm.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define U 0x1p-24
#define ATTEND_TOL 4.0 /* in units of u max|v| (1 + S) */
#define NORM_TOL 4.0   /* in units of u ((|x - mean| + |mean|) rstd |gamma| + |beta|): 3.5 first-order worst case */
#define CANARY 12345.678f

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float uniform(void) { /* in [-0.5, 0.5) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1 << 24)) - 0.5f;
}

static float *random_floats(size_t n, float scale) {
    float *a = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) a[i] = uniform() * scale;
    return a;
}

/* out = softmax((q * scale) . K^T) V in double, from the same float q * scale
 * the kernels use; *s_max = the largest sum_c |q_c scale k_c|. */
static void attend_double(const float *q, float scale, const float *keys, const float *values, int n, int stride, int hd,
                          double *out, double *s_max) {
    double *s = malloc(sizeof(double) * n), mx = -INFINITY, sum = 0;
    *s_max = 0;
    for (int j = 0; j < n; j++) {
        double acc = 0, mag = 0;
        for (int c = 0; c < hd; c++) {
            double t = (double)(q[c] * scale) * keys[(size_t)j * stride + c];
            acc += t;
            mag += fabs(t);
        }
        s[j] = acc;
        mx = fmax(mx, acc);
        *s_max = fmax(*s_max, mag);
    }
    for (int j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
    for (int c = 0; c < hd; c++) {
        double o = 0;
        for (int j = 0; j < n; j++) o += s[j] / sum * values[(size_t)j * stride + c];
        out[c] = o;
    }
    free(s);
}

static double worst_attend[2]; /* scalar, AVX-512: in units of u max|v| (1 + S) */

/* One shape: both kernels (the AVX-512 one where the CPU has it) against the
 * double evaluation; the AVX-512 result again with other data between the
 * rows and garbage in the scratch, bit-identical; the scratch's end intact. */
static void check_attend(int hd, int n, float q_scale, bool avx512) {
    int stride = hd + 5; /* rows of a wider matrix, as the heads of one (rows, D) */
    size_t span = (size_t)(n - 1) * stride + hd; /* the last row ends the allocation */
    float *keys = random_floats(span, 1.0f), *values = random_floats(span, 2.0f), *q = random_floats((size_t)hd, q_scale);
    float scale = 1.0f / sqrtf((float)hd);
    double *want = malloc(sizeof(double) * hd), s_max, v_max = 0;
    attend_double(q, scale, keys, values, n, stride, hd, want, &s_max);
    for (size_t i = 0; i < span; i++) v_max = fmax(v_max, fabs(values[i]));
    double unit = U * v_max * (1 + s_max);
    size_t scratch = lm_cpu_attention_scratch(n, hd);
    CHECK(scratch >= lm_cpu_attention_scratch(n - 1 > 0 ? n - 1 : 1, hd), "scratch shrinks with more keys");
    float *scores = malloc(sizeof(float) * (scratch + 1)), *out = malloc(sizeof(float) * (hd + 1));
    lm_cpu_attention_fn fn[2] = {lm_cpu_attention_scalar, lm_cpu_attention_avx512};
    float *got[2] = {NULL, NULL};
    for (int k = 0; k < (avx512 ? 2 : 1); k++) {
        scores[scratch] = CANARY;
        out[hd] = CANARY;
        fn[k](q, scale, keys, values, n, stride, hd, scores, out);
        CHECK(scores[scratch] == CANARY && out[hd] == CANARY, "hd %d, %d keys: kernel %d writes past its scratch or output", hd, n, k);
        double worst = 0;
        for (int c = 0; c < hd; c++) worst = fmax(worst, isfinite(out[c]) ? fabs(out[c] - want[c]) / unit : INFINITY);
        worst_attend[k] = fmax(worst_attend[k], worst);
        CHECK(worst <= ATTEND_TOL, "hd %d, %d keys, |q| %g: %s kernel off by %.2f u (bound %.1f)", hd, n, q_scale,
              k ? "AVX-512" : "scalar", worst, ATTEND_TOL);
        got[k] = malloc(sizeof(float) * hd);
        memcpy(got[k], out, sizeof(float) * hd);
    }
    if (avx512) {
        /* the same query over a copy with other values between the rows and
         * garbage in the scratch: the result is the query's alone */
        float *k2 = random_floats(span, 7.0f), *v2 = random_floats(span, 7.0f);
        for (int j = 0; j < n; j++) {
            memcpy(k2 + (size_t)j * stride, keys + (size_t)j * stride, sizeof(float) * hd);
            memcpy(v2 + (size_t)j * stride, values + (size_t)j * stride, sizeof(float) * hd);
        }
        for (size_t i = 0; i < scratch; i++) scores[i] = uniform() * 1e30f;
        lm_cpu_attention_avx512(q, scale, k2, v2, n, stride, hd, scores, out);
        CHECK(memcmp(out, got[1], sizeof(float) * hd) == 0, "hd %d, %d keys: the result depends on data outside the query's rows", hd, n);
        free(k2);
        free(v2);
    }
    free(got[0]);
    free(got[1]);
    free(keys); free(values); free(q); free(want); free(scores); free(out);
}

/* Scores so large that all but the top key's weight underflow: stays finite,
 * picks the top key's values. */
static void check_attend_extreme(bool avx512) {
    int hd = 16, n = 40, top = 23;
    float *keys = random_floats((size_t)n * hd, 1e-3f), *values = random_floats((size_t)n * hd, 1.0f), q[16], out[16];
    float *scores = malloc(sizeof(float) * lm_cpu_attention_scratch(n, hd));
    for (int c = 0; c < hd; c++) { q[c] = 400.0f; keys[(size_t)top * hd + c] = 1.0f; }
    lm_cpu_attention_fn fn[2] = {lm_cpu_attention_scalar, lm_cpu_attention_avx512};
    for (int k = 0; k < (avx512 ? 2 : 1); k++) {
        fn[k](q, 0.25f, keys, values, n, hd, hd, scores, out); /* top score 1600, the others within +-8 */
        int same = 0;
        for (int c = 0; c < hd; c++) same += out[c] == values[(size_t)top * hd + c];
        CHECK(same == hd, "%s kernel: scores of 1600: %d/%d outputs are the top key's values", k ? "AVX-512" : "scalar", same, hd);
    }
    free(keys); free(values); free(scores);
}

static double worst_norm[2];

static void check_norm(int d, float offset, bool with_add, bool avx512) {
    float *x = random_floats((size_t)d, 4.0f), *add = random_floats((size_t)d, 1.0f);
    float *gamma = random_floats((size_t)d, 2.0f), *beta = random_floats((size_t)d, 0.5f);
    for (int j = 0; j < d; j++) x[j] += offset;
    float *x0 = malloc(sizeof(float) * d), *y = malloc(sizeof(float) * (d + 1)), *xs = malloc(sizeof(float) * d);
    memcpy(x0, x, sizeof(float) * d);
    /* the double evaluation, from x + add rounded to float as the kernels store it */
    for (int j = 0; j < d; j++) xs[j] = with_add ? x0[j] + add[j] : x0[j];
    double mean = 0, var = 0;
    for (int j = 0; j < d; j++) mean += xs[j];
    mean /= d;
    for (int j = 0; j < d; j++) var += (xs[j] - mean) * (xs[j] - mean);
    double rstd = 1 / sqrt(var / d + 1e-5);
    lm_cpu_norm_row_fn fn[2] = {lm_cpu_norm_row_scalar, lm_cpu_norm_row_avx512};
    float *first = malloc(sizeof(float) * d);
    for (int k = 0; k < (avx512 ? 2 : 1); k++) {
        memcpy(x, x0, sizeof(float) * d);
        y[d] = CANARY;
        fn[k](x, with_add ? add : NULL, d, gamma, beta, 1e-5f, y);
        CHECK(memcmp(x, xs, sizeof(float) * d) == 0, "d %d: %s kernel: x + add stored back wrongly", d, k ? "AVX-512" : "scalar");
        CHECK(y[d] == CANARY, "d %d: %s kernel writes past y", d, k ? "AVX-512" : "scalar");
        double worst = 0;
        for (int j = 0; j < d; j++) {
            double z = (xs[j] - mean) * rstd, want = z * gamma[j] + beta[j];
            /* (x - mean) is taken from the mean rounded to float */
            double unit = U * (fabs(z * gamma[j]) + fabs(beta[j]) + fabs(mean) * rstd * fabs(gamma[j])) + 1e-30;
            worst = fmax(worst, isfinite(y[j]) ? fabs(y[j] - want) / unit : INFINITY);
        }
        worst_norm[k] = fmax(worst_norm[k], worst);
        CHECK(worst <= NORM_TOL, "d %d, mean %g: %s kernel off by %.2f u (bound %.1f)", d, offset, k ? "AVX-512" : "scalar", worst, NORM_TOL);
        if (k == 0) memcpy(first, y, sizeof(float) * d);
        /* the double sums' order only matters if it moves a float rounding */
        else CHECK(memcmp(first, y, sizeof(float) * d) == 0, "d %d, mean %g: AVX-512 and scalar norms differ", d, offset);
        /* y may be the add row itself (cpu_backend writes the norm over the
         * residual branch it just added) */
        if (with_add) {
            memcpy(x, x0, sizeof(float) * d);
            float *alias = malloc(sizeof(float) * d), *want_y = malloc(sizeof(float) * d);
            memcpy(want_y, y, sizeof(float) * d);
            memcpy(alias, add, sizeof(float) * d);
            fn[k](x, alias, d, gamma, beta, 1e-5f, alias);
            CHECK(memcmp(alias, want_y, sizeof(float) * d) == 0, "d %d: %s kernel: y over add differs", d, k ? "AVX-512" : "scalar");
            free(alias);
            free(want_y);
        }
    }
    free(first);
    free(x); free(add); free(gamma); free(beta); free(x0); free(y); free(xs);
}

/* LYRICMT_CPU_FEATURES=noavx512 sends both choices to the scalar kernels. */
static void check_dispatch(bool avx512) {
    unsetenv("LYRICMT_CPU_FEATURES");
    CHECK(lm_cpu_attention_best() == (avx512 ? lm_cpu_attention_avx512 : lm_cpu_attention_scalar), "attention: wrong kernel for this CPU");
    CHECK(lm_cpu_norm_row_best() == (avx512 ? lm_cpu_norm_row_avx512 : lm_cpu_norm_row_scalar), "norm: wrong kernel for this CPU");
    setenv("LYRICMT_CPU_FEATURES", "noavx512", 1);
    CHECK(lm_cpu_attention_best() == lm_cpu_attention_scalar, "attention: noavx512 does not select the scalar kernel");
    CHECK(lm_cpu_norm_row_best() == lm_cpu_norm_row_scalar, "norm: noavx512 does not select the scalar kernel");
    setenv("LYRICMT_CPU_FEATURES", "novnni,nobf16", 1);
    CHECK(lm_cpu_attention_best() == (avx512 ? lm_cpu_attention_avx512 : lm_cpu_attention_scalar), "attention: novnni hides AVX-512F");
    unsetenv("LYRICMT_CPU_FEATURES");
}

int main(void) {
    bool avx512 = (lm_cpu_features() & LM_CPU_AVX512) != 0;
    if (!avx512) printf("test_attention: AVX-512 kernels skipped: no AVX-512 on this CPU (scalar kernels still checked)\n");
    const int hds[] = {1, 7, 8, 16, 20, 33, 50, 64, 80, 100, 128}, keys[] = {1, 2, 15, 16, 17, 33, 200};
    const float q_scales[] = {1.0f, 8.0f, 200.0f}; /* scores up to about 0.1, 10 and 1000 */
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof keys / sizeof *keys; b++)
            for (size_t s = 0; s < sizeof q_scales / sizeof *q_scales; s++) check_attend(hds[a], keys[b], q_scales[s], avx512);
    check_attend_extreme(avx512);
    printf("test_attention: worst attention error: scalar %.2f u, AVX-512 %.2f u (units of 2^-24 max|v| (1 + S); bound %.1f)\n",
           worst_attend[0], worst_attend[1], ATTEND_TOL);
    const int ds[] = {1, 7, 16, 17, 20, 64, 1024, 1030};
    for (size_t a = 0; a < sizeof ds / sizeof *ds; a++)
        for (int add = 0; add < 2; add++) {
            check_norm(ds[a], 0.0f, add, avx512);
            check_norm(ds[a], 1e4f, add, avx512);
        }
    printf("test_attention: worst layer-norm error: scalar %.2f u, AVX-512 %.2f u (units of 2^-24 ((|x - mean| + |mean|) rstd |gamma| + |beta|); bound %.1f)\n",
           worst_norm[0], worst_norm[1], NORM_TOL);
    check_dispatch(avx512);
    return lm_test_summary("test_attention");
}
