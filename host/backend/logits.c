/* logits: see logits.h. */
#include "backend/logits.h"
#include "simd/row_stats.h"

#include <math.h>
#include <string.h>

void lm_log_softmax(float *x, int n) {
    lm_row_stats st;
    lm_row_stats_of(x, n, NULL, &st);
    float mx = st.max, lse = logf(st.sum);
    for (int i = 0; i < n; i++) x[i] = x[i] - mx - lse;
}

float lm_label_logprob(const float *x, int V, int32_t label) {
    lm_row_stats st;
    lm_row_stats_of(x, V, NULL, &st);
    if (isnan(st.sum)) return NAN;
    return lm_logprob_of(x[label], st.max, st.sum);
}

float lm_logprob_of(float x_label, float max, float sum) { return x_label - max - logf(sum); }

int lm_logits_edits(const lm_gen_config *g, int eos_id, const int32_t *seq, int cur_len, lm_edit *out) {
    int n_out = 0;
    if (g->repetition_penalty != 1.0f) {
        /* each distinct token once: transformers gathers then scatters */
        for (int i = 0; i < cur_len; i++) {
            bool seen = false;
            for (int j = 0; j < i && !seen; j++) seen = seq[j] == seq[i];
            if (!seen) out[n_out++] = (lm_edit){seq[i], LM_EDIT_PENALIZE};
        }
    }
    int n = g->no_repeat_ngram_size;
    if (n > 0 && cur_len + 1 >= n) {
        /* ban tokens that would repeat an n-gram already in the sequence */
        const int32_t *prefix = seq + cur_len - (n - 1);
        for (int start = 0; start + n <= cur_len; start++)
            if (memcmp(seq + start, prefix, (size_t)(n - 1) * sizeof *seq) == 0)
                out[n_out++] = (lm_edit){seq[start + n - 1], LM_EDIT_BAN};
    }
    if (cur_len < g->min_length) out[n_out++] = (lm_edit){eos_id, LM_EDIT_BAN};
    return n_out;
}

void lm_logits_apply(float *scores, const lm_edit *edits, int n_edits, float penalty) {
    for (int i = 0; i < n_edits; i++) scores[edits[i].token] = lm_edit_value(scores[edits[i].token], edits[i].kind, penalty);
}

void lm_rank_insert(int32_t *ids, float *vals, int *have, int k, int32_t id, float val) {
    int p = *have;
    if (p == k) {
        if (!lm_ranks_before(val, id, vals[k - 1], ids[k - 1])) return;
        p = k - 1;
    } else {
        (*have)++;
    }
    while (p > 0 && lm_ranks_before(val, id, vals[p - 1], ids[p - 1])) {
        vals[p] = vals[p - 1];
        ids[p] = ids[p - 1];
        p--;
    }
    vals[p] = val;
    ids[p] = id;
}

static bool is_edited(int32_t t, const lm_edit *edits, int n_edits) {
    for (int i = 0; i < n_edits; i++)
        if (edits[i].token == t) return true;
    return false;
}

int lm_logprob_topk(const float *x, int V, const lm_edit *edits, int n_edits, float penalty, int k, int32_t *ids,
                    float *vals) {
    /* the same statistics, so the same arithmetic, as lm_log_softmax */
    float block_max[LM_ROW_BLOCKS_MAX];
    lm_row_stats st;
    lm_row_stats_of(x, V, block_max, &st);
    if (isnan(st.sum)) return -1; /* a NaN or +inf logit, or none finite */
    float mx = st.max, lse = logf(st.sum);
    /* best k of the untouched tokens: a scan in token order, so ties keep the lower token */
    int have = 0, blk = lm_row_block(V);
    for (int b = 0, t0 = 0; t0 < V; b++, t0 += blk) {
        int t1 = V - t0 > blk ? t0 + blk : V;
        /* most blocks hold nothing better than the k-th: their max rules them out
         * (rounding is monotonic, so no x in the block does better) */
        if (have == k && !(block_max[b] - mx - lse > vals[k - 1])) continue;
        for (int t = t0; t < t1; t++) {
            float v = x[t] - mx - lse;
            if (have == k && !(v > vals[k - 1])) continue;
            if (n_edits && is_edited(t, edits, n_edits)) continue;
            lm_rank_insert(ids, vals, &have, k, t, v);
        }
    }
    /* then each edited token once, with all its edits applied in order */
    for (int i = 0; i < n_edits; i++) {
        int32_t t = edits[i].token;
        if (is_edited(t, edits, i)) continue;
        float v = x[t] - mx - lse;
        for (int j = i; j < n_edits; j++)
            if (edits[j].token == t) v = lm_edit_value(v, edits[j].kind, penalty);
        lm_rank_insert(ids, vals, &have, k, t, v);
    }
    for (int i = have; i < k; i++) { ids[i] = 0; vals[i] = -INFINITY; }
    return 0;
}

int lm_greedy_pick(float *x, int V, const lm_edit *edits, int n_edits, float penalty, int32_t *id, float *logprob) {
    bool bad = false; /* judged on the raw row, as the device does: an edit may hide a NaN */
    for (int i = 0; i < n_edits; i++) bad |= !(x[edits[i].token] < INFINITY);
    lm_logits_apply(x, edits, n_edits, penalty);
    lm_row_stats st;
    lm_row_stats_of(x, V, NULL, &st);
    if (bad || isnan(st.sum)) return -1; /* a NaN or +inf, or every token -inf (banned) */
    *id = st.argmax;
    *logprob = 0.0f - logf(st.sum); /* lm_log_softmax's (x - max) - lse at x = max: +0 for a certain token, not -0 */
    return 0;
}

int lm_bad_logits(lm_err *err, int step, int row) {
    return lm_fail(err, "decoder step %d, row %d: the logits hold NaN or +inf (or no finite value, or every token is banned): "
                        "the model's numbers overflowed; no token is picked from such a row", step, row);
}
