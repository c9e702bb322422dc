/*
 * cpu_features: the instruction sets this CPU offers to the CPU kernels,
 * detected at run time (the build uses no -march, so one binary runs on any
 * x86-64 and picks its kernels here; no kernel runs an instruction the CPU
 * lacks). LYRICMT_CPU_FEATURES hides features, e.g. "novnni,nobf16,noamx", so
 * the fallbacks can be tested on a CPU that has everything.
 */
#ifndef LM_CPU_FEATURES_H
#define LM_CPU_FEATURES_H

enum {
    LM_CPU_AVX2 = 1 << 0,     /* with FMA */
    LM_CPU_AVX512 = 1 << 1,   /* AVX-512 F and BW */
    LM_CPU_VNNI = 1 << 2,     /* AVX-512 VNNI (vpdpbusd); implies LM_CPU_AVX512 */
    LM_CPU_BF16 = 1 << 3,     /* AVX-512 BF16 (vdpbf16ps); implies LM_CPU_AVX512 */
    LM_CPU_AMX_INT8 = 1 << 4, /* AMX tiles with tdpbusd, usable by this process; implies LM_CPU_AVX512 */
    LM_CPU_AMX_BF16 = 1 << 5, /* AMX tiles with tdpbf16ps, likewise */
};

/* The features present and not hidden by LYRICMT_CPU_FEATURES (read on each
 * call; the hardware is asked once). "noamx" hides both AMX features,
 * "noavx512" everything that needs AVX-512. */
unsigned lm_cpu_features(void);

/* Why AMX is not usable although the CPU has it (the kernel refused the tile
 * state), or NULL: for the fallback's notice. */
const char *lm_cpu_amx_refusal(void);

#endif
