/*
 * product_rates: the products' rates at SMaLL-100's shapes (fp32, int8 or bf16), in GMAC/s per
 * thread from per-thread CPU time (CLOCK_THREAD_CPUTIME_ID), so a machine
 * shared with other work still gives meaningful figures; and this core's
 * fp32 FMA peak. benchmarks/NOTES.md, attempts 15 and 19, has the figures.
 *
 *   make build/product_rates && build/product_rates [fma|enc|dec|head|all] [threads] [fp32|int8|bf16]
 *
 * Each product is run as cpu_weights.c runs it: the output columns split over
 * `threads` OpenMP threads (default 2), each thread on its share alone, through
 * single-threaded OpenBLAS (sgemm, W^T from the row-major original) or the
 * packed tile (lm_packed_gemm); with int8 or bf16, through lm_gemm_int8_run or
 * lm_gemm_bf16_run on this CPU's best kernel (x quantized or converted once, outside
 * the timing, as cpu_weights.c does before it splits): AMX tiles where the CPU
 * has them, VNNI / AVX-512 with LYRICMT_CPU_FEATURES=noamx; the header names
 * it. The rate printed is the mean over threads of MACs / thread CPU seconds,
 * best of 3 repetitions.
 */
#include "cpu/cpu_backend.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_int8.h"
#include "cpu/packed_gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- FMA peak ---- */

/* `iters` rounds of `chains` independent 512-bit FMAs (zmm0..), then
 * the clock from a chain of dependent integer multiplies. */
#define FMA1(r) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #r "\n\t"
#define FMA_BODY_1 FMA1(0)
#define FMA_BODY_4 FMA1(0) FMA1(1) FMA1(2) FMA1(3)
#define FMA_BODY_8 FMA_BODY_4 FMA1(4) FMA1(5) FMA1(6) FMA1(7)
#define FMA_BODY_12 FMA_BODY_8 FMA1(8) FMA1(9) FMA1(10) FMA1(11)
#define FMA_BODY_16 FMA_BODY_12 FMA1(12) FMA1(13) FMA1(14) FMA1(15)
#define FMA_BODY_24 FMA_BODY_16 FMA1(16) FMA1(17) FMA1(18) FMA1(19) FMA1(20) FMA1(21) FMA1(22) FMA1(23)
#define FMA_FN(n)                                                                                                           \
    __attribute__((target("avx512f"))) static void fma_##n(long iters) {                                                    \
        __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"                        \
                         "1:\n\t" FMA_BODY_##n "dec %0\n\tjnz 1b\n\t"                                                        \
                         : "+r"(iters)                                                                                      \
                         :                                                                                                  \
                         : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
                           "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",        \
                           "xmm22", "xmm23", "xmm30", "xmm31", "cc");                                                       \
    }
FMA_FN(1)
FMA_FN(4)
FMA_FN(8)
FMA_FN(12)
FMA_FN(16)
FMA_FN(24)

/* 8 dependent 64-bit multiplies a round, 3 cycles each: 24 cycles. (Dependent
 * adds of an immediate do not work here: this core folds them at rename.) */
static void muls(long iters) {
    long x = 3;
    __asm__ volatile("1:\n\t"
                     "imul %1, %1\n\timul %1, %1\n\timul %1, %1\n\timul %1, %1\n\t"
                     "imul %1, %1\n\timul %1, %1\n\timul %1, %1\n\timul %1, %1\n\t"
                     "dec %0\n\tjnz 1b\n\t"
                     : "+r"(iters), "+r"(x)
                     :
                     : "cc");
}

static double best_rate(void (*f)(long), long iters, double per_iter) {
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = thread_seconds();
        f(iters);
        double r = per_iter * iters / (thread_seconds() - t0);
        best = r > best ? r : best;
    }
    return best;
}

static void fma_peak(void) {
    long iters = 100000000;
    double ghz = best_rate(muls, iters / 4, 24) * 1e-9;
    printf("core clock (dependent 3-cycle multiplies): %.2f GHz\n", ghz);
    printf("| independent 512-bit FMA chains | FMAs/ns | FMAs/cycle | GMAC/s (16 lanes) |\n|---:|---:|---:|---:|\n");
    struct { int chains; void (*f)(long); } runs[] = {{1, fma_1}, {4, fma_4}, {8, fma_8}, {12, fma_12}, {16, fma_16}, {24, fma_24}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        double per_ns = best_rate(runs[i].f, iters / runs[i].chains * 4, runs[i].chains) * 1e-9;
        printf("| %d | %.2f | %.2f | %.1f |\n", runs[i].chains, per_ns, per_ns / ghz, per_ns * 16);
    }
}

/* ---- products ---- */

typedef struct {
    const char *name;
    int n, k;
} shape;

static float *random_floats(size_t n, unsigned seed) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "product_rates: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (1 << 24) - 0.5f;
    }
    return p;
}

enum { PACKED, BLAS, INT8, BF16 };

/* One product's operands in every form the driver times. */
typedef struct {
    const float *w, *x;
    lm_packed p;
    lm_gemm_int8 q8;
    uint8_t *qx;
    float *step;
    lm_gemm_bf16 b16;
    void *bx;
} operands;

/* GMAC/s per thread of y (m, n) = x . W^T, columns split over the threads */
static double rate(int form, const operands *o, int n, int k, int m, float *y) {
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double sum = 0;
        int parts = 0;
#pragma omp parallel reduction(+ : sum, parts)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int align = form == BLAS ? 16 : LM_PANEL;
            int chunk = ((n + nt - 1) / nt + align - 1) / align * align, n0 = t * chunk, n1 = n0 + chunk < n ? n0 + chunk : n;
            if (n0 < n1) {
                double t0 = thread_seconds(), macs = 0;
                do { /* at least 0.2 s of CPU per measurement */
                    if (form == BLAS) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n1 - n0, k, 1.0f, o->x, k, o->w + (size_t)n0 * k, k, 0.0f, y + n0, n);
                    else if (form == INT8) lm_gemm_int8_run(&o->q8, m, o->qx, o->step, NULL, false, y, n0, n1);
                    else if (form == BF16) lm_gemm_bf16_run(&o->b16, m, o->bx, NULL, false, y, n0, n1);
                    else lm_packed_gemm(&o->p, m, o->x, NULL, false, y, n0, n1);
                    macs += (double)m * (n1 - n0) * k;
                } while (thread_seconds() - t0 < 0.2);
                sum += macs / (thread_seconds() - t0) * 1e-9;
                parts++;
            }
        }
        best = sum / parts > best ? sum / parts : best;
    }
    return best;
}

static const char *form_names[] = {"packed", "OpenBLAS / packed", "int8", "bf16"};

/* form: PACKED, BLAS (OpenBLAS and packed side by side), INT8 or BF16 */
static const char *kernel_name(int form) {
    if (form == INT8) {
        lm_gemm_int8_kernel k = lm_gemm_int8_best_kernel();
        return k == LM_Q8_AMX ? " (AMX tdpbusd)" : k == LM_Q8_VNNI ? " (AVX-512 VNNI)" : " (AVX2)";
    }
    if (form == BF16) {
        lm_gemm_bf16_kernel k = lm_gemm_bf16_best_kernel();
        return k == LM_B16_AMX ? " (AMX tdpbf16ps)" : k == LM_B16_DOT ? " (vdpbf16ps)" : " (widened to AVX-512F FMAs)";
    }
    return "";
}

static void products(const char *title, const shape *shapes, int n_shapes, const int *rows, int n_rows, int form) {
    printf("\n%s: GMAC/s per thread (%d threads), %s%s\n", title, omp_get_max_threads(), form_names[form], kernel_name(form));
    printf("| product (n x k) |");
    for (int r = 0; r < n_rows; r++) printf(" %d rows |", rows[r]);
    printf("\n|---|");
    for (int r = 0; r < n_rows; r++) printf("---:|");
    printf("\n");
    int max_m = 0;
    for (int r = 0; r < n_rows; r++) max_m = rows[r] > max_m ? rows[r] : max_m;
    for (int s = 0; s < n_shapes; s++) {
        int n = shapes[s].n, k = shapes[s].k;
        float *w = random_floats((size_t)n * k, 1u + s), *x = random_floats((size_t)max_m * k, 7u);
        float *y = aligned_alloc(64, ((size_t)max_m * n * sizeof(float) + 63) / 64 * 64);
        operands o = {.w = w, .x = x};
        lm_err err;
        int failed = !y;
        if (form == INT8) {
            failed |= lm_gemm_int8_init(&o.q8, w, n, k, lm_gemm_int8_best_kernel(), &err) != 0;
            o.qx = malloc((size_t)max_m * o.q8.k4), o.step = malloc(sizeof(float) * max_m);
            failed |= !o.qx || !o.step;
            for (int i = 0; !failed && i < max_m; i++) o.step[i] = lm_gemm_int8_quantize_row(&o.q8, x + (size_t)i * k, o.qx + (size_t)i * o.q8.k4);
        } else if (form == BF16) {
            failed |= lm_gemm_bf16_init(&o.b16, w, n, k, lm_gemm_bf16_best_kernel(), &err) != 0;
            o.bx = failed ? NULL : malloc(lm_gemm_bf16_row_bytes(&o.b16) * max_m);
            failed |= !o.bx;
            for (int i = 0; !failed && i < max_m; i++) lm_gemm_bf16_convert_row(&o.b16, x + (size_t)i * k, (char *)o.bx + lm_gemm_bf16_row_bytes(&o.b16) * i);
        } else failed |= lm_packed_init(&o.p, w, n, k, &err) != 0;
        if (failed) { fprintf(stderr, "product_rates: out of memory\n"); exit(1); }
        printf("| %s (%d x %d) |", shapes[s].name, n, k);
        for (int r = 0; r < n_rows; r++) {
            if (form == BLAS) printf(" %.1f / %.1f |", rate(BLAS, &o, n, k, rows[r], y), rate(PACKED, &o, n, k, rows[r], y));
            else printf(" %.1f |", rate(form, &o, n, k, rows[r], y));
            fflush(stdout);
        }
        printf("\n");
        lm_packed_free(&o.p);
        lm_gemm_int8_free(&o.q8);
        lm_gemm_bf16_free(&o.b16);
        free(o.qx); free(o.step); free(o.bx);
        free(w);
        free(x);
        free(y);
    }
}

int main(int argc, char **argv) {
    /* OpenBLAS's kernels as lyricmt gets them (main.c's prepare_runtime) */
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : lm_blas_core_override();
    if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0) execv("/proc/self/exe", argv);
    printf("OpenBLAS core: %s\n", lm_blas_core());
    const char *what = argc > 1 ? argv[1] : "all";
    if (argc > 2) omp_set_num_threads(atoi(argv[2]));
    else omp_set_num_threads(2);
    openblas_set_num_threads(1);
    if (!lm_packed_supported()) { fprintf(stderr, "product_rates: this CPU has no AVX-512\n"); return 1; }
    const char *prec = argc > 3 ? argv[3] : "fp32";
    int low = !strcmp(prec, "int8") ? INT8 : !strcmp(prec, "bf16") ? BF16 : -1;
    if (low < 0 && strcmp(prec, "fp32")) { fprintf(stderr, "product_rates: precision is fp32, int8 or bf16, not %s\n", prec); return 2; }
    int all = !strcmp(what, "all");
    if (all || !strcmp(what, "fma")) fma_peak();
    const shape layer[] = {{"q/k/v/o, cross K/V", 1024, 1024}, {"fc1", 4096, 1024}, {"fc2", 1024, 4096}};
    if (all || !strcmp(what, "enc")) {
        const int rows[] = {200, 500, 1000, 2000, 3000, 4000};
        products("encoder and cross K/V", layer, 3, rows, 6, low < 0 ? BLAS : low);
    }
    if (all || !strcmp(what, "dec")) {
        const int rows[] = {16, 64, 256};
        products("decoder steps", layer, 3, rows, 3, low < 0 ? BLAS : low);
    }
    if (all || !strcmp(what, "head")) {
        const shape head[] = {{"output projection", 128112, 1024}};
        const int rows[] = {5, 16, 20, 64, 100, 256, 1000};
        products("output projection", head, 1, rows, 7, low < 0 ? PACKED : low);
    }
    return 0;
}
