/* translator: see translator.h. */
#include "translator.h"

#include "augment.h"
#include "score.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lm_translator_open(lm_translator *t, const char *model_dir, const lm_engine_config *engine, lm_err *err) {
    memset(t, 0, sizeof *t);
    t->engine = *engine;
    if (lm_model_load(model_dir, &t->model, err) != 0) return -1;
    const lm_dir_config *cfg = &t->model.cfg;
    if (lm_tokenizer_load(model_dir, cfg->model.vocab_size, &t->tok, err) != 0) goto fail;
    t->convention = engine->convention >= 0 ? (lm_convention)engine->convention : cfg->tok.convention;
    snprintf(t->src_lang, sizeof t->src_lang, "%s", engine->src_lang[0] ? engine->src_lang : cfg->tok.src_lang);
    snprintf(t->tgt_lang, sizeof t->tgt_lang, "%s", engine->tgt_lang[0] ? engine->tgt_lang : cfg->tok.tgt_lang[0] ? cfg->tok.tgt_lang : "ko");
    int src_id = lm_tokenizer_lang_id(t->tok, t->src_lang), tgt_id = lm_tokenizer_lang_id(t->tok, t->tgt_lang);
    if (src_id < 0) { lm_fail(err, "unknown source language '%s' (use an m2m100 code such as en)", t->src_lang); goto fail; }
    if (tgt_id < 0) { lm_fail(err, "unknown target language '%s' (use an m2m100 code such as ko)", t->tgt_lang); goto fail; }

    lm_search_opts *s = &t->search;
    s->gen = cfg->gen;
    s->gen.forced_bos_id = t->convention == LM_CONV_M2M100 ? tgt_id : -1;
    lm_engine_config_apply(engine, &s->gen);
    s->decoder_start_id = cfg->model.decoder_start_id;
    s->eos_id = cfg->model.eos_id;
    s->vocab_size = cfg->model.vocab_size;
    s->seed = engine->seed;
    t->src_prefix_id = t->convention == LM_CONV_M2M100 ? src_id : tgt_id;
    if (s->gen.max_length > cfg->model.max_positions) {
        lm_fail(err, "max_length %d exceeds the model's %d positions", s->gen.max_length, cfg->model.max_positions);
        goto settings;
    }
    if (!s->gen.do_sample && s->gen.num_return_sequences > s->gen.num_beams) {
        lm_fail(err, "num_return_sequences (%d) cannot exceed num_beams (%d)", s->gen.num_return_sequences, s->gen.num_beams);
        goto settings;
    }
    if (engine->device == LM_DEVICE_CUDA && engine->precision == LM_PREC_INT8) {
        lm_fail(err, "precision int8 is for --device cpu; the GPU computes in fp32, fp16 or bf16");
        goto settings;
    }
    if (engine->device == LM_DEVICE_CUDA) {
#ifdef LM_WITH_CUDA
        t->backend = lm_cuda_backend_create(&t->model, engine->precision, engine->max_batch_tokens, err);
#else
        lm_fail(err, "this lyricmt was built without CUDA (nvcc was not found at build time): use --device cpu");
#endif
    } else {
        if (engine->precision == LM_PREC_FP16) {
            lm_fail(err, "precision fp16 is for --device cuda; the CPU computes in fp32, int8 or bf16");
            goto settings;
        }
        if (lm_cpu_weights_init_as(&t->cpu_weights, &t->model, engine->precision, err) != 0) goto fail;
        t->backend = lm_cpu_backend_create(&t->model, &t->cpu_weights, lm_translator_threads(engine->threads), err);
    }
    if (!t->backend) goto fail;
    return 0;
fail:
    lm_translator_close(t);
    return -1;
settings:
    lm_translator_close(t);
    return -2;
}

int lm_translator_threads(int asked) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int most = cores > 0 ? 2 * (int)cores : 2;
    if (asked <= most) return asked;
    /* more threads than cores only make them wait on each other (4096 on two
     * cores took minutes for four lines) */
    fprintf(stderr, "lyricmt: note: threads %d is more than twice the %ld CPU cores; using %d\n", asked, cores, most);
    return most;
}

void lm_translator_close(lm_translator *t) {
    if (t->backend) t->backend->ops->destroy(t->backend);
    lm_cpu_weights_free(&t->cpu_weights);
    lm_tokenizer_free(t->tok);
    lm_model_free(&t->model);
    memset(t, 0, sizeof *t);
}

void lm_translation_free(lm_translation *tr) {
    for (int i = 0; i < tr->n_hyps; i++) free(tr->texts[i]);
    free(tr->texts);
    free(tr->scores);
    free(tr->sample);
    memset(tr, 0, sizeof *tr);
}

int lm_translation_copy(lm_translation *dst, const lm_translation *src) {
    memset(dst, 0, sizeof *dst);
    dst->texts = calloc((size_t)src->n_hyps + 1, sizeof *dst->texts);
    dst->scores = calloc((size_t)src->n_hyps + 1, sizeof *dst->scores);
    if (!dst->texts || !dst->scores) { lm_translation_free(dst); return -1; }
    if (src->sample) {
        if (!(dst->sample = calloc((size_t)src->n_hyps + 1, sizeof *dst->sample))) { lm_translation_free(dst); return -1; }
        memcpy(dst->sample, src->sample, (size_t)src->n_hyps * sizeof *dst->sample);
    }
    dst->n_hyps = src->n_hyps;
    dst->n_tokens = src->n_tokens;
    for (int h = 0; h < src->n_hyps; h++) {
        dst->scores[h] = src->scores[h];
        if (!(dst->texts[h] = strdup(src->texts[h]))) { lm_translation_free(dst); return -1; }
    }
    return 0;
}

int lm_translator_source_ids(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err) {
    int32_t *pieces;
    int np;
    if (lm_tokenizer_encode(t->tok, text, len, &pieces, &np, err) != 0) return -1;
    int limit = t->model.cfg.model.max_positions - 2;
    *truncated = np > limit;
    if (*truncated) np = limit;
    int32_t *out = lm_malloc(((size_t)np + 2) * sizeof *out, err);
    if (!out) { free(pieces); return -1; }
    out[0] = t->src_prefix_id;
    if (np > 0) memcpy(out + 1, pieces, (size_t)np * sizeof *out);
    out[np + 1] = t->model.cfg.model.eos_id;
    free(pieces);
    *ids = out;
    *n = np + 2;
    return 0;
}

typedef struct {
    int index;
    int len;
} by_len_entry;

static int by_length(const void *a, const void *b) {
    const by_len_entry *x = a, *y = b;
    if (x->len != y->len) return x->len - y->len;
    return x->index - y->index;
}

/* Detokenises one search result into a translation. */
static int to_translation(lm_translator *t, const lm_search_result *r, lm_translation *tr, lm_err *err) {
    tr->texts = lm_calloc((size_t)r->n_hyps, sizeof *tr->texts, err);
    tr->scores = lm_calloc((size_t)r->n_hyps, sizeof *tr->scores, err);
    if (!tr->texts || !tr->scores) return -1;
    tr->n_hyps = r->n_hyps;
    for (int h = 0; h < r->n_hyps; h++) {
        const lm_hypothesis *hyp = &r->hyps[h];
        if (lm_tokenizer_decode(t->tok, hyp->ids, hyp->n, &tr->texts[h], err) != 0) return -1;
        tr->scores[h] = hyp->score;
        tr->n_tokens += hyp->n - 1; /* the decoder start token is not generated */
    }
    return 0;
}

/* Runs one batch (entries of `order`) and fills their translations. */
static int run_batch(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, lm_translation *out, long *tokens_out,
                     lm_err *err) {
    int total = 0;
    for (int i = 0; i < n; i++) total += order[i].len;
    int32_t *tokens = lm_malloc((size_t)total * sizeof *tokens, err), *lens = lm_malloc((size_t)n * sizeof *lens, err);
    lm_search_result *res = lm_calloc((size_t)n, sizeof *res, err);
    int rc = -1;
    if (!tokens || !lens || !res) goto done;
    if (t->scoring) { /* packed pairs, force-decoded */
        int *which = lm_malloc((size_t)n * sizeof *which, err);
        if (!which) goto done;
        for (int i = 0; i < n; i++) { which[i] = order[i].index; lens[i] = order[i].len; }
        rc = lm_score_batch(t, ids, which, lens, n, out, tokens_out, err);
        free(which);
        goto done;
    }
    for (int i = 0, at = 0; i < n; i++) {
        memcpy(tokens + at, ids[order[i].index], (size_t)order[i].len * sizeof *tokens);
        lens[i] = order[i].len;
        at += order[i].len;
    }
    if (lm_search_run(t->backend, &t->search, tokens, lens, n, res, err) != 0) goto done;
    *tokens_out = 0;
    for (int i = 0; i < n; i++) {
        lm_translation *tr = &out[order[i].index];
        if (to_translation(t, &res[i], tr, err) != 0) { lm_translation_free(tr); goto done; }
        *tokens_out += tr->n_tokens;
    }
    if (lm_augment_wanted(&t->engine)) {
        int *which = lm_malloc((size_t)n * sizeof *which, err);
        if (!which) goto done;
        for (int i = 0; i < n; i++) which[i] = order[i].index;
        int bad = lm_augment_batch(t, tokens, lens, which, n, out, err);
        free(which);
        if (bad) goto done;
    }
    rc = 0;
done:
    if (res)
        for (int i = 0; i < n; i++) lm_search_result_free(&res[i]);
    free(res); free(tokens); free(lens);
    return rc;
}

/* In-flight batching: the whole (sorted) list goes to the search, which
 * starts lines as others finish; each line's translation is made as it
 * finishes. */
typedef struct {
    lm_translator *t;
    const by_len_entry *order;
    lm_translation *out;
    const lm_run_hooks *hooks;
} stream_ctx;

static int stream_done(void *ctx, int s, lm_search_result *r, lm_err *err) {
    stream_ctx *c = ctx;
    lm_translation *tr = &c->out[c->order[s].index];
    int rc = to_translation(c->t, r, tr, err);
    lm_search_result_free(r);
    if (rc != 0) lm_translation_free(tr);
    else if (c->hooks && c->hooks->on_batch) c->hooks->on_batch(c->hooks->ctx, 1, tr->n_tokens);
    return rc;
}

static int run_inflight(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, lm_translation *out,
                        const lm_run_hooks *hooks, lm_err *err) {
    long total = 0;
    for (int i = 0; i < n; i++) total += order[i].len;
    int32_t *tokens = lm_malloc((size_t)(total ? total : 1) * sizeof *tokens, err), *lens = lm_malloc((size_t)n * sizeof *lens, err);
    lm_search_result *res = lm_calloc((size_t)n, sizeof *res, err);
    int rc = -1;
    if (!tokens || !lens || !res) goto done;
    for (long i = 0, at = 0; i < n; i++) {
        memcpy(tokens + at, ids[order[i].index], (size_t)order[i].len * sizeof *tokens);
        lens[i] = order[i].len;
        at += order[i].len;
    }
    stream_ctx ctx = {t, order, out, hooks};
    lm_search_feed feed = {t->engine.max_batch_sentences, t->engine.max_batch_tokens, hooks ? hooks->cancel : NULL, stream_done, &ctx};
    rc = lm_search_stream(t->backend, &t->search, tokens, lens, n, &feed, res, err);
done:
    if (res)
        for (int i = 0; i < n; i++) lm_search_result_free(&res[i]);
    free(res); free(tokens); free(lens);
    return rc;
}

/* Batch by batch, each drained before the next starts. */
static int run_batches(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, lm_translation *out,
                       const lm_run_hooks *hooks, lm_err *err) {
    long beams = t->scoring ? 1 : t->search.gen.num_beams;
    int rc = 0;
    for (int start = 0; start < n && rc == 0;) {
        if (hooks && hooks->cancel && *hooks->cancel) { rc = 1; break; }
        int end = start, longest = 0;
        while (end < n && end - start < t->engine.max_batch_sentences) {
            int l = order[end].len > longest ? order[end].len : longest;
            /* token budget counted with padding and beams, as a padded batch
             * would hold; a line over budget on its own still runs, alone */
            if (end > start && (long)l * (end - start + 1) * beams > t->engine.max_batch_tokens) break;
            longest = l;
            end++;
        }
        long tokens;
        if (run_batch(t, ids, order + start, end - start, out, &tokens, err) != 0) rc = -1;
        else if (hooks && hooks->on_batch) hooks->on_batch(hooks->ctx, end - start, tokens);
        start = end;
    }
    return rc;
}

int lm_translator_run(lm_translator *t, int32_t *const *ids, const int *lens, int n, lm_translation *out,
                      const lm_run_hooks *hooks, lm_err *err) {
    memset(out, 0, (size_t)n * sizeof *out);
    by_len_entry *order = lm_malloc((size_t)(n ? n : 1) * sizeof *order, err);
    if (!order) return -1;
    for (int i = 0; i < n; i++) order[i] = (by_len_entry){i, lens[i]};
    /* length-sorted batches: less padding work, similar decode lengths */
    if (t->engine.sort_by_length) qsort(order, (size_t)n, sizeof *order, by_length);
    /* backends that cannot add sentences to a running decode get batches, and
     * so do scoring and augmentation: they force-decode on the same backend
     * after each batch's search, which a running decode cannot share */
    bool inflight = t->engine.inflight && t->backend->ops->encode_more && n > 0 && !t->scoring && !lm_augment_wanted(&t->engine);
    int rc = inflight ? run_inflight(t, ids, order, n, out, hooks, err) : run_batches(t, ids, order, n, out, hooks, err);
    free(order);
    if (rc < 0)
        for (int i = 0; i < n; i++) lm_translation_free(&out[i]);
    return rc;
}

int lm_translator_translate(lm_translator *t, const char *const *lines, int n, char **out, lm_err *err) {
    int32_t **ids = lm_calloc((size_t)n + 1, sizeof *ids, err);
    int *lens = lm_calloc((size_t)n + 1, sizeof *lens, err), *which = lm_calloc((size_t)n + 1, sizeof *which, err);
    lm_translation *res = lm_calloc((size_t)n + 1, sizeof *res, err);
    int m = 0, rc = -1;
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (!ids || !lens || !which || !res) goto done;
    for (int i = 0; i < n; i++) {
        bool cut;
        if (lm_is_blank(lines[i], strlen(lines[i]))) continue;
        if (lm_translator_source_ids(t, lines[i], strlen(lines[i]), &ids[m], &lens[m], &cut, err) != 0) goto done;
        which[m++] = i;
    }
    if (lm_translator_run(t, ids, lens, m, res, NULL, err) != 0) goto done;
    for (int j = 0; j < m; j++) {
        out[which[j]] = res[j].texts[0];
        res[j].texts[0] = NULL;
    }
    rc = 0;
    for (int i = 0; i < n; i++)
        if (!out[i] && !(out[i] = strdup(""))) rc = lm_fail(err, "out of memory");
done:
    for (int j = 0; j < m; j++) { free(ids[j]); if (res) lm_translation_free(&res[j]); }
    free(ids); free(lens); free(which); free(res);
    if (rc != 0)
        for (int i = 0; i < n; i++) { free(out[i]); out[i] = NULL; }
    return rc;
}
