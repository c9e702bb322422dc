/*
 * cuda_gate: whether a CUDA test runs on this machine (tests only; include
 * after testing.h). No GPU at all: one "skipped" line, or a failure when
 * LYRICMT_REQUIRE_CUDA=1 (GPU machines set it: scripts/gpu-check.sh). Any
 * other CUDA error (a driver older than the runtime, a busy or lost device)
 * is a failure naming the error and the driver and runtime versions.
 */
#ifndef LM_CUDA_GATE_H
#define LM_CUDA_GATE_H

#include "cuda_device.h"

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

#endif
