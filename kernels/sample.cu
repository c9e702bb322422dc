/* sample: sampling's draw on the device, one block per row, so that only a
 * token, its log-prob and the row's draw count go back to the host instead of
 * the row. It draws what lm_sample_row (host/backend/sample.c) draws, bit for
 * bit (what must match, and why it does: host/backend/sample_rules.h):
 *
 *   0. with raw_logprobs wanted on an edited row, its max and sum as given
 *      (block reductions, as in 2), since the edits below change the row in
 *      place: rescoring wants the drawn token's log-prob under the model's
 *      row, not the edited one (lm_sample_row's raw_logprob);
 *   1. the edits, in order, by one thread (a token may be edited twice),
 *      each edited token's value kept first when 0 ran (the drawn token may
 *      be one of them);
 *   2. the row's max and sum of exponentials (block reductions): a NaN sum
 *      refuses the row as the host does (NaN or +inf logit, nothing above
 *      -inf), and gives the log-prob's normaliser (its low bits may differ
 *      from the host's, which sums in another order; the draw never uses it);
 *   3. top-k's threshold: the k-th largest raw value, exactly, by a radix
 *      select on sample.c's sort keys (8 passes of 4 bits, each thread
 *      counting into its own column of shared counters: no atomics, so no
 *      order of arrival matters), then divided by T as the host does;
 *   4. the candidates (x / T at or above it, above -inf) packed as 64-bit
 *      keys, sort key above token, so that ascending order is the host's list
 *      order (value descending, ties to the lower token) and any correct sort
 *      gives the same list: a bitonic sort in the row's scratch, the variant
 *      whose first step of each merge compares mirrored pairs, so that
 *      positions past the count act as +inf and are never touched;
 *   5. each candidate's exponential, in parallel, into its own slot;
 *   6. the sums, the top-p cut and the draw: one thread, sequentially, in the
 *      list's order, the host's draw_sorted line for line. The float sums of
 *      a parallel reduction could round differently and flip a draw; the
 *      sequential pass costs one addition per candidate (top-k keeps it short;
 *      top-k 0 on a flat row makes it the vocabulary).
 */
#include "common.cuh"
#include "backend/sample_rules.h"

#define THREADS 256
#define DIGIT 4
#define BINS (1 << DIGIT)

typedef union {
    uint64_t key; /* the candidate: desc_key(x / T) << 32 | token */
    double e;     /* then its exponential */
} slot;

/* sample.c's desc_key: descending float order as ascending unsigned order,
 * -0 and +0 one key (they tie on the host). */
static __device__ __forceinline__ uint32_t desc_key(float v) {
    union { float f; uint32_t u; } b;
    b.f = v + 0.0f; /* -0 + 0 is +0 */
    uint32_t positive = (b.u >> 31) - 1;
    return b.u ^ (positive & 0x7fffffffu);
}

static __device__ __forceinline__ float key_value(uint32_t k) {
    union { float f; uint32_t u; } b;
    b.u = k < 0x80000000u ? k ^ 0x7fffffffu : k;
    return b.f;
}

/* The k-th largest value of x above -inf (as sample.c's kth_largest), or
 * -inf when fewer are. Every thread gets it. */
static __device__ float kth_largest(const float *x, int V, int k) {
    __shared__ uint32_t cnt[BINS][THREADS];
    __shared__ uint32_t tot[BINS];
    __shared__ uint32_t s_prefix;
    __shared__ int s_want;
    int t = threadIdx.x, want = k; /* the want-th smallest key among those matching prefix */
    uint32_t prefix = 0, mask = 0;
    for (int shift = 32 - DIGIT; shift >= 0; shift -= DIGIT) {
        for (int b = 0; b < BINS; b++) cnt[b][t] = 0;
        for (int i = t; i < V; i += THREADS) {
            if (!(x[i] > -INFINITY)) continue;
            uint32_t key = desc_key(x[i]);
            if ((key & mask) == prefix) cnt[(key >> shift) & (BINS - 1)][t]++;
        }
        __syncthreads();
        if (t < BINS) {
            uint32_t s = 0;
            for (int j = 0; j < THREADS; j++) s += cnt[t][j];
            tot[t] = s;
        }
        __syncthreads();
        if (t == 0) {
            uint32_t all = 0;
            for (int b = 0; b < BINS; b++) all += tot[b];
            if (all < (uint32_t)want) { /* only on the first pass: fewer values above -inf than k */
                s_want = -1;
            } else {
                int d = 0;
                while ((uint32_t)want > tot[d]) want -= (int)tot[d++];
                s_prefix = prefix | (uint32_t)d << shift;
                s_want = want;
            }
        }
        __syncthreads();
        if (s_want < 0) return -INFINITY; /* block-uniform */
        prefix = s_prefix;
        want = s_want;
        mask |= (uint32_t)(BINS - 1) << shift;
        /* no barrier here: the next pass rewrites s_prefix and s_want only
         * after two more, and every thread has read them before the first */
    }
    return key_value(prefix);
}

/* The row's max and sum of exp(x - max), to every thread (the block's
 * reductions; a NaN sum for a NaN or +inf logit or nothing above -inf). */
static __device__ void row_stats(const float *x, int V, float *max, float *sum) {
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += THREADS) mx = fmaxf(mx, x[i]);
    mx = lm_block_reduce(mx, true);
    float s = 0;
    for (int i = threadIdx.x; i < V; i += THREADS) s += expf(x[i] - mx);
    *max = mx;
    *sum = lm_block_reduce(s, false);
}

/* lm_logprob_of: the same float arithmetic as the host's. */
static __device__ __forceinline__ float logprob_of(float x, float max, float sum) { return x - max - logf(sum); }

/* sample.c's raw_logprob for token p of an edited row: its value before the
 * edits (kept[i] for the first edit of p, x[p] when none touched it) under
 * the raw row's max and sum; NaN where the raw row has no normaliser. */
static __device__ float raw_logprob(const float *x, int32_t p, const int32_t *e, int n_edits, const float *kept, float max, float sum) {
    float xp = x[p];
    for (int i = 0; i < n_edits; i++)
        if (e[2 * i] == p) { xp = kept[i]; break; }
    return isnan(sum) ? NAN : logprob_of(xp, max, sum);
}

/* Sorts a[0..n) ascending, the block together. */
static __device__ void bitonic_sort(slot *a, int n) {
    int N = 1;
    while (N < n) N <<= 1;
    for (int size = 2; size <= N; size <<= 1) {
        int half = size >> 1;
        for (int i = threadIdx.x; i < N / 2; i += THREADS) {
            int base = i / half * size, off = i % half;
            int lo = base + off, hi = base + size - 1 - off;
            if (hi < n && a[hi].key < a[lo].key) { uint64_t w = a[lo].key; a[lo].key = a[hi].key; a[hi].key = w; }
        }
        __syncthreads();
        for (int j = half >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < N / 2; i += THREADS) {
                int lo = i / j * 2 * j + i % j, hi = lo + j;
                if (hi < n && a[hi].key < a[lo].key) { uint64_t w = a[lo].key; a[lo].key = a[hi].key; a[hi].key = w; }
            }
            __syncthreads();
        }
    }
}

__global__ void sample_kernel(float *logits, int V, const int32_t *edits_all, const int32_t *edit_start, const uint8_t *skip, float penalty,
                              float T, int top_k, float top_p, const uint64_t *keys, uint64_t *draws, slot *scratch, int32_t *tokens,
                              int32_t *ids, float *logprobs, float *raw_logprobs, const int32_t *skip_label, float *edit_raw) {
    __shared__ int s_off[THREADS];
    __shared__ int s_n;
    int r = blockIdx.x, t = threadIdx.x;
    float *x = logits + (size_t)r * V;
    if (skip[r]) { /* block-uniform */
        if (t == 0) { ids[r] = 0; logprobs[r] = 0; }
        if (raw_logprobs && skip_label) { /* a skipped row has no edits: its row is the raw one */
            float rmx, rsum;
            row_stats(x, V, &rmx, &rsum);
            if (t == 0) raw_logprobs[r] = isnan(rsum) ? NAN : logprob_of(x[skip_label[r]], rmx, rsum);
        }
        return;
    }
    slot *cand = scratch + (size_t)r * V;
    int32_t *tok = tokens + (size_t)r * V;
    const int32_t *e = edits_all + 2 * (size_t)edit_start[r];
    int n_edits = edit_start[r + 1] - edit_start[r];
    /* an unedited row's raw log-prob is its log-prob: no second reduction */
    bool raw_apart = raw_logprobs && n_edits > 0; /* block-uniform */
    float raw_mx = 0, raw_sum = 0;
    if (raw_apart) row_stats(x, V, &raw_mx, &raw_sum);
    if (t == 0) {
        for (int i = 0; i < n_edits; i++) {
            /* a token's first edit sees its raw value: edits to other tokens leave it, and raw_logprob takes the first */
            if (raw_apart) edit_raw[edit_start[r] + i] = x[e[2 * i]];
            x[e[2 * i]] = lm_edit_value(x[e[2 * i]], e[2 * i + 1], penalty);
        }
    }
    __syncthreads();

    float mx, sum;
    row_stats(x, V, &mx, &sum);
    if (isnan(sum)) { /* block-uniform: every thread holds the reduced sum */
        if (t == 0) {
            ids[r] = LM_K_BAD_ROW;
            logprobs[r] = NAN;
            if (raw_logprobs) raw_logprobs[r] = NAN;
        }
        return;
    }

    float least = top_k > 0 && top_k < V ? kth_largest(x, V, top_k) / T : -INFINITY;
    int c = 0;
    for (int i = t; i < V; i += THREADS) {
        float v = x[i] / T;
        c += v >= least && v > -INFINITY;
    }
    s_off[t] = c;
    __syncthreads();
    if (t == 0) {
        int at = 0;
        for (int j = 0; j < THREADS; j++) { int m = s_off[j]; s_off[j] = at; at += m; }
        s_n = at;
    }
    __syncthreads();
    int n = s_n, at = s_off[t];
    for (int i = t; i < V; i += THREADS) {
        float v = x[i] / T;
        if (v >= least && v > -INFINITY) cand[at++].key = (uint64_t)desc_key(v) << 32 | (uint32_t)i;
    }
    __syncthreads();
    uint64_t d = draws[r];
    if (n == 0) { /* nothing above -inf after warping: token 0, no draw taken, as the host */
        if (t == 0) {
            ids[r] = 0;
            logprobs[r] = logprob_of(x[0], mx, sum);
            if (raw_logprobs) raw_logprobs[r] = raw_apart ? raw_logprob(x, 0, e, n_edits, edit_raw + edit_start[r], raw_mx, raw_sum) : logprobs[r];
        }
        return;
    }
    bitonic_sort(cand, n);
    double top = key_value((uint32_t)(cand[0].key >> 32));
    __syncthreads(); /* every thread has read the max before slot 0 becomes an exponential */
    for (int i = t; i < n; i += THREADS) {
        uint64_t k = cand[i].key;
        tok[i] = (int32_t)(uint32_t)k;
        cand[i].e = lm_sample_exp((double)key_value((uint32_t)(k >> 32)) - top);
    }
    __syncthreads();
    if (t != 0) return;
    /* sample.c's draw_sorted */
    double all = 0;
    for (int i = 0; i < n; i++) all += cand[i].e;
    if (top_p < 1.0f) {
        double mass = 0;
        int keep = 0;
        while (keep < n && (keep == 0 || mass < top_p)) mass += cand[keep++].e / all;
        n = keep;
        all = 0;
        for (int i = 0; i < n; i++) all += cand[i].e;
    }
    double u = lm_sample_uniform(keys[r], d) * all, acc = 0;
    int32_t pick = tok[n - 1]; /* u rounded up to the sum */
    for (int i = 0; i < n; i++) {
        acc += cand[i].e;
        if (u < acc) { pick = tok[i]; break; }
    }
    draws[r] = d + 1;
    ids[r] = pick;
    logprobs[r] = logprob_of(x[pick], mx, sum);
    if (raw_logprobs) raw_logprobs[r] = raw_apart ? raw_logprob(x, pick, e, n_edits, edit_raw + edit_start[r], raw_mx, raw_sum) : logprobs[r];
}

extern "C" size_t lm_k_sample_scratch(int rows, int V) { return (size_t)rows * V * (sizeof(slot) + sizeof(int32_t)); }

extern "C" int lm_k_sample(float *logits, int rows, int V, const int32_t *edits, const int32_t *edit_start, const uint8_t *skip, float penalty,
                           float temperature, int top_k, float top_p, const uint64_t *keys, uint64_t *draws, void *scratch, int32_t *ids,
                           float *logprobs, float *raw_logprobs, const int32_t *skip_label, float *edit_raw, cudaStream_t s, const char **msg) {
    if (!(temperature > 0) || top_k < 0) {
        if (msg) *msg = "sample: temperature must be above 0 and top_k at least 0";
        return -1;
    }
    if (raw_logprobs && !edit_raw) {
        if (msg) *msg = "sample: raw_logprobs needs edit_raw";
        return -1;
    }
    if (rows == 0) return 0;
    slot *slots = (slot *)scratch;
    int32_t *tokens = (int32_t *)(slots + (size_t)rows * V);
    /* one block per row on gridDim.x (limit 2^31 - 1, above any int rows) */
    LM_LAUNCH(sample_kernel, rows, THREADS, 0, s)(logits, V, edits, edit_start, skip, penalty, temperature, top_k, top_p, keys, draws, slots,
                                                  tokens, ids, logprobs, raw_logprobs, skip_label, edit_raw);
    return lm_k_launched(msg);
}
