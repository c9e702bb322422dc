/* gemm_int8: see gemm_int8.h. */
#include "cpu/gemm_int8.h"
#include "simd/cpu_features.h"
#include "cpu/gemm_amx.h"
#include "cpu/gemm_blocks.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per VNNI tile: 12 x 2 accumulators, the panel's two vectors and a
 * broadcast in 27 of the 32 registers; each panel line read serves 24
 * vpdpbusd instead of 16 (as the fp32 tile, benchmarks/NOTES.md attempt 16). */
#define ROWS 12
/* Panel groups prefetched this many steps (4 KB) ahead, as the fp32 tile does:
 * the hardware prefetcher alone leaves the output projection waiting on
 * memory at few rows (attempts 15 and 16). */
#define PREFETCH_G 32
#define ROWS_AVX2 2  /* rows per AVX2 tile: 2 x 4 accumulators */
#define GROUP_BYTES (LM_Q8_PANEL * 4)

lm_gemm_int8_kernel lm_gemm_int8_best_kernel(void) {
    unsigned f = lm_cpu_features();
    return f & LM_CPU_AMX_INT8 ? LM_Q8_AMX : f & LM_CPU_VNNI ? LM_Q8_VNNI : f & LM_CPU_AVX2 ? LM_Q8_AVX2 : LM_Q8_NONE;
}

/* round(v * inv) to nearest even, within [-127, 127]: never -128, so
 * |q| * 127 * 2 fits in vpmaddubsw's 16 bits. Adding and taking off 1.5 * 2^23
 * rounds any |r| < 2^22 to an integer in the current (nearest-even) mode, as
 * rintf would, without a libm call, so the loops vectorize. */
static inline int quantize(float v, float inv) {
    float r = v * inv;
    r = r < 127.0f ? r : 127.0f; /* a NaN becomes 127: defined, if meaningless */
    r = r > -127.0f ? r : -127.0f;
    return (int)((r + 0x1.8p23f) - 0x1.8p23f);
}

static float abs_max(const float *v, int k) {
    float m = 0;
    for (int i = 0; i < k; i++) {
        float a = fabsf(v[i]);
        m = a > m ? a : m;
    }
    return m;
}

/* out[i] = quantize(v[i], inv) + offset for i < k, then `offset` up to k4 */
static void quantize_values(const float *v, int k, int k4, float inv, int offset, int8_t *out) {
    for (int i = 0; i < k; i++) out[i] = (int8_t)(quantize(v[i], inv) + offset);
    for (int i = k; i < k4; i++) out[i] = (int8_t)offset;
}

/* The same two steps with AVX-512 (for the VNNI and AMX kernels' CPUs): vcvtps2dq
 * rounds to nearest even like the scalar trick, so the bytes are identical. */
__attribute__((target("avx512f"))) static float abs_max_avx512(const float *v, int k) {
    __m512 m = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= k; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(v + i)));
    if (i < k) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (k - i)) - 1), v + i)));
    return _mm512_reduce_max_ps(m);
}

__attribute__((target("avx512f"))) static void quantize_values_avx512(const float *v, int k, int k4, float inv, int offset, int8_t *out) {
    const __m512 s = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    const __m512i off = _mm512_set1_epi32(offset);
    for (int i = 0; i < k; i += 16) {
        __mmask16 mask = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
        __m512 r = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, v + i), s);
        r = _mm512_max_ps(_mm512_min_ps(r, hi), lo); /* a NaN becomes -127 here, 127 in the scalar path */
        _mm512_mask_cvtepi32_storeu_epi8(out + i, mask, _mm512_add_epi32(_mm512_cvtps_epi32(r), off));
    }
    for (int i = k; i < k4; i++) out[i] = (int8_t)offset;
}

/* One row of k values: its step (max / 127, 0 for a zero row) and its values,
 * with AVX-512 where the kernel is VNNI or AMX. */
static float quantize_row(const float *v, int k, int k4, int offset, bool avx512, int8_t *out) {
    float amax = avx512 ? abs_max_avx512(v, k) : abs_max(v, k);
    float inv = amax > 0 ? 127.0f / amax : 0;
    if (avx512) quantize_values_avx512(v, k, k4, inv, offset, out);
    else quantize_values(v, k, k4, inv, offset, out);
    return amax / 127.0f;
}

int lm_gemm_int8_init(lm_gemm_int8 *w, const float *W, int n, int k, lm_gemm_int8_kernel kernel, lm_err *err) {
    memset(w, 0, sizeof *w);
    if (k > LM_Q8_MAX_K) return lm_fail(err, "int8: a %d-wide product exceeds the %d that 32-bit sums allow", k, LM_Q8_MAX_K);
    int k_step = kernel == LM_Q8_AMX ? LM_AMX_K_BYTES : 4;
    int panels = (n + LM_Q8_PANEL - 1) / LM_Q8_PANEL, k4 = (k + k_step - 1) / k_step * k_step;
    size_t bytes = (size_t)panels * k4 * LM_Q8_PANEL;
    w->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    w->scale = malloc((size_t)panels * LM_Q8_PANEL * sizeof(float));
    w->comp = malloc((size_t)panels * LM_Q8_PANEL * sizeof(int32_t));
    if (!w->panels || !w->scale || !w->comp) {
        lm_gemm_int8_free(w);
        return lm_fail(err, "out of memory quantizing a %d x %d weight (%zu MB)", n, k, bytes >> 20);
    }
    w->n = n;
    w->k = k;
    w->k4 = k4;
    w->kernel = kernel;
    w->streamed = bytes > LM_PREFETCH_W_BYTES;
    bool avx512 = kernel != LM_Q8_AVX2;
#pragma omp parallel
    {
        int8_t row[LM_Q8_MAX_K]; /* one output row quantized, then spread over the panel's groups */
#pragma omp for schedule(static)
        for (int p = 0; p < panels; p++) {
            int8_t *dst = w->panels + (size_t)p * k4 * LM_Q8_PANEL;
            for (int j = 0; j < LM_Q8_PANEL; j++) {
                int o = p * LM_Q8_PANEL + j;
                if (o < n) w->scale[o] = quantize_row(W + (size_t)o * k, k, k4, 0, avx512, row);
                else memset(row, 0, (size_t)k4), w->scale[o] = 0;
                int32_t sum = 0;
                for (int kk = 0; kk < k4; kk++) sum += row[kk];
                w->comp[o] = 128 * sum;
                for (int g = 0; g < k4 / 4; g++) memcpy(dst + (size_t)g * GROUP_BYTES + j * 4, row + 4 * g, 4);
            }
        }
    }
    return 0;
}

void lm_gemm_int8_free(lm_gemm_int8 *w) {
    free(w->panels);
    free(w->scale);
    free(w->comp);
    memset(w, 0, sizeof *w);
}

float lm_gemm_int8_quantize_row(const lm_gemm_int8 *w, const float *x, uint8_t *q) {
    /* +128 as a signed byte is -128 + value: the same bits as the u8 value + 128 */
    return quantize_row(x, w->k, w->k4, 128, w->kernel != LM_Q8_AVX2, (int8_t *)q);
}

static int32_t load32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* acc += a (u8) . w (s8) by groups of 4, as _mm512_dpbusd_epi32. Written in
 * asm because GCC wraps the intrinsic in a register copy per call (GCC bug
 * 94663, as intgemm notes), which halved the tile's speed here. */
__attribute__((target("avx512f,avx512vnni"))) static inline __m512i dpbusd(__m512i acc, __m512i a, __m512i w) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(w));
    return acc;
}

/* One group (4 k) of a tile: ROWS rows against the panel's 32 outputs. */
__attribute__((target("avx512f,avx512vnni"), always_inline)) static inline void vnni_group(__m512i *lo, __m512i *hi, const uint8_t *const *x,
                                                                                          const int8_t *panel, int g) {
    __m512i w0 = _mm512_load_si512(panel + (size_t)g * GROUP_BYTES), w1 = _mm512_load_si512(panel + (size_t)g * GROUP_BYTES + 64);
    /* past the panel's end these are the next panel's lines; a prefetch never faults */
    _mm_prefetch((const char *)(panel + (size_t)(g + PREFETCH_G) * GROUP_BYTES), _MM_HINT_T0);
    _mm_prefetch((const char *)(panel + (size_t)(g + PREFETCH_G) * GROUP_BYTES + 64), _MM_HINT_T0);
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; i++) {
        __m512i a = _mm512_set1_epi32(load32(x[i] + 4 * g));
        lo[i] = dpbusd(lo[i], a, w0);
        hi[i] = dpbusd(hi[i], a, w1);
    }
}

/* What a panel's outputs need besides their sums: the weights' steps, the
 * shift's compensation, bias and relu, and which of the 32 columns exist. */
typedef struct {
    __m512 sc0, sc1, b0, b1;
    __m512i c0, c1;
    __mmask16 m0, m1;
    bool bias, relu;
} panel_out;

__attribute__((target("avx512f"), always_inline)) static inline panel_out panel_outputs(const float *scale, const int32_t *comp, const float *bias,
                                                                                         bool relu, int cols) {
    panel_out p;
    p.m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    p.m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    p.sc0 = _mm512_maskz_loadu_ps(p.m0, scale), p.sc1 = _mm512_maskz_loadu_ps(p.m1, scale + 16);
    p.c0 = _mm512_maskz_loadu_epi32(p.m0, comp), p.c1 = _mm512_maskz_loadu_epi32(p.m1, comp + 16);
    p.b0 = bias ? _mm512_maskz_loadu_ps(p.m0, bias) : _mm512_setzero_ps(), p.b1 = bias ? _mm512_maskz_loadu_ps(p.m1, bias + 16) : _mm512_setzero_ps();
    p.bias = bias != NULL;
    p.relu = relu;
    return p;
}

/* One row's 32 outputs from its sums (shifted by 128, as vpdpbusd and
 * tdpbusd leave them): (sum - comp) * (step * scale) (+ bias), then relu.
 * The VNNI and AMX tiles both end here, so their outputs agree to the bit. */
__attribute__((target("avx512f"), always_inline)) static inline void store_row(const panel_out *p, __m512i lo, __m512i hi, float step, float *y) {
    __m512 s = _mm512_set1_ps(step);
    __m512 v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(lo, p->c0)), _mm512_mul_ps(s, p->sc0));
    __m512 v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(hi, p->c1)), _mm512_mul_ps(s, p->sc1));
    if (p->bias) v0 = _mm512_add_ps(v0, p->b0), v1 = _mm512_add_ps(v1, p->b1);
    if (p->relu) v0 = _mm512_max_ps(v0, _mm512_setzero_ps()), v1 = _mm512_max_ps(v1, _mm512_setzero_ps()); /* NaN and -0 give +0, as v > 0 ? v : 0 */
    _mm512_mask_storeu_ps(y, p->m0, v0);
    _mm512_mask_storeu_ps(y + 16, p->m1, v1);
}

/* `rows` (<= ROWS) quantized rows against one panel, into y[i][0..cols):
 * (sum over k of (qx + 128) * qW - comp) * (step * scale) + bias. A partial
 * tile repeats its last row rather than take a slower loop; the repeats are
 * not stored. With next (a constant: two copies are made), pf_lines cache
 * lines from pf (its share of the next panel) are brought to L2 meanwhile,
 * spread evenly over the groups and issued between blocks of 16 groups (as
 * the fp32 tile: inside the loop their bookkeeping cost more than they saved).
 * Without it the loop is the flat one it was: the blocked loop's counters
 * took a register from the row pointers, and the one spilled to a vector
 * register cost a port-0 move a group, 3-5% at weights that stay in cache
 * (attempt 19). */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
tile_vnni_body(const bool next, int rows, int groups, const uint8_t *q, int ldq, const int8_t *panel, const char *pf, int pf_lines,
               const float *step, const float *scale, const int32_t *comp, const float *bias, bool relu, float *y, int ldy, int cols) {
    __m512i lo[ROWS], hi[ROWS];
    const uint8_t *x[ROWS];
    for (int i = 0; i < ROWS; i++) {
        lo[i] = hi[i] = _mm512_setzero_si512();
        x[i] = q + (size_t)(i < rows ? i : rows - 1) * ldq;
    }
    if (!next)
        for (int g = 0; g < groups; g++) vnni_group(lo, hi, x, panel, g);
    else
        for (int g0 = 0, pf_acc = 0; g0 < groups; g0 += 16) {
            int g1 = g0 + 16 < groups ? g0 + 16 : groups;
            pf = lm_prefetch_share(pf, pf_lines, &pf_acc, g0, g1, groups);
            for (int g = g0; g < g1; g++) vnni_group(lo, hi, x, panel, g);
        }
    panel_out po = panel_outputs(scale, comp, bias, relu, cols);
    for (int i = 0; i < rows; i++) store_row(&po, lo[i], hi[i], step[i], y + (size_t)i * ldy);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile_vnni(int rows, int groups, const uint8_t *q, int ldq, const int8_t *panel,
                                                                              const float *step, const float *scale, const int32_t *comp,
                                                                              const float *bias, bool relu, float *y, int ldy, int cols) {
    tile_vnni_body(false, rows, groups, q, ldq, panel, NULL, 0, step, scale, comp, bias, relu, y, ldy, cols);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile_vnni_next(int rows, int groups, const uint8_t *q, int ldq,
                                                                                   const int8_t *panel, const char *pf, int pf_lines,
                                                                                   const float *step, const float *scale, const int32_t *comp,
                                                                                   const float *bias, bool relu, float *y, int ldy, int cols) {
    tile_vnni_body(true, rows, groups, q, ldq, panel, pf, pf_lines, step, scale, comp, bias, relu, y, ldy, cols);
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

/* Rows i0 .. i1 of q against the panels of columns j0 .. j1 on the VNNI tile.
 * For weights that do not stay in L3 (the output projection) the next panel
 * (2 lines a group) is brought to L2 while this one is worked on, a share by
 * each tile, so that the first tile does not wait on DRAM while the others
 * find theirs in L2; with one tile a panel there is no other tile to gain,
 * and the extra requests cost that tile 15% (attempt 19). */
static void vnni_rows(const lm_gemm_int8 *w, int i0, int i1, const uint8_t *q, const float *step, const float *bias, bool relu, float *y,
                      int n0, int n1) {
    int groups = w->k4 / 4, tiles = (i1 - i0 + ROWS - 1) / ROWS;
    bool next = tiles > 1 && w->streamed;
    for (int j = n0; j < n1; j += LM_Q8_PANEL) {
        const int8_t *panel = w->panels + (size_t)(j / LM_Q8_PANEL) * w->k4 * LM_Q8_PANEL;
        int cols = n1 - j < LM_Q8_PANEL ? n1 - j : LM_Q8_PANEL;
        int lines = j + LM_Q8_PANEL < n1 ? groups * (GROUP_BYTES / 64) : 0;
        const char *pf = (const char *)(panel + (size_t)w->k4 * LM_Q8_PANEL);
        for (int i = i0, t = 0; i < i1; i += ROWS, t++) {
            int rows = i1 - i < ROWS ? i1 - i : ROWS, l0 = (int)((long)lines * t / tiles), l1 = (int)((long)lines * (t + 1) / tiles);
            const uint8_t *qi = q + (size_t)i * w->k4;
            float *yi = y + (size_t)i * w->n + j;
            if (next)
                tile_vnni_next(rows, groups, qi, w->k4, panel, pf + (size_t)l0 * 64, l1 - l0, step + i, w->scale + j, w->comp + j,
                               bias ? bias + j : NULL, relu, yi, w->n, cols);
            else
                tile_vnni(rows, groups, qi, w->k4, panel, step + i, w->scale + j, w->comp + j, bias ? bias + j : NULL, relu, yi, w->n, cols);
        }
    }
}

/* Rows i0 .. i1 of q against the panels of columns n0 .. n1 on AMX tiles,
 * two tiles of 16 rows a block (gemm_amx.h); with m >= 16 rows in all, a
 * last partial tile is taken as the product's last 16 rows and only its rows
 * not yet stored are stored. */
__attribute__((target("avx512f"))) static void amx_rows(const lm_gemm_int8 *w, int m, int i0, int i1, const uint8_t *q, const float *step,
                                                         const float *bias, bool relu, float *y, int n0, int n1) {
    _Alignas(64) int32_t acc[2 * LM_AMX_ROWS * LM_Q8_PANEL];
    for (int j = n0; j < n1; j += LM_Q8_PANEL) {
        const int8_t *panel = w->panels + (size_t)(j / LM_Q8_PANEL) * w->k4 * LM_Q8_PANEL;
        panel_out po = panel_outputs(w->scale + j, w->comp + j, bias ? bias + j : NULL, relu, n1 - j < LM_Q8_PANEL ? n1 - j : LM_Q8_PANEL);
        for (int i = i0; i < i1; i += 2 * LM_AMX_ROWS) {
            int t0 = lm_amx_tile_start(i, m), t1 = i + LM_AMX_ROWS < i1 ? lm_amx_tile_start(i + LM_AMX_ROWS, m) : -1;
            lm_amx_int8_block(q + (size_t)t0 * w->k4, t1 < 0 ? NULL : q + (size_t)t1 * w->k4, (size_t)w->k4, panel, w->k4 / LM_AMX_K_BYTES, acc);
            for (int r = 0; r < 2 * LM_AMX_ROWS; r++) {
                int tile = r / LM_AMX_ROWS, at = (tile ? t1 : t0) + r % LM_AMX_ROWS, from = i + tile * LM_AMX_ROWS;
                if ((tile && t1 < 0) || at < from || at >= m) continue; /* no such row, or one another tile stores */
                const int32_t *a = acc + (size_t)r * LM_Q8_PANEL;
                store_row(&po, _mm512_load_si512(a), _mm512_load_si512(a + 16), step[at], y + (size_t)at * w->n + j);
            }
        }
    }
}

void lm_gemm_int8_run(const lm_gemm_int8 *w, int m, const uint8_t *q, const float *step, const float *bias, bool relu, float *y, int n0, int n1) {
    if (w->kernel == LM_Q8_AMX) {
        if (m <= 0) return;
        int block = lm_row_block(m, (size_t)w->k4, 2 * LM_AMX_ROWS);
        lm_amx_begin(m < LM_AMX_ROWS ? m : LM_AMX_ROWS);
        for (int i0 = 0; i0 < m; i0 += block) amx_rows(w, m, i0, m - i0 < block ? m : i0 + block, q, step, bias, relu, y, n0, n1);
        lm_amx_end();
        return;
    }
    if (w->kernel == LM_Q8_VNNI) {
        int block = lm_row_block(m, (size_t)w->k4, ROWS); /* gemm_blocks.h: a block of x stays in L2 */
        for (int i0 = 0; i0 < m; i0 += block) vnni_rows(w, i0, m - i0 < block ? m : i0 + block, q, step, bias, relu, y, n0, n1);
        return;
    }
    int groups = w->k4 / 4;
    int32_t acc[ROWS_AVX2 * LM_Q8_PANEL];
    for (int j = n0; j < n1; j += LM_Q8_PANEL) {
        const int8_t *panel = w->panels + (size_t)(j / LM_Q8_PANEL) * w->k4 * LM_Q8_PANEL;
        int cols = n1 - j < LM_Q8_PANEL ? n1 - j : LM_Q8_PANEL;
        const float *scale = w->scale + j, *b = bias ? bias + j : NULL;
        for (int i0 = 0; i0 < m; i0 += ROWS_AVX2) {
            int rows = m - i0 < ROWS_AVX2 ? m - i0 : ROWS_AVX2;
            tile_avx2(rows, groups, q + (size_t)i0 * w->k4, w->k4, panel, acc);
            for (int i = 0; i < rows; i++) { /* the same arithmetic as tile_vnni's, without the shift */
                float *yi = y + (size_t)(i0 + i) * w->n + j, s = step[i0 + i];
                const int32_t *ai = acc + i * LM_Q8_PANEL;
                for (int o = 0; o < cols; o++) {
                    float v = (float)ai[o] * (s * scale[o]);
                    v = b ? v + b[o] : v;
                    yi[o] = relu ? (v > 0 ? v : 0) : v;
                }
            }
        }
    }
}
