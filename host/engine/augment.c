/* augment: see augment.h. */
#include "engine/augment.h"

#include "engine/score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lm_augment_wanted(const lm_engine_config *e) {
    return e->dedup_hypotheses || lm_augment_rescores(e);
}

bool lm_augment_rescores(const lm_engine_config *e) { return e->has_min_score || e->output_format == LM_FORMAT_PAIRS; }

/* Keeps the hypotheses with keep[h] set, in order. */
static void compact(lm_translation *tr, const bool *keep) {
    int m = 0;
    for (int h = 0; h < tr->n_hyps; h++) {
        if (!keep[h]) { free(tr->texts[h]); continue; }
        tr->texts[m] = tr->texts[h];
        tr->scores[m] = tr->scores[h];
        tr->sample[m++] = tr->sample[h];
    }
    for (int h = m; h < tr->n_hyps; h++) tr->texts[h] = NULL; /* moved or freed: nothing past m to free or read */
    tr->n_hyps = m;
}

/* Whether the search's own record of hypothesis hy is the score of the
 * labels `lyricmt score` gives its text: the same tokens, so the same rows
 * (score.h, search.h's label_sum). */
static bool recorded(const lm_hypothesis *hy, const int32_t *labels, int n_labels, int eos_id) {
    if (!hy || hy->n_labels != n_labels || isnan(hy->label_sum) || hy->n < 1) return false;
    if (memcmp(labels, hy->ids + 1, (size_t)(hy->n - 1) * sizeof *labels) != 0) return false;
    return n_labels == hy->n - 1 || (n_labels == hy->n && labels[n_labels - 1] == eos_id);
}

/* Force-decodes the pairs listed in which[0 .. m) (score.h), encoding only
 * the sources they need. */
static int decode_pairs(lm_translator *t, lm_backend *be, const lm_batch *b, const int *which, int m, int32_t *const *labels,
                        const int *n_labels, const int32_t *pair_src, double *sums, lm_err *err) {
    int n = b->n, rc = -1;
    size_t tokens = 0;
    for (int i = 0; i < n; i++) tokens += (size_t)b->lens[i];
    int32_t *first = lm_malloc(((size_t)n + 1) * sizeof *first, err), *slot = lm_malloc(((size_t)n + 1) * sizeof *slot, err);
    int32_t *src = lm_malloc((tokens + 1) * sizeof *src, err), *src_lens = lm_malloc(((size_t)n + 1) * sizeof *src_lens, err);
    int32_t *ps = lm_malloc(((size_t)m + 1) * sizeof *ps, err);
    const int32_t **ls = lm_malloc(((size_t)m + 1) * sizeof *ls, err);
    int *nl = lm_malloc(((size_t)m + 1) * sizeof *nl, err);
    double *sub = lm_malloc(((size_t)m + 1) * sizeof *sub, err);
    if (!first || !slot || !src || !src_lens || !ps || !ls || !nl || !sub) goto done;
    for (int i = 0, at = 0; i < n; at += b->lens[i], i++) { first[i] = at; slot[i] = -1; }
    int n_src = 0, at = 0;
    for (int k = 0; k < m; k++) {
        int q = which[k], i = pair_src[q];
        if (slot[i] < 0) { /* the sources in the order their first pair needs them */
            slot[i] = n_src;
            src_lens[n_src++] = b->lens[i];
            memcpy(src + at, b->tokens + first[i], (size_t)b->lens[i] * sizeof *src);
            at += b->lens[i];
        }
        ps[k] = slot[i];
        ls[k] = labels[q];
        nl[k] = n_labels[q];
    }
    const lm_search_opts *s = &t->search;
    if (lm_score_forced(be, s->decoder_start_id, s->vocab_size, src, src_lens, n_src, ps, ls, nl, m, sub, err) != 0) goto done;
    for (int k = 0; k < m; k++) sums[which[k]] = sub[k];
    rc = 0;
done:
    free(first); free(slot); free(src); free(src_lens); free(ps); free(ls); free(nl); free(sub);
    return rc;
}

int lm_augment_batch(lm_translator *t, lm_backend *be, lm_batch *b, const lm_search_result *found, lm_err *err) {
    const lm_engine_config *e = &t->engine;
    lm_translation *out = b->out;
    int n = b->n;
    bool rescore = lm_augment_rescores(e);
    int total = 0, rc = -1;
    for (int i = 0; i < n; i++) total += out[i].n_hyps;
    bool *keep = lm_calloc((size_t)total + 1, sizeof *keep, err);
    int32_t **labels = lm_calloc((size_t)total + 1, sizeof *labels, err), *pair_src = lm_malloc(((size_t)total + 1) * sizeof *pair_src, err);
    int *n_labels = lm_malloc(((size_t)total + 1) * sizeof *n_labels, err), *which = lm_malloc(((size_t)total + 1) * sizeof *which, err);
    double *sums = lm_malloc(((size_t)total + 1) * sizeof *sums, err);
    if (!keep || !labels || !pair_src || !n_labels || !which || !sums) goto done;
    int p = 0, m = 0;
    for (int i = 0; i < n; i++) {
        lm_translation *tr = &out[i];
        if (!tr->sample && !(tr->sample = lm_malloc(((size_t)tr->n_hyps + 1) * sizeof *tr->sample, err))) goto done;
        for (int h = 0; h < tr->n_hyps; h++) tr->sample[h] = h;
        bool *k = keep + p;
        for (int h = 0; h < tr->n_hyps; h++) {
            k[h] = true;
            for (int g = 0; g < h && e->dedup_hypotheses && k[h]; g++) k[h] = !(k[g] && !strcmp(tr->texts[g], tr->texts[h]));
        }
        compact(tr, k);
        for (int h = 0; rescore && h < tr->n_hyps; h++, p++) {
            bool cut;
            if (lm_score_labels(t, tr->texts[h], strlen(tr->texts[h]), &labels[p], &n_labels[p], &cut, err) != 0) goto done;
            pair_src[p] = i;
            /* the search's rows already scored these labels when its tokens are
             * the text's; otherwise the pair is force-decoded */
            const lm_hypothesis *hy = found && tr->sample[h] < found[i].n_hyps ? &found[i].hyps[tr->sample[h]] : NULL;
            if (recorded(hy, labels[p], n_labels[p], t->search.eos_id)) sums[p] = hy->label_sum;
            else which[m++] = p;
        }
    }
    if (rescore) {
        if (m > 0 && decode_pairs(t, be, b, which, m, labels, n_labels, pair_src, sums, err) != 0) goto done;
        p = 0;
        for (int i = 0; i < n; i++) {
            lm_translation *tr = &out[i];
            for (int h = 0; h < tr->n_hyps; h++, p++) {
                /* the float sum divided in float, as `lyricmt score` prints it (output.c),
                 * so a pair passes --min-score here exactly when its score there does */
                tr->scores[h] = (float)sums[p] / (float)n_labels[p];
                /* compared as written (6 decimals), so that a pair shown at the floor is kept */
                char shown[64];
                snprintf(shown, sizeof shown, "%.6f", tr->scores[h]);
                keep[h] = !e->has_min_score || strtod(shown, NULL) >= e->min_score;
            }
            compact(tr, keep);
        }
    }
    rc = 0;
done:
    for (int q = 0; labels && q < total; q++) free(labels[q]);
    free(keep); free(labels); free(pair_src); free(n_labels); free(which); free(sums);
    return rc;
}

/* The search, then the augmentation of what it found, on the same backend.
 * When it rescores, the sampling records each hypothesis's label log-probs
 * (lm_hypothesis.label_sum), unless LYRICMT_RESCORE=decode asks for every
 * pair to be force-decoded (for tests and benchmarks: the same scores). */
static int run_augmented(void *ctx, lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err) {
    (void)ctx;
    lm_search_opts o = t->search;
    const char *how = getenv("LYRICMT_RESCORE");
    o.label_logprobs = lm_augment_rescores(&t->engine) && !(how && !strcmp(how, "decode"));
    lm_search_result *found = lm_calloc((size_t)b->n + 1, sizeof *found, err);
    if (!found) return -1;
    int rc = lm_translator_search_batch(t, be, b, &o, found, err) != 0 ? -1 : lm_augment_batch(t, be, b, found, err);
    for (int i = 0; i < b->n; i++) lm_search_result_free(&found[i]);
    free(found);
    return rc;
}

void lm_augment_attach(lm_translator *t) { t->runner = (lm_batch_runner){run_augmented, NULL, 0}; }
