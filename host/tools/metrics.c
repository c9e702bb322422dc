/* metrics: see metrics.h. A port of sacrebleu/metrics/{chrf,bleu}.py (2.6.0). */
#include "tools/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool lm_py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* A token: a span of the text (a character, or a word). */
typedef struct {
    uint32_t off, len;
} span;

typedef struct {
    const char *text;
    span *toks;
    int n;
} token_list;

/* The code point at s[i] and its length in bytes; an invalid byte counts as
 * one non-space character (callers validate UTF-8 first). */
static uint32_t next_cp(const char *s, size_t len, size_t i, size_t *n) {
    const uint8_t *u = (const uint8_t *)s + i;
    *n = lm_utf8_seq_len(s, len, i);
    switch (*n) {
    case 1: return u[0];
    case 2: return (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
    case 3: return (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    case 4: return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 | (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
    default: *n = 1; return 0xfffd;
    }
}

/* words = false: every non-whitespace character is a token (chrF's
 * ''.join(line.split()), BLEU's char tokenizer); words = true: Python's
 * line.split(). */
static int tokenize(const char *s, size_t len, bool words, token_list *out, lm_err *err) {
    out->text = s;
    out->n = 0;
    out->toks = malloc((len + 1) * sizeof *out->toks);
    if (!out->toks) return lm_fail(err, "out of memory");
    bool in_word = false;
    for (size_t i = 0, n; i < len; i += n) {
        bool space = lm_py_isspace(next_cp(s, len, i, &n));
        if (space) { in_word = false; continue; }
        if (words && in_word) { out->toks[out->n - 1].len += (uint32_t)n; continue; }
        out->toks[out->n++] = (span){(uint32_t)i, (uint32_t)n};
        in_word = true;
    }
    return 0;
}

/* Equality is all that matters; the order only has to be total. */
static int cmp_ngram(const token_list *a, int i, const token_list *b, int j, int order) {
    for (int k = 0; k < order; k++) {
        span x = a->toks[i + k], y = b->toks[j + k];
        int c = memcmp(a->text + x.off, b->text + y.off, x.len < y.len ? x.len : y.len);
        if (c) return c;
        if (x.len != y.len) return x.len < y.len ? -1 : 1;
    }
    return 0;
}

typedef struct {
    const token_list *list;
    int order;
} sort_ctx;

static int cmp_start(const void *pa, const void *pb, void *ctx) {
    const sort_ctx *c = ctx;
    return cmp_ngram(c->list, *(const int *)pa, c->list, *(const int *)pb, c->order);
}

/* The n-gram starts of one order, sorted so equal n-grams are adjacent. */
static int *sorted_starts(const token_list *t, int order, int *count, lm_err *err) {
    *count = t->n >= order ? t->n - order + 1 : 0;
    int *s = malloc(((size_t)*count + 1) * sizeof *s);
    if (!s) { lm_fail(err, "out of memory"); return NULL; }
    for (int i = 0; i < *count; i++) s[i] = i;
    sort_ctx ctx = {t, order};
    qsort_r(s, (size_t)*count, sizeof *s, cmp_start, &ctx);
    return s;
}

/* Clipped matches: the sum over distinct n-grams of min(hyp count, ref count). */
static int64_t clipped_matches(const token_list *h, const int *hs, int nh, const token_list *r, const int *rs, int nr, int order) {
    int64_t match = 0;
    int i = 0, j = 0;
    while (i < nh && j < nr) {
        int c = cmp_ngram(h, hs[i], r, rs[j], order);
        if (c < 0) { i++; continue; }
        if (c > 0) { j++; continue; }
        int gi = i, gj = j;
        while (i < nh && cmp_ngram(h, hs[gi], h, hs[i], order) == 0) i++;
        while (j < nr && cmp_ngram(r, rs[gj], r, rs[j], order) == 0) j++;
        match += i - gi < j - gj ? i - gi : j - gj;
    }
    return match;
}

/* Per order: hyp n-grams, ref n-grams, clipped matches. */
static int ngram_stats(const char *hyp, size_t hyp_len, const char *ref, size_t ref_len, bool words, int orders,
                       int64_t *n_hyp, int64_t *n_ref, int64_t *n_match, int *hyp_toks, int *ref_toks, lm_err *err) {
    token_list h, r = {0};
    if (tokenize(hyp, hyp_len, words, &h, err) != 0) return -1;
    int rc = tokenize(ref, ref_len, words, &r, err);
    for (int order = 1; rc == 0 && order <= orders; order++) {
        int nh, nr;
        int *hs = sorted_starts(&h, order, &nh, err), *rs = hs ? sorted_starts(&r, order, &nr, err) : NULL;
        if (!rs) rc = -1;
        else {
            n_hyp[order - 1] = nh;
            n_ref[order - 1] = nr;
            n_match[order - 1] = clipped_matches(&h, hs, nh, &r, rs, nr, order);
        }
        free(hs);
        free(rs);
    }
    *hyp_toks = h.n;
    *ref_toks = r.n;
    free(h.toks);
    free(r.toks);
    return rc;
}

int lm_chrf_add(lm_chrf_stats *s, const char *hyp, size_t hyp_len, const char *ref, size_t ref_len, lm_err *err) {
    int64_t nh[LM_CHRF_ORDER], nr[LM_CHRF_ORDER], nm[LM_CHRF_ORDER];
    int ht, rt;
    if (ngram_stats(hyp, hyp_len, ref, ref_len, false, LM_CHRF_ORDER, nh, nr, nm, &ht, &rt, err) != 0) return -1;
    for (int i = 0; i < LM_CHRF_ORDER; i++) {
        /* sacreBLEU counts no hypothesis n-grams of an order the reference has none of */
        s->hyp[i] += nr[i] ? nh[i] : 0;
        s->ref[i] += nr[i];
        s->match[i] += nm[i];
    }
    return 0;
}

int lm_bleu_add(lm_bleu_stats *s, lm_bleu_tok tok, const char *hyp, size_t hyp_len, const char *ref, size_t ref_len,
                lm_err *err) {
    int64_t nh[LM_BLEU_ORDER], nr[LM_BLEU_ORDER], nm[LM_BLEU_ORDER];
    int ht, rt;
    if (ngram_stats(hyp, hyp_len, ref, ref_len, tok == LM_BLEU_TOK_NONE, LM_BLEU_ORDER, nh, nr, nm, &ht, &rt, err) != 0)
        return -1;
    s->sys_len += ht;
    s->ref_len += rt;
    for (int i = 0; i < LM_BLEU_ORDER; i++) {
        s->total[i] += nh[i];
        s->correct[i] += nm[i];
    }
    return 0;
}

/* CHRF._compute_f_score without eps smoothing: the F-beta of the precision and
 * recall averaged over the orders both sides have n-grams of. */
double lm_chrf_score(const lm_chrf_stats *s) {
    const double factor = 2 * 2; /* beta^2 */
    double avg_prec = 0.0, avg_rec = 0.0;
    int effective = 0;
    for (int i = 0; i < LM_CHRF_ORDER; i++) {
        if (s->hyp[i] > 0 && s->ref[i] > 0) {
            avg_prec += (double)s->match[i] / (double)s->hyp[i];
            avg_rec += (double)s->match[i] / (double)s->ref[i];
            effective++;
        }
    }
    if (effective == 0) return 0.0;
    avg_prec /= effective;
    avg_rec /= effective;
    if (avg_prec + avg_rec == 0.0) return 0.0;
    double score = (1 + factor) * avg_prec * avg_rec;
    score /= factor * avg_prec + avg_rec;
    return 100 * score;
}

/* sacrebleu.utils.my_log: log floored for zero precisions */
static double my_log(double x) { return x == 0.0 ? -9999999999.0 : log(x); }

/* BLEU.compute_bleu with smooth_method 'exp' and effective_order False. */
void lm_bleu_score(const lm_bleu_stats *s, lm_bleu_result *out) {
    memset(out, 0, sizeof *out);
    out->sys_len = s->sys_len;
    out->ref_len = s->ref_len;
    out->ratio = s->ref_len ? (double)s->sys_len / (double)s->ref_len : 0.0;
    out->bp = 1.0;
    if (s->sys_len < s->ref_len) out->bp = s->sys_len > 0 ? exp(1 - (double)s->ref_len / (double)s->sys_len) : 0.0;
    bool any = false;
    for (int n = 0; n < LM_BLEU_ORDER; n++) any |= s->correct[n] != 0;
    if (!any) return; /* score 0, precisions 0 */
    double smooth = 1.0;
    for (int n = 0; n < LM_BLEU_ORDER; n++) {
        if (s->total[n] == 0) break; /* this and higher orders stay 0: the score is 0 */
        if (s->correct[n] == 0) {
            smooth *= 2;
            out->precisions[n] = 100. / (smooth * (double)s->total[n]);
        } else {
            out->precisions[n] = 100. * (double)s->correct[n] / (double)s->total[n];
        }
    }
    double sum = 0.0;
    for (int n = 0; n < LM_BLEU_ORDER; n++) sum += my_log(out->precisions[n]);
    out->score = out->bp * exp(sum / LM_BLEU_ORDER);
}

void lm_metrics_print(FILE *f, const lm_bleu_result *b, lm_bleu_tok tok, double chrf, int width) {
    char left[2][160];
    snprintf(left[0], sizeof left[0], "BLEU|nrefs:1|case:mixed|eff:no|tok:%s|smooth:exp|version:%s",
             tok == LM_BLEU_TOK_CHAR ? "char" : "none", LM_SACREBLEU_VERSION);
    snprintf(left[1], sizeof left[1], "chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:%s", LM_SACREBLEU_VERSION);
    int w = (int)(strlen(left[0]) > strlen(left[1]) ? strlen(left[0]) : strlen(left[1]));
    fprintf(f, "%*s = %.*f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)\n", w, left[0],
            width, b->score, b->precisions[0], b->precisions[1], b->precisions[2], b->precisions[3], b->bp, b->ratio,
            (long long)b->sys_len, (long long)b->ref_len);
    fprintf(f, "%*s = %.*f\n", w, left[1], width, chrf);
}
