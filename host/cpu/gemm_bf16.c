/* gemm_bf16: see gemm_bf16.h. */
#include "cpu/gemm_bf16.h"
#include "simd/cpu_features.h"
#include "cpu/gemm_amx.h"
#include "cpu/gemm_blocks.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 8        /* rows per vdpbf16ps tile: 8 x 2 accumulators */
/* Rows per widened tile: 12 x 2 accumulators, the four widened weight
 * vectors and the mask in 29 of the 32 registers (broadcasts come from
 * memory); each panel line read serves 48 FMAs instead of 32 (attempt 16). */
#define ROWS_WIDEN 12
/* Panel lines prefetched this many pairs (4 KB) ahead, as the fp32 tile does
 * (attempts 15 and 16). */
#define PREFETCH_G 32
#define PAIR_WORDS (LM_B16_PANEL * 2)

/* On the Intel Xeon of benchmarks/NOTES.md (attempt 8) vdpbf16ps ran at 37
 * GMAC/s a thread and the widened FMA chain at 55-59 (fp32's packed kernel:
 * 50), with identical results, so Intel CPUs take the FMA chain; others with
 * AVX-512 BF16 (AMD Zen 4: two products per lane per instruction) take
 * vdpbf16ps. AMX, where there is one, before either: 16x the FMA's products
 * a cycle (issue 24). */
lm_gemm_bf16_kernel lm_gemm_bf16_best_kernel(void) {
    unsigned f = lm_cpu_features();
    if (!(f & LM_CPU_AVX512)) return LM_B16_NONE;
    if (f & LM_CPU_AMX_BF16) return LM_B16_AMX;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if ((f & LM_CPU_BF16) && !__builtin_cpu_is("intel")) return LM_B16_DOT;
#endif
    return LM_B16_WIDEN;
}

uint16_t lm_bf16_round(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN: keep it a (quiet) NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float lm_bf16_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

int lm_gemm_bf16_init(lm_gemm_bf16 *w, const float *W, int n, int k, lm_gemm_bf16_kernel kernel, lm_err *err) {
    memset(w, 0, sizeof *w);
    if (k > LM_B16_MAX_K) return lm_fail(err, "bf16: a %d-wide product exceeds the %d supported", k, LM_B16_MAX_K);
    int k_step = kernel == LM_B16_AMX ? LM_AMX_K_BYTES / 2 : 2;
    int panels = (n + LM_B16_PANEL - 1) / LM_B16_PANEL, k2 = (k + k_step - 1) / k_step * k_step;
    size_t bytes = (size_t)panels * k2 * LM_B16_PANEL * sizeof(uint16_t);
    w->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!w->panels) return lm_fail(err, "out of memory converting a %d x %d weight to bf16 (%zu MB)", n, k, bytes >> 20);
    w->n = n;
    w->k = k;
    w->k2 = k2;
    w->kernel = kernel;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < panels; p++) {
        uint16_t *dst = w->panels + (size_t)p * k2 * LM_B16_PANEL;
        for (int j = 0; j < LM_B16_PANEL; j++) {
            int o = p * LM_B16_PANEL + j;
            for (int kk = 0; kk < k2; kk++)
                dst[(size_t)(kk / 2) * PAIR_WORDS + j * 2 + kk % 2] = o < n && kk < k ? lm_bf16_round(W[(size_t)o * k + kk]) : 0;
        }
    }
    return 0;
}

void lm_gemm_bf16_free(lm_gemm_bf16 *w) {
    free(w->panels);
    memset(w, 0, sizeof *w);
}

static int32_t load32(const uint16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Which of a panel's 32 columns exist, and their bias. */
typedef struct {
    __m512 b0, b1;
    __mmask16 m0, m1;
    bool bias, relu;
} panel_out;

__attribute__((target("avx512f"), always_inline)) static inline panel_out panel_outputs(const float *bias, bool relu, int cols) {
    panel_out p;
    p.m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    p.m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    p.b0 = bias ? _mm512_maskz_loadu_ps(p.m0, bias) : _mm512_setzero_ps(), p.b1 = bias ? _mm512_maskz_loadu_ps(p.m1, bias + 16) : _mm512_setzero_ps();
    p.bias = bias != NULL;
    p.relu = relu;
    return p;
}

/* A row's 32 sums: + bias, then max(0, .) with relu (NaN and -0 give +0, as
 * v > 0 ? v : 0), columns masked. Every tile ends here. */
__attribute__((target("avx512f"), always_inline)) static inline void store_row(const panel_out *p, __m512 v0, __m512 v1, float *y) {
    if (p->bias) v0 = _mm512_add_ps(v0, p->b0), v1 = _mm512_add_ps(v1, p->b1);
    if (p->relu) v0 = _mm512_max_ps(v0, _mm512_setzero_ps()), v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(y, p->m0, v0);
    _mm512_mask_storeu_ps(y + 16, p->m1, v1);
}

/* acc += a . w by pairs, as _mm512_dpbf16_ps; in asm for the reason
 * gemm_int8.c gives (GCC adds a register copy per intrinsic call). */
__attribute__((target("avx512f,avx512bf16"))) static inline __m512 dpbf16(__m512 acc, __m512i a, __m512i w) {
    __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(w));
    return acc;
}

/* `rows` (<= ROWS) rows against one panel: y[i][0..cols). A partial tile
 * repeats its last row rather than take a slower loop; the repeats are not
 * stored. Meanwhile pf_lines cache lines from pf (its share of the next
 * panel) are brought to L2. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void tile(int rows, int pairs, const uint16_t *xb, int ldx,
                                                                         const uint16_t *panel, const char *pf, int pf_lines, float *y,
                                                                         int ldy, int cols, const float *bias, bool relu) {
    __m512 lo[ROWS], hi[ROWS];
    const uint16_t *x[ROWS];
    for (int i = 0; i < ROWS; i++) {
        lo[i] = hi[i] = _mm512_setzero_ps();
        x[i] = xb + (size_t)(i < rows ? i : rows - 1) * ldx;
    }
    int pf_acc = 0;
    for (int g0 = 0; g0 < pairs; g0 += 16) {
        int g1 = g0 + 16 < pairs ? g0 + 16 : pairs;
        pf = lm_prefetch_share(pf, pf_lines, &pf_acc, g0, g1, pairs);
        for (int g = g0; g < g1; g++) {
            __m512i w0 = _mm512_load_si512(panel + (size_t)g * PAIR_WORDS), w1 = _mm512_load_si512(panel + (size_t)g * PAIR_WORDS + 32);
#pragma GCC unroll 8
            for (int i = 0; i < ROWS; i++) {
                __m512i a = _mm512_set1_epi32(load32(x[i] + 2 * g));
                lo[i] = dpbf16(lo[i], a, w0);
                hi[i] = dpbf16(hi[i], a, w1);
            }
        }
    }
    panel_out po = panel_outputs(bias, relu, cols);
    for (int i = 0; i < rows; i++) store_row(&po, lo[i], hi[i], y + (size_t)i * ldy);
}

/* The same chain on AVX-512F alone: each bfloat16 widened to float (its
 * bits shifted up), then one FMA per product, the odd k of a pair first. A
 * product of two bfloat16 is exact in float, so fma(x, w, acc) rounds once,
 * as vdpbf16ps does: the results are identical, except that vdpbf16ps flushes
 * subnormal inputs and outputs to zero. Activations come as floats (already
 * rounded to bfloat16), broadcast straight from memory. */
__attribute__((target("avx512f"))) static void tile_widen(int rows, int pairs, const float *xf, int ldx, const uint16_t *panel,
                                                          const char *pf, int pf_lines, float *y, int ldy, int cols, const float *bias,
                                                          bool relu) {
    __m512 lo[ROWS_WIDEN], hi[ROWS_WIDEN];
    const float *x[ROWS_WIDEN];
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    for (int i = 0; i < ROWS_WIDEN; i++) {
        lo[i] = hi[i] = _mm512_setzero_ps();
        x[i] = xf + (size_t)(i < rows ? i : rows - 1) * ldx;
    }
    int pf_acc = 0;
    for (int g0 = 0; g0 < pairs; g0 += 16) {
        int g1 = g0 + 16 < pairs ? g0 + 16 : pairs;
        pf = lm_prefetch_share(pf, pf_lines, &pf_acc, g0, g1, pairs);
        for (int g = g0; g < g1; g++) {
            __m512i w0 = _mm512_load_si512(panel + (size_t)g * PAIR_WORDS), w1 = _mm512_load_si512(panel + (size_t)g * PAIR_WORDS + 32);
            __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), o0 = _mm512_castsi512_ps(_mm512_and_si512(w0, high));
            __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16)), o1 = _mm512_castsi512_ps(_mm512_and_si512(w1, high));
            /* past the panel's end these are the next panel's lines; a prefetch never faults */
            _mm_prefetch((const char *)(panel + (size_t)(g + PREFETCH_G) * PAIR_WORDS), _MM_HINT_T0);
            _mm_prefetch((const char *)(panel + (size_t)(g + PREFETCH_G) * PAIR_WORDS + 32), _MM_HINT_T0);
#pragma GCC unroll 12
            for (int i = 0; i < ROWS_WIDEN; i++) {
                __m512 xo = _mm512_set1_ps(x[i][2 * g + 1]), xe = _mm512_set1_ps(x[i][2 * g]);
                lo[i] = _mm512_fmadd_ps(xe, e0, _mm512_fmadd_ps(xo, o0, lo[i]));
                hi[i] = _mm512_fmadd_ps(xe, e1, _mm512_fmadd_ps(xo, o1, hi[i]));
            }
        }
    }
    panel_out po = panel_outputs(bias, relu, cols);
    for (int i = 0; i < rows; i++) store_row(&po, lo[i], hi[i], y + (size_t)i * ldy);
}

size_t lm_gemm_bf16_row_bytes(const lm_gemm_bf16 *w) { return (size_t)w->k2 * (w->kernel == LM_B16_WIDEN ? sizeof(float) : sizeof(uint16_t)); }

/* lm_bf16_round on 16 values at once (every kernel has AVX-512): the same
 * bits, as 16-bit values, or as floats for the widened tile. */
__attribute__((target("avx512f,avx512bw"))) void lm_gemm_bf16_convert_row(const lm_gemm_bf16 *w, const float *x, void *out) {
    const __m512i exp_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000), half = _mm512_set1_epi32(0x7fff);
    const __m512i one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
    bool widen = w->kernel == LM_B16_WIDEN;
    for (int i = 0; i < w->k2; i += 16) {
        __mmask16 in = w->k - i >= 16 ? 0xffff : w->k <= i ? 0 : (__mmask16)((1u << (w->k - i)) - 1);
        __mmask16 all = w->k2 - i >= 16 ? 0xffff : (__mmask16)((1u << (w->k2 - i)) - 1);
        __m512i u = _mm512_maskz_loadu_epi32(in, x + i); /* past k: +0, which rounds to 0 */
        __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(hi, one)), 16);
        r = _mm512_mask_or_epi32(r, _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, exp_mask), inf), hi, quiet); /* NaN stays a quiet NaN */
        if (widen) _mm512_mask_storeu_epi32((float *)out + i, all, _mm512_slli_epi32(r, 16));
        else _mm512_mask_cvtepi32_storeu_epi16((uint16_t *)out + i, all, r);
    }
}

/* Rows i0 .. i1 of x (ld bytes a row) against the panels of columns j0 .. j1.
 * The next panel (2 lines a pair) is brought to L2 while this one is worked
 * on, a share by each tile, so that the first tile does not wait on DRAM
 * while the others find theirs in L2; with one tile a panel there is no other
 * tile to gain, and the extra requests cost that tile 20% (attempt 19). */
static void panels_rows(const lm_gemm_bf16 *w, int i0, int i1, const char *xb, size_t ld, const float *bias, bool relu, float *y, int n0,
                        int n1) {
    int tile_rows = w->kernel == LM_B16_DOT ? ROWS : ROWS_WIDEN, pairs = w->k2 / 2, tiles = (i1 - i0 + tile_rows - 1) / tile_rows;
    for (int j = n0; j < n1; j += LM_B16_PANEL) {
        const uint16_t *panel = w->panels + (size_t)(j / LM_B16_PANEL) * w->k2 * LM_B16_PANEL;
        int cols = n1 - j < LM_B16_PANEL ? n1 - j : LM_B16_PANEL;
        int lines = j + LM_B16_PANEL < n1 && tiles > 1 ? pairs * (int)(PAIR_WORDS * sizeof(uint16_t) / 64) : 0;
        const char *next = (const char *)(panel + (size_t)w->k2 * LM_B16_PANEL);
        for (int i = i0, t = 0; i < i1; i += tile_rows, t++) {
            int rows = i1 - i < tile_rows ? i1 - i : tile_rows;
            int l0 = (int)((long)lines * t / tiles), l1 = (int)((long)lines * (t + 1) / tiles);
            if (w->kernel == LM_B16_DOT)
                tile(rows, pairs, (const uint16_t *)(xb + i * ld), w->k2, panel, next + (size_t)l0 * 64, l1 - l0, y + (size_t)i * w->n + j,
                     w->n, cols, bias ? bias + j : NULL, relu);
            else
                tile_widen(rows, pairs, (const float *)(xb + i * ld), w->k2, panel, next + (size_t)l0 * 64, l1 - l0,
                           y + (size_t)i * w->n + j, w->n, cols, bias ? bias + j : NULL, relu);
        }
    }
}

/* Rows i0 .. i1 of x against the panels of columns n0 .. n1 on AMX tiles, as
 * gemm_int8.c's amx_rows. */
__attribute__((target("avx512f"))) static void amx_rows(const lm_gemm_bf16 *w, int m, int i0, int i1, const uint16_t *xb, const float *bias,
                                                         bool relu, float *y, int n0, int n1) {
    _Alignas(64) float acc[2 * LM_AMX_ROWS * LM_B16_PANEL];
    size_t ld = (size_t)w->k2 * sizeof(uint16_t);
    for (int j = n0; j < n1; j += LM_B16_PANEL) {
        const uint16_t *panel = w->panels + (size_t)(j / LM_B16_PANEL) * w->k2 * LM_B16_PANEL;
        panel_out po = panel_outputs(bias ? bias + j : NULL, relu, n1 - j < LM_B16_PANEL ? n1 - j : LM_B16_PANEL);
        for (int i = i0; i < i1; i += 2 * LM_AMX_ROWS) {
            int t0 = lm_amx_tile_start(i, m), t1 = i + LM_AMX_ROWS < i1 ? lm_amx_tile_start(i + LM_AMX_ROWS, m) : -1;
            lm_amx_bf16_block(xb + (size_t)t0 * w->k2, t1 < 0 ? NULL : xb + (size_t)t1 * w->k2, ld, panel, (int)(ld / LM_AMX_K_BYTES), acc);
            for (int r = 0; r < 2 * LM_AMX_ROWS; r++) {
                int tile = r / LM_AMX_ROWS, at = (tile ? t1 : t0) + r % LM_AMX_ROWS, from = i + tile * LM_AMX_ROWS;
                if ((tile && t1 < 0) || at < from || at >= m) continue; /* no such row, or one another tile stores */
                const float *a = acc + (size_t)r * LM_B16_PANEL;
                store_row(&po, _mm512_load_ps(a), _mm512_load_ps(a + 16), y + (size_t)at * w->n + j);
            }
        }
    }
}

void lm_gemm_bf16_run(const lm_gemm_bf16 *w, int m, const void *xb, const float *bias, bool relu, float *y, int n0, int n1) {
    /* gemm_blocks.h: a block of x stays in L2; a row is 2 bytes a value for
     * vdpbf16ps, 4 (floats) for the widened tile */
    if (w->kernel == LM_B16_AMX) {
        if (m <= 0) return;
        int block = lm_row_block(m, lm_gemm_bf16_row_bytes(w), 2 * LM_AMX_ROWS);
        lm_amx_begin(m < LM_AMX_ROWS ? m : LM_AMX_ROWS);
        for (int i0 = 0; i0 < m; i0 += block) amx_rows(w, m, i0, m - i0 < block ? m : i0 + block, xb, bias, relu, y, n0, n1);
        lm_amx_end();
        return;
    }
    size_t ld = lm_gemm_bf16_row_bytes(w);
    int block = lm_row_block(m, ld, w->kernel == LM_B16_DOT ? ROWS : ROWS_WIDEN);
    for (int i0 = 0; i0 < m; i0 += block) panels_rows(w, i0, m - i0 < block ? m : i0 + block, xb, ld, bias, relu, y, n0, n1);
}
