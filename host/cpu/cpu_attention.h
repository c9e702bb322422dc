/*
 * cpu_attention: one query row against the keys and values of one head,
 * out = softmax((q * scale) . K^T) V, for the CPU backend. Two kernels: the
 * scalar one (reference, and the fallback on CPUs without AVX-512) and an
 * AVX-512 one that scores 16 keys at once and sums the values over the head
 * dimension. They differ only by fp32 rounding (summation order, lm_exp16
 * for expf); each is a fixed sequence of operations on the one query's own
 * data, so a row's result does not depend on its batch or the thread count.
 *
 * Keys and values are rows of `stride` floats (the layouts of cpu_backend:
 * packed encoder rows, the self-attention cache); q is unscaled, as the
 * product gives it, and is scaled here exactly as transformers scales it
 * (q * scale rounded to float, before the dot products).
 */
#ifndef LM_CPU_ATTENTION_H
#define LM_CPU_ATTENTION_H

#include <stddef.h>

typedef void (*lm_cpu_attention_fn)(const float *q, float scale, const float *keys, const float *values, int n_keys,
                             int stride, int hd, float *scores, float *out);

/* Floats of scratch (the `scores` argument) one call needs for n_keys keys
 * of hd columns; enough for any fewer keys too. */
size_t lm_cpu_attention_scratch(int n_keys, int hd);

void lm_cpu_attention_scalar(const float *q, float scale, const float *keys, const float *values, int n_keys, int stride,
                      int hd, float *scores, float *out);
void lm_cpu_attention_avx512(const float *q, float scale, const float *keys, const float *values, int n_keys, int stride,
                      int hd, float *scores, float *out);

/* The AVX-512 kernel where lm_cpu_features() has LM_CPU_AVX512, else the
 * scalar one (decided on each call: callers keep the pointer). */
lm_cpu_attention_fn lm_cpu_attention_best(void);

#endif
