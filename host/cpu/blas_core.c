/*
 * blas_core: which OpenBLAS kernels the CPU backend runs on.
 *
 * OpenBLAS picks its kernels from the CPU's family and model when it loads.
 * Debian's 0.3.21 does not know every recent Xeon (a virtualised one reports a
 * bare "Intel(R) Xeon(R) Processor") and then falls back to its oldest x86-64
 * kernels, "Prescott" (SSE3): on such a machine with AVX-512 the encoder's
 * products ran at half speed (benchmarks/NOTES.md, 2026-11-25). Like the
 * OpenMP wait policy, the choice is read only as the library loads, so main
 * restarts the program once with OPENBLAS_CORETYPE set (unless the user set it).
 */
#include "cpu/cpu_backend.h"

#include <cblas.h>
#include <string.h>

const char *lm_blas_core(void) { return openblas_get_corename(); }

const char *lm_blas_core_override(void) {
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") != 0) return NULL; /* detection worked */
    __builtin_cpu_init();
    /* SkylakeX kernels need the AVX-512 foundation, byte/word, dword/qword and vector-length subsets */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}
