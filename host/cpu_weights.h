/*
 * cpu_weights: the CPU backend's prepared copies of the model's weights (the
 * decoder's products and the output projection packed for packed_gemm), made
 * once per model and shared read-only by every CPU backend of a process, so a
 * pool of CPU workers costs one copy of the weights, not one per worker.
 */
#ifndef LM_CPU_WEIGHTS_H
#define LM_CPU_WEIGHTS_H

#include "model.h"
#include "packed_gemm.h"

/* The decoder's per-step products, in this order per layer. Cross-attention
 * keys and values run once per batch over all source tokens, where BLAS does
 * well, so they stay unpacked, as does the encoder. */
enum { LM_DEC_Q, LM_DEC_K, LM_DEC_V, LM_DEC_O, LM_DEC_CQ, LM_DEC_CO, LM_DEC_FC1, LM_DEC_FC2, LM_DEC_PRODUCTS };

typedef struct lm_cpu_weights {
    lm_packed head;  /* output projection; empty (no panels) when not packed */
    lm_packed *dec;  /* decoder_layers x LM_DEC_PRODUCTS, or NULL when not packed */
    int decoder_layers;
} lm_cpu_weights;

/* Packs when the CPU has AVX-512, unless LYRICMT_CPU_GEMM=blas; with
 * LYRICMT_CPU_GEMM=packed a CPU without AVX-512 is an error (the tests run the
 * goldens through both paths). The mapped originals are released as they are
 * packed: only embedding rows are read from them afterwards. */
int  lm_cpu_weights_init(lm_cpu_weights *w, const lm_model *m, lm_err *err);
void lm_cpu_weights_free(lm_cpu_weights *w);

/* Layer l's product i, or NULL when unpacked (callers use BLAS on the original). */
const lm_packed *lm_cpu_weights_dec(const lm_cpu_weights *w, int l, int i);

#endif
