/* logprob_topk: log-softmax + edits + top-k of a 128k row on the device, one
 * block per row, so only rows x k numbers go back to the host. Passes: the
 * row's max, its sum of exponentials, then each thread's own top-k of its
 * strided tokens, merged pairwise in shared memory (log2(threads) rounds);
 * thread 0 adds the edited tokens last. Ranking: value descending, then token
 * ascending, as the host's scan.
 *
 * Refusal, as host/backend/logits.c: a row whose sum of exponentials is NaN (a NaN or
 * +inf logit, or no finite logit at all) gets id LM_K_BAD_ROW, and a greedy
 * row whose every token is banned too; the backend turns that into an error.
 *
 * Greedy's log-prob is taken under the edited row, relative to that row's
 * max (the chosen token's edited logit), as the host's pick does: an edit
 * may move the top far from the raw max (a penalty of 1.2 on a logit of 600
 * moves it by 100; exp of -104 is 0 in float, exp of +89 inf), so a sum
 * taken relative to the raw max would underflow or overflow. The normaliser
 * is the sum over the tokens no edit touches plus each edited token's edited
 * term. The untouched sum is the raw sum less the edited raw terms, shifted
 * to the new max, when those terms hold at most half of the row (the
 * subtraction then loses at most one bit, and the untouched tokens hold a
 * term within log(2V) of the raw max, so the shift cannot overflow); it is
 * summed again, leaving the edited tokens out, when they hold more: banning
 * the token that holds nearly all the probability would otherwise cancel
 * to 0.
 */
#include "common.cuh"
#include "backend/logit_rules.h"

#define THREADS 256
#define NO_TOKEN 0x7fffffff

__device__ void rank_insert(int32_t *ids, float *vals, int k, int32_t id, float v) {
    if (!lm_ranks_before(v, id, vals[k - 1], ids[k - 1])) return;
    int p = k - 1;
    while (p > 0 && lm_ranks_before(v, id, vals[p - 1], ids[p - 1])) {
        vals[p] = vals[p - 1];
        ids[p] = ids[p - 1];
        p--;
    }
    vals[p] = v;
    ids[p] = id;
}

__device__ bool is_edited(int32_t t, const int32_t *edits, int n) {
    for (int i = 0; i < n; i++)
        if (edits[2 * i] == t) return true;
    return false;
}

/* Token tok's value with all its edits (edits[e ..] holds its first) applied in order. */
__device__ float edited_value(float v, int32_t tok, const int32_t *edits, int e, int n_edits, float penalty) {
    for (int f = e; f < n_edits; f++)
        if (edits[2 * f] == tok) v = lm_edit_value(v, edits[2 * f + 1], penalty);
    return v;
}

/* Greedy's log-prob of the best token `best` under the edited row, relative
 * to that row's max `top` (see the top of the file); every thread of the
 * block calls it (the rescan's reduction), thread 0 writes. mx and sum: the
 * raw row's max and sum of exponentials; e_raw: the edited tokens' raw terms. */
static __device__ void greedy_logprob(const float *x, int V, const int32_t *edits, int n_edits, float penalty, float mx, float sum,
                                      float top, float e_raw, int32_t best, int32_t *out_ids, float *out_vals) {
    int t = threadIdx.x;
    if (top == -INFINITY) { /* every token banned (block-uniform) */
        if (t == 0) { out_ids[0] = LM_K_BAD_ROW; out_vals[0] = NAN; }
        return;
    }
    float rest;
    if (e_raw <= 0.5f * sum) {
        rest = (sum - e_raw) * expf(mx - top);
    } else {
        float part = 0;
        for (int i = t; i < V; i += THREADS)
            if (!is_edited(i, edits, n_edits)) part += expf(x[i] - top);
        rest = lm_block_reduce(part, false);
    }
    if (t != 0) return;
    float z = rest;
    for (int e = 0; e < n_edits; e++) {
        int32_t tok = edits[2 * e];
        if (!is_edited(tok, edits, e)) z += expf(edited_value(x[tok], tok, edits, e, n_edits, penalty) - top);
    }
    out_ids[0] = best;
    out_vals[0] = 0.0f - logf(z); /* the host's (x - max) - log(sum) at x = max: +0 for a certain token, not -0 */
}

/* Two sorted lists of n (a: in place) merged into a's n best. */
static __device__ void merge_lists(int32_t *a_ids, float *a_vals, const int32_t *b_ids, const float *b_vals, int n) {
    int32_t m_ids[LM_K_TOPK_MAX + 1];
    float m_vals[LM_K_TOPK_MAX + 1];
    int ia = 0, ib = 0;
    for (int j = 0; j < n; j++) {
        bool take_a = lm_ranks_before(a_vals[ia], a_ids[ia], b_vals[ib], b_ids[ib]);
        m_ids[j] = take_a ? a_ids[ia] : b_ids[ib];
        m_vals[j] = take_a ? a_vals[ia] : b_vals[ib];
        if (take_a) ia++; else ib++;
    }
    for (int j = 0; j < n; j++) { a_ids[j] = m_ids[j]; a_vals[j] = m_vals[j]; }
}

/* Every thread's sorted list of k (s_ids/s_vals + t * k) merged pairwise
 * into thread 0's, log2(THREADS) rounds. Every thread of the block calls it. */
static __device__ void merge_thread_lists(int32_t *s_ids, float *s_vals, int k) {
    int t = threadIdx.x;
    __syncthreads();
    for (int stride = THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) merge_lists(s_ids + t * k, s_vals + t * k, s_ids + (t + stride) * k, s_vals + (t + stride) * k, k);
        __syncthreads();
    }
}

/* The row's k best unedited tokens, by the whole block: each thread keeps
 * its own list of the tokens it reads (s_ids/s_vals + t * k), then the lists
 * merge pairwise into thread 0's. Greedy ranks the raw logits, the others
 * the log-probs. Every thread of the block calls it. */
static __device__ void select_row(const float *x, int V, int greedy, float mx, float lse, const int32_t *edits, int n_edits, int k,
                                  int32_t *s_ids, float *s_vals) {
    int t = threadIdx.x;
    int32_t *ids = s_ids + t * k;
    float *vals = s_vals + t * k;
    for (int j = 0; j < k; j++) { ids[j] = NO_TOKEN; vals[j] = -INFINITY; }
    for (int i = t; i < V; i += THREADS) {
        float v = greedy ? x[i] : x[i] - mx - lse;
        if (!lm_ranks_before(v, i, vals[k - 1], ids[k - 1])) continue;
        if (n_edits && is_edited(i, edits, n_edits)) continue;
        rank_insert(ids, vals, k, i, v);
    }
    merge_thread_lists(s_ids, s_vals, k);
}

/* How both top-k kernels end a row once ids/vals hold the best unedited
 * tokens: thread 0 inserts the edited tokens (each once, all its edits in
 * order) and writes the list, or for greedy keeps the edited top and the
 * edited tokens' raw terms in shared memory (*s_top, *s_edited_raw) for
 * greedy_logprob. Every thread of the block calls it. */
static __device__ void finish_row(const float *x, int V, const int32_t *edits, int n_edits, float penalty, int k, int greedy, float mx,
                                  float lse, float sum, int32_t *ids, float *vals, float *s_top, float *s_edited_raw, int32_t *out_ids,
                                  float *out_vals) {
    if (threadIdx.x == 0) {
        float e_raw = 0;
        for (int e = 0; e < n_edits; e++) {
            int32_t tok = edits[2 * e];
            if (is_edited(tok, edits, e)) continue;
            e_raw += expf(x[tok] - mx);
            rank_insert(ids, vals, k, tok, edited_value(greedy ? x[tok] : x[tok] - mx - lse, tok, edits, e, n_edits, penalty));
        }
        *s_top = vals[0];
        *s_edited_raw = e_raw;
        if (!greedy)
            for (int j = 0; j < k; j++) {
                out_ids[j] = ids[j] == NO_TOKEN ? 0 : ids[j];
                out_vals[j] = vals[j];
            }
    }
    if (!greedy) return;
    __syncthreads();
    greedy_logprob(x, V, edits, n_edits, penalty, mx, sum, *s_top, *s_edited_raw, ids[0], out_ids, out_vals);
}

__global__ void logprob_topk_kernel(const float *logits, int V, const int32_t *edits_all, const int32_t *edit_start, float penalty,
                                    int k, int greedy, int32_t *ids_out, float *vals_out) {
    __shared__ int32_t s_ids[THREADS * LM_K_TOPK_MAX];
    __shared__ float s_vals[THREADS * LM_K_TOPK_MAX];
    __shared__ float s_top, s_edited_raw;
    const float *x = logits + (size_t)blockIdx.x * V;
    const int32_t *edits = edits_all + 2 * (size_t)edit_start[blockIdx.x];
    int n_edits = edit_start[blockIdx.x + 1] - edit_start[blockIdx.x];
    int t = threadIdx.x;

    float mx, sum;
    lm_row_max_sum(x, V, &mx, &sum);
    int32_t *out_ids = ids_out + (size_t)blockIdx.x * k;
    float *out_vals = vals_out + (size_t)blockIdx.x * k;
    if (isnan(sum)) { /* block-uniform: every thread holds the reduced sum */
        if (t == 0)
            for (int j = 0; j < k; j++) { out_ids[j] = LM_K_BAD_ROW; out_vals[j] = NAN; }
        return;
    }
    float lse = logf(sum);

    select_row(x, V, greedy, mx, lse, edits, n_edits, k, s_ids, s_vals);
    finish_row(x, V, edits, n_edits, penalty, k, greedy, mx, lse, sum, s_ids + t * k, s_vals + t * k, &s_top, &s_edited_raw, out_ids,
               out_vals);
}

extern "C" int lm_k_logprob_topk(const float *logits, int rows, int V, const int32_t *edits, const int32_t *edit_start,
                                 float penalty, int k, int greedy, int32_t *ids, float *vals, cudaStream_t s, const char **msg) {
    if (k < 1 || k > LM_K_TOPK_MAX || (greedy && k != 1)) {
        if (msg) *msg = "logprob_topk: k must be 1..16 (1 for greedy)";
        return -1;
    }
    if (rows == 0) return 0;
    /* one block per row on gridDim.x (limit 2^31 - 1, above any int rows) */
    LM_LAUNCH(logprob_topk_kernel, rows, THREADS, 0, s)(logits, V, edits, edit_start, penalty, k, greedy, ids, vals);
    return lm_k_launched(msg);
}

/* ---- the split-vocabulary version: many blocks a row, one read of the logits ----
 *
 * The kernel above gives each row one block and reads the row three times
 * (max, sum, selection): at 32 rows a quarter of an H100's SMs work, and at
 * 1,280 rows the three reads of 656 MB are the largest part of a step
 * (benchmarks/step_model.c). Here a row is cut into slices of SPLIT_SLICE
 * tokens, one block each (rows x slices blocks on gridDim.x), and each block
 * reads its slice once for a partial: the slice's max m, its sum of
 * exponentials relative to m (online: rescaled when the max moves), and its
 * k + 1 best raw logits (value descending, then token ascending). A second
 * launch, one block a row, merges the partials: the row's max and sum, then
 * each slice's first k candidates, converted to log-probs and merged as the
 * kernel above merges its threads' lists; the edits and greedy's normaliser
 * as above.
 *
 * Why the ids are exactly the one-block kernel's: the log-prob x - max - lse
 * is a non-decreasing function of x in float, so the k best log-probs are
 * among the slices' k best raw logits, except where rounding makes a dropped
 * token's log-prob equal the k-th: then ties are broken by token and a
 * dropped token with a lower id would belong. Each slice's (k+1)-th raw
 * logit bounds what it dropped; where its log-prob reaches the k-th chosen
 * one, the merge block selects that row again from the logits, as the
 * kernel above does (rare: it needs a rounding collision at the boundary).
 * Greedy ranks the raw logits, for which the slices' order is exact.
 * The sum is added in another order than the one-block kernel's, so values
 * may differ in the last bits. */

#define SPLIT_SLICE 4096
#define SPLIT_MERGE_THREADS 64 /* lists merged in one round each; more slices are folded first */
#define REC_WORDS (4 + 2 * LM_K_TOPK_MAX) /* m, sum, (k+1)-th value, (k+1)-th id, k ids, k values */

static __device__ __forceinline__ void online_add(float &m, float &s, float x) {
    if (x == INFINITY) s = NAN;            /* as exp(inf - inf) in the one-pass sum */
    else if (x > m) { s = s * expf(m - x) + 1.0f; m = x; }
    else if (x != -INFINITY) s += expf(x - m); /* NaN passes here and poisons s */
}

/* (m, s) of two parts; a part with s == 0 holds nothing (its m may be -inf). */
static __device__ __forceinline__ void online_merge(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    float a = s == 0.0f ? 0.0f : s * expf(m - M), b = s2 == 0.0f ? 0.0f : s2 * expf(m2 - M);
    m = M;
    s = a + b;
}

__global__ void topk_slice_kernel(const float *logits, int V, int slices, const int32_t *edits_all, const int32_t *edit_start, int k,
                                  int32_t *rec_all) {
    __shared__ int32_t s_ids[THREADS * (LM_K_TOPK_MAX + 1)];
    __shared__ float s_vals[THREADS * (LM_K_TOPK_MAX + 1)];
    __shared__ float s_m[THREADS], s_s[THREADS];
    int row = blockIdx.x / slices, slice = blockIdx.x % slices, t = threadIdx.x, n = k + 1;
    const float *x = logits + (size_t)row * V;
    const int32_t *edits = edits_all + 2 * (size_t)edit_start[row];
    int n_edits = edit_start[row + 1] - edit_start[row];
    int lo = slice * SPLIT_SLICE, hi = lo + SPLIT_SLICE < V ? lo + SPLIT_SLICE : V;
    int32_t *ids = s_ids + t * n;
    float *vals = s_vals + t * n;
    for (int j = 0; j < n; j++) { ids[j] = NO_TOKEN; vals[j] = -INFINITY; }
    float m = -INFINITY, s = 0.0f;
    for (int i = lo + t; i < hi; i += THREADS) {
        float v = x[i];
        online_add(m, s, v);
        if (!lm_ranks_before(v, i, vals[n - 1], ids[n - 1])) continue;
        if (n_edits && is_edited(i, edits, n_edits)) continue;
        rank_insert(ids, vals, n, i, v);
    }
    s_m[t] = m;
    s_s[t] = s;
    __syncthreads();
    for (int stride = THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) {
            merge_lists(ids, vals, s_ids + (t + stride) * n, s_vals + (t + stride) * n, n);
            online_merge(s_m[t], s_s[t], s_m[t + stride], s_s[t + stride]);
        }
        __syncthreads();
    }
    if (t != 0) return;
    int32_t *rec = rec_all + (size_t)blockIdx.x * REC_WORDS;
    float *recf = (float *)rec;
    recf[0] = s_m[0];
    recf[1] = s_s[0];
    recf[2] = vals[k];
    rec[3] = ids[k];
    for (int j = 0; j < k; j++) { rec[4 + j] = ids[j]; recf[4 + LM_K_TOPK_MAX + j] = vals[j]; }
}

__global__ void topk_merge_kernel(const float *logits, int V, int slices, const int32_t *edits_all, const int32_t *edit_start, float penalty,
                                  int k, int greedy, const int32_t *rec_all, int32_t *ids_out, float *vals_out) {
    __shared__ int32_t s_ids[THREADS * LM_K_TOPK_MAX];
    __shared__ float s_vals[THREADS * LM_K_TOPK_MAX];
    __shared__ float s_m[SPLIT_MERGE_THREADS], s_s[SPLIT_MERGE_THREADS];
    __shared__ float s_top, s_edited_raw;
    __shared__ int s_again;
    int row = blockIdx.x, t = threadIdx.x;
    const float *x = logits + (size_t)row * V;
    const int32_t *edits = edits_all + 2 * (size_t)edit_start[row];
    int n_edits = edit_start[row + 1] - edit_start[row];
    const int32_t *recs = rec_all + (size_t)row * slices * REC_WORDS;

    /* the row's max and sum from the slices' */
    float m = -INFINITY, s = 0.0f;
    if (t < SPLIT_MERGE_THREADS)
        for (int j = t; j < slices; j += SPLIT_MERGE_THREADS) {
            const float *r = (const float *)(recs + (size_t)j * REC_WORDS);
            online_merge(m, s, r[0], r[1]);
        }
    if (t < SPLIT_MERGE_THREADS) { s_m[t] = m; s_s[t] = s; }
    __syncthreads();
    if (t == 0) {
        for (int j = 1; j < SPLIT_MERGE_THREADS; j++) online_merge(s_m[0], s_s[0], s_m[j], s_s[j]);
        s_again = 0;
    }
    __syncthreads();
    float mx = s_m[0], sum = s_s[0];
    int32_t *out_ids = ids_out + (size_t)row * k;
    float *out_vals = vals_out + (size_t)row * k;
    if (isnan(sum) || mx == -INFINITY) { /* as the one-pass sum's NaN: a NaN or +inf logit, or no finite one */
        if (t == 0)
            for (int j = 0; j < k; j++) { out_ids[j] = LM_K_BAD_ROW; out_vals[j] = NAN; }
        return;
    }
    float lse = logf(sum);

    /* each slice's candidates as this kernel's thread lists: thread j holds slices j, j + THREADS, ... */
    int32_t *ids = s_ids + t * k;
    float *vals = s_vals + t * k;
    for (int j = 0; j < k; j++) { ids[j] = NO_TOKEN; vals[j] = -INFINITY; }
    for (int j = t; j < slices; j += THREADS) {
        const int32_t *r = recs + (size_t)j * REC_WORDS;
        const float *rf = (const float *)r;
        for (int c = 0; c < k && r[4 + c] != NO_TOKEN; c++) {
            float raw = rf[4 + LM_K_TOPK_MAX + c];
            rank_insert(ids, vals, k, r[4 + c], greedy ? raw : raw - mx - lse);
        }
    }
    merge_thread_lists(s_ids, s_vals, k);
    /* log-prob only: a slice whose best dropped token reaches the k-th chosen log-prob sends the row to a full selection */
    if (!greedy) {
        float kth = s_vals[k - 1];
        for (int j = t; j < slices; j += THREADS) {
            const int32_t *r = recs + (size_t)j * REC_WORDS;
            if (r[3] != NO_TOKEN && ((const float *)r)[2] - mx - lse >= kth) s_again = 1;
        }
        __syncthreads();
        if (s_again) select_row(x, V, 0, mx, lse, edits, n_edits, k, s_ids, s_vals); /* block-uniform */
    }
    finish_row(x, V, edits, n_edits, penalty, k, greedy, mx, lse, sum, ids, vals, &s_top, &s_edited_raw, out_ids, out_vals);
}

extern "C" size_t lm_k_logprob_topk_split_scratch(int rows, int V) {
    size_t slices = ((size_t)V + SPLIT_SLICE - 1) / SPLIT_SLICE;
    return (size_t)rows * slices * REC_WORDS * sizeof(int32_t);
}

extern "C" int lm_k_logprob_topk_split(const float *logits, int rows, int V, const int32_t *edits, const int32_t *edit_start, float penalty,
                                       int k, int greedy, int32_t *ids, float *vals, void *scratch, cudaStream_t s, const char **msg) {
    if (k < 1 || k > LM_K_TOPK_MAX || (greedy && k != 1)) {
        if (msg) *msg = "logprob_topk_split: k must be 1..16 (1 for greedy)";
        return -1;
    }
    if (rows == 0) return 0;
    int slices = (V + SPLIT_SLICE - 1) / SPLIT_SLICE;
    /* rows x slices blocks on gridDim.x: 2^31 - 1 allows 67 M rows of SMaLL-100's 32 slices */
    if ((long long)rows * slices > 0x7fffffffLL) {
        if (msg) *msg = "logprob_topk_split: rows x slices past gridDim.x's limit";
        return -1;
    }
    LM_LAUNCH(topk_slice_kernel, (unsigned)(rows * slices), THREADS, 0, s)(logits, V, slices, edits, edit_start, k, (int32_t *)scratch);
    if (lm_k_launched(msg)) return -1;
    LM_LAUNCH(topk_merge_kernel, rows, THREADS, 0, s)(logits, V, slices, edits, edit_start, penalty, k, greedy, (const int32_t *)scratch,
                                                      ids, vals);
    return lm_k_launched(msg);
}
