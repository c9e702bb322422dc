/*
 * cuda_testing: what the CUDA tests share (include after testing.h).
 *
 * lm_cuda_gate: whether a CUDA test runs on this machine. No GPU at all: one "skipped" line, or a failure when
 * LYRICMT_REQUIRE_CUDA=1 (GPU machines set it: scripts/gpu-check.sh). Any
 * other CUDA error (a driver older than the runtime, a busy or lost device)
 * is a failure naming the error and the driver and runtime versions.
 */
#ifndef LM_CUDA_TESTING_H
#define LM_CUDA_TESTING_H

#include "cuda/cuda_device.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline bool lm_cuda_gate(const char *who) {
    char why[256];
    lm_cuda_state st = lm_cuda_probe(why, sizeof why);
    if (st == LM_CUDA_READY) return true;
    const char *req = getenv("LYRICMT_REQUIRE_CUDA");
    bool required = req && *req && strcmp(req, "0") != 0;
    if (st == LM_CUDA_ABSENT && !required) {
        printf("%s: skipped, no GPU (%s)\n", who, why);
        return false;
    }
    if (st == LM_CUDA_ABSENT) CHECK(0, "%s: no GPU (%s), and LYRICMT_REQUIRE_CUDA is set: a GPU is required", who, why);
    else CHECK(0, "%s: %s", who, why);
    return false;
}

/* One stored fp16 or bf16 value (LM_K_F16 / LM_K_BF16) as a float. */
static inline float lm_half_bits_to_float(uint16_t h, int dtype) {
    if (dtype == LM_K_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return lm_f16_to_f32(h);
}

/* max |got - want| / (|want| + rms(want)): a relative error that does not blow
 * up on values near zero; NaN counts as the worst. */
static inline double lm_max_rel_err(const float *got, const float *want, size_t n) {
    double rms = 0, worst = 0;
    for (size_t i = 0; i < n; i++) rms += (double)want[i] * want[i];
    rms = sqrt(rms / (n ? n : 1)) + 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (fabs(want[i]) + rms);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

#endif
