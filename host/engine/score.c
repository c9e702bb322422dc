/* score: see score.h. */
#include "engine/score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lm_score_labels(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err) {
    int32_t *pieces;
    int np;
    if (lm_tokenizer_encode(t->tok, text, len, &pieces, &np, err) != 0) return -1;
    bool lang = t->convention == LM_CONV_M2M100;
    /* one decoder position per label: the model has max_positions of them */
    int limit = t->model.cfg.model.max_positions - 1 - lang;
    *truncated = np > limit;
    if (*truncated) np = limit;
    int32_t *out = lm_malloc(((size_t)np + 2) * sizeof *out, err);
    if (!out) { free(pieces); return -1; }
    int at = 0;
    if (lang) out[at++] = lm_tokenizer_lang_id(t->tok, t->tgt_lang);
    if (np > 0) memcpy(out + at, pieces, (size_t)np * sizeof *out);
    at += np;
    out[at++] = t->model.cfg.model.eos_id;
    free(pieces);
    *ids = out;
    *n = at;
    return 0;
}

int lm_score_pair_ids(lm_translator *t, const char *src, size_t src_len, const char *tgt, size_t tgt_len, int32_t **ids, int *n,
                      bool *truncated, lm_err *err) {
    int32_t *s = NULL, *l = NULL;
    int ns, nl;
    bool cut_s, cut_l;
    if (lm_translator_source_ids(t, src, src_len, &s, &ns, &cut_s, err) != 0) return -1;
    if (lm_score_labels(t, tgt, tgt_len, &l, &nl, &cut_l, err) != 0) { free(s); return -1; }
    int32_t *out = lm_malloc((size_t)(1 + ns + nl) * sizeof *out, err);
    if (out) {
        out[0] = ns;
        memcpy(out + 1, s, (size_t)ns * sizeof *out);
        memcpy(out + 1 + ns, l, (size_t)nl * sizeof *out);
        *ids = out;
        *n = 1 + ns + nl;
        *truncated = cut_s || cut_l;
    }
    free(s);
    free(l);
    return out ? 0 : -1;
}

/* Positions one decode_forced pass takes at most: enough rows that every
 * product runs at its full rate, few enough that the work buffers stay small
 * (a call's buffers are about 40 KB a position at SMaLL-100's sizes). The
 * fallback (no op) takes every pair at once: its rows a step are the pairs. */
#define FORCED_POSITIONS 1024

int lm_score_forced(lm_backend *be, int decoder_start_id, int vocab_size, const int32_t *src, const int32_t *src_lens, int n_src,
                    const int32_t *pair_src, const int32_t *const *labels, const int *n_labels, int n, double *sums, lm_err *err) {
    (void)vocab_size;
    size_t total = 0;
    long most = 0;
    for (int i = 0; i < n; i++) {
        if (n_labels[i] <= 0) return lm_fail(err, "pair %d has no labels", i);
        most = n_labels[i] > most ? n_labels[i] : most;
        total += (size_t)n_labels[i];
        sums[i] = 0;
    }
    if (n == 0) return 0;
    if (be->ops->encode(be, src, src_lens, n_src, err) != 0) return -1;
    /* each group of pairs whose labels fit the cap in one pass (a pair alone when longer) */
    size_t cap = !be->ops->decode_forced ? total : (size_t)(most > FORCED_POSITIONS ? most : FORCED_POSITIONS);
    int32_t *sent = lm_malloc((size_t)n * sizeof *sent, err), *lens = lm_malloc((size_t)n * sizeof *lens, err);
    int32_t *feed = lm_malloc(cap * sizeof *feed, err), *want = lm_malloc(cap * sizeof *want, err);
    float *lp = lm_malloc(cap * sizeof *lp, err);
    int rc = -1;
    if (!sent || !lens || !feed || !want || !lp) goto done;
    for (int i0 = 0, i1; i0 < n; i0 = i1) {
        size_t at = 0;
        for (i1 = i0; i1 < n && (i1 == i0 || at + (size_t)n_labels[i1] <= cap); i1++) {
            const int32_t *l = labels[i1];
            int k = n_labels[i1];
            sent[i1 - i0] = pair_src ? pair_src[i1] : i1;
            lens[i1 - i0] = k;
            feed[at] = decoder_start_id; /* shift_tokens_right: [start] + labels[:-1] */
            memcpy(feed + at + 1, l, (size_t)(k - 1) * sizeof *feed);
            memcpy(want + at, l, (size_t)k * sizeof *want);
            at += (size_t)k;
        }
        if (lm_backend_decode_forced(be, sent, feed, lens, i1 - i0, want, lp, err) != 0) goto done;
        at = 0;
        for (int i = i0; i < i1; i++)
            for (int p = 0; p < n_labels[i]; p++, at++) {
                if (isnan(lp[at])) { lm_bad_logits(err, p, i); goto done; }
                sums[i] += lp[at]; /* in label order, in double */
            }
    }
    rc = 0;
done:
    free(sent); free(lens); free(feed); free(want); free(lp);
    return rc;
}

int lm_score_batch(lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err) {
    int n = b->n, total = 0;
    for (int i = 0, at = 0; i < n; at += b->lens[i], i++) total += b->tokens[at];
    int32_t *src = lm_malloc(((size_t)total + 1) * sizeof *src, err), *src_lens = lm_malloc(((size_t)n + 1) * sizeof *src_lens, err);
    const int32_t **labels = lm_malloc(((size_t)n + 1) * sizeof *labels, err);
    int *n_labels = lm_malloc(((size_t)n + 1) * sizeof *n_labels, err);
    double *sums = lm_malloc(((size_t)n + 1) * sizeof *sums, err);
    int32_t *pair_src = lm_malloc(((size_t)n + 1) * sizeof *pair_src, err);
    const int32_t **first = lm_malloc(((size_t)n + 1) * sizeof *first, err); /* each distinct source's ids in b->tokens */
    uint32_t *hash = lm_malloc(((size_t)n + 1) * sizeof *hash, err);
    /* an open-addressing table of the distinct sources, at most half full, so
     * a batch of distinct sources costs linear time, not a scan per pair */
    size_t cap = 2;
    while (cap < 2 * (size_t)n) cap *= 2;
    int32_t *table = lm_malloc(cap * sizeof *table, err);
    int rc = -1;
    if (!src || !src_lens || !labels || !n_labels || !sums || !pair_src || !first || !hash || !table) goto done;
    memset(table, 0xff, cap * sizeof *table); /* -1: empty */
    /* Pairs that share a source (augmentation's samples: 5 a line) share its
     * encoding: the encoder over every pair's copy cost as much as the whole
     * decoder and output projection at SMaLL-100's sizes (12 encoder layers
     * against 3), what kept score at 0.6x sampling's rate on the same pairs.
     * A source's encoder rows do not depend on the batch, so the sums are the
     * same bits. */
    int n_src = 0;
    for (int i = 0, at = 0, in = 0; i < n; in += b->lens[i], i++) {
        const int32_t *p = b->tokens + in;
        uint32_t h = 2166136261u; /* FNV-1a over the ids */
        for (int j = 0; j <= p[0]; j++) h = (h ^ (uint32_t)p[j]) * 16777619u;
        size_t at_table = h & (cap - 1);
        int s;
        while ((s = table[at_table]) >= 0 && !(hash[s] == h && src_lens[s] == p[0] && memcmp(first[s], p + 1, (size_t)p[0] * sizeof *p) == 0))
            at_table = (at_table + 1) & (cap - 1);
        if (s < 0) {
            s = table[at_table] = n_src;
            hash[s] = h;
            first[s] = p + 1;
            src_lens[s] = p[0];
            memcpy(src + at, p + 1, (size_t)p[0] * sizeof *src);
            at += p[0];
            n_src++;
        }
        pair_src[i] = s;
        labels[i] = p + 1 + p[0];
        n_labels[i] = b->lens[i] - 1 - p[0];
    }
    const lm_search_opts *s = &t->search;
    if (lm_score_forced(be, s->decoder_start_id, s->vocab_size, src, src_lens, n_src, pair_src, labels, n_labels, n, sums, err) != 0)
        goto done;
    b->tokens_out = 0;
    for (int i = 0; i < n; i++) {
        lm_translation *tr = &b->out[i];
        tr->texts = lm_calloc(1, sizeof *tr->texts, err);
        tr->scores = lm_calloc(1, sizeof *tr->scores, err);
        if (!tr->texts || !tr->scores || !(tr->texts[0] = strdup(""))) {
            lm_translation_free(tr);
            lm_fail(err, "out of memory");
            goto done;
        }
        tr->n_hyps = 1;
        tr->scores[0] = (float)sums[i];
        tr->n_tokens = n_labels[i];
        b->tokens_out += n_labels[i];
    }
    rc = 0;
done:
    free(src); free(src_lens); free(labels); free(n_labels); free(sums); free(pair_src); free(first); free(hash); free(table);
    return rc;
}

static int run_scoring(void *ctx, lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err) {
    (void)ctx;
    return lm_score_batch(t, be, b, err);
}

void lm_score_attach(lm_translator *t) { t->runner = (lm_batch_runner){run_scoring, NULL, 1}; }
