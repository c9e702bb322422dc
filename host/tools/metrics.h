/*
 * metrics: corpus chrF and BLEU exactly as sacreBLEU 2.x computes them.
 *
 * chrF: sacreBLEU's defaults (character 6-grams, beta 2, whitespace removed,
 * no word n-grams, effective order: orders with no hypothesis or reference
 * n-grams are left out of the averages). BLEU: 4-grams, 'exp' smoothing,
 * corpus-level (no effective order), tokenised by 'char' (every
 * non-whitespace character a token: what sacreBLEU's --tokenize char gives
 * for Korean, which the default 13a tokenizer is not meant for) or 'none'
 * (words split on whitespace). One reference per hypothesis.
 *
 * Characters are Unicode code points of valid UTF-8 and "whitespace" is
 * Python's str.isspace(), as in sacreBLEU. Statistics are added a segment at
 * a time and scored once for the corpus: the score of a corpus is not the
 * mean of its segments' scores. tests/fixtures/sacrebleu/ holds sacreBLEU's
 * own outputs these functions are tested against.
 */
#ifndef LM_METRICS_H
#define LM_METRICS_H

#include "base/util.h"

#define LM_CHRF_ORDER 6
#define LM_BLEU_ORDER 4
#define LM_SACREBLEU_VERSION "2.6.0" /* the version the fixtures were recorded with */

typedef enum { LM_BLEU_TOK_CHAR, LM_BLEU_TOK_NONE } lm_bleu_tok;

typedef struct {
    int64_t hyp[LM_CHRF_ORDER], ref[LM_CHRF_ORDER], match[LM_CHRF_ORDER];
} lm_chrf_stats;

typedef struct {
    int64_t sys_len, ref_len, correct[LM_BLEU_ORDER], total[LM_BLEU_ORDER];
} lm_bleu_stats;

typedef struct {
    double score, precisions[LM_BLEU_ORDER], bp, ratio;
    int64_t sys_len, ref_len;
} lm_bleu_result;

/* Adds one hypothesis/reference pair (valid UTF-8) to the corpus totals;
 * -1 only when out of memory. */
int lm_chrf_add(lm_chrf_stats *s, const char *hyp, size_t hyp_len, const char *ref, size_t ref_len, lm_err *err);
int lm_bleu_add(lm_bleu_stats *s, lm_bleu_tok tok, const char *hyp, size_t hyp_len, const char *ref, size_t ref_len,
                lm_err *err);

double lm_chrf_score(const lm_chrf_stats *s);           /* 0..100 */
void   lm_bleu_score(const lm_bleu_stats *s, lm_bleu_result *out);

/* sacreBLEU's text lines for both metrics ("BLEU|nrefs:1|...|version:2.6.0 =
 * 23.4 60.0/30.0/...", "chrF2|...= 45.6"), aligned on '=' as its command
 * line prints them, with width decimals in the scores. */
void lm_metrics_print(FILE *f, const lm_bleu_result *bleu, lm_bleu_tok tok, double chrf, int width);

/* True for the code points Python's str.isspace() accepts. */
bool lm_py_isspace(uint32_t cp);

#endif
