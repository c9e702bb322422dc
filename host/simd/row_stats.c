/* row_stats: see row_stats.h. */
#include "simd/row_stats.h"
#include "simd/cpu_features.h"
#include "simd/vec_exp.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

#define LANES 16

/* The AVX-512 pass prefetches this many values (4 KB) ahead. A row of 128k
 * logits (512 KB) has left the cache by the time the search reads it (the
 * product wrote it while streaming the output weights), and the hardware
 * prefetcher alone kept the pass at 90 us a row out of cache against 48 us
 * in it; 4 KB ahead brings it to about 54 (NOTES, attempt 17). Near the
 * row's end it prefetches the last value again (a prefetch never faults,
 * but a pointer past the row would be undefined). */
#define PREFETCH_VALUES 1024

/*
 * Each lane's state. m is the lane's true max (-inf until it sees a larger
 * value); its exponentials are taken relative to max(m, -FLT_MAX) instead, so
 * that a lane holding only -inf so far sums exp(-inf - -FLT_MAX) = 0 rather
 * than exp(-inf - -inf) = NaN.
 */
typedef struct {
    float m[LANES], s[LANES], scale[LANES]; /* scale: exp(offset - the row's offset), filled by the path */
    int32_t at[LANES];                      /* where the lane's max first occurs */
    bool bad;                               /* a NaN or +inf seen */
} lanes;

int lm_row_block(int n) {
    long per = 64L * LM_ROW_BLOCKS_MAX, q = ((long)n + per - 1) / per; /* 64s per block */
    return (int)(64 * (q > 1 ? q : 1));
}

static float lanes_max(const lanes *ln) {
    float mx = -INFINITY;
    for (int l = 0; l < LANES; l++) mx = ln->m[l] > mx ? ln->m[l] : mx;
    return mx;
}

/* Both paths end here, with the same scalar arithmetic in lane order. */
static void lanes_finish(const lanes *ln, float mx, lm_row_stats *st) {
    float z = 0;
    int32_t at = INT32_MAX;
    for (int l = 0; l < LANES; l++) {
        z += ln->s[l] * ln->scale[l];
        if (ln->m[l] == mx && ln->at[l] < at) at = ln->at[l];
    }
    st->max = mx;
    st->argmax = at;
    st->sum = ln->bad || mx == -INFINITY ? NAN : z;
}

/* The fallback: the same lanes, one value at a time, with libm's expf. */
static void stats_scalar(const float *x, int n, int blk, float *block_max, lanes *ln) {
    float off[LANES];
    for (int l = 0; l < LANES; l++) { ln->m[l] = -INFINITY; off[l] = -FLT_MAX; ln->s[l] = 0; ln->at[l] = INT32_MAX; }
    bool bad = false;
    for (int b0 = 0, nb = 0; b0 < n; b0 += blk, nb++) {
        int b1 = n - b0 > blk ? b0 + blk : n;
        float bm = -INFINITY;
        for (int i = b0; i < b1; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float v = i + l < b1 ? x[i + l] : -INFINITY;
                bad |= !(v < INFINITY);
                if (v > ln->m[l]) { /* the lane's max grows: rescale what it has summed */
                    float o = v > -FLT_MAX ? v : -FLT_MAX;
                    ln->s[l] *= expf(off[l] - o);
                    off[l] = o;
                    ln->m[l] = v;
                    ln->at[l] = i + l;
                }
                ln->s[l] += expf(v - off[l]);
                bm = v > bm ? v : bm;
            }
        if (block_max) block_max[nb] = bm;
    }
    ln->bad = bad;
    float mx = lanes_max(ln), row_off = mx > -FLT_MAX ? mx : -FLT_MAX;
    for (int l = 0; l < LANES; l++) ln->scale[l] = expf(off[l] - row_off);
}

/* The same steps on 16 lanes at once. A lane whose max did not grow is
 * rescaled by exp(0) = 1 (exact), so rescaling all lanes together gives the
 * fallback's numbers. Rescales are rare (a lane's max grows about ln(n / 16)
 * times on random logits), so the loop is one exp per 16 values. */
__attribute__((target("avx512f"))) static void stats_avx512(const float *x, int n, int blk, float *block_max, lanes *ln) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY), pinf = _mm512_set1_ps(INFINITY), lowest = _mm512_set1_ps(-FLT_MAX);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 m = ninf, off = lowest, s = _mm512_setzero_ps();
    __m512i at = _mm512_set1_epi32(INT32_MAX);
    __mmask16 bad = 0;
    for (int b0 = 0, nb = 0; b0 < n; b0 += blk, nb++) {
        int b1 = n - b0 > blk ? b0 + blk : n;
        __m512 bm = ninf;
        for (int i = b0; i < b1; i += LANES) {
            __mmask16 in = b1 - i >= LANES ? (__mmask16)0xffff : (__mmask16)((1u << (b1 - i)) - 1);
            _mm_prefetch((const char *)(x + (n - i > PREFETCH_VALUES ? i + PREFETCH_VALUES : n - 1)), _MM_HINT_T0);
            __m512 v = _mm512_mask_loadu_ps(ninf, in, x + i);
            bad |= _mm512_cmp_ps_mask(v, pinf, _CMP_NLT_UQ); /* +inf or NaN */
            __mmask16 up = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
            if (up) {
                m = _mm512_mask_mov_ps(m, up, v);
                __m512 o = _mm512_max_ps(m, lowest);
                s = _mm512_mul_ps(s, lm_exp16(_mm512_sub_ps(off, o)));
                off = o;
                at = _mm512_mask_mov_epi32(at, up, _mm512_add_epi32(iota, _mm512_set1_epi32(i)));
            }
            s = _mm512_add_ps(s, lm_exp16(_mm512_sub_ps(v, off)));
            bm = _mm512_max_ps(bm, v);
        }
        if (block_max) block_max[nb] = _mm512_reduce_max_ps(bm);
    }
    _mm512_storeu_ps(ln->m, m);
    _mm512_storeu_ps(ln->s, s);
    _mm512_storeu_epi32(ln->at, at);
    ln->bad = bad != 0;
    float mx = lanes_max(ln);
    _mm512_storeu_ps(ln->scale, lm_exp16(_mm512_sub_ps(off, _mm512_set1_ps(mx > -FLT_MAX ? mx : -FLT_MAX))));
}

void lm_row_stats_of(const float *x, int n, float *block_max, lm_row_stats *st) {
    lanes ln;
    int blk = lm_row_block(n);
    if (lm_cpu_features() & LM_CPU_AVX512) stats_avx512(x, n, blk, block_max, &ln);
    else stats_scalar(x, n, blk, block_max, &ln);
    lanes_finish(&ln, lanes_max(&ln), st);
}
