/* cpu_weights: see cpu_weights.h. */
#include "cpu/cpu_weights.h"
#include "simd/cpu_features.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows quantized or rounded per call go in one buffer shared by the threads;
 * if it cannot be had, in chunks through a buffer on the stack this size. */
#define STACK_ROWS_BYTES 65536

/* Puts W (n, k) into `form`, releasing the mapped original once it is copied. */
static int prepare(const lm_model *m, lm_cpu_matrix *p, lm_cpu_form form, const float *w, int n, int k, lm_gemm_int8_kernel q8, lm_gemm_bf16_kernel b16,
                   lm_err *err) {
    p->form = form;
    p->n = n;
    p->k = k;
    p->w = w;
    int rc = 0;
    switch (form) {
    case LM_FORM_BLAS: return 0;
    case LM_FORM_PACKED: rc = lm_packed_init(&p->f32, w, n, k, err); break;
    case LM_FORM_INT8: rc = lm_gemm_int8_init(&p->q8, w, n, k, q8, err); break;
    case LM_FORM_BF16: rc = lm_gemm_bf16_init(&p->b16, w, n, k, b16, err); break;
    }
    if (rc != 0) return -1;
    p->w = NULL;
    lm_mmap_release(&m->file.map, w, (size_t)n * k * sizeof(float));
    return 0;
}

static void release(lm_cpu_matrix *p) {
    lm_packed_free(&p->f32);
    lm_gemm_int8_free(&p->q8);
    lm_gemm_bf16_free(&p->b16);
}

/* The one line that says a precision runs on less than this build's best
 * kernel, and why: the CPU lacks the features, or the kernel refused AMX. */
static void fallback_note(const char *lacks, const char *what) {
    const char *refused = !strncmp(lacks, "AMX", 3) ? lm_cpu_amx_refusal() : NULL;
    if (refused) fprintf(stderr, "lyricmt: note: %s: %s\n", refused, what);
    else fprintf(stderr, "lyricmt: note: this CPU lacks %s: %s\n", lacks, what);
}

int lm_cpu_weights_init(lm_cpu_weights *w, const lm_model *m, lm_err *err) {
    return lm_cpu_weights_init_as(w, m, LM_PREC_FP32, err);
}

int lm_cpu_weights_init_as(lm_cpu_weights *w, const lm_model *m, lm_precision precision, lm_err *err) {
    memset(w, 0, sizeof *w);
    if (precision != LM_PREC_FP32 && precision != LM_PREC_INT8 && precision != LM_PREC_BF16)
        return lm_fail(err, "precision %s is for --device cuda; the CPU computes in fp32, int8 or bf16", lm_precision_name(precision));
    lm_gemm_int8_kernel q8 = lm_gemm_int8_best_kernel();
    if (precision == LM_PREC_INT8 && q8 == LM_Q8_NONE) {
        fallback_note("AMX, AVX-512 VNNI and AVX2", "int8 runs in fp32");
        precision = LM_PREC_FP32;
    } else if (precision == LM_PREC_INT8 && q8 == LM_Q8_AVX2) {
        fallback_note("AMX and AVX-512 VNNI", "int8 runs on AVX2 (same results, slower)");
    } else if (precision == LM_PREC_INT8 && q8 == LM_Q8_VNNI) {
        fallback_note("AMX", "int8 runs on AVX-512 VNNI (same results, slower)");
    }
    lm_gemm_bf16_kernel b16 = lm_gemm_bf16_best_kernel();
    if (precision == LM_PREC_BF16 && b16 == LM_B16_NONE) {
        fallback_note("AVX-512", "bf16 runs in fp32");
        precision = LM_PREC_FP32;
    } else if (precision == LM_PREC_BF16 && b16 != LM_B16_AMX) {
        fallback_note(lm_cpu_features() & LM_CPU_BF16 ? "AMX" : "AMX and AVX-512 BF16",
                      b16 == LM_B16_DOT ? "bf16 runs on AVX-512 BF16 (slower; sums in another order than AMX's)"
                                        : "bf16 runs on AVX-512F (slower; sums in another order than AMX's)");
    }
    w->precision = precision;

    /* fp32: every product packed where the CPU has AVX-512. The packed tile
     * runs the encoder's shapes (200-3000 rows) as fast as OpenBLAS does
     * (benchmarks/NOTES.md, attempt 15), and is row-invariant there too. */
    lm_cpu_form form = LM_FORM_PACKED;
    if (precision == LM_PREC_INT8) form = LM_FORM_INT8;
    if (precision == LM_PREC_BF16) form = LM_FORM_BF16;
    if (precision == LM_PREC_FP32) {
        const char *force = getenv("LYRICMT_CPU_GEMM");
        bool want_packed = force && !strcmp(force, "packed"), want_blas = force && !strcmp(force, "blas");
        if (want_packed && !lm_packed_supported()) return lm_fail(err, "LYRICMT_CPU_GEMM=packed needs AVX-512, which this CPU lacks");
        if (want_blas || !lm_packed_supported()) form = LM_FORM_BLAS;
    }

    const lm_model_config *mc = &m->cfg.model;
    w->encoder_layers = mc->encoder_layers;
    w->decoder_layers = mc->decoder_layers;
    w->enc = lm_calloc((size_t)mc->encoder_layers * LM_ENC_PRODUCTS + 1, sizeof *w->enc, err);
    w->dec = lm_calloc((size_t)mc->decoder_layers * LM_DEC_PRODUCTS + 1, sizeof *w->dec, err);
    if (!w->enc || !w->dec || prepare(m, &w->head, form, m->lm_head, mc->vocab_size, mc->d_model, q8, b16, err) != 0) goto fail;
    for (int l = 0; l < mc->encoder_layers; l++) {
        const lm_encoder_layer *L = &m->enc[l];
        const lm_linear *lin[LM_ENC_PRODUCTS] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
        for (int i = 0; i < LM_ENC_PRODUCTS; i++)
            if (prepare(m, &w->enc[(size_t)l * LM_ENC_PRODUCTS + i], form, lin[i]->w, lin[i]->out, lin[i]->in, q8, b16, err) != 0) goto fail;
    }
    for (int l = 0; l < mc->decoder_layers; l++) {
        const lm_decoder_layer *L = &m->dec[l];
        const lm_linear *lin[LM_DEC_PRODUCTS] = {&L->q, &L->k, &L->v, &L->o, &L->cq, &L->co, &L->fc1, &L->fc2, &L->ck, &L->cv};
        for (int i = 0; i < LM_DEC_PRODUCTS; i++)
            if (prepare(m, &w->dec[(size_t)l * LM_DEC_PRODUCTS + i], form, lin[i]->w, lin[i]->out, lin[i]->in, q8, b16, err) != 0) goto fail;
    }
    return 0;
fail:
    lm_cpu_weights_free(w);
    return -1;
}

void lm_cpu_weights_free(lm_cpu_weights *w) {
    release(&w->head);
    if (w->enc)
        for (int i = 0; i < w->encoder_layers * LM_ENC_PRODUCTS; i++) release(&w->enc[i]);
    if (w->dec)
        for (int i = 0; i < w->decoder_layers * LM_DEC_PRODUCTS; i++) release(&w->dec[i]);
    free(w->enc);
    free(w->dec);
    memset(w, 0, sizeof *w);
}

bool lm_cpu_weights_row_invariant(const lm_cpu_weights *w) { return w->head.form != LM_FORM_BLAS; }

const char *lm_cpu_weights_arithmetic(const lm_cpu_weights *w) {
    switch (w->head.form) {
    case LM_FORM_BLAS: return "fp32, OpenBLAS";
    case LM_FORM_PACKED: return "fp32, packed AVX-512 tiles";
    case LM_FORM_INT8: return "int8"; /* AMX, VNNI and AVX2 give the same sums */
    case LM_FORM_BF16:
        return w->head.b16.kernel == LM_B16_AMX ? "bf16, AMX tiles"
               : w->head.b16.kernel == LM_B16_DOT ? "bf16, AVX-512 BF16 dot products"
                                                  : "bf16, AVX-512F";
    }
    return "unknown";
}

const lm_cpu_matrix *lm_cpu_weights_dec(const lm_cpu_weights *w, int l, int i) { return &w->dec[(size_t)l * LM_DEC_PRODUCTS + i]; }
const lm_cpu_matrix *lm_cpu_weights_enc(const lm_cpu_weights *w, int l, int i) { return &w->enc[(size_t)l * LM_ENC_PRODUCTS + i]; }

/* ---- products ---- */

/* This OpenMP thread's share [n0, n1) of n columns, in whole multiples of `align`. */
static void thread_columns(int n, int align, int *n0, int *n1) {
    int parts = omp_get_num_threads(), t = omp_get_thread_num();
    int chunk = ((n + parts - 1) / parts + align - 1) / align * align;
    *n0 = t * chunk;
    *n1 = *n0 + chunk < n ? *n0 + chunk : n;
}

/* Single-threaded OpenBLAS products on each thread's slice of columns. One
 * thread pool for everything: OpenBLAS's own pthreads pool spinning against
 * libgomp's made products up to 2.5x slower on two cores (benchmarks/NOTES.md).
 * The bias goes in first (beta 1), as transformers' addmm. */
/* max(0, .) over columns [n0, n1) of y (m rows of n), as the backend's
 * activate() computes relu: v > 0 ? v : 0 */
static void relu_columns(float *y, int m, int n, int n0, int n1) {
    for (int i = 0; i < m; i++)
        for (int j = n0; j < n1; j++) y[(size_t)i * n + j] = y[(size_t)i * n + j] > 0 ? y[(size_t)i * n + j] : 0;
}

static void blas_linear(const lm_cpu_matrix *w, int m, const float *x, const float *bias, bool relu, float *y) {
    if (bias)
        for (int i = 0; i < m; i++) memcpy(y + (size_t)i * w->n, bias, (size_t)w->n * sizeof(float));
#pragma omp parallel
    {
        int n0, n1;
        thread_columns(w->n, 16, &n0, &n1); /* whole cache lines per slice */
        if (n0 < n1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n1 - n0, w->k, 1.0f, x, w->k, w->w + (size_t)n0 * w->k, w->k,
                        bias ? 1.0f : 0.0f, y + n0, w->n);
        if (relu) relu_columns(y, m, w->n, n0, n1);
    }
}

static void packed_linear(const lm_cpu_matrix *w, int m, const float *x, const float *bias, bool relu, float *y) {
#pragma omp parallel
    {
        int n0, n1;
        thread_columns(w->n, LM_PANEL, &n0, &n1); /* whole panels per slice */
        if (n0 < n1) lm_packed_gemm(&w->f32, m, x, bias, relu, y, n0, n1);
    }
}

/* int8 and bf16 over m rows whose converted form fits `rows` (row_bytes each):
 * the threads convert the rows between them, then split the columns. */
static void converted_linear(const lm_cpu_matrix *w, int m, const float *x, const float *bias, bool relu, float *y, void *rows,
                             float *step) {
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int i = 0; i < m; i++) {
            if (w->form == LM_FORM_INT8) step[i] = lm_gemm_int8_quantize_row(&w->q8, x + (size_t)i * w->k, (uint8_t *)rows + (size_t)i * w->q8.k4);
            else lm_gemm_bf16_convert_row(&w->b16, x + (size_t)i * w->k, (char *)rows + (size_t)i * lm_gemm_bf16_row_bytes(&w->b16));
        }
        int n0, n1;
        thread_columns(w->n, LM_Q8_PANEL, &n0, &n1);
        if (n0 < n1) {
            if (w->form == LM_FORM_INT8) lm_gemm_int8_run(&w->q8, m, rows, step, bias, relu, y, n0, n1);
            else lm_gemm_bf16_run(&w->b16, m, rows, bias, relu, y, n0, n1);
        }
    }
}

void lm_cpu_linear(const lm_cpu_matrix *w, int m, const float *x, const float *bias, float *y) { lm_cpu_linear_relu(w, m, x, bias, false, y); }

void lm_cpu_linear_relu(const lm_cpu_matrix *w, int m, const float *x, const float *bias, bool relu, float *y) {
    if (m <= 0) return;
    if (w->form == LM_FORM_BLAS) { blas_linear(w, m, x, bias, relu, y); return; }
    if (w->form == LM_FORM_PACKED) { packed_linear(w, m, x, bias, relu, y); return; }
    size_t row_bytes = w->form == LM_FORM_INT8 ? (size_t)w->q8.k4 : lm_gemm_bf16_row_bytes(&w->b16);
    void *rows = malloc((size_t)m * row_bytes);
    float *step = malloc((size_t)m * sizeof(float));
    if (rows && step) {
        converted_linear(w, m, x, bias, relu, y, rows, step);
    } else { /* no memory for them all: a few rows at a time, same results */
        _Alignas(64) unsigned char chunk[STACK_ROWS_BYTES];
        float chunk_step[STACK_ROWS_BYTES / 4];
        int per = row_bytes >= STACK_ROWS_BYTES ? 1 : (int)(STACK_ROWS_BYTES / row_bytes);
        for (int i = 0; i < m; i += per)
            converted_linear(w, m - i < per ? m - i : per, x + (size_t)i * w->k, bias, relu, y + (size_t)i * w->n, chunk, chunk_step);
    }
    free(rows);
    free(step);
}
