/*
 * cpu_norm: layer normalisation of one row for the CPU backend, with the
 * residual add that comes before it in every pre-norm block fused in:
 * x += add (stored back: x is the residual stream), then
 * y = (x - mean) / sqrt(var + eps) * gamma + beta. Mean and variance are
 * summed in double, the output in float with the same operations in both
 * kernels, so the AVX-512 kernel differs from the scalar one only where the
 * double sums' order changes a float's rounding (in practice never).
 * `add` may be NULL, and may be y itself (it is read before y is written).
 */
#ifndef LM_CPU_NORM_H
#define LM_CPU_NORM_H

typedef void (*lm_cpu_norm_row_fn)(float *x, const float *add, int d, const float *gamma, const float *beta, float eps,
                               float *y);

void lm_cpu_norm_row_scalar(float *x, const float *add, int d, const float *gamma, const float *beta, float eps, float *y);
void lm_cpu_norm_row_avx512(float *x, const float *add, int d, const float *gamma, const float *beta, float eps, float *y);

/* The AVX-512 kernel where lm_cpu_features() has LM_CPU_AVX512, else the scalar one. */
lm_cpu_norm_row_fn lm_cpu_norm_row_best(void);

#endif
