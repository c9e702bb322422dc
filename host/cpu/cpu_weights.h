/*
 * cpu_weights: the CPU backend's prepared copies of the model's weights, made
 * once per model and shared read-only by every CPU backend of a process, so a
 * pool of CPU workers costs one copy of the weights, not one per worker.
 *
 * Each product (an lm_linear or the output projection) is held in one form:
 *   fp32 packed  packed_gemm panels (every product, where the CPU has AVX-512)
 *   fp32 BLAS    the mapped original, through OpenBLAS (a CPU without AVX-512,
 *                or LYRICMT_CPU_GEMM=blas)
 *   int8         gemm_int8 (every product; on AMX tiles where the CPU has them)
 *   bf16         gemm_bf16 (likewise)
 * and lm_cpu_linear runs it whatever the form, the output columns split over
 * the caller's OpenMP threads. Precision dispatch lives here, not in the
 * backend.
 */
#ifndef LM_CPU_WEIGHTS_H
#define LM_CPU_WEIGHTS_H

#include "config/engine_config.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_int8.h"
#include "model/model.h"
#include "cpu/packed_gemm.h"

/* The decoder's products, in this order per layer. */
enum { LM_DEC_Q, LM_DEC_K, LM_DEC_V, LM_DEC_O, LM_DEC_CQ, LM_DEC_CO, LM_DEC_FC1, LM_DEC_FC2, LM_DEC_CK, LM_DEC_CV, LM_DEC_PRODUCTS };
/* The encoder's, likewise. */
enum { LM_ENC_Q, LM_ENC_K, LM_ENC_V, LM_ENC_O, LM_ENC_FC1, LM_ENC_FC2, LM_ENC_PRODUCTS };

typedef enum { LM_FORM_BLAS, LM_FORM_PACKED, LM_FORM_INT8, LM_FORM_BF16 } lm_cpu_form;

typedef struct {
    lm_cpu_form form;
    int n, k;        /* outputs, inputs */
    const float *w;  /* LM_FORM_BLAS: the original (n, k) */
    lm_packed f32;   /* LM_FORM_PACKED */
    lm_gemm_int8 q8; /* LM_FORM_INT8 */
    lm_gemm_bf16 b16; /* LM_FORM_BF16 */
} lm_cpu_matrix;

typedef struct lm_cpu_weights {
    lm_precision precision; /* what the products compute in (fp32 after a fallback) */
    lm_cpu_matrix head;     /* output projection */
    lm_cpu_matrix *enc;     /* encoder_layers x LM_ENC_PRODUCTS */
    lm_cpu_matrix *dec;     /* decoder_layers x LM_DEC_PRODUCTS */
    int encoder_layers, decoder_layers;
} lm_cpu_weights;

/* fp32: packs every product (encoder, decoder, cross-attention K/V, output
 * projection) when the CPU has AVX-512, unless LYRICMT_CPU_GEMM=blas; with
 * LYRICMT_CPU_GEMM=packed a CPU without AVX-512 is an error (the tests run the
 * goldens through both paths). */
int lm_cpu_weights_init(lm_cpu_weights *w, const lm_model *m, lm_err *err);

/* In `precision` (fp32, int8 or bf16; fp16 is an error): int8 and bf16
 * convert every product. int8 runs on AMX tiles, else AVX-512 VNNI, else
 * AVX2 (all three identical: exact integer sums); bf16 on AMX tiles, else
 * AVX-512 BF16 or AVX-512F (these two identical but for subnormals; AMX adds
 * in its own order, so its last bits differ); a CPU with none of them gets
 * fp32. Each fallback prints a one-line notice on stderr; w->precision says
 * what the products compute in. The mapped originals are released as they
 * are converted: only embedding rows are read from them afterwards. */
int lm_cpu_weights_init_as(lm_cpu_weights *w, const lm_model *m, lm_precision precision, lm_err *err);
void lm_cpu_weights_free(lm_cpu_weights *w);

/* Layer l's product i (LM_DEC_..., LM_ENC_...). */
/* Whether every product gives each row the same numbers whatever other rows
 * share it and however the columns are split over threads (packed, int8,
 * bf16: yes; BLAS: no, its kernels change with the row count). In-flight
 * batching relies on it for the decoder; for the encoder it makes printed
 * scores independent of the worker count. */
bool lm_cpu_weights_row_invariant(const lm_cpu_weights *w);

/* The arithmetic the products run, as far as it decides output bits (the
 * job's journal records it, so a job is never resumed under another):
 * "fp32, packed AVX-512 tiles", "int8", ... Kernels that give identical
 * results share a name. */
const char *lm_cpu_weights_arithmetic(const lm_cpu_weights *w);

const lm_cpu_matrix *lm_cpu_weights_dec(const lm_cpu_weights *w, int l, int i);
const lm_cpu_matrix *lm_cpu_weights_enc(const lm_cpu_weights *w, int l, int i);

/* y (m, w->n) = x (m, w->k) . W^T (+ bias when not NULL), the columns split
 * over the calling thread's OpenMP threads. In the packed, int8 and bf16
 * forms each output is computed the same way whatever m and the row's place
 * in x, so a line translates identically alone or batched. */
void lm_cpu_linear(const lm_cpu_matrix *w, int m, const float *x, const float *bias, float *y);

/* The same, then relu (v > 0 ? v : 0) on each output with `relu`: in the
 * product's own pass over its outputs rather than one more over memory. */
void lm_cpu_linear_relu(const lm_cpu_matrix *w, int m, const float *x, const float *bias, bool relu, float *y);

#endif
