/*
 * row_stats: the softmax statistics of one row of logits in a single pass:
 * its max, the lowest index holding it, the sum of exp(x - max), and the max
 * of each block of the row (so that a top-k selection can rule most blocks
 * out without reading them again).
 *
 * The sum is an online softmax over 16 lanes: lane l takes x[l], x[l + 16],
 * ..., keeps its own running max and rescales its partial sum whenever that
 * max grows; the lanes are combined in lane order at the end. The order is
 * fixed by n alone, so a row's result does not depend on its batch, its
 * thread or the CPU's features, except that the AVX-512 path takes exp from
 * vec_exp.h and the fallback from libm (within 2 ulp of each other per term).
 * LYRICMT_CPU_FEATURES=noavx512 selects the fallback.
 */
#ifndef LM_ROW_STATS_H
#define LM_ROW_STATS_H

#include <stdint.h>

/* At most this many blocks per row: a caller's block_max array holds them. */
#define LM_ROW_BLOCKS_MAX 2048

typedef struct {
    float max;      /* the largest value */
    float sum;      /* sum of exp(x - max); NaN when the row holds a NaN or +inf, or no value above -inf */
    int32_t argmax; /* the lowest index holding max */
} lm_row_stats;

/* The block length for a row of n values: 64, or a multiple of 64 that keeps
 * the blocks within LM_ROW_BLOCKS_MAX. */
int lm_row_block(int n);

/* Statistics of x[0..n), n >= 1. block_max, if not NULL, receives the max of
 * each block of lm_row_block(n) values, in order. */
void lm_row_stats_of(const float *x, int n, float *block_max, lm_row_stats *st);

#endif
