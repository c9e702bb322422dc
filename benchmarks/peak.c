/* peak: this CPU's multiply-add peak, the limit the benchmark counts work against.

   cc -O2 -fopenmp benchmarks/peak.c -o build/peak && build/peak [threads]

   For each instruction the CPU has (checked at run time; the rest are listed
   as absent) it runs many independent accumulator chains, so that latency never
   limits, and prints one JSON line of GMAC/s (10^9 multiply-adds a second):
     fp32_fma512  vfmadd231ps zmm:   16 products an instruction
     fp32_fma256  vfmadd231ps ymm:    8
     bf16_dp512   vdpbf16ps zmm:     32 (16 lanes x 2 bfloat16 pairs)
     int8_dp512   vpdpbusd zmm:      64 (16 lanes x 4 u8 x s8 products)
     bf16_amx     tdpbf16ps:       8192 (a 16 x 16 tile of sums of 32 bfloat16 products)
     int8_amx     tdpbusd:        16384 (a 16 x 16 tile of sums of 64 u8 x s8 products)
   "thread": one thread alone, from its own CPU time (CLOCK_THREAD_CPUTIME_ID),
   which other jobs on a shared machine disturb little; "all": `threads` OpenMP
   threads at once, the sum of their rates by CPU time (the limit for a run with
   that many threads: the benchmark divides by it); "all_wall": the same
   threads' products over the wall time (equals "all" on a quiet machine; less
   means the machine was busy). Each figure is the best of REPS timed repeats
   of about 0.1 s.

   The instructions are inline asm, one per statement, each on its own
   accumulator: the compiler may not drop or merge them, and GCC's register copy
   around _mm512_dpbusd_epi32 (GCC bug 94663, see host/cpu/gemm_int8.c) cannot slow
   the loop. The operands are small normal numbers, never subnormal: Intel cores
   take microcode assists on subnormals, which would measure the assist, not the
   unit. The machine's own flags decide nothing beyond -O2 -fopenmp: each
   kernel carries its target attribute. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REPS 5
#define TARGET_S 0.1

#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define REP16(X) REP12(X) X(12) X(13) X(14) X(15)

/* A kernel runs `iters` iterations of `chains` instructions and returns a value
   that depends on every accumulator, so that none of them is dead. */
typedef double (*peak_kernel)(long iters);

static volatile double peak_sink;

/* 16 chains of zmm: 16 + 2 operands of the 32 registers; 16 in flight covers a
   latency of 8 cycles at 2 instructions a cycle. */
__attribute__((target("avx512f"))) static double fma512(long iters) {
    __m512 a = _mm512_set1_ps(1e-3f), b = _mm512_set1_ps(0.5f);
#define DECL(i) __m512 c##i = _mm512_setzero_ps();
#define STEP(i) __asm__("vfmadd231ps %1, %2, %0" : "+v"(c##i) : "v"(a), "v"(b));
#define SUM(i) s = _mm512_add_ps(s, c##i);
    REP16(DECL)
    for (long i = 0; i < iters; i++) { REP16(STEP) }
    __m512 s = _mm512_setzero_ps();
    REP16(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

/* 12 chains of ymm: VEX code has only 16 ymm registers ("x"). */
__attribute__((target("avx2,fma"))) static double fma256(long iters) {
    __m256 a = _mm256_set1_ps(1e-3f), b = _mm256_set1_ps(0.5f);
#define DECL(i) __m256 c##i = _mm256_setzero_ps();
#define STEP(i) __asm__("vfmadd231ps %1, %2, %0" : "+x"(c##i) : "x"(a), "x"(b));
#define SUM(i) s = _mm256_add_ps(s, c##i);
    REP12(DECL)
    for (long i = 0; i < iters; i++) { REP12(STEP) }
    __m256 s = _mm256_setzero_ps();
    REP12(SUM)
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
#undef DECL
#undef STEP
#undef SUM
}

/* bfloat16 pairs 0x3a83 (about 1e-3) times 0x3f00 (0.5): normal, and exact. */
__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_512(long iters) {
    __m512i a = _mm512_set1_epi16(0x3a83), b = _mm512_set1_epi16(0x3f00);
#define DECL(i) __m512 c##i = _mm512_setzero_ps();
#define STEP(i) __asm__("vdpbf16ps %1, %2, %0" : "+v"(c##i) : "v"(a), "v"(b));
#define SUM(i) s = _mm512_add_ps(s, c##i);
    REP16(DECL)
    for (long i = 0; i < iters; i++) { REP16(STEP) }
    __m512 s = _mm512_setzero_ps();
    REP16(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

/* u8 1 times s8 1, four a lane: the int32 sums wrap after 2^29 iterations,
   which is harmless (vpdpbusd wraps, it does not saturate) and far beyond a repeat. */
__attribute__((target("avx512f,avx512vnni"))) static double dpbusd_512(long iters) {
    __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
#define DECL(i) __m512i c##i = _mm512_setzero_si512();
#define STEP(i) __asm__("vpdpbusd %1, %2, %0" : "+v"(c##i) : "v"(a), "v"(b));
#define SUM(i) s = _mm512_add_epi32(s, c##i);
    REP16(DECL)
    for (long i = 0; i < iters; i++) { REP16(STEP) }
    __m512i s = _mm512_setzero_si512();
    REP16(SUM)
    return (double)_mm512_reduce_add_epi32(s);
#undef DECL
#undef STEP
#undef SUM
}


/* AMX: the process asks Linux for the tile state once (arch_prctl
   ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), and each thread configures its
   tiles. Four independent accumulator tiles (tmm0-3, 16 rows of 64 bytes)
   take A from tmm4 and B from tmm5; CPUID leaf 7 EDX bits 24, 25 and 22 are
   AMX-TILE, AMX-INT8 and AMX-BF16. */
static int amx_has(int bit) {
    unsigned a, b, c, d;
    static int granted = -1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << bit))) return 0;
    if (granted < 0) granted = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    return granted;
}

static void amx_configure(void) {
    _Alignas(64) unsigned char cfg[64];
    memset(cfg, 0, sizeof cfg);
    cfg[0] = 1; /* palette */
    for (int t = 0; t < 6; t++) cfg[16 + 2 * t] = 64, cfg[48 + t] = 16; /* bytes a row, rows */
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
}

/* One AMX kernel per instruction: A and B hold small normal numbers (bfloat16
   0x3c00 is 2^-7; int8 1), the sums go to memory at the end. */
#define AMX_KERNEL(fn, insn, fill)                                                                        \
    __attribute__((target("amx-tile,amx-int8,amx-bf16"))) static double fn(long iters) {                 \
        _Alignas(64) unsigned short ab[512];                                                                \
        _Alignas(64) float c[256];                                                                          \
        for (int i = 0; i < 512; i++) ab[i] = fill;                                                         \
        amx_configure();                                                                                    \
        __asm__ volatile("tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3\n\t"        \
                         "tileloadd (%0,%1,1), %%tmm4\n\ttileloadd (%0,%1,1), %%tmm5" ::"r"(ab), "r"(64L) : "memory"); \
        for (long i = 0; i < iters; i++)                                                                    \
            __asm__ volatile(insn " %%tmm5, %%tmm4, %%tmm0\n\t" insn " %%tmm5, %%tmm4, %%tmm1\n\t"           \
                             insn " %%tmm5, %%tmm4, %%tmm2\n\t" insn " %%tmm5, %%tmm4, %%tmm3" ::);         \
        __asm__ volatile("tilestored %%tmm0, (%0,%1,1)" ::"r"(c), "r"(64L) : "memory");                    \
        __asm__ volatile("tilerelease" ::);                                                                 \
        return c[0];                                                                                        \
    }
AMX_KERNEL(tdpbf16ps_amx, "tdpbf16ps", 0x3c00)
AMX_KERNEL(tdpbusd_amx, "tdpbusd", 0x0101)

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const char *name;
    peak_kernel run;
    int chains, macs; /* instructions an iteration; products an instruction */
    int present;
} peak_kind;

/* Iterations for about TARGET_S seconds of one thread's CPU time. */
static long calibrate(const peak_kind *k) {
    long iters = 1 << 14;
    for (;;) {
        double t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
        peak_sink = k->run(iters);
        double dt = seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
        if (dt > 0.01) return (long)((double)iters * TARGET_S / dt) + 1;
        iters *= 4;
    }
}

/* GMAC/s of one thread alone, by its CPU time: the best repeat. */
static double one_thread(const peak_kind *k, long iters) {
    double best = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
        peak_sink = k->run(iters);
        double dt = seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
        double rate = (double)iters * k->chains * k->macs / dt / 1e9;
        if (rate > best) best = rate;
    }
    return best;
}

/* GMAC/s of `threads` threads together, two ways, each the best repeat:
   cpu, the sum over the threads of each one's products over its own CPU time
   (the limit with every core busy, as a shared machine cannot disturb it: one
   thread a core here, so a neighbour takes turns, not units); wall, all products
   over the wall time from a common start to the last thread's end (equal to cpu
   on a quiet machine, less on a busy one). */
static void all_threads(const peak_kind *k, long iters, int threads, double *cpu, double *wall) {
    double macs = (double)iters * k->chains * k->macs;
    *cpu = *wall = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = 0, dt = 0, sum = 0, rate = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum, rate)
        {
#pragma omp barrier
#pragma omp master
            t0 = seconds(CLOCK_MONOTONIC);
#pragma omp barrier
            double c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
            sum += k->run(iters);
            rate += macs / (seconds(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e9;
#pragma omp barrier
#pragma omp master
            dt = seconds(CLOCK_MONOTONIC) - t0;
        }
        peak_sink = sum;
        if (rate > *cpu) *cpu = rate;
        if (macs * threads / dt / 1e9 > *wall) *wall = macs * threads / dt / 1e9;
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    if (argc > 2 || threads < 1) {
        fprintf(stderr, "usage: peak [threads]   (threads: 1 or more; default: OpenMP's)\n");
        return 2;
    }
    __builtin_cpu_init();
    peak_kind kinds[] = {
        {"fp32_fma512", fma512, 16, 16, __builtin_cpu_supports("avx512f")},
        {"fp32_fma256", fma256, 12, 8, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
        {"bf16_dp512", dpbf16_512, 16, 32, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16")},
        {"int8_dp512", dpbusd_512, 16, 64, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")},
        {"bf16_amx", tdpbf16ps_amx, 4, 16 * 16 * 32, amx_has(22)},
        {"int8_amx", tdpbusd_amx, 4, 16 * 16 * 64, amx_has(25)},
    };
    int n = (int)(sizeof kinds / sizeof kinds[0]);
    printf("{\"threads\": %d", threads);
    for (int i = 0; i < n; i++) {
        const peak_kind *k = &kinds[i];
        if (!k->present) {
            printf(", \"%s\": null", k->name);
            continue;
        }
        long iters = calibrate(k);
        double one = one_thread(k, iters), all, wall;
        all_threads(k, iters, threads, &all, &wall);
        printf(", \"%s\": {\"macs_per_instruction\": %d, \"thread\": %.1f, \"all\": %.1f, \"all_wall\": %.1f}", k->name, k->macs,
               one, all, wall);
        fflush(stdout);
    }
    printf("}\n");
    return 0;
}
