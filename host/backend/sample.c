/* sample: see sample.h. */
#include "backend/sample.h"

#include "backend/logits.h"
#include "simd/row_stats.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float v; /* x / T */
    int32_t i;
} scored;

void lm_sampler_free(lm_sampler *s) {
    free(s->cand);
    free(s->spare);
    free(s->exps);
    free(s->heap);
    free(s->raw);
    memset(s, 0, sizeof *s);
}

/* Room for a row of V: the heap holds at most k < V values, the list V. */
static int grow(lm_sampler *s, int V) {
    if (V <= s->cap) return 0;
    free(s->cand); free(s->spare); free(s->exps); free(s->heap);
    s->cap = 0;
    s->cand = malloc((size_t)V * sizeof(scored));
    s->spare = malloc((size_t)V * sizeof(scored));
    s->exps = malloc((size_t)V * sizeof *s->exps);
    s->heap = malloc((size_t)V * sizeof *s->heap);
    if (!s->cand || !s->spare || !s->exps || !s->heap) return -1;
    s->cap = V;
    return 0;
}

/* The warped logit. x / 1 is x, so no case for T = 1. */
static float warp(float x, float T) { return x / T; }

/*
 * The draw from the sorted list (n >= 1 tokens, best first, already cut by
 * top-k): softmax over the list, transformers' top-p cut (the shortest
 * prefix whose mass reaches top_p, at least one token), then one uniform
 * number against the running sum. Everything in double and in the list's
 * order, so the fast path, the reference and the CUDA kernel draw alike
 * (sample_rules.h). exps: room for n.
 */
static int32_t draw_sorted(const lm_gen_config *g, const scored *order, int n, double *exps, uint64_t key, uint64_t *draws) {
    double mx = order[0].v, sum = 0;
    for (int i = 0; i < n; i++) sum += exps[i] = lm_sample_exp(order[i].v - mx);
    if (g->top_p < 1.0f) {
        double mass = 0;
        int keep = 0;
        while (keep < n && (keep == 0 || mass < g->top_p)) mass += exps[keep++] / sum;
        n = keep;
        sum = 0;
        for (int i = 0; i < n; i++) sum += exps[i];
    }
    double u = lm_sample_uniform(key, (*draws)++) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exps[i];
        if (u < acc) return order[i].i;
    }
    return order[n - 1].i; /* u rounded up to the sum */
}

/* ---- the reference: a full sort ---- */

static int scored_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    return lm_ranks_before(x->v, x->i, y->v, y->i) ? -1 : lm_ranks_before(y->v, y->i, x->v, x->i);
}

int32_t lm_sample_reference(const lm_gen_config *g, const float *x, int V, uint64_t key, uint64_t *draws) {
    scored *order = malloc((size_t)V * sizeof *order);
    double *exps = malloc((size_t)V * sizeof *exps);
    if (!order || !exps) { free(order); free(exps); return -1; }
    int n = 0;
    for (int t = 0; t < V; t++) {
        float v = g->temperature != 1.0f ? x[t] / g->temperature : x[t];
        if (v > -INFINITY) order[n++] = (scored){v, t};
    }
    int32_t token = 0;
    if (n > 0) {
        qsort(order, (size_t)n, sizeof *order, scored_desc);
        if (g->top_k > 0 && g->top_k < n) {
            float kth = order[g->top_k - 1].v; /* ties with the k-th stay, as in transformers */
            while (n > g->top_k && order[n - 1].v < kth) n--;
        }
        token = draw_sorted(g, order, n, exps, key, draws);
    }
    free(order);
    free(exps);
    return token;
}

/* ---- the fast path ---- */

/* A min-heap of the k largest values seen: heap[0] is the k-th largest. */
static void heap_down(float *h, int k, int at) {
    float v = h[at];
    for (;;) {
        int c = 2 * at + 1;
        if (c >= k) break;
        if (c + 1 < k && h[c + 1] < h[c]) c++;
        if (!(h[c] < v)) break;
        h[at] = h[c];
        at = c;
    }
    h[at] = v;
}

/* The k-th largest value of x above -inf, or -inf when fewer are; k < V. */
static float kth_largest(const float *x, int V, const float *block_max, int k, float *heap) {
    int have = 0, blk = lm_row_block(V);
    for (int b = 0, t0 = 0; t0 < V; b++, t0 += blk) {
        if (have == k && !(block_max[b] > heap[0])) continue; /* nothing here beats the k-th */
        int t1 = V - t0 > blk ? t0 + blk : V;
        for (int t = t0; t < t1; t++) {
            if (have < k) {
                if (!(x[t] > -INFINITY)) continue;
                heap[have++] = x[t];
                if (have == k)
                    for (int i = k / 2 - 1; i >= 0; i--) heap_down(heap, k, i);
            } else if (x[t] > heap[0]) {
                heap[0] = x[t];
                heap_down(heap, k, 0);
            }
        }
    }
    return have == k ? heap[0] : -INFINITY;
}

/* Radix keys: descending float order as ascending unsigned order; -0 and +0
 * get one key, as they tie in the reference's comparison. */
static uint32_t desc_key(float v) {
    v += 0.0f; /* -0 + 0 is +0 */
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    uint32_t positive = (b >> 31) - 1; /* all ones when the sign is clear; no branch, as signs are random */
    return b ^ (positive & 0x7fffffffu);
}

/* A stable LSD radix sort of a[0..n) by desc_key, in three passes of 11,
 * 11 and 10 bits, all counted in one read; a pass whose digit is the same
 * for all is skipped. The input is in token order, so stability gives ties
 * the lower token first. */
#define DIGIT_BITS 11
static void sort_desc(scored *a, scored *spare, int n) {
    int at[3][1 << DIGIT_BITS] = {{0}}; /* 24 KB */
    for (int i = 0; i < n; i++) {
        uint32_t k = desc_key(a[i].v);
        for (int p = 0; p < 3; p++) at[p][k >> (p * DIGIT_BITS) & ((1 << DIGIT_BITS) - 1)]++;
    }
    scored *src = a, *dst = spare;
    for (int p = 0, shift = 0; p < 3; p++, shift += DIGIT_BITS) {
        int *c = at[p];
        if (c[desc_key(src[0].v) >> shift & ((1 << DIGIT_BITS) - 1)] == n) continue;
        for (int d = 0, sum = 0; d < 1 << DIGIT_BITS; d++) { int m = c[d]; c[d] = sum; sum += m; }
        for (int i = 0; i < n; i++) dst[c[desc_key(src[i].v) >> shift & ((1 << DIGIT_BITS) - 1)]++] = src[i];
        scored *t = src; src = dst; dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

int32_t lm_sample_token(const lm_gen_config *g, const float *x, int V, const float *block_max, uint64_t key, uint64_t *draws,
                        lm_sampler *s) {
    float T = g->temperature;
    bool cut = g->top_k > 0 && g->top_k < V;
    if (grow(s, V) != 0) return -1;
    /* top-k keeps the tokens at or above the k-th warped value: the k-th raw
     * value warped, as warping keeps the order */
    float least = cut ? warp(kth_largest(x, V, block_max, g->top_k, s->heap), T) : -INFINITY;
    scored *cand = s->cand;
    int n = 0, blk = lm_row_block(V);
    for (int b = 0, t0 = 0; t0 < V; b++, t0 += blk) {
        float top = warp(block_max[b], T);
        if (!(top >= least && top > -INFINITY)) continue;
        int t1 = V - t0 > blk ? t0 + blk : V;
        for (int t = t0; t < t1; t++) {
            float v = warp(x[t], T);
            if (v >= least && v > -INFINITY) cand[n++] = (scored){v, t};
        }
    }
    if (n == 0) return 0; /* no draw taken, as the reference */
    sort_desc(cand, s->spare, n);
    return draw_sorted(g, cand, n, s->exps, key, draws);
}

int lm_sample_row(float *x, int V, const lm_edit *edits, int n_edits, const lm_gen_config *g, uint64_t key, uint64_t *draws,
                  lm_sampler *s, int32_t *token, float *logprob, float *raw_logprob) {
    /* the row as given: its statistics, and the values the edits will change */
    lm_row_stats raw = {0};
    if (raw_logprob && n_edits > 0) {
        if (n_edits > s->raw_cap) {
            float *r = realloc(s->raw, (size_t)n_edits * sizeof *r);
            if (!r) return -2;
            s->raw = r;
            s->raw_cap = n_edits;
        }
        lm_row_stats_of(x, V, NULL, &raw);
        for (int i = 0; i < n_edits; i++) s->raw[i] = x[edits[i].token];
    }
    lm_logits_apply(x, edits, n_edits, g->repetition_penalty);
    float block_max[LM_ROW_BLOCKS_MAX];
    lm_row_stats st;
    lm_row_stats_of(x, V, block_max, &st);
    if (isnan(st.sum)) return -1;
    int32_t t = lm_sample_token(g, x, V, block_max, key, draws, s);
    if (t < 0) return -2;
    *token = t;
    *logprob = lm_logprob_of(x[t], st.max, st.sum);
    if (raw_logprob && n_edits == 0) *raw_logprob = *logprob; /* the row was not edited */
    if (raw_logprob && n_edits > 0) {
        float xt = x[t];
        for (int i = 0; i < n_edits; i++) /* saved before any edit */
            if (edits[i].token == t) { xt = s->raw[i]; break; }
        *raw_logprob = isnan(raw.sum) ? NAN : lm_logprob_of(xt, raw.max, raw.sum);
    }
    return 0;
}

int lm_sample_rows(float *logits, int rows, int V, int step, const lm_sample_request *req, lm_sampler *samplers, int n_samplers,
                   int32_t *ids, float *logprobs, float *raw_logprobs, lm_err *err) {
    lm_gen_config g = {.temperature = req->temperature, .top_k = req->top_k, .top_p = req->top_p, .repetition_penalty = req->penalty};
    int bad = rows, oom = 0;
    /* a team of exactly n_samplers: each thread draws with its own sampler */
#pragma omp parallel for num_threads(n_samplers) schedule(dynamic) reduction(min : bad) reduction(| : oom)
    for (int r = 0; r < rows; r++) {
        if (req->skip && req->skip[r]) {
            /* no edits on a skipped row: the row as given is the raw one */
            if (raw_logprobs && req->skip_label) raw_logprobs[r] = lm_label_logprob(logits + (size_t)r * V, V, req->skip_label[r]);
            continue;
        }
        const lm_edit *e = req->edits + req->edit_start[r];
        int rc = lm_sample_row(logits + (size_t)r * V, V, e, req->edit_start[r + 1] - req->edit_start[r], &g, req->key[r], &req->draws[r],
                               &samplers[omp_get_thread_num()], &ids[r], &logprobs[r],
                               raw_logprobs ? &raw_logprobs[r] : NULL);
        if (rc == -1 && r < bad) bad = r;
        oom |= rc == -2;
    }
    if (oom) return lm_fail(err, "out of memory for sampling");
    return bad < rows ? lm_bad_logits(err, step, bad) : 0;
}
