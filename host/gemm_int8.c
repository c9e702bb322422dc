/* gemm_int8: see gemm_int8.h. */
#include "gemm_int8.h"
#include "cpu_features.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 8       /* rows per VNNI tile: 8 x 2 accumulators */
#define ROWS_AVX2 2  /* rows per AVX2 tile: 2 x 4 accumulators */
#define GROUP_BYTES (LM_Q8_PANEL * 4)

lm_q8_kernel lm_q8_best_kernel(void) {
    unsigned f = lm_cpu_features();
    return f & LM_CPU_VNNI ? LM_Q8_VNNI : f & LM_CPU_AVX2 ? LM_Q8_AVX2 : LM_Q8_NONE;
}

/* round(v * inv) within [-127, 127]: never -128, so |q| * 127 * 2 fits in
 * vpmaddubsw's 16 bits */
static int quantize(float v, float inv) {
    long q = lrintf(v * inv);
    return q > 127 ? 127 : q < -127 ? -127 : (int)q;
}

int lm_q8_init(lm_q8 *w, const float *W, int n, int k, lm_q8_kernel kernel, lm_err *err) {
    memset(w, 0, sizeof *w);
    if (k > LM_Q8_MAX_K) return lm_fail(err, "int8: a %d-wide product exceeds the %d that 32-bit sums allow", k, LM_Q8_MAX_K);
    int panels = (n + LM_Q8_PANEL - 1) / LM_Q8_PANEL, k4 = (k + 3) / 4 * 4;
    size_t bytes = (size_t)panels * k4 * LM_Q8_PANEL;
    w->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    w->scale = malloc((size_t)panels * LM_Q8_PANEL * sizeof(float));
    w->comp = malloc((size_t)panels * LM_Q8_PANEL * sizeof(int32_t));
    if (!w->panels || !w->scale || !w->comp) {
        lm_q8_free(w);
        return lm_fail(err, "out of memory quantizing a %d x %d weight (%zu MB)", n, k, bytes >> 20);
    }
    w->n = n;
    w->k = k;
    w->k4 = k4;
    w->kernel = kernel;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < panels; p++) {
        int8_t *dst = w->panels + (size_t)p * k4 * LM_Q8_PANEL;
        for (int j = 0; j < LM_Q8_PANEL; j++) {
            int o = p * LM_Q8_PANEL + j;
            const float *row = o < n ? W + (size_t)o * k : NULL;
            float amax = 0;
            for (int kk = 0; row && kk < k; kk++) amax = fmaxf(amax, fabsf(row[kk]));
            float inv = amax > 0 ? 127.0f / amax : 0;
            int32_t sum = 0;
            for (int kk = 0; kk < k4; kk++) {
                int q = row && kk < k ? quantize(row[kk], inv) : 0;
                dst[(size_t)(kk / 4) * GROUP_BYTES + j * 4 + kk % 4] = (int8_t)q;
                sum += q;
            }
            w->scale[o] = amax / 127.0f;
            w->comp[o] = 128 * sum;
        }
    }
    return 0;
}

void lm_q8_free(lm_q8 *w) {
    free(w->panels);
    free(w->scale);
    free(w->comp);
    memset(w, 0, sizeof *w);
}

float lm_q8_quantize_row(const float *x, int k, int k4, uint8_t *q) {
    float amax = 0;
    for (int kk = 0; kk < k; kk++) amax = fmaxf(amax, fabsf(x[kk]));
    float inv = amax > 0 ? 127.0f / amax : 0;
    for (int kk = 0; kk < k; kk++) q[kk] = (uint8_t)(quantize(x[kk], inv) + 128);
    for (int kk = k; kk < k4; kk++) q[kk] = 128;
    return amax / 127.0f;
}

static int32_t load32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* `rows` (<= ROWS) quantized rows against one panel: acc[i][0..32) =
 * sum over k of (qx + 128) * qW. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile_vnni(int rows, int groups, const uint8_t *q, int ldq,
                                                                              const int8_t *panel, int32_t *acc) {
    __m512i lo[ROWS], hi[ROWS];
    for (int i = 0; i < ROWS; i++) lo[i] = hi[i] = _mm512_setzero_si512();
    if (rows == ROWS) {
        for (int g = 0; g < groups; g++) {
            __m512i w0 = _mm512_load_si512(panel + (size_t)g * GROUP_BYTES), w1 = _mm512_load_si512(panel + (size_t)g * GROUP_BYTES + 64);
#pragma GCC unroll 8
            for (int i = 0; i < ROWS; i++) {
                __m512i a = _mm512_set1_epi32(load32(q + (size_t)i * ldq + 4 * g));
                lo[i] = _mm512_dpbusd_epi32(lo[i], a, w0);
                hi[i] = _mm512_dpbusd_epi32(hi[i], a, w1);
            }
        }
    } else {
        for (int g = 0; g < groups; g++) {
            __m512i w0 = _mm512_load_si512(panel + (size_t)g * GROUP_BYTES), w1 = _mm512_load_si512(panel + (size_t)g * GROUP_BYTES + 64);
            for (int i = 0; i < rows; i++) {
                __m512i a = _mm512_set1_epi32(load32(q + (size_t)i * ldq + 4 * g));
                lo[i] = _mm512_dpbusd_epi32(lo[i], a, w0);
                hi[i] = _mm512_dpbusd_epi32(hi[i], a, w1);
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        _mm512_storeu_si512(acc + i * LM_Q8_PANEL, lo[i]);
        _mm512_storeu_si512(acc + i * LM_Q8_PANEL + 16, hi[i]);
    }
}

/* The same sums without the shift: acc[i][o] = sum of qx * qW, as |qx| times
 * qW carrying qx's sign. */
__attribute__((target("avx2"))) static void tile_avx2(int rows, int groups, const uint8_t *q, int ldq, const int8_t *panel,
                                                      int32_t *acc) {
    __m256i sum[ROWS_AVX2][4];
    const __m256i ones = _mm256_set1_epi16(1), shift = _mm256_set1_epi8((char)0x80);
    for (int i = 0; i < ROWS_AVX2; i++)
        for (int v = 0; v < 4; v++) sum[i][v] = _mm256_setzero_si256();
    for (int g = 0; g < groups; g++) {
        const int8_t *pg = panel + (size_t)g * GROUP_BYTES;
        __m256i w[4];
        for (int v = 0; v < 4; v++) w[v] = _mm256_load_si256((const __m256i *)(pg + 32 * v));
        for (int i = 0; i < rows; i++) {
            __m256i a = _mm256_xor_si256(_mm256_set1_epi32(load32(q + (size_t)i * ldq + 4 * g)), shift); /* back to signed */
            __m256i abs_a = _mm256_abs_epi8(a);
            for (int v = 0; v < 4; v++) {
                __m256i pairs = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(w[v], a));
                sum[i][v] = _mm256_add_epi32(sum[i][v], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < 4; v++) _mm256_storeu_si256((__m256i *)(acc + i * LM_Q8_PANEL + 8 * v), sum[i][v]);
}

void lm_q8_gemm(const lm_q8 *w, int m, const uint8_t *q, const float *step, const float *bias, float *y, int n0, int n1) {
    int groups = w->k4 / 4, tile_rows = w->kernel == LM_Q8_VNNI ? ROWS : ROWS_AVX2;
    bool shifted = w->kernel == LM_Q8_VNNI;
    int32_t acc[ROWS * LM_Q8_PANEL];
    for (int j = n0; j < n1; j += LM_Q8_PANEL) {
        const int8_t *panel = w->panels + (size_t)(j / LM_Q8_PANEL) * w->k4 * LM_Q8_PANEL;
        int cols = n1 - j < LM_Q8_PANEL ? n1 - j : LM_Q8_PANEL;
        const float *scale = w->scale + j;
        const int32_t *comp = w->comp + j;
        for (int i0 = 0; i0 < m; i0 += tile_rows) {
            int rows = m - i0 < tile_rows ? m - i0 : tile_rows;
            if (shifted) tile_vnni(rows, groups, q + (size_t)i0 * w->k4, w->k4, panel, acc);
            else tile_avx2(rows, groups, q + (size_t)i0 * w->k4, w->k4, panel, acc);
            for (int i = 0; i < rows; i++) {
                float *yi = y + (size_t)(i0 + i) * w->n + j, s = step[i0 + i];
                const int32_t *ai = acc + i * LM_Q8_PANEL;
                for (int o = 0; o < cols; o++) {
                    float v = (float)(ai[o] - (shifted ? comp[o] : 0)) * (s * scale[o]);
                    yi[o] = bias ? v + bias[j + o] : v;
                }
            }
        }
    }
}
