/* compare: see compare.h. */
#include "tools/compare.h"
#include "engine/augment.h"

#include <stdlib.h>
#include <string.h>

int lm_compare_run(lm_comparison *c, const lm_engine_config *engine, lm_err *err) {
    c->out = lm_calloc((size_t)c->n_models, sizeof *c->out, err);
    c->chrf = lm_calloc((size_t)c->n_models, sizeof *c->chrf, err);
    c->bleu = lm_calloc((size_t)c->n_models, sizeof *c->bleu, err);
    if (!c->out || !c->chrf || !c->bleu) return -1;
    for (int m = 0; m < c->n_models; m++) {
        lm_translator t;
        if (lm_translator_open(&t, c->models[m], engine, err) != 0) return -1;
        if (lm_augment_wanted(engine)) lm_augment_attach(&t); /* a config's augmentation settings apply here too */
        c->out[m] = lm_calloc((size_t)c->n_lines + 1, sizeof *c->out[m], err);
        int rc = c->out[m] ? lm_translator_translate(&t, c->sources, c->n_lines, c->out[m], err) : -1;
        lm_translator_close(&t);
        if (rc != 0) return lm_fail_prefix(err, "%s: ", c->models[m]);
        if (!c->refs) continue;
        lm_chrf_stats cs;
        lm_bleu_stats bs;
        memset(&cs, 0, sizeof cs);
        memset(&bs, 0, sizeof bs);
        for (int i = 0; i < c->n_lines; i++) {
            const char *h = c->out[m][i], *r = c->refs[i];
            if (lm_chrf_add(&cs, h, strlen(h), r, strlen(r), err) != 0 ||
                lm_bleu_add(&bs, c->tok, h, strlen(h), r, strlen(r), err) != 0)
                return -1;
        }
        c->chrf[m] = lm_chrf_score(&cs);
        lm_bleu_score(&bs, &c->bleu[m]);
    }
    return 0;
}

void lm_compare_free(lm_comparison *c) {
    for (int m = 0; c->out && m < c->n_models; m++) {
        for (int i = 0; c->out[m] && i < c->n_lines; i++) free(c->out[m][i]);
        free(c->out[m]);
    }
    free(c->out);
    free(c->chrf);
    free(c->bleu);
    c->out = NULL;
    c->chrf = NULL;
    c->bleu = NULL;
}

/* ---- which characters differ ---- */

/* Lines longer than this (in characters, product of both) are marked whole
 * when they differ: the table of a longest common subsequence grows with it. */
#define DIFF_MAX_CELLS (4u << 20)

/* Byte offsets of the characters of s; returns their count (n + 1 offsets). */
static int char_offsets(const char *s, size_t len, size_t **off) {
    *off = malloc((len + 1) * sizeof **off);
    if (!*off) return -1;
    int n = 0;
    for (size_t i = 0, k; i < len; i += k) {
        k = lm_utf8_seq_len(s, len, i);
        if (!k) k = 1;
        (*off)[n++] = i;
    }
    (*off)[n] = len;
    return n;
}

static bool same_char(const char *a, const size_t *ao, int i, const char *b, const size_t *bo, int j) {
    size_t la = ao[i + 1] - ao[i], lb = bo[j + 1] - bo[j];
    return la == lb && memcmp(a + ao[i], b + bo[j], la) == 0;
}

/* mark[i] = true for each character of hyp outside a longest common
 * subsequence with base; NULL when out of memory. */
static bool *diff_marks(const char *hyp, const char *base, size_t **hoff, int *nh) {
    size_t *bo = NULL;
    int n = char_offsets(hyp, strlen(hyp), hoff), m = char_offsets(base, strlen(base), &bo);
    bool *mark = n >= 0 ? calloc((size_t)n + 1, sizeof *mark) : NULL;
    *nh = n;
    if (!mark || m < 0) { free(bo); free(mark); return NULL; }
    if ((uint64_t)(n + 1) * (uint64_t)(m + 1) > DIFF_MAX_CELLS) {
        bool differ = strcmp(hyp, base) != 0;
        for (int i = 0; i < n; i++) mark[i] = differ;
        free(bo);
        return mark;
    }
    /* L[i][j]: LCS length of hyp[i..] and base[j..] */
    uint32_t *L = calloc((size_t)(n + 1) * (size_t)(m + 1), sizeof *L);
    if (!L) { free(bo); free(mark); return NULL; }
#define AT(i, j) L[(size_t)(i) * (size_t)(m + 1) + (size_t)(j)]
    for (int i = n - 1; i >= 0; i--)
        for (int j = m - 1; j >= 0; j--)
            AT(i, j) = same_char(hyp, *hoff, i, base, bo, j) ? AT(i + 1, j + 1) + 1
                       : AT(i + 1, j) > AT(i, j + 1) ? AT(i + 1, j) : AT(i, j + 1);
    int i = 0, j = 0;
    while (i < n) {
        if (j < m && same_char(hyp, *hoff, i, base, bo, j)) { i++; j++; }
        else if (j < m && AT(i, j + 1) >= AT(i + 1, j)) j++;
        else mark[i++] = true;
    }
#undef AT
    free(L);
    free(bo);
    return mark;
}

/* ---- rendering ---- */

typedef void (*escape_fn)(FILE *f, const char *s, size_t n);

/* The characters both tables show by name, "{U+202E}", instead of writing
 * them: bidirectional controls (an RLO shows the rest of a cell reversed, and
 * in a terminal or an editor the rest of a Markdown row, so a table could
 * seem to hold other text than it does), C1 controls and the line and
 * paragraph separators (U+0085, U+2028 and U+2029 end lines in some
 * viewers). Joiners (emoji sequences, scripts that need them) are kept.
 * Returns the code point, or 0 for a character written as it is; *len is
 * the character's length in bytes. */
static uint32_t shown_by_name(const char *s, size_t n, size_t i, size_t *len) {
    size_t k = lm_utf8_seq_len(s, n, i);
    const unsigned char *u = (const unsigned char *)s + i;
    *len = k ? k : 1;
    uint32_t cp = k == 2 ? (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f)
                : k == 3 ? (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f) : 0;
    bool hidden = (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
                  (cp >= 0x2066 && cp <= 0x2069);
    return hidden ? cp : 0;
}

/* Markdown: the characters that would end a cell or start markup are
 * backslash-escaped; control characters (a stray CR or tab) become spaces,
 * since a line break would end the row. */
static void md_escape(FILE *f, const char *s, size_t n) {
    for (size_t i = 0, k; i < n; i += k) {
        uint32_t cp = shown_by_name(s, n, i, &k);
        if (cp) fprintf(f, "{U+%04X}", (unsigned)cp);
        else if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) fputc(' ', f);
        else {
            if (k == 1 && strchr("\\|`*_[]<>~#&", s[i])) fputc('\\', f);
            fwrite(s + i, 1, k, f);
        }
    }
}

static void html_escape(FILE *f, const char *s, size_t n) {
    for (size_t i = 0, k; i < n; i += k) {
        uint32_t cp = shown_by_name(s, n, i, &k);
        if (cp) {
            fprintf(f, "{U+%04X}", (unsigned)cp);
            continue;
        }
        switch (s[i]) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fwrite(s + i, 1, k, f);
        }
    }
}

/* hyp with the characters that differ from base between open and close
 * (Markdown never opens or closes a mark on whitespace, which it would not
 * render). */
static void put_marked(FILE *f, const char *hyp, const char *base, escape_fn esc, const char *open, const char *close,
                       bool split_on_space) {
    size_t *off = NULL;
    int n = 0;
    bool *mark = base ? diff_marks(hyp, base, &off, &n) : NULL;
    if (!mark) { esc(f, hyp, strlen(hyp)); free(off); return; }
    for (int i = 0; i < n;) {
        bool space = split_on_space && (hyp[off[i]] == ' ' || hyp[off[i]] == '\t');
        int j = i + 1;
        while (j < n && mark[j] == mark[i] && !(split_on_space && (hyp[off[j]] == ' ' || hyp[off[j]] == '\t') != space)) j++;
        bool on = mark[i] && !space;
        if (on) fputs(open, f);
        esc(f, hyp + off[i], off[j] - off[i]);
        if (on) fputs(close, f);
        i = j;
    }
    free(mark);
    free(off);
}

static int finish(FILE *f, lm_err *err) {
    if (fflush(f) != 0 || ferror(f)) return lm_fail(err, "error writing the comparison");
    return 0;
}

int lm_compare_markdown(const lm_comparison *c, FILE *f, lm_err *err) {
    fprintf(f, "| # | source |%s", c->refs ? " reference |" : "");
    for (int m = 0; m < c->n_models; m++) {
        fputc(' ', f);
        md_escape(f, c->models[m], strlen(c->models[m]));
        fputs(" |", f);
    }
    fprintf(f, "\n|---:|---|%s", c->refs ? "---|" : "");
    for (int m = 0; m < c->n_models; m++) fputs("---|", f);
    fputc('\n', f);
    for (int i = 0; i < c->n_lines; i++) {
        fprintf(f, "| %d | ", i + 1);
        md_escape(f, c->sources[i], strlen(c->sources[i]));
        fputs(" |", f);
        if (c->refs) {
            fputc(' ', f);
            md_escape(f, c->refs[i], strlen(c->refs[i]));
            fputs(" |", f);
        }
        const char *base = c->refs ? c->refs[i] : c->out[0][i];
        for (int m = 0; m < c->n_models; m++) {
            fputc(' ', f);
            put_marked(f, c->out[m][i], c->refs || m > 0 ? base : NULL, md_escape, "**", "**", true);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    fprintf(f, "\nIn bold: characters that differ from %s.\n", c->refs ? "the reference" : "the first model's output");
    if (c->refs) {
        fprintf(f, "\n| model | chrF2 | BLEU (tok:%s) |\n|---|---:|---:|\n", c->tok == LM_BLEU_TOK_CHAR ? "char" : "none");
        for (int m = 0; m < c->n_models; m++) {
            fputs("| ", f);
            md_escape(f, c->models[m], strlen(c->models[m]));
            fprintf(f, " | %.1f | %.1f |\n", c->chrf[m], c->bleu[m].score);
        }
        fprintf(f, "\nCorpus scores over %d lines, computed as sacreBLEU %s computes them (chrF: nc:6 nw:0 space:no; "
                   "BLEU: smooth:exp).\n", c->n_lines, LM_SACREBLEU_VERSION);
    }
    return finish(f, err);
}

int lm_compare_html(const lm_comparison *c, FILE *f, lm_err *err) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>lyricmt compare</title>\n<style>\n"
          "body { font-family: sans-serif; margin: 2em; }\n"
          "table { border-collapse: collapse; margin-bottom: 2em; }\n"
          "th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }\n"
          "td.num { text-align: right; color: #666; }\n"
          "tr.differ td.model { background: #fff8e1; }\n"
          "mark { background: #ffcc80; }\n"
          "</style>\n</head>\n<body>\n<h1>lyricmt compare</h1>\n", f);
    fprintf(f, "<p>Highlighted: characters that differ from %s. Rows where the models disagree are shaded.</p>\n",
            c->refs ? "the reference" : "the first model&#39;s output");
    if (c->refs) {
        fprintf(f, "<table>\n<tr><th>model</th><th>chrF2</th><th>BLEU (tok:%s)</th></tr>\n",
                c->tok == LM_BLEU_TOK_CHAR ? "char" : "none");
        for (int m = 0; m < c->n_models; m++) {
            fputs("<tr><td>", f);
            html_escape(f, c->models[m], strlen(c->models[m]));
            fprintf(f, "</td><td class=\"num\">%.1f</td><td class=\"num\">%.1f</td></tr>\n", c->chrf[m], c->bleu[m].score);
        }
        fprintf(f, "</table>\n<p>Corpus scores over %d lines, computed as sacreBLEU %s computes them.</p>\n", c->n_lines,
                LM_SACREBLEU_VERSION);
    }
    fputs("<table>\n<tr><th>#</th><th>source</th>", f);
    if (c->refs) fputs("<th>reference</th>", f);
    for (int m = 0; m < c->n_models; m++) {
        fputs("<th>", f);
        html_escape(f, c->models[m], strlen(c->models[m]));
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int i = 0; i < c->n_lines; i++) {
        bool differ = false;
        for (int m = 1; m < c->n_models; m++) differ |= strcmp(c->out[m][i], c->out[0][i]) != 0;
        fprintf(f, "<tr%s><td class=\"num\">%d</td><td>", differ ? " class=\"differ\"" : "", i + 1);
        html_escape(f, c->sources[i], strlen(c->sources[i]));
        fputs("</td>", f);
        if (c->refs) {
            fputs("<td>", f);
            html_escape(f, c->refs[i], strlen(c->refs[i]));
            fputs("</td>", f);
        }
        const char *base = c->refs ? c->refs[i] : c->out[0][i];
        for (int m = 0; m < c->n_models; m++) {
            fputs("<td class=\"model\">", f);
            put_marked(f, c->out[m][i], c->refs || m > 0 ? base : NULL, html_escape, "<mark>", "</mark>", false);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</body>\n</html>\n", f);
    return finish(f, err);
}
