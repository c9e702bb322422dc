/*
 * gemm_int8: y = x . W^T in 8-bit integers, as CTranslate2 and FBGEMM run
 * their int8 CPU mode.
 *
 * W is quantized once, at load, per output row: q = round(W[o][kk] * 127 /
 * max|W[o]|), in [-127, 127]. x is quantized per row at run time the same way,
 * then shifted by 128 into u8, because vpdpbusd multiplies u8 by s8; the shift
 * adds 128 * sum(qW[o]) to every output, a constant computed at load and taken
 * off again. Sums are exact 32-bit integers (k <= LM_Q8_MAX_K keeps
 * 255 * 127 * k below 2^31), so the result does not depend on the kernel, on
 * the number of rows, or on where a row sits in the batch: a line translates
 * identically alone or batched, with VNNI or AVX2.
 *
 * Layout: panels of 32 outputs (as packed_gemm, so callers split columns the
 * same way); within a panel, for each group of 4 k values, 32 outputs x 4
 * bytes (128 bytes, two AVX-512 registers, one vpdpbusd each).
 *
 * Kernels: AMX tiles (tdpbusd, gemm_amx.h), AVX-512 VNNI (vpdpbusd) or AVX2.
 * AMX reads the same panels, with k padded to whole tiles (64). The AVX2 one
 * multiplies |x| by W with x's sign (vpsign), not the u8 shift, because
 * vpmaddubsw sums pairs into 16 bits with saturation: 255 * 127 * 2
 * overflows, 127 * 127 * 2 does not.
 */
#ifndef LM_GEMM_INT8_H
#define LM_GEMM_INT8_H

#include "base/util.h"

#define LM_Q8_PANEL 32
#define LM_Q8_MAX_K 65536

typedef enum { LM_Q8_NONE, LM_Q8_AVX2, LM_Q8_VNNI, LM_Q8_AMX } lm_gemm_int8_kernel;

typedef struct {
    int8_t *panels;  /* (ceil(n / 32), k4 / 4, 32, 4), zero past n and k */
    float *scale;    /* (n) max|W[o]| / 127: one quantization step of row o */
    int32_t *comp;   /* (n) 128 * sum of row o's quantized values */
    int n, k, k4;    /* k4: k rounded up to a multiple of 4 (of 64 for AMX) */
    lm_gemm_int8_kernel kernel;
    bool streamed;   /* too large to stay in L3: the VNNI kernel prefetches each next panel (gemm_blocks.h) */
} lm_gemm_int8;

/* The best kernel this CPU has (lm_cpu_features), LM_Q8_NONE if none. */
lm_gemm_int8_kernel lm_gemm_int8_best_kernel(void);

/* Quantizes W (n, k) row-major, for `kernel`; parallel over panels. */
int  lm_gemm_int8_init(lm_gemm_int8 *w, const float *W, int n, int k, lm_gemm_int8_kernel kernel, lm_err *err);
void lm_gemm_int8_free(lm_gemm_int8 *w);

/* Quantizes a row of x (w->k floats) into w->k4 bytes (value + 128, padded
 * with 128) and returns its step max|x| / 127 (0 for an all-zero row). */
float lm_gemm_int8_quantize_row(const lm_gemm_int8 *w, const float *x, uint8_t *q);

/* Columns [n0, n1) of y (m, w->n) = step[i] * w->scale[o] * (q . qW^T)
 * (+ bias[o] when bias is not NULL; then max(0, .) with relu), from rows
 * quantized by lm_gemm_int8_quantize_row; n0 a multiple of 32. Single-threaded. */
void lm_gemm_int8_run(const lm_gemm_int8 *w, int m, const uint8_t *q, const float *step, const float *bias, bool relu, float *y, int n0, int n1);

#endif
