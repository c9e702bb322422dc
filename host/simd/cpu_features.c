/* cpu_features: see cpu_features.h. */
#include "simd/cpu_features.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Whether the comma-separated list holds `word` as a whole item. */
static int listed(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}

/* AMX, asked once: CPUID says whether the tiles exist, but Linux hands a
 * process their 8 KB of state only after it asks (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, Linux 5.16+); until then a tile
 * instruction faults. The permission is the whole process's, so asking once
 * covers every thread. */
static unsigned amx_found;
static char amx_refused[160];
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void ask_amx(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24))) return; /* AMX-TILE */
    unsigned found = (d & (1u << 25) ? LM_CPU_AMX_INT8 : 0) | (d & (1u << 22) ? LM_CPU_AMX_BF16 : 0);
    if (!found) return;
    const long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    if (syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0) {
        snprintf(amx_refused, sizeof amx_refused, "the kernel refused AMX's tile state (arch_prctl: %s)", strerror(errno));
        return;
    }
    amx_found = found;
#endif
}

unsigned lm_cpu_features(void) {
    unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= LM_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) f |= LM_CPU_AVX512;
    if ((f & LM_CPU_AVX512) && __builtin_cpu_supports("avx512vnni")) f |= LM_CPU_VNNI;
    if ((f & LM_CPU_AVX512) && __builtin_cpu_supports("avx512bf16")) f |= LM_CPU_BF16;
    pthread_once(&amx_once, ask_amx);
    if (f & LM_CPU_AVX512) f |= amx_found; /* the AMX kernels quantize and store with AVX-512 */
#endif
    const char *hide = getenv("LYRICMT_CPU_FEATURES");
    if (hide) {
        if (listed(hide, "noavx2")) f &= ~(unsigned)LM_CPU_AVX2;
        if (listed(hide, "noavx512")) f &= ~(unsigned)(LM_CPU_AVX512 | LM_CPU_VNNI | LM_CPU_BF16 | LM_CPU_AMX_INT8 | LM_CPU_AMX_BF16);
        if (listed(hide, "novnni")) f &= ~(unsigned)LM_CPU_VNNI;
        if (listed(hide, "nobf16")) f &= ~(unsigned)LM_CPU_BF16;
        if (listed(hide, "noamx")) f &= ~(unsigned)(LM_CPU_AMX_INT8 | LM_CPU_AMX_BF16);
    }
    return f;
}

const char *lm_cpu_amx_refusal(void) {
    pthread_once(&amx_once, ask_amx);
    return amx_refused[0] ? amx_refused : NULL;
}
