/* backend: the contract checks every backend makes on its callers (see
 * backend.h), written once so that a wrong call gets the same message
 * whichever backend runs it. The backends keep their own bookkeeping and
 * pass the parts a check reads. Also the KV cache's slot plan, which both
 * backends follow, and decode_forced's fallback, for the backends without
 * the op. */
#include "backend/backend.h"
#include "backend/logits.h"

#include <stdlib.h>
#include <string.h>

bool lm_backend_sentence_known(const int32_t *len, int n_sent, int s) { return s >= 0 && s < n_sent && len[s] > 0; }

int lm_backend_check_sources(const lm_model_config *mc, int first, const int32_t *tokens, const int32_t *lens, int n, int *total,
                             lm_err *err) {
    *total = 0;
    for (int s = 0; s < n; s++) {
        if (lens[s] <= 0 || lens[s] > mc->max_positions)
            return lm_fail(err, "sentence %d has %d tokens; the model takes 1 to %d", first + s, lens[s], mc->max_positions);
        *total += lens[s];
    }
    for (int i = 0; i < *total; i++)
        if (tokens[i] < 0 || tokens[i] >= mc->vocab_size) return lm_fail(err, "token id %d outside the vocabulary", tokens[i]);
    return 0;
}

int lm_backend_check_sentence(const int32_t *len, int n_sent, int s, lm_err *err) {
    return lm_backend_sentence_known(len, n_sent, s) ? 0 : lm_fail(err, "no sentence %d in the encoded batch", s);
}

int lm_backend_check_steps(const lm_model_config *mc, int max_steps, lm_err *err) {
    if (max_steps > mc->max_positions) return lm_fail(err, "%d decoder steps exceed the model's %d positions", max_steps, mc->max_positions);
    return 0;
}

int lm_backend_check_rows(const int32_t *len, int n_sent, const int32_t *row_sentence, int rows, lm_err *err) {
    for (int r = 0; r < rows; r++)
        if (!lm_backend_sentence_known(len, n_sent, row_sentence[r])) return lm_fail(err, "row %d refers to no sentence", r);
    return 0;
}

int lm_backend_check_feed(const lm_model_config *mc, const int32_t *tokens, int step, int steps_done, const int32_t *row_len, int rows,
                          int max_steps, lm_err *err) {
    if (step != steps_done) return lm_fail(err, "decoder step %d out of order", step);
    for (int r = 0; r < rows; r++) {
        if (tokens[r] < 0 || tokens[r] >= mc->vocab_size) return lm_fail(err, "token id %d outside the vocabulary", tokens[r]);
        if (row_len[r] >= max_steps) return lm_fail(err, "row %d is past the %d decoder steps decoding started with", r, max_steps);
    }
    return 0;
}

int lm_backend_check_forced(const lm_model_config *mc, const int32_t *len, int n_sent, const int32_t *row_sentence, const int32_t *tokens,
                            const int32_t *lens, int rows, const int32_t *want, int *total, lm_err *err) {
    *total = 0;
    if (lm_backend_check_rows(len, n_sent, row_sentence, rows, err) != 0) return -1;
    for (int r = 0; r < rows; r++) {
        if (lens[r] <= 0 || lens[r] > mc->max_positions)
            return lm_fail(err, "row %d is fed %d tokens; the decoder takes 1 to %d", r, lens[r], mc->max_positions);
        *total += lens[r];
    }
    for (int i = 0; i < *total; i++) {
        if (tokens[i] < 0 || tokens[i] >= mc->vocab_size) return lm_fail(err, "token id %d outside the vocabulary", tokens[i]);
        if (want[i] < 0 || want[i] >= mc->vocab_size) return lm_fail(err, "label id %d outside the vocabulary", want[i]);
    }
    return 0;
}

int lm_backend_check_reorder(const int32_t *parent, const int32_t *row_sentence, int rows, int old_rows, int max_rows, const int32_t *len,
                             int n_sent, lm_err *err) {
    if (rows > max_rows) return lm_fail(err, "reorder to %d rows: decoding started with %d", rows, max_rows);
    for (int r = 0; r < rows; r++)
        if (parent[r] < -1 || parent[r] >= old_rows || !lm_backend_sentence_known(len, n_sent, row_sentence[r]))
            return lm_fail(err, "reorder: bad parent or sentence for row %d", r);
    return 0;
}

int lm_kv_slots_start(lm_kv_slots *s, int rows, lm_err *err) {
    lm_kv_slots_free(s);
    s->slot = lm_malloc((size_t)rows * sizeof *s->slot, err);
    s->slot_new = lm_malloc((size_t)rows * sizeof *s->slot_new, err);
    s->kept = lm_malloc((size_t)rows * sizeof *s->kept, err);
    if (!s->slot || !s->slot_new || !s->kept) { lm_kv_slots_free(s); return -1; }
    for (int r = 0; r < rows; r++) s->slot[r] = r;
    s->max_rows = rows;
    return 0;
}

void lm_kv_slots_free(lm_kv_slots *s) {
    free(s->slot); free(s->slot_new); free(s->kept);
    *s = (lm_kv_slots){0};
}

int lm_kv_slots_reorder(lm_kv_slots *s, const int32_t *parent, int rows, const int32_t *row_len, int32_t *src, int32_t *dst,
                        int32_t *len) {
    int forks = 0;
    memset(s->kept, 0, (size_t)s->max_rows * sizeof *s->kept);
    for (int r = 0; r < rows; r++) {
        int p = parent[r];
        s->slot_new[r] = -1;
        if (p >= 0 && !s->kept[s->slot[p]]) {
            s->slot_new[r] = s->slot[p];
            s->kept[s->slot[p]] = true;
        }
    }
    /* rows <= max_rows, so the slots nobody keeps are enough for the rest */
    for (int r = 0, next_free = 0; r < rows; r++) {
        if (s->slot_new[r] >= 0) continue;
        while (s->kept[next_free]) next_free++;
        s->slot_new[r] = next_free++;
        if (parent[r] < 0) continue; /* a fresh row: nothing to copy */
        src[forks] = s->slot[parent[r]];
        dst[forks] = s->slot_new[r];
        len[forks] = row_len[parent[r]];
        forks++;
    }
    memcpy(s->slot, s->slot_new, (size_t)rows * sizeof *s->slot);
    return forks;
}

int lm_backend_check_sample(const lm_model_config *mc, const lm_sample_request *req, int rows, bool want_raw, lm_err *err) {
    if (!(req->temperature > 0 && req->temperature < INFINITY)) return lm_fail(err, "sampling: temperature %g is not a positive number", req->temperature);
    if (req->top_k < 0) return lm_fail(err, "sampling: top_k %d is negative", req->top_k);
    if (!(req->top_p >= 0 && req->top_p <= 1)) return lm_fail(err, "sampling: top_p %g is outside 0 .. 1", req->top_p);
    if (want_raw && req->skip && req->skip_label)
        for (int r = 0; r < rows; r++)
            if (req->skip[r] && (req->skip_label[r] < 0 || req->skip_label[r] >= mc->vocab_size))
                return lm_fail(err, "sampling: skipped row %d's label %d is outside the vocabulary (0 .. %d)", r, req->skip_label[r],
                               mc->vocab_size - 1);
    return 0;
}

int lm_backend_check_labels(const lm_model_config *mc, const int32_t *labels, int rows, lm_err *err) {
    for (int r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= mc->vocab_size)
            return lm_fail(err, "row %d's label id %d is outside the vocabulary (0 .. %d)", r, labels[r], mc->vocab_size - 1);
    return 0;
}

/* lm_backend_decode_forced without the op: the step loop scoring ran before
 * decode_forced existed, all rows a step (a GPU's products want rows); each
 * row's log-prob from the backend where it has decode_step_labels, else from
 * the whole rows here. */
static int forced_by_steps(lm_backend *b, const int32_t *row_sentence, const int32_t *tokens, const int32_t *lens, int rows,
                           const int32_t *want, float *out, lm_err *err) {
    int V = b->model->cfg.model.vocab_size, longest = 0;
    for (int r = 0; r < rows; r++) {
        if (lens[r] <= 0) return lm_fail(err, "row %d is fed %d tokens; the decoder takes 1 to %d", r, lens[r], b->model->cfg.model.max_positions);
        longest = lens[r] > longest ? lens[r] : longest;
    }
    int32_t *at = lm_malloc((size_t)rows * sizeof *at, err), *row = lm_malloc((size_t)rows * sizeof *row, err);
    int32_t *feed = lm_malloc((size_t)rows * sizeof *feed, err), *parent = lm_malloc((size_t)rows * sizeof *parent, err);
    int32_t *next = lm_malloc((size_t)rows * sizeof *next, err), *sent = lm_malloc((size_t)rows * sizeof *sent, err);
    int32_t *labels = lm_malloc((size_t)rows * sizeof *labels, err);
    bool on_backend = b->ops->decode_step_labels != NULL;
    float *logits = lm_malloc((size_t)rows * (on_backend ? 1 : V) * sizeof *logits, err); /* with the op: each row's log-prob */
    int rc = -1;
    if (!at || !row || !feed || !parent || !next || !sent || !labels || !logits) goto done;
    for (int r = 0, a = 0; r < rows; a += lens[r], r++) {
        at[r] = a;
        row[r] = r;
        sent[r] = row_sentence[r];
        for (int p = 0; p < lens[r]; p++)
            if (want[a + p] < 0 || want[a + p] >= V) { lm_fail(err, "label id %d outside the vocabulary", want[a + p]); goto done; }
    }
    int live = rows;
    if (b->ops->decode_start(b, sent, live, longest, err) != 0) goto done;
    for (int step = 0;; step++) {
        for (int i = 0; i < live; i++) {
            feed[i] = tokens[at[row[i]] + step];
            labels[i] = want[at[row[i]] + step];
        }
        if (on_backend) {
            if (b->ops->decode_step_labels(b, feed, step, labels, logits, err) != 0) goto done;
            for (int i = 0; i < live; i++) out[at[row[i]] + step] = logits[i];
        } else {
            if (b->ops->decode_step(b, feed, step, logits, err) != 0) goto done;
#pragma omp parallel for schedule(dynamic)
            for (int i = 0; i < live; i++) out[at[row[i]] + step] = lm_label_logprob(logits + (size_t)i * V, V, labels[i]);
        }
        int kept = 0;
        for (int i = 0; i < live; i++)
            if (lens[row[i]] > step + 1) { parent[kept] = i; next[kept++] = row[i]; }
        if (kept == 0) break;
        if (kept < live) {
            for (int i = 0; i < kept; i++) sent[i] = row_sentence[next[i]];
            if (b->ops->reorder(b, parent, sent, kept, err) != 0) goto done;
            memcpy(row, next, (size_t)kept * sizeof *row);
            live = kept;
        }
    }
    rc = 0;
done:
    free(at); free(row); free(feed); free(parent); free(next); free(sent); free(labels); free(logits);
    return rc;
}

int lm_backend_decode_forced(lm_backend *b, const int32_t *row_sentence, const int32_t *tokens, const int32_t *lens, int rows,
                             const int32_t *want, float *out, lm_err *err) {
    if (b->ops->decode_forced) return b->ops->decode_forced(b, row_sentence, tokens, lens, rows, want, out, err);
    return forced_by_steps(b, row_sentence, tokens, lens, rows, want, out, err);
}
