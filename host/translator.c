/* translator: see translator.h. */
#include "translator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        goto fail;
    }
    if (!s->gen.do_sample && s->gen.num_return_sequences > s->gen.num_beams) {
        lm_fail(err, "num_return_sequences (%d) cannot exceed num_beams (%d)", s->gen.num_return_sequences, s->gen.num_beams);
        goto fail;
    }
    t->backend = lm_cpu_backend_create(&t->model, engine->threads, err);
    if (!t->backend) goto fail;
    return 0;
fail:
    lm_translator_close(t);
    return -1;
}

void lm_translator_close(lm_translator *t) {
    if (t->backend) t->backend->ops->destroy(t->backend);
    lm_tokenizer_free(t->tok);
    lm_model_free(&t->model);
    memset(t, 0, sizeof *t);
}

int lm_translator_source_ids(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err) {
    int32_t *pieces;
    int np;
    if (lm_tokenizer_encode(t->tok, text, len, &pieces, &np, err) != 0) return -1;
    int limit = t->model.cfg.model.max_positions - 2;
    *truncated = np > limit;
    if (*truncated) {
        np = limit;
        t->n_truncated++;
    }
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

static bool is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '\v' && *s != '\f') return false;
    return true;
}

typedef struct {
    int line;
    int32_t *ids;
    int n;
} pending;

static int by_length(const void *a, const void *b) {
    const pending *x = a, *y = b;
    if (x->n != y->n) return x->n - y->n;
    return x->line - y->line;
}

/* Runs one batch and writes its translations. */
static int run_batch(lm_translator *t, pending *p, int n, char **out, lm_search_result *nbest, lm_err *err) {
    int total = 0;
    for (int i = 0; i < n; i++) total += p[i].n;
    int32_t *tokens = lm_malloc((size_t)total * sizeof *tokens, err), *lens = lm_malloc((size_t)n * sizeof *lens, err);
    lm_search_result *res = lm_calloc((size_t)n, sizeof *res, err);
    int rc = -1;
    if (!tokens || !lens || !res) goto done;
    for (int i = 0, at = 0; i < n; i++) {
        memcpy(tokens + at, p[i].ids, (size_t)p[i].n * sizeof *tokens);
        lens[i] = p[i].n;
        at += p[i].n;
    }
    if (lm_search_run(t->backend, &t->search, tokens, lens, n, res, err) != 0) goto done;
    for (int i = 0; i < n; i++) {
        const lm_hypothesis *best = &res[i].hyps[0];
        if (lm_tokenizer_decode(t->tok, best->ids, best->n, &out[p[i].line], err) != 0) goto done;
        if (nbest) {
            nbest[p[i].line] = res[i];
            res[i] = (lm_search_result){0};
        }
    }
    rc = 0;
done:
    if (res)
        for (int i = 0; i < n; i++) lm_search_result_free(&res[i]);
    free(res); free(tokens); free(lens);
    return rc;
}

int lm_translator_translate(lm_translator *t, const char *const *lines, int n, char **out, lm_search_result *nbest, lm_err *err) {
    pending *p = lm_calloc((size_t)n, sizeof *p, err);
    if (!p) return -1;
    int np = 0, rc = -1;
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (nbest) memset(nbest, 0, (size_t)n * sizeof *nbest);
    for (int i = 0; i < n; i++) {
        if (is_blank(lines[i])) {
            out[i] = strdup("");
            if (!out[i]) { lm_fail(err, "out of memory"); goto done; }
            continue;
        }
        bool cut;
        p[np].line = i;
        if (lm_translator_source_ids(t, lines[i], strlen(lines[i]), &p[np].ids, &p[np].n, &cut, err) != 0) goto done;
        np++;
    }
    /* length-sorted batches: less padding work, similar decode lengths */
    qsort(p, (size_t)np, sizeof *p, by_length);
    int beams = t->search.gen.num_beams;
    for (int start = 0; start < np;) {
        int end = start, longest = 0;
        while (end < np && end - start < t->engine.max_batch_sentences) {
            int l = p[end].n > longest ? p[end].n : longest;
            /* token budget counted with padding and beams, as a padded batch would hold */
            if (end > start && (long)l * (end - start + 1) * beams > t->engine.max_batch_tokens) break;
            longest = l;
            end++;
        }
        if (run_batch(t, p + start, end - start, out, nbest, err) != 0) goto done;
        start = end;
    }
    rc = 0;
done:
    for (int i = 0; i < np; i++) free(p[i].ids);
    free(p);
    if (rc != 0)
        for (int i = 0; i < n; i++) { free(out[i]); out[i] = NULL; }
    return rc;
}
