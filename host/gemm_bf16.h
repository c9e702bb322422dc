/*
 * gemm_bf16: y = x . W^T with W stored in bfloat16 and x rounded to
 * bfloat16 per row at run time, multiplied by AVX-512 BF16's vdpbf16ps with
 * 32-bit float sums.
 *
 * Layout: panels of 32 outputs (as packed_gemm); within a panel, for each
 * pair of k values, 32 outputs x 2 bfloat16 (128 bytes, two registers).
 * vdpbf16ps adds each pair's two products to the sum one after the other
 * (the odd k first), rounding each time; every output is one such chain over
 * k in order, the same whatever the number of rows or where a row sits in the
 * batch, so a line translates identically alone or batched. Rounding to
 * bfloat16 is to nearest even, as vcvtneps2bf16.
 */
#ifndef LM_GEMM_BF16_H
#define LM_GEMM_BF16_H

#include "util.h"

#define LM_B16_PANEL 32
#define LM_B16_MAX_K 32768 /* a converted row fits cpu_weights' 64 KB fallback buffer */

typedef struct {
    uint16_t *panels; /* (ceil(n / 32), k2 / 2, 32, 2), zero past n and k */
    int n, k, k2;     /* k2: k rounded up to even */
} lm_b16;

/* Whether this CPU has AVX-512 BF16 (lm_cpu_features). */
bool lm_b16_supported(void);

/* bfloat16 nearest to v (ties to even); NaN stays NaN. */
uint16_t lm_bf16_round(float v);
float lm_bf16_float(uint16_t b);

/* Converts W (n, k) row-major; parallel over panels. */
int  lm_b16_init(lm_b16 *w, const float *W, int n, int k, lm_err *err);
void lm_b16_free(lm_b16 *w);

/* Rounds x's row (k floats) into k2 bfloat16 (zero-padded). */
void lm_b16_convert_row(const float *x, int k, int k2, uint16_t *out);

/* Columns [n0, n1) of y (m, w->n) = xb . W^T (+ bias[o] when bias is not
 * NULL), from rows converted by lm_b16_convert_row; n0 a multiple of 32.
 * Single-threaded; needs lm_b16_supported. */
void lm_b16_gemm(const lm_b16 *w, int m, const uint16_t *xb, const float *bias, float *y, int n0, int n1);

#endif
