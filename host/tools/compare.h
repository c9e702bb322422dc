/*
 * compare: the same lines through several models, side by side.
 *
 * Models are loaded one at a time (only one is in memory), each translates
 * every line, and the results are kept as text. With references, each
 * model's corpus chrF and BLEU are computed by metrics.c. The table is
 * rendered as Markdown and as a self-contained HTML page: one row per line,
 * one column per model (and the reference), the characters where a model's
 * output differs from the reference (from the first model's output when no
 * reference is given) marked, everything escaped.
 */
#ifndef LM_COMPARE_H
#define LM_COMPARE_H

#include "config/engine_config.h"
#include "tools/metrics.h"

typedef struct {
    int n_models, n_lines;
    const char *const *models;  /* model directories, also the column names */
    const char *const *sources; /* n_lines */
    const char *const *refs;    /* n_lines, or NULL */
    char ***out;                /* [model][line], filled by lm_compare_run */
    double *chrf;               /* [model], with refs */
    lm_bleu_result *bleu;       /* [model], with refs */
    lm_bleu_tok tok;
} lm_comparison;

/* Translates every line with each model in turn, then scores each. */
int  lm_compare_run(lm_comparison *c, const lm_engine_config *engine, lm_err *err);
void lm_compare_free(lm_comparison *c);

/* Renderers; -1 with err set when the stream fails. */
int lm_compare_markdown(const lm_comparison *c, FILE *f, lm_err *err);
int lm_compare_html(const lm_comparison *c, FILE *f, lm_err *err);

#endif
