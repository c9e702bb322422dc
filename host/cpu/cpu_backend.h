/*
 * cpu_backend: the reference backend (backend.h) on the CPU: every product
 * on the tiles of cpu_weights.h (or OpenBLAS), attention and norms in
 * cpu_attention.c and cpu_norm.c, OpenMP threads across rows and heads.
 */
#ifndef LM_CPU_BACKEND_H
#define LM_CPU_BACKEND_H

#include "backend/backend.h"

/* threads <= 0: all cores. weights (cpu_weights.h) are prepared once per model
 * and shared by every CPU backend made from it; they must outlive the backend. */
typedef struct lm_cpu_weights lm_cpu_weights;
lm_backend *lm_cpu_backend_create(const lm_model *model, const lm_cpu_weights *weights, int threads, lm_err *err);

/* The OpenBLAS kernel family in use ("SkylakeX", "Haswell", "Prescott", ...),
 * and the one to ask for instead when OpenBLAS did not recognise this CPU
 * and fell back to its SSE3 kernels though the CPU has AVX2 or AVX-512
 * (NULL when its own choice stands). host/cpu/blas_core.c. */
const char *lm_blas_core(void);
const char *lm_blas_core_override(void);

#endif
