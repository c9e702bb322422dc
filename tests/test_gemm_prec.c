/*
 * test_gemm_prec: the int8 and bf16 CPU products (gemm_int8, gemm_bf16,
 * gemm_amx) on fresh random inputs of odd sizes (partial panels, partial row
 * tiles, k not a multiple of 4 or of an AMX tile), against a scalar reference
 * written from the arithmetic the headers promise: bit-identical results, on
 * every kernel this CPU has (AMX's bf16 against its own order of sums).
 * Also: the error against the exact product within the bound that arithmetic
 * implies, rows alone versus batched (identical), extremes (zero rows, huge
 * values, vpmaddubsw's saturation limit), and the feature mask
 * (LYRICMT_CPU_FEATURES) that sends a CPU to its fallback.
 */
#include "testing.h"
#include "simd/cpu_features.h"
#include "cpu/cpu_weights.h"
#include "cpu/packed_gemm.h"
#include "cpu/gemm_blocks.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_int8.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;

static float uniform(void) { /* in [-0.5, 0.5) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1 << 24)) - 0.5f;
}

static float *random_matrix(int rows, int cols, float scale) {
    float *a = malloc(sizeof(float) * ((size_t)rows * cols + 1));
    for (int i = 0; i < rows * cols; i++) a[i] = uniform() * scale;
    return a;
}

/* m, n, k: partial panels (n), row tiles of 12 and 8 (VNNI, vdpbf16ps) and of
 * 16 with two a block (AMX: m = 16, 17, 31, 33, 47 take the last tile as the
 * last 16 rows), k past whole groups, pairs and AMX tiles (64 bytes), and
 * none at all */
static const int sizes[][3] = {{1, 1, 1},   {3, 33, 5},  {17, 77, 45},  {9, 64, 130},  {8, 32, 4},   {12, 100, 1023},
                               {16, 48, 64}, {31, 40, 70}, {33, 65, 128}, {47, 33, 200}, {64, 32, 2}, {0, 33, 7}};

/* ---- int8 reference: per-row steps, exact integer sums ---- */

static int ref_q(float v, float amax) {
    float inv = amax > 0 ? 127.0f / amax : 0;
    float r = nearbyintf(v * inv);
    return r > 127 ? 127 : r < -127 ? -127 : (int)r;
}

static float row_amax(const float *v, int k) {
    float a = 0;
    for (int i = 0; i < k; i++) a = fmaxf(a, fabsf(v[i]));
    return a;
}

static void ref_int8(int m, int n, int k, const float *x, const float *w, const float *bias, float *y) {
    for (int i = 0; i < m; i++) {
        float ax = row_amax(x + (size_t)i * k, k);
        for (int o = 0; o < n; o++) {
            float aw = row_amax(w + (size_t)o * k, k);
            int64_t sum = 0;
            for (int kk = 0; kk < k; kk++) sum += (int64_t)ref_q(x[(size_t)i * k + kk], ax) * ref_q(w[(size_t)o * k + kk], aw);
            float v = (float)sum * ((ax / 127.0f) * (aw / 127.0f));
            y[(size_t)i * n + o] = bias ? v + bias[o] : v;
        }
    }
}

/* y from the library: rows quantized, then the product in two column ranges
 * (as two threads would split it) */
static void lib_int8(const lm_gemm_int8 *q8, int m, const float *x, const float *bias, float *y) {
    uint8_t *q = malloc((size_t)(m ? m : 1) * q8->k4);
    float *step = malloc(sizeof(float) * (m ? m : 1));
    for (int i = 0; i < m; i++) step[i] = lm_gemm_int8_quantize_row(q8, x + (size_t)i * q8->k, q + (size_t)i * q8->k4);
    int split = q8->n > 32 ? 32 : q8->n;
    lm_gemm_int8_run(q8, m, q, step, bias, false, y, 0, split);
    lm_gemm_int8_run(q8, m, q, step, bias, false, y, split, q8->n);
    free(q);
    free(step);
}

static const char *kernel_name(lm_gemm_int8_kernel k) { return k == LM_Q8_AMX ? "AMX" : k == LM_Q8_VNNI ? "VNNI" : "AVX2"; }

/* One size on one kernel: exact against the reference, within the
 * quantization bound of the exact product, and each row alone identical. */
static void check_int8_case(lm_gemm_int8_kernel kern, int m, int n, int k, float xscale) {
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(m, k, xscale), *b = random_matrix(1, n, 1.0f);
    float *y = malloc(sizeof(float) * ((size_t)m * n + 1)), *ref = malloc(sizeof(float) * ((size_t)m * n + 1)), *one = malloc(sizeof(float) * n);
    lm_gemm_int8 q8;
    lm_err err;
    CHECK(lm_gemm_int8_init(&q8, w, n, k, kern, &err) == 0, "int8 init: %s", err.msg);
    lib_int8(&q8, m, x, b, y);
    ref_int8(m, n, k, x, w, b, ref);
    CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "int8 %s m=%d n=%d k=%d: identical to the reference", kernel_name(kern), m, n, k);
    if (kern == LM_Q8_VNNI && m > 12) { /* several tiles a panel: the next-panel prefetch of weights too large for L3, on small ones */
        q8.streamed = true;
        lib_int8(&q8, m, x, b, y);
        CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "int8 VNNI m=%d n=%d k=%d, as if streamed: identical to the reference", m, n, k);
        q8.streamed = false;
    }
    /* |x.w - qx.qw * steps| <= sx/2 sum|w| + sw/2 sum|x| + k sx sw / 4, plus float rounding */
    bool within = true, alone = true;
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * k;
        double sx = row_amax(xi, k) / 127.0;
        for (int o = 0; o < n; o++) {
            const float *wo = w + (size_t)o * k;
            double sw = row_amax(wo, k) / 127.0, exact = b[o], sabs_x = 0, sabs_w = 0, sabs = 0;
            for (int kk = 0; kk < k; kk++) {
                exact += (double)xi[kk] * wo[kk];
                sabs_x += fabs(xi[kk]);
                sabs_w += fabs(wo[kk]);
                sabs += fabs((double)xi[kk] * wo[kk]);
            }
            double bound = sx / 2 * sabs_w + sw / 2 * sabs_x + k * sx * sw / 4 + 1e-6 * (sabs + fabs(b[o]));
            within &= fabs(y[(size_t)i * n + o] - exact) <= bound;
        }
        lib_int8(&q8, 1, xi, b, one);
        alone &= memcmp(one, y + (size_t)i * n, sizeof(float) * n) == 0;
    }
    CHECK(within, "int8 %s m=%d n=%d k=%d: within the quantization bound of the exact product", kernel_name(kern), m, n, k);
    CHECK(alone, "int8 %s m=%d n=%d k=%d: each row alone gives the same bits as batched", kernel_name(kern), m, n, k);
    lm_gemm_int8_free(&q8);
    free(w); free(x); free(b); free(y); free(ref); free(one);
}

/* Extremes: an all-zero row of x or W gives the bias exactly; the largest
 * sums (every product 127 * 127, where vpmaddubsw would saturate a u8 shift)
 * are exact; huge activations are finite and in bound. */
static void check_int8_extremes(lm_gemm_int8_kernel kern) {
    int n = 40, k = 4096, m = 3;
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(m, k, 1.0f), *b = random_matrix(1, n, 1.0f);
    float *y = malloc(sizeof(float) * m * n), *ref = malloc(sizeof(float) * m * n);
    memset(w + (size_t)5 * k, 0, sizeof(float) * k); /* output 5: zero weights */
    memset(x, 0, sizeof(float) * k);                  /* row 0: zeros */
    for (int kk = 0; kk < k; kk++) {                  /* row 1 and output 7: +-max everywhere, same signs */
        float s = kk % 3 ? 1.0f : -1.0f;
        x[(size_t)k + kk] = 3.0f * s;
        w[(size_t)7 * k + kk] = 0.25f * s;
    }
    for (int kk = 0; kk < k; kk++) x[(size_t)2 * k + kk] *= 1e30f; /* row 2: huge */
    lm_gemm_int8 q8;
    lm_err err;
    CHECK(lm_gemm_int8_init(&q8, w, n, k, kern, &err) == 0, "int8 init: %s", err.msg);
    lib_int8(&q8, m, x, b, y);
    ref_int8(m, n, k, x, w, b, ref);
    CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "int8 %s extremes: identical to the reference", kernel_name(kern));
    bool bias_only = true, finite = true;
    for (int o = 0; o < n; o++) bias_only &= y[o] == b[o] && y[(size_t)o % m * n + 5] == b[5];
    CHECK(bias_only, "int8 %s: a zero row of x or W gives the bias", kernel_name(kern));
    CHECK(y[(size_t)1 * n + 7] == (float)(127 * 127 * k) * ((3.0f / 127.0f) * (0.25f / 127.0f)) + b[7],
          "int8 %s: 127 * 127 at every k summed exactly (%.9g)", kernel_name(kern), y[(size_t)1 * n + 7]);
    for (int o = 0; o < n; o++) finite &= isfinite(y[(size_t)2 * n + o]) && (o == 5 || fabsf(y[(size_t)2 * n + o]) > 1e25f);
    CHECK(finite, "int8 %s: huge activations give finite, huge outputs", kernel_name(kern));
    lm_gemm_int8_free(&q8);
    free(w); free(x); free(b); free(y); free(ref);
}

static void check_int8(void) {
    lm_gemm_int8_kernel kernels[3] = {LM_Q8_AMX, LM_Q8_VNNI, LM_Q8_AVX2};
    const unsigned needs[3] = {LM_CPU_AMX_INT8, LM_CPU_VNNI, LM_CPU_AVX2};
    unsigned f = lm_cpu_features();
    for (int i = 0; i < 3; i++) {
        if (!(f & needs[i])) {
            printf("test_gemm_prec: int8 %s kernel skipped: this CPU lacks it\n", kernel_name(kernels[i]));
            continue;
        }
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) check_int8_case(kernels[i], sizes[s][0], sizes[s][1], sizes[s][2], 2.0f);
        check_int8_case(kernels[i], 5, 70, 33, 1e-20f); /* tiny activations: steps near float's bottom */
        /* 1100 rows of 2048 bytes (2.2 MB) pass gemm_blocks.h's limit: x in
         * row blocks, the next panel prefetched across a block's tiles */
        CHECK(lm_row_block(1100, 2048, 1) < 1100, "int8: 1100 x 2048 is worked in row blocks");
        check_int8_case(kernels[i], 1100, 45, 2047, 2.0f);
        check_int8_extremes(kernels[i]);
    }
    lm_gemm_int8 q8;
    lm_err err;
    float w = 1;
    CHECK(lm_gemm_int8_init(&q8, &w, 1, LM_Q8_MAX_K + 1, LM_Q8_AVX2, &err) != 0 && strstr(err.msg, "32-bit"),
          "int8: a product too wide for 32-bit sums is refused");
}

/* Every int8 kernel this CPU has gives the same bits (exact integer sums,
 * one epilogue), so a line's int8 translation does not depend on the CPU. */
static void check_int8_kernels_agree(void) {
    int m = 45, n = 97, k = 333;
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(m, k, 3.0f), *b = random_matrix(1, n, 1.0f);
    float *y[3] = {malloc(sizeof(float) * m * n), malloc(sizeof(float) * m * n), malloc(sizeof(float) * m * n)};
    const lm_gemm_int8_kernel kernels[3] = {LM_Q8_AMX, LM_Q8_VNNI, LM_Q8_AVX2};
    const unsigned needs[3] = {LM_CPU_AMX_INT8, LM_CPU_VNNI, LM_CPU_AVX2};
    int have = 0, same = 0;
    for (int i = 0; i < 3; i++) {
        if (!(lm_cpu_features() & needs[i])) continue;
        lm_gemm_int8 q8;
        lm_err err;
        CHECK(lm_gemm_int8_init(&q8, w, n, k, kernels[i], &err) == 0, "int8 init: %s", err.msg);
        lib_int8(&q8, m, x, b, y[have]);
        same += have > 0 && memcmp(y[have], y[0], sizeof(float) * m * n) == 0;
        have++;
        lm_gemm_int8_free(&q8);
    }
    CHECK(have < 2 || same == have - 1, "int8: the %d kernels of this CPU give the same bits", have);
    free(w); free(x); free(b); free(y[0]); free(y[1]); free(y[2]);
}

/* ---- bf16 reference: vdpbf16ps's order, odd k then even k per pair ---- */

static void ref_bf16(int m, int n, int k, const float *x, const float *w, const float *bias, float *y) {
    for (int i = 0; i < m; i++)
        for (int o = 0; o < n; o++) {
            float acc = 0;
            for (int kk = 0; kk < k; kk += 2) {
                float x1 = kk + 1 < k ? lm_bf16_float(lm_bf16_round(x[(size_t)i * k + kk + 1])) : 0;
                float w1 = kk + 1 < k ? lm_bf16_float(lm_bf16_round(w[(size_t)o * k + kk + 1])) : 0;
                acc += x1 * w1; /* exact product: two 8-bit significands */
                acc += lm_bf16_float(lm_bf16_round(x[(size_t)i * k + kk])) * lm_bf16_float(lm_bf16_round(w[(size_t)o * k + kk]));
            }
            y[(size_t)i * n + o] = bias ? acc + bias[o] : acc;
        }
}

/* bf16 on AMX tiles, as gemm_amx.h states this CPU's tdpbf16ps adds (found
 * by experiment on the project's Xeon): per tile of 32 values of k, the
 * products of the even values summed in one chain and of the odd in another,
 * each add rounded to nearest even, the two chains added, that added to the
 * output; subnormal inputs and results are zero. */
static float ftz(float v) { return fabsf(v) < 0x1p-126f ? 0.0f : v; }

static float bf16_in(const float *v, int kk, int k) { return kk < k ? ftz(lm_bf16_float(lm_bf16_round(v[kk]))) : 0.0f; }

static void ref_bf16_amx(int m, int n, int k, const float *x, const float *w, const float *bias, float *y) {
    for (int i = 0; i < m; i++)
        for (int o = 0; o < n; o++) {
            float acc = 0;
            for (int t = 0; t < k; t += 32) {
                float even = 0, odd = 0;
                for (int kk = t; kk < t + 32; kk += 2) {
                    even = ftz(even + bf16_in(x + (size_t)i * k, kk, k) * bf16_in(w + (size_t)o * k, kk, k));
                    odd = ftz(odd + bf16_in(x + (size_t)i * k, kk + 1, k) * bf16_in(w + (size_t)o * k, kk + 1, k));
                }
                acc = ftz(acc + ftz(even + odd));
            }
            y[(size_t)i * n + o] = bias ? acc + bias[o] : acc;
        }
}

static void lib_bf16(const lm_gemm_bf16 *b16, int m, const float *x, const float *bias, float *y) {
    char *xb = malloc(lm_gemm_bf16_row_bytes(b16) * (size_t)(m ? m : 1));
    for (int i = 0; i < m; i++) lm_gemm_bf16_convert_row(b16, x + (size_t)i * b16->k, xb + (size_t)i * lm_gemm_bf16_row_bytes(b16));
    int split = b16->n > 32 ? 32 : b16->n;
    lm_gemm_bf16_run(b16, m, xb, bias, false, y, 0, split);
    lm_gemm_bf16_run(b16, m, xb, bias, false, y, split, b16->n);
    free(xb);
}

static const char *b16_name(lm_gemm_bf16_kernel k) { return k == LM_B16_AMX ? "AMX" : k == LM_B16_DOT ? "vdpbf16ps" : "AVX-512F"; }

static void check_bf16_case(lm_gemm_bf16_kernel kern, int m, int n, int k, float xscale) {
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(m, k, xscale), *b = random_matrix(1, n, 1.0f);
    float *y = malloc(sizeof(float) * ((size_t)m * n + 1)), *ref = malloc(sizeof(float) * ((size_t)m * n + 1)), *one = malloc(sizeof(float) * n);
    lm_gemm_bf16 b16;
    lm_err err;
    CHECK(lm_gemm_bf16_init(&b16, w, n, k, kern, &err) == 0, "bf16 init: %s", err.msg);
    lib_bf16(&b16, m, x, b, y);
    (kern == LM_B16_AMX ? ref_bf16_amx : ref_bf16)(m, n, k, x, w, b, ref);
    CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "bf16 %s m=%d n=%d k=%d: identical to the reference", b16_name(kern), m, n, k);
    /* each input rounded to 8 significant bits, within 2^-8 relative:
     * products within 2^-7 + 2^-16; k float additions within k 2^-24 of the
     * running sums (AMX's chains and tiles are no longer than k) */
    bool within = true, alone = true;
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * k;
        for (int o = 0; o < n; o++) {
            double exact = b[o], sabs = fabs(b[o]);
            for (int kk = 0; kk < k; kk++) {
                exact += (double)xi[kk] * w[(size_t)o * k + kk];
                sabs += fabs((double)xi[kk] * w[(size_t)o * k + kk]);
            }
            within &= fabs(y[(size_t)i * n + o] - exact) <= sabs * (ldexp(1, -7) + ldexp(1, -16) + (k + 1) * ldexp(1, -24));
        }
        lib_bf16(&b16, 1, xi, b, one);
        alone &= memcmp(one, y + (size_t)i * n, sizeof(float) * n) == 0;
    }
    CHECK(within, "bf16 %s m=%d n=%d k=%d: within the rounding bound of the exact product", b16_name(kern), m, n, k);
    CHECK(alone, "bf16 %s m=%d n=%d k=%d: each row alone gives the same bits as batched", b16_name(kern), m, n, k);
    lm_gemm_bf16_free(&b16);
    free(w); free(x); free(b); free(y); free(ref); free(one);
}

/* lm_bf16_round against the CPU's own vcvtneps2bf16 (round to nearest even) */
__attribute__((target("avx512f,avx512bf16,avx512vl"))) static bool hardware_rounding_agrees(const float *v, int n) {
    bool same = true;
    for (int i = 0; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(v + i));
        uint16_t got[16];
        memcpy(got, &h, sizeof got);
        for (int j = 0; j < 16; j++) same &= got[j] == lm_bf16_round(v[i + j]);
    }
    return same;
}

static void check_bf16(void) {
    CHECK(lm_bf16_round(1.0f + ldexpf(1, -8)) == 0x3f80 && lm_bf16_round(1.0f + 3 * ldexpf(1, -8)) == 0x3f82 &&
              lm_bf16_round(-2.0f) == 0xc000 && lm_bf16_round(INFINITY) == 0x7f80 && isnan(lm_bf16_float(lm_bf16_round(NAN))),
          "bf16 rounding: ties to even, signs, infinity, NaN");
    unsigned f = lm_cpu_features();
    if (f & LM_CPU_BF16) {
        float *v = random_matrix(64, 64, 1e3f);
        CHECK(hardware_rounding_agrees(v, 64 * 64), "bf16 rounding agrees with vcvtneps2bf16");
        free(v);
    }
    lm_gemm_bf16_kernel kernels[3] = {LM_B16_AMX, LM_B16_DOT, LM_B16_WIDEN};
    const unsigned needs[3] = {LM_CPU_AMX_BF16, LM_CPU_BF16, LM_CPU_AVX512};
    for (int i = 0; i < 3; i++) {
        if (!(f & needs[i])) {
            printf("test_gemm_prec: bf16 %s kernel skipped: this CPU lacks it\n", b16_name(kernels[i]));
            continue;
        }
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) check_bf16_case(kernels[i], sizes[s][0], sizes[s][1], sizes[s][2], 2.0f);
        check_bf16_case(kernels[i], 21, 40, 96, 1e-36f); /* products and sums below float's normal range */
        /* 1100 rows of 1024 values (2.2 MB as bfloat16, 4.4 MB as floats)
         * pass gemm_blocks.h's limit: x in row blocks, the next panel
         * prefetched across a block's tiles */
        CHECK(lm_row_block(1100, 2048, 1) < 1100 && lm_row_block(1100, 4096, 1) < 1100, "bf16: 1100 x 1024 is worked in row blocks");
        check_bf16_case(kernels[i], 1100, 45, 1023, 2.0f);
    }
    lm_gemm_bf16 b16;
    lm_err err;
    float w = 1;
    CHECK(lm_gemm_bf16_init(&b16, &w, 1, LM_B16_MAX_K + 1, LM_B16_WIDEN, &err) != 0, "bf16: a product wider than LM_B16_MAX_K is refused");
}

/* The AMX tiles read whole tiles of rows: with the rows' last byte against
 * an unmapped page, a product of any m reads none past its last row (the
 * last tile is the last 16 rows, or m rows when m < 16), or the test dies.
 * Each product also equals the same rows from an ordinary buffer. */
static void check_amx_reads_no_further(void) {
    unsigned f = lm_cpu_features();
    if (!(f & (LM_CPU_AMX_INT8 | LM_CPU_AMX_BF16))) {
        printf("test_gemm_prec: AMX bounds checks skipped: this CPU lacks AMX\n");
        return;
    }
    long page = sysconf(_SC_PAGESIZE);
    const int n = 40, k = 128, ms[] = {1, 5, 15, 16, 17, 31, 33, 47};
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(47, k, 2.0f);
    float *y = malloc(sizeof(float) * 47 * n), *ref = malloc(sizeof(float) * 47 * n);
    lm_gemm_int8 q8;
    lm_gemm_bf16 b16;
    lm_err err;
    bool have8 = f & LM_CPU_AMX_INT8, have16 = f & LM_CPU_AMX_BF16;
    if (have8) CHECK(lm_gemm_int8_init(&q8, w, n, k, LM_Q8_AMX, &err) == 0, "int8 init: %s", err.msg);
    if (have16) CHECK(lm_gemm_bf16_init(&b16, w, n, k, LM_B16_AMX, &err) == 0, "bf16 init: %s", err.msg);
    for (size_t c = 0; c < sizeof ms / sizeof *ms; c++) {
        int m = ms[c];
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0 ? !have8 : !have16) continue;
            size_t row = kind == 0 ? (size_t)q8.k4 : lm_gemm_bf16_row_bytes(&b16), bytes = (size_t)m * row;
            size_t span = (bytes + (size_t)page - 1) / (size_t)page * (size_t)page;
            char *map = mmap(NULL, span + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            CHECK(map != MAP_FAILED && mprotect(map + span, (size_t)page, PROT_NONE) == 0, "a buffer before an unmapped page");
            char *rows = map + span - bytes; /* the last row ends where the unmapped page starts */
            float step[47];
            for (int i = 0; i < m; i++) {
                if (kind == 0) step[i] = lm_gemm_int8_quantize_row(&q8, x + (size_t)i * k, (uint8_t *)rows + i * row);
                else lm_gemm_bf16_convert_row(&b16, x + (size_t)i * k, rows + i * row);
            }
            if (kind == 0) lm_gemm_int8_run(&q8, m, (const uint8_t *)rows, step, NULL, false, y, 0, n), lib_int8(&q8, m, x, NULL, ref);
            else lm_gemm_bf16_run(&b16, m, rows, NULL, false, y, 0, n), lib_bf16(&b16, m, x, NULL, ref);
            CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "AMX %s, %d rows ending at an unmapped page: read no further, same results",
                  kind == 0 ? "int8" : "bf16", m);
            munmap(map, span + (size_t)page);
        }
    }
    if (have8) lm_gemm_int8_free(&q8);
    if (have16) lm_gemm_bf16_free(&b16);
    free(w); free(x); free(y); free(ref);
}

/* The rows as the bf16 kernels read them: lm_bf16_round on every value (ties
 * to even, NaN kept a NaN and quiet, infinities, subnormals), zero past k. */
static void check_bf16_rows(void) {
    float v[45] = {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -1.0f - 0x1p-8f, 0x1p-130f, -0x1.ffp-127f, INFINITY, -INFINITY, NAN, -NAN, 3.4e38f, -3.4e38f, 0.0f, -0.0f};
    const uint32_t signaling = 0x7f800001u; /* a NaN whose payload is all below bfloat16's bits: it must not become infinity */
    memcpy(&v[13], &signaling, sizeof signaling);
    for (int i = 14; i < 45; i++) v[i] = uniform() * 1e3f;
    const lm_gemm_bf16_kernel kernels[3] = {LM_B16_AMX, LM_B16_DOT, LM_B16_WIDEN};
    const unsigned needs[3] = {LM_CPU_AMX_BF16, LM_CPU_AVX512, LM_CPU_AVX512};
    for (int i = 0; i < 3; i++) {
        if (!(lm_cpu_features() & needs[i])) continue;
        lm_gemm_bf16 b16;
        lm_err err;
        float w[45] = {0};
        CHECK(lm_gemm_bf16_init(&b16, w, 1, 45, kernels[i], &err) == 0, "bf16 init: %s", err.msg);
        _Alignas(64) unsigned char out[64 * 4];
        memset(out, 0xab, sizeof out);
        lm_gemm_bf16_convert_row(&b16, v, out);
        bool same = true;
        for (int kk = 0; kk < b16.k2; kk++) {
            uint16_t want = kk < 45 ? lm_bf16_round(v[kk]) : 0;
            uint16_t got;
            if (kernels[i] == LM_B16_WIDEN) {
                uint32_t u;
                memcpy(&u, out + 4 * kk, 4);
                got = (uint16_t)(u >> 16);
                same &= (u & 0xffff) == 0;
            } else {
                memcpy(&got, out + 2 * kk, 2);
            }
            same &= got == want;
        }
        CHECK(same && (size_t)b16.k2 * (kernels[i] == LM_B16_WIDEN ? 4 : 2) == lm_gemm_bf16_row_bytes(&b16),
              "bf16 %s: a row converted as lm_bf16_round rounds each value, zero up to k2 = %d", b16_name(kernels[i]), b16.k2);
        lm_gemm_bf16_free(&b16);
    }
}

/* lm_cpu_linear on int8 and bf16 matrices, split over OpenMP threads, equals
 * the single-threaded kernels */
static void check_cpu_linear(void) {
    int m = 21, n = 333, k = 67;
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(m, k, 1.0f), *b = random_matrix(1, n, 1.0f);
    float *y = malloc(sizeof(float) * m * n), *ref = malloc(sizeof(float) * m * n);
    lm_err err;
    if (lm_gemm_int8_best_kernel() != LM_Q8_NONE) {
        lm_cpu_matrix mat = {.form = LM_FORM_INT8, .n = n, .k = k};
        CHECK(lm_gemm_int8_init(&mat.q8, w, n, k, lm_gemm_int8_best_kernel(), &err) == 0, "int8 init");
        lm_cpu_linear(&mat, m, x, b, y);
        lib_int8(&mat.q8, m, x, b, ref);
        CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "lm_cpu_linear int8 (%s) over threads: identical to one thread",
              kernel_name(lm_gemm_int8_best_kernel()));
        lm_gemm_int8_free(&mat.q8);
    }
    if (lm_gemm_bf16_best_kernel() != LM_B16_NONE) {
        lm_cpu_matrix mat = {.form = LM_FORM_BF16, .n = n, .k = k};
        CHECK(lm_gemm_bf16_init(&mat.b16, w, n, k, lm_gemm_bf16_best_kernel(), &err) == 0, "bf16 init");
        lm_cpu_linear(&mat, m, x, NULL, y);
        lib_bf16(&mat.b16, m, x, NULL, ref);
        CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "lm_cpu_linear bf16 (%s) over threads: identical to one thread",
              b16_name(lm_gemm_bf16_best_kernel()));
        lm_gemm_bf16_free(&mat.b16);
    }
    free(w); free(x); free(b); free(y); free(ref);
}

/* lm_cpu_linear_relu equals relu (v > 0 ? v : 0) after lm_cpu_linear, bit
 * for bit, in every form; -0 and NaN outputs become +0 as there. */
static void check_fused_relu(void) {
    int m = 19, n = 97, k = 40;
    float *w = random_matrix(n, k, 1.0f), *x = random_matrix(m, k, 1.0f), *b = random_matrix(1, n, 1.0f);
    float *y = malloc(sizeof(float) * m * n), *ref = malloc(sizeof(float) * m * n);
    memset(w, 0, sizeof(float) * k); /* output 0: W = 0, bias -0: every row gives -0 */
    b[0] = -0.0f;
    x[3] = NAN;                       /* row 0: NaN through every output in fp32 */
    lm_err err;
    lm_cpu_matrix mats[4] = {{.form = LM_FORM_BLAS, .n = n, .k = k, .w = w}, {.form = LM_FORM_PACKED, .n = n, .k = k},
                             {.form = LM_FORM_INT8, .n = n, .k = k}, {.form = LM_FORM_BF16, .n = n, .k = k}};
    const char *names[4] = {"BLAS", "packed", kernel_name(lm_gemm_int8_best_kernel()), b16_name(lm_gemm_bf16_best_kernel())};
    bool have[4] = {true, lm_packed_supported(), lm_gemm_int8_best_kernel() != LM_Q8_NONE, lm_gemm_bf16_best_kernel() != LM_B16_NONE};
    if (have[1]) lm_packed_init(&mats[1].f32, w, n, k, &err);
    if (have[2]) lm_gemm_int8_init(&mats[2].q8, w, n, k, lm_gemm_int8_best_kernel(), &err);
    if (have[3]) lm_gemm_bf16_init(&mats[3].b16, w, n, k, lm_gemm_bf16_best_kernel(), &err);
    for (int f = 0; f < 4; f++) {
        if (!have[f]) continue;
        lm_cpu_linear(&mats[f], m, x, b, ref);
        for (int i = 0; i < m * n; i++) ref[i] = ref[i] > 0 ? ref[i] : 0;
        lm_cpu_linear_relu(&mats[f], m, x, b, true, y);
        CHECK(memcmp(y, ref, sizeof(float) * m * n) == 0, "fused relu (%s): identical to relu after the product", names[f]);
    }
    lm_packed_free(&mats[1].f32);
    lm_gemm_int8_free(&mats[2].q8);
    lm_gemm_bf16_free(&mats[3].b16);
    free(w); free(x); free(b); free(y); free(ref);
}

/* LYRICMT_CPU_FEATURES hides features, and the kernel choice follows. */
static void check_feature_mask(void) {
    unsigned all = lm_cpu_features();
    lm_gemm_int8_kernel below_amx = all & LM_CPU_VNNI ? LM_Q8_VNNI : all & LM_CPU_AVX2 ? LM_Q8_AVX2 : LM_Q8_NONE;
    setenv("LYRICMT_CPU_FEATURES", "noamx", 1);
    CHECK(!(lm_cpu_features() & (LM_CPU_AMX_INT8 | LM_CPU_AMX_BF16)) && lm_gemm_int8_best_kernel() == below_amx &&
              lm_gemm_bf16_best_kernel() != LM_B16_AMX,
          "noamx: int8 and bf16 leave the AMX tiles");
    setenv("LYRICMT_CPU_FEATURES", "novnni", 1);
    CHECK(!(lm_cpu_features() & LM_CPU_VNNI) &&
              lm_gemm_int8_best_kernel() == (all & LM_CPU_AMX_INT8 ? LM_Q8_AMX : all & LM_CPU_AVX2 ? LM_Q8_AVX2 : LM_Q8_NONE),
          "novnni: int8 takes AMX where there is one, else AVX2");
    setenv("LYRICMT_CPU_FEATURES", "noamx,novnni", 1);
    CHECK(lm_gemm_int8_best_kernel() == (all & LM_CPU_AVX2 ? LM_Q8_AVX2 : LM_Q8_NONE), "noamx,novnni: int8 takes AVX2");
    setenv("LYRICMT_CPU_FEATURES", "noamx,nobf16,novnni,noavx2", 1);
    CHECK(lm_gemm_bf16_best_kernel() == (all & LM_CPU_AVX512 ? LM_B16_WIDEN : LM_B16_NONE) && lm_gemm_int8_best_kernel() == LM_Q8_NONE &&
              !(lm_cpu_features() & LM_CPU_BF16),
          "noamx,nobf16,novnni,noavx2: bf16 on AVX-512F, no int8 kernel");
    setenv("LYRICMT_CPU_FEATURES", "noavx512", 1);
    CHECK(!lm_packed_supported() && lm_gemm_bf16_best_kernel() == LM_B16_NONE &&
              !(lm_cpu_features() & (LM_CPU_VNNI | LM_CPU_AMX_INT8 | LM_CPU_AMX_BF16)),
          "noavx512 hides AVX-512 and what needs it, AMX included");
    setenv("LYRICMT_CPU_FEATURES", "xnovnni,novnnix,noamxx", 1);
    CHECK(lm_cpu_features() == all, "only whole items of the list count");
    unsetenv("LYRICMT_CPU_FEATURES");
    /* what Linux lists, unless the kernel refused the tiles' state */
    char flags[8192] = "";
    FILE *info = fopen("/proc/cpuinfo", "r");
    while (info && fgets(flags, sizeof flags, info) && strncmp(flags, "flags", 5) != 0) {}
    if (info) fclose(info);
    if (!strncmp(flags, "flags", 5) && strstr(flags, " amx_int8") && strstr(flags, " amx_bf16") && (all & LM_CPU_AVX512) && !lm_cpu_amx_refusal())
        CHECK((all & LM_CPU_AMX_INT8) && (all & LM_CPU_AMX_BF16), "/proc/cpuinfo lists AMX: detected");
    if (all & LM_CPU_AMX_INT8) CHECK(lm_gemm_int8_best_kernel() == LM_Q8_AMX, "int8 takes the AMX tiles where there are some");
    if (all & LM_CPU_AMX_BF16) CHECK(lm_gemm_bf16_best_kernel() == LM_B16_AMX, "bf16 takes the AMX tiles where there are some");
    printf("test_gemm_prec: this CPU: AVX2 %s, AVX-512 %s, VNNI %s, BF16 %s, AMX int8 %s, AMX bf16 %s%s%s\n", all & LM_CPU_AVX2 ? "yes" : "no",
           all & LM_CPU_AVX512 ? "yes" : "no", all & LM_CPU_VNNI ? "yes" : "no", all & LM_CPU_BF16 ? "yes" : "no",
           all & LM_CPU_AMX_INT8 ? "yes" : "no", all & LM_CPU_AMX_BF16 ? "yes" : "no", lm_cpu_amx_refusal() ? ": " : "",
           lm_cpu_amx_refusal() ? lm_cpu_amx_refusal() : "");
}

int main(void) {
    check_feature_mask();
    check_int8();
    check_int8_kernels_agree();
    check_bf16();
    check_bf16_rows();
    check_amx_reads_no_further();
    for (int pass = 0; pass < 2; pass++) { /* the best kernels, then those below AMX */
        if (pass) setenv("LYRICMT_CPU_FEATURES", "noamx", 1);
        check_cpu_linear();
        check_fused_relu();
    }
    unsetenv("LYRICMT_CPU_FEATURES");
    return lm_test_summary("test_gemm_prec");
}
