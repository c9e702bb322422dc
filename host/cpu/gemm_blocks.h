/*
 * gemm_blocks: how the packed products (packed_gemm.c, gemm_int8.c,
 * gemm_bf16.c) walk a large x, with the constants found for fp32
 * (benchmarks/NOTES.md attempt 18), and which weights count as streamed from
 * DRAM (attempt 19).
 *
 * x larger than LM_BLOCK_X_FITS bytes is worked through in blocks of rows of
 * at most LM_BLOCK_X_BYTES, each against all of the thread's panels, so that
 * a block stays in L2 (2 MB) while the panels pass instead of coming from L3
 * once per panel. Each block reads the weights again, which pays only with
 * many rows a block, so blocks under LM_BLOCK_MIN_ROWS are not made; blocks
 * are of equal size, so that none is a few rows that read all the weights.
 */
#ifndef LM_GEMM_BLOCKS_H
#define LM_GEMM_BLOCKS_H

#include <immintrin.h>
#include <stddef.h>

#define LM_BLOCK_X_FITS (3 << 19)
#define LM_BLOCK_X_BYTES (1 << 20)
#define LM_BLOCK_MIN_ROWS 192

/* Weights larger than this do not stay in L3 between uses (of SMaLL-100's,
 * only the output projection); gemm_int8.c prefetches the next panel for
 * those alone. */
#define LM_PREFETCH_W_BYTES ((size_t)64 << 20)

/* Rows a block of m rows of row_bytes each, a multiple of tile_rows (m when
 * x is not blocked). */
static inline int lm_row_block(int m, size_t row_bytes, int tile_rows) {
    if (row_bytes == 0 || (size_t)m * row_bytes <= LM_BLOCK_X_FITS) return m;
    int most = (int)(LM_BLOCK_X_BYTES / row_bytes) / tile_rows * tile_rows;
    if (most < LM_BLOCK_MIN_ROWS) return m;
    int blocks = (m + most - 1) / most;
    return ((m + blocks - 1) / blocks + tile_rows - 1) / tile_rows * tile_rows;
}

/* A tile's share of the next panel: pf_lines cache lines from pf brought to
 * L2, spread evenly over the tile's `steps` k steps (groups, pairs), issued
 * between blocks of steps s0 .. s1 rather than inside the k loop, where their
 * bookkeeping cost more than they saved (attempts 18 and 19). *acc carries
 * the spread from one block to the next; returns where the share goes on. */
static inline const char *lm_prefetch_share(const char *pf, int pf_lines, int *acc, int s0, int s1, int steps) {
    for (*acc += pf_lines * (s1 - s0); *acc >= steps; *acc -= steps, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    return pf;
}

#endif
