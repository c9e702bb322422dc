/*
 * translator: text lines in, translated lines out. Owns the model, the
 * tokenizer and a backend, and turns engine settings into search options.
 * Lines are grouped into length-sorted batches under the configured
 * sentence and token limits; results come back in input order.
 */
#ifndef LM_TRANSLATOR_H
#define LM_TRANSLATOR_H

#include "backend.h"
#include "engine_config.h"
#include "search.h"
#include "tokenizer.h"

typedef struct {
    lm_model model;
    lm_tokenizer *tok;
    lm_backend *backend;
    lm_engine_config engine;
    lm_convention convention;
    char src_lang[16], tgt_lang[16];
    int src_prefix_id;        /* first encoder token: __src__ (m2m100) or __tgt__ (small100) */
    lm_search_opts search;
    long n_truncated;         /* lines cut to fit the model's positions */
} lm_translator;

int  lm_translator_open(lm_translator *t, const char *model_dir, const lm_engine_config *engine, lm_err *err);
void lm_translator_close(lm_translator *t);

/* Source token ids for one line: prefix + pieces + </s>, cut to the model's
 * positions (and counted in n_truncated) if too long. *ids is malloc'd. */
int lm_translator_source_ids(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err);

/* Translates n lines; out[i] receives a malloc'd string (the best
 * hypothesis). Empty or whitespace-only lines give "" without running the
 * model. If nbest is non-NULL it receives each line's search result. */
int lm_translator_translate(lm_translator *t, const char *const *lines, int n, char **out, lm_search_result *nbest, lm_err *err);

#endif
