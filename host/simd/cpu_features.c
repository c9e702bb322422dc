/* cpu_features: see cpu_features.h. */
#include "simd/cpu_features.h"

#include <stdlib.h>
#include <string.h>

/* Whether the comma-separated list holds `word` as a whole item. */
static int listed(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}

unsigned lm_cpu_features(void) {
    unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= LM_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) f |= LM_CPU_AVX512;
    if ((f & LM_CPU_AVX512) && __builtin_cpu_supports("avx512vnni")) f |= LM_CPU_VNNI;
    if ((f & LM_CPU_AVX512) && __builtin_cpu_supports("avx512bf16")) f |= LM_CPU_BF16;
#endif
    const char *hide = getenv("LYRICMT_CPU_FEATURES");
    if (hide) {
        if (listed(hide, "noavx2")) f &= ~(unsigned)LM_CPU_AVX2;
        if (listed(hide, "noavx512")) f &= ~(unsigned)(LM_CPU_AVX512 | LM_CPU_VNNI | LM_CPU_BF16);
        if (listed(hide, "novnni")) f &= ~(unsigned)LM_CPU_VNNI;
        if (listed(hide, "nobf16")) f &= ~(unsigned)LM_CPU_BF16;
    }
    return f;
}
