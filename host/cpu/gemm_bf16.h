/*
 * gemm_bf16: y = x . W^T with W stored in bfloat16 and x rounded to
 * bfloat16 per row at run time, with 32-bit float sums: AVX-512 BF16's
 * vdpbf16ps, or the same chain as widened FMAs on AVX-512F (identical but for
 * subnormals; faster on Intel: benchmarks/NOTES.md attempt 8), or AMX tiles
 * (tdpbf16ps, gemm_amx.h: the same panels with k padded to 32, sums in the
 * tiles' own order, so the last bits differ from the other two).
 *
 * Layout: panels of 32 outputs (as packed_gemm); within a panel, for each
 * pair of k values, 32 outputs x 2 bfloat16 (128 bytes, two registers).
 * vdpbf16ps adds each pair's two products to the sum one after the other
 * (the odd k first), rounding each time; every output is one such chain over
 * k in order, the same whatever the number of rows or where a row sits in the
 * batch, so a line translates identically alone or batched. Rounding to
 * bfloat16 is to nearest even, as vcvtneps2bf16. The AMX tiles add in another
 * fixed order (gemm_amx.h), again the same for every row.
 */
#ifndef LM_GEMM_BF16_H
#define LM_GEMM_BF16_H

#include "base/util.h"

#define LM_B16_PANEL 32
#define LM_B16_MAX_K 16384 /* a converted row (floats for LM_B16_WIDEN) fits cpu_weights' 64 KB fallback buffer */

/* vdpbf16ps (AVX-512 BF16), or the same sums on AVX-512F (see gemm_bf16.c),
 * or AMX's tdpbf16ps */
typedef enum { LM_B16_NONE, LM_B16_WIDEN, LM_B16_DOT, LM_B16_AMX } lm_gemm_bf16_kernel;

typedef struct {
    uint16_t *panels; /* (ceil(n / 32), k2 / 2, 32, 2), zero past n and k */
    int n, k, k2;     /* k2: k rounded up to even (to a multiple of 32 for AMX) */
    lm_gemm_bf16_kernel kernel;
} lm_gemm_bf16;

/* The faster kernel this CPU has (lm_cpu_features and the vendor: see
 * gemm_bf16.c), LM_B16_NONE without AVX-512. */
lm_gemm_bf16_kernel lm_gemm_bf16_best_kernel(void);

/* bfloat16 nearest to v (ties to even); NaN stays NaN. */
uint16_t lm_bf16_round(float v);
float lm_bf16_float(uint16_t b);

/* Converts W (n, k) row-major, for `kernel`; parallel over panels. */
int  lm_gemm_bf16_init(lm_gemm_bf16 *w, const float *W, int n, int k, lm_gemm_bf16_kernel kernel, lm_err *err);
void lm_gemm_bf16_free(lm_gemm_bf16 *w);

/* A row of x (w->k floats) rounded to bfloat16, as the kernel reads it:
 * lm_gemm_bf16_row_bytes bytes, zero-padded to k2 values. */
size_t lm_gemm_bf16_row_bytes(const lm_gemm_bf16 *w);
void lm_gemm_bf16_convert_row(const lm_gemm_bf16 *w, const float *x, void *out);

/* Columns [n0, n1) of y (m, w->n) = x . W^T (+ bias[o] when bias is not
 * NULL; then max(0, .) with relu), from rows converted by
 * lm_gemm_bf16_convert_row; n0 a multiple of 32. Single-threaded. */
void lm_gemm_bf16_run(const lm_gemm_bf16 *w, int m, const void *xb, const float *bias, bool relu, float *y, int n0, int n1);

#endif
