/* search: see search.h. */
#include "engine/search.h"

#include "backend/logits.h"
#include "backend/sample.h"
#include "engine/sched.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define NEG_BIG -1.0e9f /* transformers' "very large negative" for beams out of play */

/* ---- logits processors, applied to a whole row with its sequence so far ---- */

static bool forced_step(const lm_gen_config *g, int cur_len) { return g->forced_bos_id >= 0 && cur_len == 1; }

/* Top k of n values, best first; ties keep the lower index first. */
static void top_k(const float *v, int n, int k, int32_t *idx, float *val) {
    int have = 0;
    for (int i = 0; i < n; i++) lm_rank_insert(idx, val, &have, k, i, v[i]);
    for (int i = have; i < k; i++) { val[i] = -INFINITY; idx[i] = 0; }
}

static uint64_t hash_tokens(uint64_t seed, const int32_t *t, int n) {
    uint64_t h = seed ^ 0x51ed270b27d3c4a1ull;
    for (int i = 0; i < n; i++) h = (h ^ (uint32_t)t[i]) * 0x100000001b3ull;
    return h;
}

static int hyp_set(lm_hypothesis *h, const int32_t *ids, int n, float score, lm_err *err) {
    h->ids = lm_malloc((size_t)n * sizeof *ids, err);
    if (!h->ids) return -1;
    memcpy(h->ids, ids, (size_t)n * sizeof *ids);
    h->n = n;
    h->score = score;
    return 0;
}

void lm_search_result_free(lm_search_result *r) {
    for (int i = 0; i < r->n_hyps; i++) free(r->hyps[i].ids);
    free(r->hyps);
    r->hyps = NULL;
    r->n_hyps = 0;
}

/* ---- one decoder step, reduced to each row's candidates ---- */

/* Runs step `step` and leaves req->k candidates per row in ids and vals: on the
 * backend when it can pick them, otherwise from whole rows of logits here. */
static int step_candidates(lm_backend *be, int V, const int32_t *feed, int step, int rows, const lm_topk_request *req,
                           float *logits, int32_t *ids, float *vals, lm_err *err) {
    if (be->ops->decode_step_topk && req->k <= be->ops->topk_max) return be->ops->decode_step_topk(be, feed, step, req, ids, vals, err);
    if (be->ops->decode_step(be, feed, step, logits, err) != 0) return -1;
    int bad = rows;
#pragma omp parallel for schedule(dynamic) reduction(min : bad)
    for (int r = 0; r < rows; r++) {
        const lm_edit *e = req->edits + req->edit_start[r];
        int ne = req->edit_start[r + 1] - req->edit_start[r];
        float *row = logits + (size_t)r * V;
        int rc = req->greedy ? lm_greedy_pick(row, V, e, ne, req->penalty, &ids[r], &vals[r])
                             : lm_logprob_topk(row, V, e, ne, req->penalty, req->k, ids + (size_t)r * req->k, vals + (size_t)r * req->k);
        if (rc != 0 && r < bad) bad = r;
    }
    return bad < rows ? lm_bad_logits(err, step, bad) : 0;
}

/* A forced step's candidates without logits: the forced token at log-prob 0,
 * then -inf for the others in token order, as a scan of the forced row gives. */
static void forced_candidates(int forced, int V, int k, int32_t *ids, float *vals) {
    int have = 0;
    lm_rank_insert(ids, vals, &have, k, forced, 0.0f);
    for (int t = 0; have < k && t < V; t++)
        if (t != forced) lm_rank_insert(ids, vals, &have, k, t, -INFINITY);
    for (int i = have; i < k; i++) { ids[i] = 0; vals[i] = -INFINITY; }
}


/* Host memory for decode_step's whole rows (R of V): the backend's own,
 * which it keeps, where it offers one; else the search's, *own, for the
 * caller to free. */
static float *whole_rows_buffer(lm_backend *be, int R, int V, float **own, lm_err *err) {
    size_t bytes = (size_t)R * V * sizeof(float);
    float *p = be->ops->row_buffer ? be->ops->row_buffer(be, bytes, err) : NULL;
    *own = NULL;
    return p ? p : (*own = lm_malloc(bytes, err)); /* memory the backend could not pin still serves, more slowly */
}

/* Sentence s has its result: it leaves the scheduler, and a stream's caller
 * gets it at once. */
static int finish(lm_sched *q, const lm_search_feed *stream, int s, lm_search_result *results, lm_err *err) {
    lm_sched_done(q, s);
    return stream && stream->on_done ? stream->on_done(stream->ctx, s, &results[s], err) : 0;
}

/* ---- greedy and sampling: one row per (sentence, returned sequence) ---- */

/* Hypotheses run in slots; backend row r runs slot alive[r]. */
typedef struct {
    int per, L, R;             /* hypotheses per sentence, max length, slots (= most rows) */
    int32_t *seq;              /* (R, L) */
    int *len;
    float *sum;
    double *lsum;              /* label_logprobs: the labels' log-probs so far (lm_hypothesis.label_sum) */
    bool *tail;                /* label_logprobs: stopped at max_length, its row run once more for </s> */
    uint64_t *key, *draws;     /* sampling: each slot's random stream (sample.h) and draws taken */
    int32_t *slot_sent, *slot_k, *free_slots;
    int n_free;
    int *left;                 /* (n) hypotheses still running, per sentence */
    int32_t *alive, *src;      /* (R) row -> slot; next layout: row -> old row, -1 new, -2 empty */
} greedy_state;

static int greedy_alloc(greedy_state *g, int n, int per, int L, int R) {
    g->per = per; g->L = L; g->R = R;
    g->seq = malloc((size_t)R * L * sizeof *g->seq);
    g->len = calloc((size_t)R, sizeof *g->len);
    g->sum = calloc((size_t)R, sizeof *g->sum);
    g->lsum = calloc((size_t)R, sizeof *g->lsum);
    g->tail = calloc((size_t)R, sizeof *g->tail);
    g->key = malloc((size_t)R * sizeof *g->key);
    g->draws = malloc((size_t)R * sizeof *g->draws);
    g->slot_sent = malloc((size_t)R * sizeof *g->slot_sent);
    g->slot_k = malloc((size_t)R * sizeof *g->slot_k);
    g->free_slots = malloc((size_t)R * sizeof *g->free_slots);
    g->left = calloc((size_t)n, sizeof *g->left);
    g->alive = malloc((size_t)R * sizeof *g->alive);
    g->src = malloc((size_t)R * sizeof *g->src);
    if (!g->seq || !g->len || !g->sum || !g->lsum || !g->tail || !g->key || !g->draws || !g->slot_sent || !g->slot_k || !g->free_slots || !g->left || !g->alive || !g->src)
        return -1;
    for (int i = 0; i < R; i++) g->free_slots[i] = R - 1 - i;
    g->n_free = R;
    return 0;
}

static void greedy_free(greedy_state *g) {
    free(g->seq); free(g->len); free(g->sum); free(g->lsum); free(g->tail); free(g->key); free(g->draws); free(g->slot_sent); free(g->slot_k); free(g->free_slots);
    free(g->left); free(g->alive); free(g->src);
}

/* Starts the next sentences that fit, their hypotheses taking the empty rows
 * of the layout first (src -2), then rows from *rows on. */
static int greedy_admit(lm_sched *q, const lm_search_opts *o, greedy_state *g, lm_search_result *results, int *rows, lm_err *err) {
    int first, count, hole = 0;
    if (lm_sched_admit(q, &first, &count, err) != 0) return -1;
    for (int s = first; s < first + count; s++) {
        results[s].hyps = lm_calloc((size_t)g->per, sizeof *results[s].hyps, err);
        if (!results[s].hyps) return -1;
        results[s].n_hyps = g->per;
        g->left[s] = g->per;
        for (int k = 0; k < g->per; k++) {
            int h = g->free_slots[--g->n_free];
            g->seq[(size_t)h * g->L] = o->decoder_start_id;
            g->len[h] = 1;
            g->sum[h] = 0;
            g->lsum[h] = 0;
            g->tail[h] = false;
            g->slot_sent[h] = s;
            g->slot_k[h] = k;
            g->key[h] = hash_tokens(o->seed + (uint64_t)k, q->tokens + q->src[s], q->lens[s]);
            g->draws[h] = 0;
            while (hole < *rows && g->src[hole] != -2) hole++;
            int r = hole < *rows ? hole : (*rows)++;
            g->src[r] = -1;
            g->alive[r] = h;
        }
    }
    return 0;
}

/* Closes the layout's remaining empty rows by moving the last rows into them
 * (one copy each, rather than shifting every row after a hole). */
static int greedy_compact(greedy_state *g, int rows) {
    int lo = 0, hi = rows - 1;
    for (;;) {
        while (lo < rows && g->src[lo] != -2) lo++;
        while (hi >= 0 && g->src[hi] == -2) hi--;
        if (lo >= hi) return hi + 1;
        g->src[lo] = g->src[hi];
        g->alive[lo] = g->alive[hi];
        g->src[hi] = -2;
    }
}

static int run_greedy(lm_sched *q, const lm_search_opts *o, const lm_search_feed *stream, lm_search_result *results, lm_err *err) {
    const lm_gen_config *g = &o->gen;
    lm_backend *be = q->be;
    int V = o->vocab_size, L = g->max_length;
    int per = g->do_sample ? g->num_return_sequences : 1;
    int R = q->cap * per, rc = -1;
    greedy_state gs = {0};
    int32_t *feed = lm_malloc((size_t)R * sizeof *feed, err), *parent = lm_malloc((size_t)R * sizeof *parent, err);
    int32_t *sent = lm_malloc((size_t)R * sizeof *sent, err);
    bool *forced = lm_malloc((size_t)R * sizeof *forced, err), *skip = lm_malloc((size_t)R * sizeof *skip, err);
    int32_t *skip_label = lm_malloc((size_t)R * sizeof *skip_label, err);
    /* augmentation's rescoring reads each label's log-prob off the rows the
     * sampling draws from (lm_hypothesis.label_sum): the backend's op gives
     * them beside the draws (raw_logprobs), so rows stay on a device */
    bool record = o->label_logprobs && g->do_sample;
    bool whole_rows = g->do_sample ? !be->ops->decode_step_sample : !be->ops->decode_step_topk || be->ops->topk_max < 1;
    float *own_logits = NULL, *logits = whole_rows ? whole_rows_buffer(be, R, V, &own_logits, err) : NULL;
    int32_t *chosen = lm_malloc((size_t)R * sizeof *chosen, err);
    float *picked = lm_malloc((size_t)R * sizeof *picked, err);
    float *label_lp = lm_malloc((size_t)R * sizeof *label_lp, err);
    lm_edit *edits = lm_malloc((size_t)R * LM_MAX_EDITS(L) * sizeof *edits, err);
    int32_t *edit_start = lm_calloc((size_t)R + 1, sizeof *edit_start, err);
    int n_samplers = g->do_sample && whole_rows ? omp_get_max_threads() : 0; /* one per thread of lm_sample_rows */
    uint64_t *keys = lm_malloc((size_t)R * sizeof *keys, err), *draws = lm_malloc((size_t)R * sizeof *draws, err);
    lm_sampler *samplers = n_samplers ? lm_calloc((size_t)n_samplers, sizeof *samplers, err) : NULL;
    if (greedy_alloc(&gs, q->n, per, L, R) != 0 || !feed || !parent || !sent || !forced || !skip || !skip_label || (whole_rows && !logits) ||
        !chosen || !picked || !label_lp || !edits || !edit_start || (n_samplers && !samplers) || !keys || !draws) {
        lm_fail(err, "out of memory for decoding");
        goto done;
    }
    int rows = 0;
    if (greedy_admit(q, o, &gs, results, &rows, err) != 0) goto done;
    if (rows == 0) { rc = q->n > 0; goto done; } /* stopped before anything started */
    for (int r = 0; r < rows; r++) sent[r] = gs.slot_sent[gs.alive[r]];
    if (lm_sched_start_rows(q, sent, rows, R, parent, err) != 0) goto done;
    for (int step = 0; rows > 0; step++) {
        int n_forced = 0;
        for (int r = 0; r < rows; r++) {
            int h = gs.alive[r];
            feed[r] = gs.seq[(size_t)h * L + gs.len[h] - 1];
            forced[r] = !gs.tail[h] && forced_step(g, gs.len[h]);
            n_forced += forced[r];
        }
        if (n_forced == rows && !record) { /* every row takes the forced token: no logits */
            if (be->ops->decode_step(be, feed, step, NULL, err) != 0) goto done;
        } else if (g->do_sample) {
            /* each row's edits and stream; the backend draws (on the device for
             * CUDA, so no row of logits comes back) or, without the op, whole
             * rows come here */
            for (int r = 0; r < rows; r++) {
                int h = gs.alive[r];
                bool no_draw = forced[r] || gs.tail[h]; /* the forced token, or </s> after max_length */
                skip[r] = no_draw;
                skip_label[r] = forced[r] ? g->forced_bos_id : o->eos_id; /* the label of a row that draws nothing */
                int ne = no_draw ? 0 : lm_logits_edits(g, o->eos_id, gs.seq + (size_t)h * L, gs.len[h], edits + edit_start[r]);
                edit_start[r + 1] = edit_start[r] + ne;
                keys[r] = gs.key[h];
                draws[r] = gs.draws[h];
            }
            lm_sample_request req = {g->temperature, g->top_k, g->top_p, g->repetition_penalty, edits, edit_start, keys, draws, skip,
                                     skip_label};
            if (!whole_rows) {
                if (be->ops->decode_step_sample(be, feed, step, &req, chosen, picked, record ? label_lp : NULL, err) != 0) goto done;
            } else {
                if (be->ops->decode_step(be, feed, step, logits, err) != 0) goto done;
                if (lm_sample_rows(logits, rows, V, step, &req, samplers, n_samplers, chosen, picked, record ? label_lp : NULL, err) != 0)
                    goto done;
            }
            for (int r = 0; r < rows; r++) gs.draws[gs.alive[r]] = draws[r];
        } else {
            for (int r = 0; r < rows; r++) {
                int h = gs.alive[r];
                int ne = forced[r] ? 0 : lm_logits_edits(g, o->eos_id, gs.seq + (size_t)h * L, gs.len[h], edits + edit_start[r]);
                edit_start[r + 1] = edit_start[r] + ne;
            }
            lm_topk_request req = {1, true, g->repetition_penalty, edits, edit_start};
            if (step_candidates(be, V, feed, step, rows, &req, logits, chosen, picked, err) != 0) goto done;
        }
        for (int r = 0; r < rows; r++) {
            if (forced[r]) chosen[r] = g->forced_bos_id; /* log-prob 0 */
            else if (!gs.tail[gs.alive[r]]) gs.sum[gs.alive[r]] += picked[r];
            if (record) gs.lsum[gs.alive[r]] += label_lp[r]; /* in label order, in double, as score.c sums */
        }
        /* finished hypotheses leave their rows empty (src -2); new sentences
         * take them, and rows moved from the end close what is left */
        for (int r = 0; r < rows; r++) {
            int h = gs.alive[r], s = gs.slot_sent[h];
            gs.src[r] = r;
            if (!gs.tail[h]) {
                gs.seq[(size_t)h * L + gs.len[h]++] = chosen[r];
                if (chosen[r] != o->eos_id && gs.len[h] < L) continue;
                /* stopped by max_length: `lyricmt score` labels it with </s> after
                 * its last token, so its row is fed that token once more */
                if (record && chosen[r] != o->eos_id) { gs.tail[h] = true; continue; }
            }
            gs.src[r] = -2;
            lm_hypothesis *hy = &results[s].hyps[gs.slot_k[h]];
            if (hyp_set(hy, gs.seq + (size_t)h * L, gs.len[h], gs.sum[h], err) != 0) goto done;
            if (record) {
                hy->label_sum = gs.lsum[h];
                hy->n_labels = gs.len[h] - 1 + gs.tail[h];
            }
            gs.free_slots[gs.n_free++] = h;
            if (--gs.left[s] == 0 && finish(q, stream, s, results, err) != 0) goto done;
        }
        int next = rows;
        if (greedy_admit(q, o, &gs, results, &next, err) != 0) goto done;
        next = greedy_compact(&gs, next);
        bool moved = next != rows;
        for (int r = 0; r < next; r++) {
            parent[r] = gs.src[r];
            sent[r] = gs.slot_sent[gs.alive[r]];
            moved |= parent[r] != r;
        }
        if (moved && next > 0 && be->ops->reorder(be, parent, sent, next, err) != 0) goto done;
        rows = next;
        if (lm_sched_prefetch(q, err) != 0) goto done;
    }
    rc = q->next < q->n; /* 1: stopped with sentences never started */
done:
    greedy_free(&gs);
    free(feed); free(parent); free(sent); free(forced); free(skip); free(skip_label); free(own_logits); free(chosen); free(picked); free(label_lp); free(edits);
    free(edit_start); free(keys); free(draws);
    for (int i = 0; i < n_samplers && samplers; i++) lm_sampler_free(&samplers[i]);
    free(samplers);
    return rc;
}

/* ---- beam search ---- */

/*
 * Beams with identical sequences share one backend row. They appear at the
 * start: transformers runs num_beams copies of the decoder start token (the
 * copies scored -1e9 so that only the first one's candidates count), and with
 * a forced target-language token the copies are still identical one step
 * later. Running each distinct sequence once gives the same candidates at a
 * fraction of the work on those steps; after them every beam has its own row.
 */
typedef struct {
    int32_t *seq;        /* (B, L) running */
    float *score;        /* (B) */
    int32_t *fin_seq;    /* (B, L) finished pool, best first */
    int *fin_len;
    float *fin_score;
    bool *fin_done;
    int32_t *row_of;     /* (B) beam -> the sentence's backend row, 0 .. n_rows-1 */
    int n_rows;
    int32_t *row_parent; /* (B) after a step: new row -> old row */
    int32_t *cand_idx;   /* (2B) best candidates of the sentence: beam * V + token */
    float *cand_val;
    int32_t *sel, *parent_beam;
    int32_t *new_seq;    /* (B, L) scratch */
    bool open;           /* transformers' is_early_stop_heuristic_unsatisfied */
    bool done;
    int base;            /* first backend row while active */
    int cur_len;         /* tokens in each running sequence */
    int sentence;
} beam_state;

static float length_norm(int generated, float lp) { return powf((float)generated, lp); }

/* The sentence's best 2B candidates over all beams and tokens: each row's best
 * 2B (ids, vals: the sentence's rows), shifted by each beam's score, merged.
 * Equals transformers' top-k over the flattened (beams x vocabulary) scores,
 * ties included. */
static void beam_candidates(const lm_search_opts *o, beam_state *st, const int32_t *ids, const float *vals) {
    int B = o->gen.num_beams, K = 2 * B, V = o->vocab_size, have = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *ri = ids + (size_t)st->row_of[b] * K;
        const float *rv = vals + (size_t)st->row_of[b] * K;
        for (int i = 0; i < K; i++) lm_rank_insert(st->cand_idx, st->cand_val, &have, K, b * V + ri[i], rv[i] + st->score[b]);
    }
}

/* One step of transformers' beam search for one sentence, given its rows' candidates. */
static void beam_step(const lm_search_opts *o, beam_state *st, const int32_t *ids, const float *vals, int cur_len) {
    const lm_gen_config *g = &o->gen;
    int B = g->num_beams, K = 2 * B, V = o->vocab_size, L = g->max_length;
    beam_candidates(o, st, ids, vals);
    bool all_hit = true, pool_full = true;
    for (int b = 0; b < B; b++) pool_full &= st->fin_done[b];
    float norm = length_norm(cur_len, g->length_penalty); /* cur_len + 1 - prompt length (1) */
    float run_val[2 * 1024], fin_cand[2 * 1024];
    for (int k = 0; k < K; k++) {
        int tok = st->cand_idx[k] % V;
        bool hit = tok == o->eos_id || cur_len + 1 >= L;
        all_hit &= hit;
        run_val[k] = st->cand_val[k] + (hit ? NEG_BIG : 0.0f);
        float f = st->cand_val[k] / norm;
        if (g->early_stopping && pool_full) f += NEG_BIG;
        if (!st->open) f += NEG_BIG;
        if (!(hit && k < B)) f += NEG_BIG;
        fin_cand[k] = f;
    }
    /* next running beams: best B of the candidates that did not finish */
    float sel_val[1024];
    top_k(run_val, K, B, st->sel, sel_val);
    /* finished pool: best B of the old pool and the new finishers */
    float merged[3 * 1024];
    int32_t midx[1024];
    float mval[1024];
    memcpy(merged, st->fin_score, (size_t)B * sizeof *merged);
    memcpy(merged + B, fin_cand, (size_t)K * sizeof *merged);
    top_k(merged, B + K, B, midx, mval);
    int32_t *new_fin = st->new_seq;
    int new_len[1024];
    bool new_done[1024];
    for (int j = 0; j < B; j++) {
        int m = midx[j];
        int32_t *dst = new_fin + (size_t)j * L;
        if (m < B) {
            memcpy(dst, st->fin_seq + (size_t)m * L, (size_t)st->fin_len[m] * sizeof *dst);
            new_len[j] = st->fin_len[m];
            new_done[j] = st->fin_done[m];
        } else {
            int k = m - B, beam = st->cand_idx[k] / V;
            memcpy(dst, st->seq + (size_t)beam * L, (size_t)cur_len * sizeof *dst);
            dst[cur_len] = st->cand_idx[k] % V;
            new_len[j] = cur_len + 1;
            new_done[j] = (st->cand_idx[k] % V == o->eos_id || cur_len + 1 >= L) && k < B;
        }
    }
    memcpy(st->fin_seq, new_fin, (size_t)B * L * sizeof *new_fin);
    for (int j = 0; j < B; j++) {
        st->fin_len[j] = new_len[j];
        st->fin_score[j] = mval[j];
        st->fin_done[j] = new_done[j];
    }
    /* new running sequences; a beam shares a row with an earlier one when both
     * continue the same row with the same token */
    int32_t new_row_of[1024];
    int n_rows = 0;
    for (int j = 0; j < B; j++) {
        int k = st->sel[j], beam = st->cand_idx[k] / V;
        int32_t tok = st->cand_idx[k] % V;
        st->parent_beam[j] = beam;
        memcpy(st->new_seq + (size_t)j * L, st->seq + (size_t)beam * L, (size_t)cur_len * sizeof *st->seq);
        st->new_seq[(size_t)j * L + cur_len] = tok;
        st->score[j] = sel_val[j];
        new_row_of[j] = -1;
        for (int i = 0; i < j && new_row_of[j] < 0; i++)
            if (st->row_of[st->parent_beam[i]] == st->row_of[beam] && st->new_seq[(size_t)i * L + cur_len] == tok)
                new_row_of[j] = new_row_of[i];
        if (new_row_of[j] < 0) {
            st->row_parent[n_rows] = st->row_of[beam];
            new_row_of[j] = n_rows++;
        }
    }
    memcpy(st->row_of, new_row_of, (size_t)B * sizeof *new_row_of);
    st->n_rows = n_rows;
    memcpy(st->seq, st->new_seq, (size_t)B * L * sizeof *st->seq);
    /* early-stop heuristic with the new length (early_stopping=False flavour) */
    float best = st->score[0] / length_norm(cur_len, g->length_penalty);
    float worst = INFINITY;
    pool_full = true;
    for (int j = 0; j < B; j++) {
        pool_full &= st->fin_done[j];
        worst = st->fin_score[j] < worst ? st->fin_score[j] : worst;
    }
    bool improvable = false;
    for (int j = 0; j < B; j++) improvable |= best > (st->fin_done[j] ? worst : NEG_BIG);
    st->open = st->open && improvable;
    st->done = !st->open || (g->early_stopping && pool_full) || all_hit;
}


static void beam_state_free(beam_state *t) {
    free(t->seq); free(t->fin_seq); free(t->new_seq); free(t->score); free(t->fin_len); free(t->fin_score);
    free(t->fin_done); free(t->row_of); free(t->row_parent);
    free(t->cand_idx); free(t->cand_val); free(t->sel); free(t->parent_beam);
}

static int beam_state_alloc(beam_state *t, const lm_search_opts *o) {
    int B = o->gen.num_beams, K = 2 * B, L = o->gen.max_length;
    t->seq = malloc((size_t)B * L * sizeof *t->seq);
    t->fin_seq = malloc((size_t)B * L * sizeof *t->fin_seq);
    t->new_seq = malloc((size_t)B * L * sizeof *t->new_seq);
    t->score = malloc((size_t)B * sizeof *t->score);
    t->fin_len = malloc((size_t)B * sizeof *t->fin_len);
    t->fin_score = malloc((size_t)B * sizeof *t->fin_score);
    t->fin_done = malloc((size_t)B * sizeof *t->fin_done);
    t->row_of = malloc((size_t)B * sizeof *t->row_of);
    t->row_parent = malloc((size_t)B * sizeof *t->row_parent);
    t->cand_idx = malloc((size_t)K * sizeof *t->cand_idx);
    t->cand_val = malloc((size_t)K * sizeof *t->cand_val);
    t->sel = malloc((size_t)B * sizeof *t->sel);
    t->parent_beam = malloc((size_t)B * sizeof *t->parent_beam);
    if (!t->seq || !t->fin_seq || !t->new_seq || !t->score || !t->fin_len || !t->fin_score || !t->fin_done || !t->row_of ||
        !t->row_parent || !t->cand_idx || !t->cand_val || !t->sel || !t->parent_beam)
        return -1;
    return 0;
}

/* A sentence's search as transformers starts it: one row, all beams on it. */
static void beam_state_reset(beam_state *t, const lm_search_opts *o, int sentence) {
    int B = o->gen.num_beams, L = o->gen.max_length;
    for (int b = 0; b < B; b++) {
        t->seq[(size_t)b * L] = o->decoder_start_id;
        t->score[b] = b == 0 ? 0.0f : NEG_BIG;
        t->fin_score[b] = NEG_BIG;
        t->fin_len[b] = 0;
        t->fin_done[b] = false;
        t->row_of[b] = 0;
    }
    t->n_rows = 1;
    t->open = true;
    t->done = false;
    t->cur_len = 1;
    t->sentence = sentence;
}

/* Starts the next sentences that fit, one new row each from *rows on (the
 * search state of live sentence i is st[slot[i]]). */
static int beam_admit(lm_sched *q, const lm_search_opts *o, beam_state *st, int32_t *slot, int32_t *free_slots, int *n_free, int32_t *parent, int32_t *sent,
                      int *rows, int *first, int *count, lm_err *err) {
    if (lm_sched_admit(q, first, count, err) != 0) return -1;
    for (int s = *first; s < *first + *count; s++) {
        int i = q->n_live - (*first + *count - s);
        slot[i] = free_slots[--*n_free];
        beam_state_reset(&st[slot[i]], o, s);
        st[slot[i]].base = *rows;
        sent[*rows] = s;
        parent[(*rows)++] = -1;
    }
    return 0;
}

static int run_beam(lm_sched *q, const lm_search_opts *o, const lm_search_feed *stream, lm_search_result *results, lm_err *err) {
    const lm_gen_config *g = &o->gen;
    lm_backend *be = q->be;
    int B = g->num_beams, V = o->vocab_size, L = g->max_length, rc = -1;
    int C = q->cap, R = C * B, K = 2 * B;
    beam_state *st = lm_calloc((size_t)C, sizeof *st, err); /* one per live sentence: q->live[i] runs in st[slot[i]] */
    int32_t *slot = lm_malloc((size_t)C * sizeof *slot, err), *free_slots = lm_malloc((size_t)C * sizeof *free_slots, err);
    int32_t *feed = lm_malloc((size_t)R * sizeof *feed, err);
    int32_t *parent = lm_malloc((size_t)R * sizeof *parent, err);
    int32_t *sent = lm_malloc((size_t)R * sizeof *sent, err);
    bool on_backend = be->ops->decode_step_topk && K <= be->ops->topk_max;
    float *own_logits = NULL, *logits = on_backend ? NULL : whole_rows_buffer(be, R, V, &own_logits, err);
    int32_t *ids = lm_malloc((size_t)R * K * sizeof *ids, err);
    float *vals = lm_malloc((size_t)R * K * sizeof *vals, err);
    lm_edit *edits = lm_malloc((size_t)R * LM_MAX_EDITS(L) * sizeof *edits, err);
    int32_t *edit_start = lm_calloc((size_t)R + 1, sizeof *edit_start, err);
    if (!st || !slot || !free_slots || !feed || !parent || !sent || (!logits && !on_backend) || !ids || !vals || !edits ||
        !edit_start)
        goto done;
    for (int i = 0; i < C; i++) {
        if (beam_state_alloc(&st[i], o) != 0) {
            lm_fail(err, "out of memory for beam search");
            goto done;
        }
        free_slots[i] = C - 1 - i;
    }
    int n_free = C, rows = 0, first, count;
    if (beam_admit(q, o, st, slot, free_slots, &n_free, parent, sent, &rows, &first, &count, err) != 0) goto done;
    if (rows == 0) { rc = q->n > 0; goto done; } /* stopped before anything started */
    /* room for every beam of the first group (its rows' sentences as
     * transformers lays them out), then one row per sentence while its beams
     * are identical */
    {
        for (int r = 0; r < rows * B; r++) sent[r] = first + r / B;
        for (int r = rows * B; r < R; r++) sent[r] = first + rows - 1;
        if (be->ops->decode_start(be, sent, R, L, err) != 0) goto done;
        for (int i = 0; i < rows; i++) {
            parent[i] = i * B;
            sent[i] = first + i;
        }
        if (be->ops->reorder(be, parent, sent, rows, err) != 0) goto done;
    }
    for (int step = 0; rows > 0; step++) {
        int n_forced = 0;
        for (int i = 0; i < q->n_live; i++) {
            beam_state *t = &st[slot[i]];
            for (int b = 0; b < B; b++) feed[t->base + t->row_of[b]] = t->seq[(size_t)b * L + t->cur_len - 1];
            n_forced += forced_step(g, t->cur_len) ? t->n_rows : 0;
        }
        if (n_forced == rows) { /* every row takes the forced token: no logits */
            if (be->ops->decode_step(be, feed, step, NULL, err) != 0) goto done;
        } else {
            /* each row's edits, from the first beam on it (beams sharing a row share a sequence) */
            for (int i = 0; i < q->n_live; i++) {
                beam_state *t = &st[slot[i]];
                bool f = forced_step(g, t->cur_len);
                for (int r = 0; r < t->n_rows; r++) {
                    int b = 0, row = t->base + r;
                    while (t->row_of[b] != r) b++;
                    int ne = f ? 0 : lm_logits_edits(g, o->eos_id, t->seq + (size_t)b * L, t->cur_len, edits + edit_start[row]);
                    edit_start[row + 1] = edit_start[row] + ne;
                }
            }
            lm_topk_request req = {K, false, g->repetition_penalty, edits, edit_start};
            if (step_candidates(be, V, feed, step, rows, &req, logits, ids, vals, err) != 0) goto done;
        }
        for (int i = 0; i < q->n_live; i++) {
            beam_state *t = &st[slot[i]];
            if (forced_step(g, t->cur_len))
                for (int r = t->base; r < t->base + t->n_rows; r++)
                    forced_candidates(g->forced_bos_id, V, K, ids + (size_t)r * K, vals + (size_t)r * K);
        }
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < q->n_live; i++) {
            beam_state *t = &st[slot[i]];
            beam_step(o, t, ids + (size_t)t->base * K, vals + (size_t)t->base * K, t->cur_len);
            t->cur_len++;
        }
        /* surviving rows: those of unfinished sentences, each continuing its parent */
        int kept = 0;
        for (int i = 0; i < q->n_live;) {
            beam_state *t = &st[slot[i]];
            if (!t->done) {
                for (int r = 0; r < t->n_rows; r++) {
                    parent[kept + r] = t->base + t->row_parent[r];
                    sent[kept + r] = t->sentence;
                }
                t->base = kept;
                kept += t->n_rows;
                i++;
                continue;
            }
            int s = t->sentence, nret = g->num_return_sequences;
            results[s].hyps = lm_calloc((size_t)nret, sizeof *results[s].hyps, err);
            if (!results[s].hyps) goto done;
            results[s].n_hyps = nret;
            for (int j = 0; j < nret; j++)
                if (hyp_set(&results[s].hyps[j], t->fin_seq + (size_t)j * L, t->fin_len[j], t->fin_score[j], err) != 0) goto done;
            free_slots[n_free++] = slot[i];
            memmove(slot + i, slot + i + 1, (size_t)(q->n_live - i - 1) * sizeof *slot);
            if (finish(q, stream, s, results, err) != 0) goto done; /* removes live[i] */
        }
        if (beam_admit(q, o, st, slot, free_slots, &n_free, parent, sent, &kept, &first, &count, err) != 0) goto done;
        if (kept > 0 && be->ops->reorder(be, parent, sent, kept, err) != 0) goto done;
        rows = kept;
        if (lm_sched_prefetch(q, err) != 0) goto done;
    }
    rc = q->next < q->n; /* 1: stopped with sentences never started */
done:
    if (st)
        for (int i = 0; i < C; i++) beam_state_free(&st[i]);
    free(st); free(slot); free(free_slots); free(feed); free(parent); free(sent); free(own_logits); free(ids); free(vals);
    free(edits); free(edit_start);
    return rc;
}

static int check_opts(const lm_gen_config *g, lm_err *err) {
    if (g->num_beams < 1 || g->num_beams > 1024) return lm_fail(err, "num_beams must be 1..1024");
    if (g->max_length < 2) return lm_fail(err, "max_length must be at least 2");
    if (!g->do_sample && g->num_return_sequences > g->num_beams)
        return lm_fail(err, "num_return_sequences (%d) cannot exceed num_beams (%d)", g->num_return_sequences, g->num_beams);
    if (g->do_sample && g->num_beams > 1) return lm_fail(err, "beam sampling is not supported: use num_beams 1 with sampling");
    return 0;
}

static int search(lm_backend *be, const lm_search_opts *o, const int32_t *tokens, const int32_t *lens, int n,
                  const lm_search_feed *feed, lm_search_result *results, lm_err *err) {
    memset(results, 0, (size_t)n * sizeof *results);
    if (n == 0) return 0;
    if (check_opts(&o->gen, err) != 0) return -1;
    lm_sched q;
    int rc = -1;
    lm_budget limit = feed ? (lm_budget){feed->max_sentences, feed->max_tokens, o->gen.num_beams} : (lm_budget){0};
    if (lm_sched_init(&q, be, o->gen.num_beams, o->gen.max_length, tokens, lens, n, feed ? &limit : NULL, feed ? feed->cancel : NULL,
                      err) == 0)
        rc = o->gen.num_beams > 1 ? run_beam(&q, o, feed, results, err) : run_greedy(&q, o, feed, results, err);
    lm_sched_free(&q);
    if (rc < 0)
        for (int s = 0; s < n; s++) lm_search_result_free(&results[s]);
    return rc;
}

int lm_search_run(lm_backend *be, const lm_search_opts *o, const int32_t *tokens, const int32_t *lens, int n,
                  lm_search_result *results, lm_err *err) {
    return search(be, o, tokens, lens, n, NULL, results, err);
}

int lm_search_stream(lm_backend *be, const lm_search_opts *o, const int32_t *tokens, const int32_t *lens, int n,
                     const lm_search_feed *feed, lm_search_result *results, lm_err *err) {
    if (!be->ops->encode_more) return lm_fail(err, "the %s backend cannot add sentences to a running decode", be->ops->name);
    if (feed->max_sentences < 1 || feed->max_tokens < 1) return lm_fail(err, "in-flight batching needs budgets of at least 1");
    return search(be, o, tokens, lens, n, feed, results, err);
}
