/* augment: see augment.h. */
#include "engine/augment.h"

#include "engine/score.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lm_augment_wanted(const lm_engine_config *e) {
    return e->dedup_hypotheses || e->has_min_score || e->output_format == LM_FORMAT_PAIRS;
}

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

int lm_augment_batch(lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err) {
    const lm_engine_config *e = &t->engine;
    const int32_t *src = b->tokens, *src_lens = b->lens;
    lm_translation *out = b->out;
    int n = b->n;
    bool rescore = e->has_min_score || e->output_format == LM_FORMAT_PAIRS;
    int total = 0, rc = -1;
    for (int i = 0; i < n; i++) total += out[i].n_hyps;
    bool *keep = lm_calloc((size_t)total + 1, sizeof *keep, err);
    int32_t **labels = lm_calloc((size_t)total + 1, sizeof *labels, err), *pair_src = lm_malloc(((size_t)total + 1) * sizeof *pair_src, err);
    int *n_labels = lm_malloc(((size_t)total + 1) * sizeof *n_labels, err);
    double *sums = lm_malloc(((size_t)total + 1) * sizeof *sums, err);
    if (!keep || !labels || !pair_src || !n_labels || !sums) goto done;
    int p = 0;
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
        }
    }
    if (rescore) {
        const lm_search_opts *s = &t->search;
        if (lm_score_forced(be, s->decoder_start_id, s->vocab_size, src, src_lens, n, pair_src, (const int32_t *const *)labels,
                            n_labels, p, sums, err) != 0)
            goto done;
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
    free(keep); free(labels); free(pair_src); free(n_labels); free(sums);
    return rc;
}

/* The search, then the augmentation of what it found, on the same backend. */
static int run_augmented(void *ctx, lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err) {
    (void)ctx;
    return lm_translator_search_batch(t, be, b, err) != 0 ? -1 : lm_augment_batch(t, be, b, err);
}

void lm_augment_attach(lm_translator *t) { t->runner = (lm_batch_runner){run_augmented, NULL, 0}; }
