/* packed_gemm: see packed_gemm.h. */
#include "cpu/packed_gemm.h"
#include "simd/cpu_features.h"
#include "cpu/gemm_blocks.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* Rows of x per tile: 12 x 2 accumulators of 16 lanes, plus the panel's two
 * vectors and a broadcast, in 27 of the 32 registers. Against 8 rows, each
 * panel line read from L2 serves 24 FMAs instead of 16: fc2 (k = 4096) at
 * 16-64 rows went from 53-62 to 61-76 GMAC/s per thread (NOTES, attempt 15). */
#define ROWS 12

/* Panel lines are prefetched this many k steps (4 KB) ahead. The hardware
 * prefetcher alone left the output projection memory-starved at few rows:
 * 27 -> 32-38 GMAC/s per thread at 16 rows, 53 -> 59-66 at 64 (attempt 15). */
#define PREFETCH_K 32

bool lm_packed_supported(void) { return (lm_cpu_features() & LM_CPU_AVX512) != 0; }

int lm_packed_init(lm_packed *p, const float *w, int n, int k, lm_err *err) {
    int panels = (n + LM_PANEL - 1) / LM_PANEL;
    size_t bytes = (size_t)panels * k * LM_PANEL * sizeof(float);
    p->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p->panels) return lm_fail(err, "out of memory packing a %d x %d weight (%zu MB)", n, k, bytes >> 20);
    p->n = n;
    p->k = k;
    /* 16 values of k at a time from each of the panel's 32 rows: a 64-byte
     * read per row, and 16 panel lines filled before moving on (one value at
     * a time down a row took 0.40 s for the 128112 x 1024 output matrix on
     * one thread, this 0.28-0.32 s; NOTES, attempt 17) */
#pragma omp parallel for schedule(static)
    for (int pp = 0; pp < panels; pp++) {
        float *dst = p->panels + (size_t)pp * k * LM_PANEL;
        for (int k0 = 0; k0 < k; k0 += 16) {
            int k1 = k0 + 16 < k ? k0 + 16 : k;
            for (int j = 0; j < LM_PANEL; j++) {
                int o = pp * LM_PANEL + j;
                for (int kk = k0; kk < k1; kk++) dst[(size_t)kk * LM_PANEL + j] = o < n ? w[(size_t)o * k + kk] : 0.0f;
            }
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

/* One panel against `rows` rows of x: y[i][0..cols) for cols <= 32, plus the
 * bias, then relu, in the same pass (a separate one over y cost 5% of fp32
 * greedy: attempt 15). Inlined
 * with `rows` a constant (tile_rows), so each row count gets a loop with its
 * accumulators in registers. Every output is fma(x[i][kk], w[kk], acc) for
 * kk = 0 .. k-1 in order, whatever the tile's size. */
__attribute__((target("avx512f"), always_inline)) static inline void tile(const int rows, int k, const float *x, int ldx,
                                                                         const float *panel, const char *pf, int pf_lines,
                                                                         const float *bias, bool relu, float *y, int ldy,
                                                                         int cols) {
    __m512 lo[ROWS], hi[ROWS];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) lo[i] = hi[i] = _mm512_setzero_ps();
    /* meanwhile pf_lines lines of the next panel go to L2 (gemm_blocks.h) */
    int pf_acc = 0;
    for (int k0 = 0; k0 < k; k0 += 16) {
        int k1 = k0 + 16 < k ? k0 + 16 : k;
        pf = lm_prefetch_share(pf, pf_lines, &pf_acc, k0, k1, k);
        for (int kk = k0; kk < k1; kk++) {
            __m512 w0 = _mm512_load_ps(panel + (size_t)kk * LM_PANEL), w1 = _mm512_load_ps(panel + (size_t)kk * LM_PANEL + 16);
            /* the panel's lines PREFETCH_K steps ahead (past its end: the next
             * panel's first lines; a prefetch never faults) */
            _mm_prefetch((const char *)(panel + (size_t)(kk + PREFETCH_K) * LM_PANEL), _MM_HINT_T0);
            _mm_prefetch((const char *)(panel + (size_t)(kk + PREFETCH_K) * LM_PANEL + 16), _MM_HINT_T0);
#pragma GCC unroll 16
            for (int i = 0; i < rows; i++) {
                __m512 a = _mm512_set1_ps(x[(size_t)i * ldx + kk]);
                lo[i] = _mm512_fmadd_ps(a, w0, lo[i]);
                hi[i] = _mm512_fmadd_ps(a, w1, hi[i]);
            }
        }
    }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps(), zero = _mm512_setzero_ps();
    if (bias) b0 = _mm512_maskz_loadu_ps(m0, bias), b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
        __m512 v0 = lo[i], v1 = hi[i];
        if (bias) v0 = _mm512_add_ps(v0, b0), v1 = _mm512_add_ps(v1, b1);
        /* max(v, 0) returns its second operand for a zero or NaN v: v > 0 ? v : 0 */
        if (relu) v0 = _mm512_max_ps(v0, zero), v1 = _mm512_max_ps(v1, zero);
        _mm512_mask_storeu_ps(y + (size_t)i * ldy, m0, v0);
        _mm512_mask_storeu_ps(y + (size_t)i * ldy + 16, m1, v1);
    }
}

#define TILE_CASE(r) \
    case r: tile(r, k, x, ldx, panel, pf, pf_lines, bias, relu, y, ldy, cols); break;

/* tile() for 1 .. ROWS rows. A partial tile (the batch's last rows) used to
 * run a generic loop whose accumulators went through memory at every FMA. */
__attribute__((target("avx512f"))) static void tile_rows(int rows, int k, const float *x, int ldx, const float *panel,
                                                         const char *pf, int pf_lines, const float *bias, bool relu, float *y, int ldy, int cols) {
    switch (rows) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
    }
}

/* Rows i0 .. i1 of x against panels j0 .. j1 (columns; j1 the thread's end). */
static void panels_rows(const lm_packed *p, int i0, int i1, const float *x, const float *bias, bool relu, float *y, int n0,
                        int n1) {
    int tiles = (i1 - i0 + ROWS - 1) / ROWS;
    for (int j = n0; j < n1; j += LM_PANEL) {
        const float *panel = p->panels + (size_t)(j / LM_PANEL) * p->k * LM_PANEL;
        int cols = n1 - j < LM_PANEL ? n1 - j : LM_PANEL;
        /* the next panel (k x 128 bytes: 2k lines) is brought to L2 while this
         * one is worked on, a share by each tile, so that the first tile does
         * not wait on DRAM while the others find theirs in L2 */
        int lines = j + LM_PANEL < n1 ? 2 * p->k : 0;
        const char *next = (const char *)(panel + (size_t)p->k * LM_PANEL);
        for (int i = i0, t = 0; i < i1; i += ROWS, t++) {
            int l0 = (int)((long)lines * t / tiles), l1 = (int)((long)lines * (t + 1) / tiles);
            tile_rows(i1 - i < ROWS ? i1 - i : ROWS, p->k, x + (size_t)i * p->k, p->k, panel, next + (size_t)l0 * 64, l1 - l0,
                      bias ? bias + j : NULL, relu, y + (size_t)i * p->n + j, p->n, cols);
        }
    }
}

void lm_packed_gemm(const lm_packed *p, int m, const float *x, const float *bias, bool relu, float *y, int n0, int n1) {
    /* x in row blocks that stay in L2 (gemm_blocks.h): the encoder's
     * 2000-4000 rows (8-16 MB at k = 1024) otherwise came from L3 once per
     * panel (fc1 at 2000-3000 rows: 74-77 -> 81-83 GMAC/s a thread); at
     * k = 4096 the 60-row blocks would cost 3-5%, hence no blocks under 192
     * rows (NOTES, attempt 18) */
    int block = lm_row_block(m, (size_t)p->k * sizeof(float), ROWS);
    for (int i0 = 0; i0 < m; i0 += block) panels_rows(p, i0, m - i0 < block ? m : i0 + block, x, bias, relu, y, n0, n1);
}
