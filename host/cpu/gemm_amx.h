/*
 * gemm_amx: the int8 and bf16 products' inner blocks on Intel AMX tiles
 * (tdpbusd, tdpbf16ps), over the panels gemm_int8 and gemm_bf16 already
 * pack: in both, a panel's 32 outputs are stored k-major, 128 bytes a step
 * (4 int8 or 2 bfloat16 values of k for each output), which is what a tile
 * of B wants: 16 steps of k for 16 outputs, 64 bytes a row, 128 bytes apart.
 * So the weights are not packed a second time; the panels only have k padded
 * to whole tiles (LM_AMX_K_BYTES a row).
 *
 * A block is up to 32 rows (two tiles of A, each 16 rows of 64 bytes of k)
 * against one panel (two tiles of B), into four tiles of C: each tile of B
 * loaded serves 32 rows, each of A 32 outputs. A tile reads all its rows, so
 * a product of m >= 16 rows takes its last tile as rows m - 16 .. m - 1
 * (recomputing some, which changes nothing: no row's sums depend on the
 * others), and one of m < 16 rows configures tiles of m rows.
 *
 * The sums: tdpbusd's are exact 32-bit integers, so a row's int8 sums are the
 * VNNI kernel's, bit for bit. tdpbf16ps's are floats in the order this CPU's
 * tiles add them (measured on this project's Xeon, tests/test_gemm_prec.c
 * holds the model): for each tile of 32 values of k, the even and the odd
 * values' products each summed in a chain (round to nearest even after every
 * add), the two chains added, and that added to C; subnormal inputs and
 * results are zero. That is not vdpbf16ps's single chain, so bf16 on AMX
 * differs from the AVX-512 kernels in the last bits, but it is the same for
 * every row wherever it sits in the batch.
 *
 * Only callable where lm_cpu_features() has LM_CPU_AMX_INT8 / _BF16 (the
 * process then holds the kernel's permission), between lm_amx_begin and
 * lm_amx_end on the same thread.
 */
#ifndef LM_GEMM_AMX_H
#define LM_GEMM_AMX_H

#include <stddef.h>
#include <stdint.h>

#define LM_AMX_K_BYTES 64 /* a tile row: 16 groups of 4 int8, or 16 pairs of bfloat16 */
#define LM_AMX_ROWS 16    /* rows of a tile of A (and C) */

/* Where the tile of rows from `i` starts in a product of m rows: i, or for a
 * last partial tile m - 16 (0 when m < 16), so that it reads only rows that exist. */
static inline int lm_amx_tile_start(int i, int m) { return i + LM_AMX_ROWS <= m ? i : m >= LM_AMX_ROWS ? m - LM_AMX_ROWS : 0; }

/* Configures this thread's tiles, 64 bytes a row: B 16 rows, A and C `rows`
 * (16, or m when a product has fewer) / hands them back. */
void lm_amx_begin(int rows);
void lm_amx_end(void);

/* acc (32 x 32, row-major) = the rows of a0 (a tile: lda bytes apart) and,
 * when not NULL, of a1 (another tile) against a panel of ksteps * 16 steps of k:
 * int32 sums of u8 x s8 (tdpbusd) or float sums of bfloat16 pairs
 * (tdpbf16ps). a0's sums in acc rows 0-15, a1's in 16-31 (left alone when a1 is NULL). */
void lm_amx_int8_block(const uint8_t *a0, const uint8_t *a1, size_t lda, const int8_t *panel, int ksteps, int32_t *acc);
void lm_amx_bf16_block(const uint16_t *a0, const uint16_t *a1, size_t lda, const uint16_t *panel, int ksteps, float *acc);

#endif
