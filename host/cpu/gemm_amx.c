/* gemm_amx: see gemm_amx.h. */
#include "cpu/gemm_amx.h"

#include <string.h>

/* Bytes between a panel's steps of k (32 outputs x 4 bytes), and from one
 * tile of B (16 steps) to the next. */
#define STEP_BYTES 128
#define TILE_B_BYTES (16 * STEP_BYTES)

/* The tile instructions as asm of our own: GCC 12's intrinsics declare no
 * memory operands, so the compiler could move a store to a tile's rows past
 * its load, or a read of acc before the tile's store. Tiles 0-3 hold C (two
 * rows of tiles by two halves of the panel), 4-5 A, 6-7 B. */
#define TILE_LOAD(t, p, stride) __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"((long)(stride)) : "memory")
#define TILE_STORE(t, p, stride) __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(p), "r"((long)(stride)) : "memory")
#define TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#define DPBUSD(c, a, b) __asm__ volatile("tdpbusd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#define DPBF16PS(c, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

/* ldtilecfg's 64-byte operand: palette 1, each tile's rows and bytes a row */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

__attribute__((target("amx-tile"))) void lm_amx_begin(int rows) {
    _Alignas(64) tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.colsb[t] = LM_AMX_K_BYTES, c.rows[t] = (uint8_t)(t < 6 ? rows : LM_AMX_ROWS);
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
}

/* Hands the tile state back, so that the kernel need not save 8 KB of it at
 * every switch away from this thread. */
__attribute__((target("amx-tile"))) void lm_amx_end(void) { __asm__ volatile("tilerelease" ::); }

/* Both kinds of block are one loop, instantiated per instruction: k in tiles,
 * each tile of B (the panel's two halves) used by one or two tiles of A. */
#define BLOCK_BODY(DP)                                                             \
    TILE_ZERO(0);                                                                  \
    TILE_ZERO(1);                                                                  \
    if (a1) {                                                                      \
        TILE_ZERO(2);                                                              \
        TILE_ZERO(3);                                                              \
        for (int t = 0; t < ksteps; t++) {                                         \
            const char *b = (const char *)panel + (size_t)t * TILE_B_BYTES;        \
            const char *x0 = (const char *)a0 + (size_t)t * LM_AMX_K_BYTES;        \
            const char *x1 = (const char *)a1 + (size_t)t * LM_AMX_K_BYTES;        \
            TILE_LOAD(6, b, STEP_BYTES);                                           \
            TILE_LOAD(7, b + 64, STEP_BYTES);                                      \
            TILE_LOAD(4, x0, lda);                                                 \
            TILE_LOAD(5, x1, lda);                                                 \
            DP(0, 4, 6);                                                           \
            DP(1, 4, 7);                                                           \
            DP(2, 5, 6);                                                           \
            DP(3, 5, 7);                                                           \
        }                                                                          \
        TILE_STORE(2, acc + 16 * 32, 32 * 4);                                      \
        TILE_STORE(3, acc + 16 * 32 + 16, 32 * 4);                                 \
    } else {                                                                       \
        for (int t = 0; t < ksteps; t++) {                                         \
            const char *b = (const char *)panel + (size_t)t * TILE_B_BYTES;        \
            TILE_LOAD(6, b, STEP_BYTES);                                           \
            TILE_LOAD(7, b + 64, STEP_BYTES);                                      \
            TILE_LOAD(4, (const char *)a0 + (size_t)t * LM_AMX_K_BYTES, lda);      \
            DP(0, 4, 6);                                                           \
            DP(1, 4, 7);                                                           \
        }                                                                          \
    }                                                                              \
    TILE_STORE(0, acc, 32 * 4);                                                    \
    TILE_STORE(1, acc + 16, 32 * 4);

__attribute__((target("amx-tile,amx-int8"))) void lm_amx_int8_block(const uint8_t *a0, const uint8_t *a1, size_t lda, const int8_t *panel,
                                                                    int ksteps, int32_t *acc) {
    BLOCK_BODY(DPBUSD)
}

__attribute__((target("amx-tile,amx-bf16"))) void lm_amx_bf16_block(const uint16_t *a0, const uint16_t *a1, size_t lda, const uint16_t *panel,
                                                                    int ksteps, float *acc) {
    BLOCK_BODY(DPBF16PS)
}
