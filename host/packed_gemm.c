/* packed_gemm: see packed_gemm.h. */
#include "packed_gemm.h"
#include "cpu_features.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 8 /* rows of x per tile: 8 x 2 accumulators of 16 lanes */

bool lm_packed_supported(void) { return (lm_cpu_features() & LM_CPU_AVX512) != 0; }

int lm_packed_init(lm_packed *p, const float *w, int n, int k, lm_err *err) {
    int panels = (n + LM_PANEL - 1) / LM_PANEL;
    size_t bytes = (size_t)panels * k * LM_PANEL * sizeof(float);
    p->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p->panels) return lm_fail(err, "out of memory packing a %d x %d weight (%zu MB)", n, k, bytes >> 20);
    p->n = n;
    p->k = k;
#pragma omp parallel for schedule(static)
    for (int pp = 0; pp < panels; pp++) {
        float *dst = p->panels + (size_t)pp * k * LM_PANEL;
        for (int j = 0; j < LM_PANEL; j++) {
            int o = pp * LM_PANEL + j;
            for (int kk = 0; kk < k; kk++) dst[(size_t)kk * LM_PANEL + j] = o < n ? w[(size_t)o * k + kk] : 0.0f;
        }
    }
    return 0;
}

void lm_packed_free(lm_packed *p) {
    free(p->panels);
    memset(p, 0, sizeof *p);
}

void lm_packed_row(const lm_packed *p, int j, float *out) {
    const float *src = p->panels + (size_t)(j / LM_PANEL) * p->k * LM_PANEL + j % LM_PANEL;
    for (int kk = 0; kk < p->k; kk++) out[kk] = src[(size_t)kk * LM_PANEL];
}

/* One panel against `rows` (<= ROWS) rows of x: y[i][0..cols) for cols <= 32.
 * Every output is fma(x[i][kk], w[kk], acc) for kk = 0 .. k-1 in order, whether
 * the tile is full or not. */
__attribute__((target("avx512f"))) static void tile(int rows, int k, const float *x, int ldx, const float *panel, float *y,
                                                    int ldy, int cols) {
    __m512 lo[ROWS], hi[ROWS];
    for (int i = 0; i < ROWS; i++) lo[i] = hi[i] = _mm512_setzero_ps();
    if (rows == ROWS) {
        for (int kk = 0; kk < k; kk++) {
            __m512 w0 = _mm512_load_ps(panel + (size_t)kk * LM_PANEL), w1 = _mm512_load_ps(panel + (size_t)kk * LM_PANEL + 16);
#pragma GCC unroll 8
            for (int i = 0; i < ROWS; i++) {
                __m512 a = _mm512_set1_ps(x[(size_t)i * ldx + kk]);
                lo[i] = _mm512_fmadd_ps(a, w0, lo[i]);
                hi[i] = _mm512_fmadd_ps(a, w1, hi[i]);
            }
        }
    } else {
        for (int kk = 0; kk < k; kk++) {
            __m512 w0 = _mm512_load_ps(panel + (size_t)kk * LM_PANEL), w1 = _mm512_load_ps(panel + (size_t)kk * LM_PANEL + 16);
            for (int i = 0; i < rows; i++) {
                __m512 a = _mm512_set1_ps(x[(size_t)i * ldx + kk]);
                lo[i] = _mm512_fmadd_ps(a, w0, lo[i]);
                hi[i] = _mm512_fmadd_ps(a, w1, hi[i]);
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        float out[LM_PANEL];
        _mm512_storeu_ps(out, lo[i]);
        _mm512_storeu_ps(out + 16, hi[i]);
        memcpy(y + (size_t)i * ldy, out, (size_t)cols * sizeof(float));
    }
}

void lm_packed_gemm(const lm_packed *p, int m, const float *x, float *y, int n0, int n1) {
    for (int j = n0; j < n1; j += LM_PANEL) {
        const float *panel = p->panels + (size_t)(j / LM_PANEL) * p->k * LM_PANEL;
        int cols = n1 - j < LM_PANEL ? n1 - j : LM_PANEL;
        for (int i = 0; i < m; i += ROWS)
            tile(m - i < ROWS ? m - i : ROWS, p->k, x + (size_t)i * p->k, p->k, panel, y + (size_t)i * p->n + j, p->n, cols);
    }
}
