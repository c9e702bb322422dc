/*
 * packed_gemm: y = x . W^T with W packed once, at load time, into panels of 32
 * outputs stored k-major (panel p holds W[32p .. 32p+31][kk] for kk = 0, 1, ...).
 *
 * Why not BLAS: OpenBLAS repacks the weights on every call, which costs more
 * than the multiply when few rows are decoded (benchmarks/NOTES.md, attempts
 * 2-4). Why this layout: each output is one FMA chain over k in order, the same
 * whatever the number of rows or where a row sits in the batch, so a line
 * translates identically alone or batched. AVX-512 only; lm_packed_supported
 * says whether this CPU has it (otherwise callers keep BLAS).
 */
#ifndef LM_PACKED_GEMM_H
#define LM_PACKED_GEMM_H

#include "base/util.h"

#define LM_PANEL 32

typedef struct {
    float *panels; /* (ceil(n / 32), k, 32), zero-padded past n */
    int n, k;
} lm_packed;

bool lm_packed_supported(void);

/* Packs W (n, k) row-major; parallel over panels. */
int  lm_packed_init(lm_packed *p, const float *w, int n, int k, lm_err *err);
void lm_packed_free(lm_packed *p);

/* Columns [n0, n1) of y (m, p->n) = x (m, k) . W^T, + bias[j] when bias is
 * not NULL, then v > 0 ? v : 0 with relu; n0 a multiple of 32.
 * Single-threaded: callers split columns over their threads. */
void lm_packed_gemm(const lm_packed *p, int m, const float *x, const float *bias, bool relu, float *y, int n0, int n1);

/* Row j of W (k values), e.g. an embedding lookup from a packed tied matrix. */
void lm_packed_row(const lm_packed *p, int j, float *out);

#endif
