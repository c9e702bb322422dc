/*
 * logit_rules: the rules that the host search (logits.c) and the CUDA top-k
 * kernel (kernels/logprob_topk.cu) must apply identically, in one place that
 * both compile: what an edit does to a score, and how candidates rank.
 */
#ifndef LM_LOGIT_RULES_H
#define LM_LOGIT_RULES_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDACC__
#define LM_HOST_DEVICE __host__ __device__
#else
#define LM_HOST_DEVICE
#endif

typedef enum { LM_EDIT_PENALIZE = 0, LM_EDIT_BAN = 1 } lm_edit_kind;

typedef struct {
    int32_t token;
    int32_t kind; /* lm_edit_kind */
} lm_edit;

/* A score after one edit: transformers' repetition penalty, or a ban. */
static inline LM_HOST_DEVICE float lm_edit_value(float v, int kind, float penalty) {
    if (kind == LM_EDIT_BAN) return -INFINITY;
    return v < 0 ? v * penalty : v / penalty;
}

/* Candidate order: higher value first, then the lower token (a scan's order). */
static inline LM_HOST_DEVICE bool lm_ranks_before(float v, int32_t id, float w, int32_t jd) {
    return v > w || (v == w && id < jd);
}

#endif
