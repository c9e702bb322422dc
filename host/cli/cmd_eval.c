/* cmd_eval: `lyricmt eval` (chrF and BLEU of a file of translations) and
 * `lyricmt compare` (the same lines through several models, side by side):
 * argument parsing and reporting; the metrics are tools/metrics.c, the
 * tables tools/compare.c. */
#include "cli/cli.h"
#include "base/outfile.h"
#include "config/engine_flags.h"
#include "model/model_files.h"
#include "tools/compare.h"
#include "tools/lines.h"
#include "tools/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *eval_help =
    "usage: lyricmt eval --hyp FILE --ref FILE [--tokenize char|none] [-w N]\n"
    "\n"
    "Corpus chrF and BLEU of the hypotheses (one per line) against the references\n"
    "(line for line), computed as sacreBLEU 2.6.0 computes them and printed as its\n"
    "command line prints `sacrebleu REF -i HYP -m bleu chrf --tokenize char -f text`:\n"
    "chrF with its defaults (character 6-grams, beta 2, whitespace ignored); BLEU\n"
    "with 'exp' smoothing, on characters (--tokenize char, the default: for Korean)\n"
    "or on whitespace-separated words (--tokenize none). Trailing whitespace of each\n"
    "line is dropped, as sacreBLEU does.\n"
    "\n"
    "  --hyp FILE       hypotheses, UTF-8, one per line\n"
    "  --ref FILE       references, UTF-8, as many lines as --hyp\n"
    "  --tokenize T     char (default) or none: BLEU's tokens\n"
    "  -w, --width N    decimals of the scores (default 1, as sacreBLEU)\n"
    "\n"
    "Exit codes: 0 ok, 1 unreadable file, invalid UTF-8 or different line counts, 2 usage error.\n";

static const char *compare_help =
    "usage: lyricmt compare --model DIR --model DIR [--model DIR ...] -i FILE [--ref FILE] [options]\n"
    "\n"
    "Translates the lines of FILE with each model in turn (one model in memory at a\n"
    "time) and prints a side-by-side Markdown table: one row per line, one column per\n"
    "model, the reference when given, the characters that differ from the reference\n"
    "(or from the first model's output) marked. With --ref, each model's corpus chrF\n"
    "and BLEU (as `lyricmt eval` computes them) follow the table.\n"
    "\n"
    "  --model DIR        a model directory (repeat for each model, at least two)\n"
    "  -i FILE            source lines, UTF-8\n"
    "  --ref FILE         reference translations, line for line\n"
    "  -o FILE            write the Markdown table to FILE instead of stdout\n"
    "  --html FILE        also write a self-contained HTML page\n"
    "  --tokenize T       BLEU's tokens: char (default) or none\n"
    "  --beam N, --max-length N, --threads N, --config FILE.yaml, --set KEY=VALUE\n"
    "                     decoding and engine settings, as for translate, for every model\n"
    "\n"
    "Exit codes: 0 ok, 1 runtime error (a model, a file, I/O), 2 usage error.\n";

static int parse_tok(const char *v, lm_bleu_tok *tok) {
    if (!strcmp(v, "char")) *tok = LM_BLEU_TOK_CHAR;
    else if (!strcmp(v, "none")) *tok = LM_BLEU_TOK_NONE;
    else return -1;
    return 0;
}

/* Both files must pair up line for line, as sacreBLEU requires. */
static int check_counts(const char *a, const lm_lines *la, const char *b, const lm_lines *lb) {
    if (la->n == lb->n) return 0;
    fprintf(stderr, "lyricmt: %s has %d lines but %s has %d: they must pair up line for line\n", a, la->n, b, lb->n);
    return -1;
}

int lm_cmd_eval(int argc, char **argv) {
    const char *hyp = NULL, *ref = NULL;
    lm_bleu_tok tok = LM_BLEU_TOK_CHAR;
    lm_cli_seen seen = {0};
    int width = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(eval_help, stdout); return 0; }
        if (i + 1 >= argc) return lm_cli_usage("eval", "option '%s' needs a value or is unknown", a);
        const char *v = argv[++i];
        if (lm_cli_repeated(&seen, "eval", a, "")) return LM_EXIT_USAGE;
        if (!strcmp(a, "--hyp")) hyp = v;
        else if (!strcmp(a, "--ref")) ref = v;
        else if (!strcmp(a, "--tokenize")) { if (parse_tok(v, &tok) != 0) return lm_cli_usage("eval", "--tokenize must be char or none, got '%s'", v); }
        else if (!strcmp(a, "-w") || !strcmp(a, "--width")) {
            char *end;
            errno = 0;
            long w = strtol(v, &end, 10);
            if (errno || !*v || *end || w < 0 || w > 17) return lm_cli_usage("eval", "--width must be an integer from 0 to 17, got '%s'", v);
            width = (int)w;
        } else return lm_cli_usage("eval", "unknown option '%s'", a);
    }
    if (!hyp || !ref || !hyp[0] || !ref[0]) return lm_cli_usage("eval", "%s", "needs --hyp FILE and --ref FILE");
    lm_lines h, r;
    lm_err err = {{0}};
    if (lm_lines_load(hyp, true, &h, &err) != 0) { fprintf(stderr, "lyricmt: %s\n", err.msg); return LM_EXIT_RUNTIME; }
    if (lm_lines_load(ref, true, &r, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        lm_lines_free(&h);
        return LM_EXIT_RUNTIME;
    }
    int rc = check_counts(hyp, &h, ref, &r) == 0 ? 0 : LM_EXIT_RUNTIME;
    if (rc == 0 && h.n == 0) { /* as sacreBLEU: a score of nothing is no score */
        fprintf(stderr, "lyricmt: %s and %s have no lines to score\n", hyp, ref);
        rc = LM_EXIT_RUNTIME;
    }
    lm_chrf_stats cs;
    lm_bleu_stats bs;
    memset(&cs, 0, sizeof cs);
    memset(&bs, 0, sizeof bs);
    for (int i = 0; rc == 0 && i < h.n; i++) {
        size_t hl = strlen(h.line[i]), rl = strlen(r.line[i]);
        if (lm_chrf_add(&cs, h.line[i], hl, r.line[i], rl, &err) != 0 || lm_bleu_add(&bs, tok, h.line[i], hl, r.line[i], rl, &err) != 0) {
            fprintf(stderr, "lyricmt: %s\n", err.msg);
            rc = LM_EXIT_RUNTIME;
        }
    }
    if (rc == 0) {
        lm_bleu_result b;
        lm_bleu_score(&bs, &b);
        lm_metrics_print(stdout, &b, tok, lm_chrf_score(&cs), width);
    }
    lm_lines_free(&h);
    lm_lines_free(&r);
    return rc;
}

int lm_cmd_compare(int argc, char **argv) {
    const char **models = calloc((size_t)argc, sizeof *models);
    const char *src = NULL, *ref = NULL, *out = NULL, *html = NULL;
    lm_comparison c = {.tok = LM_BLEU_TOK_CHAR};
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    lm_err err = {{0}};
    lm_lines s = {0}, r = {0};
    lm_protect keep = {0};
    lm_cli_seen seen = {0};
    lm_outfile outs[2];
    int rc = LM_EXIT_USAGE, n_outs = 0;
    if (!models) return LM_EXIT_RUNTIME;
    if (lm_engine_flags_config(&engine, argc, argv, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        goto done;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(compare_help, stdout); rc = 0; goto done; }
        if (i + 1 >= argc) { lm_cli_usage("compare", "option '%s' needs a value or is unknown", a); goto done; }
        const char *v = argv[++i];
        if (!v[0]) { lm_cli_usage("compare", "option '%s' needs a non-empty value", a); goto done; }
        int taken = lm_engine_flag(&engine, LM_FLAGS_COMPARE, a, v, &err);
        if (taken == -2) { lm_cli_usage("compare", "%s", err.msg); goto done; }
        if (taken < 0) { fprintf(stderr, "lyricmt: %s\n", err.msg); goto done; }
        if (taken) continue;
        if (lm_cli_repeated(&seen, "compare", a, "--model")) goto done;
        if (!strcmp(a, "--model")) models[c.n_models++] = v;
        else if (!strcmp(a, "-i")) src = v;
        else if (!strcmp(a, "--ref")) ref = v;
        else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--tokenize")) {
            if (parse_tok(v, &c.tok) != 0) { lm_cli_usage("compare", "--tokenize must be char or none, got '%s'", v); goto done; }
        } else { lm_cli_usage("compare", "unknown option '%s'", a); goto done; }
    }
    if (c.n_models < 2) { lm_cli_usage("compare", "%s", "needs at least two --model DIR"); goto done; }
    if (!src) { lm_cli_usage("compare", "%s", "needs -i FILE (the source lines)"); goto done; }
    if (out && html && !strcmp(out, html)) { lm_cli_usage("compare", "-o and --html name the same file '%s'", out); goto done; }
    rc = LM_EXIT_RUNTIME;
    if (lm_lines_load(src, false, &s, &err) != 0 || (ref && lm_lines_load(ref, true, &r, &err) != 0)) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        goto done;
    }
    if (ref && check_counts(src, &s, ref, &r) != 0) goto done;
    c.models = models;
    c.n_lines = s.n;
    c.sources = (const char *const *)s.line;
    c.refs = ref ? (const char *const *)r.line : NULL;
    /* the outputs are opened (and refused) before the models run, and are
     * renamed into place together once both tables are complete */
    char label[4200];
    snprintf(label, sizeof label, "the input %s", src);
    if (lm_protect_path(&keep, src, label, &err) != 0) goto failed;
    snprintf(label, sizeof label, "the references %s", ref ? ref : "");
    if (ref && lm_protect_path(&keep, ref, label, &err) != 0) goto failed;
    for (int m = 0; m < c.n_models; m++)
        if (lm_model_protect(&keep, models[m], &err) != 0) goto failed;
    lm_outfile_on_signals();
    if ((html && lm_outfile_open(&outs[n_outs++], html, &keep, &err) != 0) ||
        lm_outfile_open(&outs[n_outs++], out ? out : "-", &keep, &err) != 0)
        goto failed;
    if (lm_compare_run(&c, &engine, &err) != 0 || (html && lm_compare_html(&c, outs[0].f, &err) != 0) ||
        lm_compare_markdown(&c, outs[n_outs - 1].f, &err) != 0 || lm_outfile_commit(outs, n_outs, &err) != 0)
        goto failed;
    n_outs = 0;
    rc = 0;
    goto done;
failed:
    fprintf(stderr, "lyricmt: %s\n", err.msg);
done:
    for (int k = 0; k < n_outs; k++) lm_outfile_abandon(&outs[k]);
    lm_protect_free(&keep);
    lm_compare_free(&c);
    lm_lines_free(&s);
    lm_lines_free(&r);
    free(models);
    return rc;
}
