/*
 * test_capi: the C library as a program outside this repository uses it:
 * built with include/lyricmt.h as its only project header and linked with
 * build/liblyricmt.so alone (Makefile). Translations and scores against the
 * fixtures' transformers goldens (golden_cli.tsv, golden_score.tsv), the
 * input policies, errors with the command's messages, cancel and progress,
 * several threads on one translator, and a bulk job.
 */
#define _DEFAULT_SOURCE
#include <lyricmt.h>

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        if (cond) {                                                      \
            passed++;                                                    \
        } else {                                                         \
            failed++;                                                    \
            fprintf(stderr, "FAIL test_capi:%d: ", __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                \
            fputc('\n', stderr);                                         \
        }                                                                \
    } while (0)

#define MODEL "tests/fixtures/tiny-b"

/* The fixture's golden rows of one convention: fields split on tabs. */
typedef struct {
    char *fields[16];
    int n;
} row;

static int read_rows(const char *path, const char *conv, row *rows, int cap) {
    FILE *f = fopen(path, "r");
    char line[8192];
    int n = 0;
    if (!f) return 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, conv, strlen(conv)) != 0 || line[strlen(conv)] != '\t') continue;
        row *r = &rows[n++];
        r->n = 0;
        for (char *p = line, *tab; r->n < 16; p = tab + 1) {
            tab = strchr(p, '\t');
            size_t len = tab ? (size_t)(tab - p) : strlen(p);
            r->fields[r->n] = malloc(len + 1);
            memcpy(r->fields[r->n], p, len);
            r->fields[r->n++][len] = '\0';
            if (!tab) break;
        }
    }
    fclose(f);
    return n;
}

static void free_rows(row *rows, int n) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows[i].n; k++) free(rows[i].fields[k]);
}

static bool close_to(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b) + 1e-6; }

static void test_errors(void) {
    lyricmt_translator *t = (lyricmt_translator *)1;
    lyricmt_error err = {{0}};
    CHECK(!strncmp(lyricmt_version(), "lyricmt " LYRICMT_VERSION " (", strlen("lyricmt " LYRICMT_VERSION " (")), "version: %s", lyricmt_version());
    int rc = lyricmt_open("/nonexistent/model", NULL, 0, &t, &err);
    CHECK(rc == LYRICMT_ERROR_RUNTIME && t == NULL, "a missing model is a runtime error (%d)", rc);
    CHECK(strstr(err.message, "config.json: missing") && !strchr(err.message, '\n'), "one line naming the file: %s", err.message);
    const char *bad[] = {"num_beams=0"};
    rc = lyricmt_open(MODEL, bad, 1, &t, &err);
    CHECK(rc == LYRICMT_ERROR_USAGE && !strcmp(err.message, "--set: 'num_beams' is 0, outside [1, 1024]"), "num_beams=0: %d %s", rc, err.message);
    const char *malformed[] = {"num_beams"};
    rc = lyricmt_open(MODEL, malformed, 1, &t, &err);
    CHECK(rc == LYRICMT_ERROR_USAGE && strstr(err.message, "KEY=VALUE"), "a setting without '=': %d %s", rc, err.message);
    const char *unknown[] = {"decoding.num_beamz=3"};
    rc = lyricmt_open(MODEL, unknown, 1, &t, &err);
    CHECK(rc == LYRICMT_ERROR_USAGE && strstr(err.message, "unknown key 'decoding.num_beamz'"), "unknown key: %s", err.message);
    const char *lang[] = {"tokenizer.tgt=xx"};
    rc = lyricmt_open(MODEL, lang, 1, &t, &err);
    CHECK(rc == LYRICMT_ERROR_RUNTIME && strstr(err.message, "unknown target language 'xx'"), "unknown language, as the command: %d %s", rc, err.message);
    const char *nofit[] = {"max_length=100000"};
    rc = lyricmt_open(MODEL, nofit, 1, &t, &err);
    CHECK(rc == LYRICMT_ERROR_USAGE && strstr(err.message, "exceeds the model's"), "max_length past the positions: %s", err.message);
    CHECK(lyricmt_open(NULL, NULL, 0, &t, &err) == LYRICMT_ERROR_USAGE, "a NULL model directory");
    CHECK(lyricmt_open(MODEL, NULL, 2, &t, &err) == LYRICMT_ERROR_USAGE, "NULL settings with a count");
    CHECK(lyricmt_open(MODEL, NULL, 0, NULL, &err) == LYRICMT_ERROR_USAGE, "a NULL out");
    CHECK(lyricmt_open("/nonexistent", NULL, 0, &t, NULL) == LYRICMT_ERROR_RUNTIME, "a NULL error is allowed");
    lyricmt_close(NULL);
    lyricmt_results_free(NULL);
}

/* Greedy and beam n-best through the library equal transformers' texts and scores. */
static void test_goldens(lyricmt_translator *t) {
    static const char *const convs[] = {"m2m100", "small100"};
    for (int c = 0; c < 2; c++) {
        row rows[32];
        int n = read_rows(MODEL "/golden_cli.tsv", convs[c], rows, 32);
        const char *lines[32];
        for (int i = 0; i < n; i++) lines[i] = rows[i].fields[1];
        char conv[64];
        snprintf(conv, sizeof conv, "tokenizer.convention=%s", convs[c]);
        const char *greedy_set[] = {conv, "num_beams=1"}, *beam_set[] = {conv, "num_beams=5", "num_return_sequences=3"};
        lyricmt_call greedy = {greedy_set, 2, NULL, NULL, NULL}, beam = {beam_set, 3, NULL, NULL, NULL};
        lyricmt_results *r = NULL, *b = NULL;
        lyricmt_error err = {{0}};
        int rc = lyricmt_translate(t, lines, (size_t)n, &greedy, &r, &err);
        CHECK(rc == LYRICMT_OK && n == 13 && r && r->n == (size_t)n, "%s greedy: %d %s (%d rows)", convs[c], rc, err.message, n);
        rc = lyricmt_translate(t, lines, (size_t)n, &beam, &b, &err);
        CHECK(rc == LYRICMT_OK && b && b->n == (size_t)n, "%s beam: %d %s", convs[c], rc, err.message);
        int texts = 0, scores = 0;
        for (int i = 0; r && b && i < n; i++) {
            const lyricmt_translation *g = &r->translations[i], *x = &b->translations[i];
            texts += g->n_hypotheses == 1 && !strcmp(g->texts[0], rows[i].fields[2]);
            scores += g->n_hypotheses == 1 && close_to(g->scores[0], atof(rows[i].fields[3]), 2e-5);
            for (int h = 0; h < 3; h++) {
                texts += x->n_hypotheses == 3 && !strcmp(x->texts[h], rows[i].fields[4 + 2 * h]);
                scores += x->n_hypotheses == 3 && close_to(x->scores[h], atof(rows[i].fields[5 + 2 * h]), 2e-5);
            }
        }
        CHECK(texts == 4 * n && scores == 4 * n, "%s: %d of %d texts and %d scores equal transformers'", convs[c], texts, 4 * n, scores);
        CHECK(r && r->tokens > n, "%s: generated tokens counted (%ld)", convs[c], r ? r->tokens : 0);
        lyricmt_results_free(r);
        lyricmt_results_free(b);
        free_rows(rows, n);
    }
}

static void test_scores(lyricmt_translator *t) {
    row rows[32];
    int n = read_rows(MODEL "/golden_score.tsv", "m2m100", rows, 32);
    const char *src[32], *tgt[32];
    for (int i = 0; i < n; i++) src[i] = rows[i].fields[1], tgt[i] = rows[i].fields[2];
    const char *set[] = {"tokenizer.convention=m2m100"};
    lyricmt_call call = {set, 1, NULL, NULL, NULL};
    lyricmt_results *r = NULL;
    lyricmt_error err = {{0}};
    int rc = lyricmt_score(t, src, tgt, (size_t)n, &call, &r, &err);
    CHECK(rc == LYRICMT_OK && n >= 14 && r && r->scores && !r->translations, "score: %d %s (%d pairs)", rc, err.message, n);
    int good = 0, cut = 0;
    for (int i = 0; r && i < n; i++) {
        const lyricmt_pair_score *s = &r->scores[i];
        good += close_to(s->score, atof(rows[i].fields[3]), 1e-4) && close_to(s->normalized, atof(rows[i].fields[4]), 1e-4) &&
                s->tokens == atoi(rows[i].fields[5]);
        cut += s->flags == LYRICMT_TOO_LONG;
    }
    CHECK(good == n, "%d of %d pair scores equal transformers' loss", good, n);
    CHECK(cut == 1, "the target cut at the positions is flagged (%d)", cut);
    lyricmt_results_free(r);
    CHECK(lyricmt_score(t, src, NULL, 1, NULL, &r, &err) == LYRICMT_ERROR_USAGE && r == NULL, "NULL targets");
    free_rows(rows, n);
}

static long progress_lines;
static void on_progress(void *ctx, size_t lines, long tokens) {
    (void)tokens;
    *(long *)ctx += (long)lines;
}

static void test_policies_and_calls(lyricmt_translator *t) {
    const char *lines[] = {"money on my mind", "", "  \t ", "\xff\xfe bad bytes", "never stop"};
    const char *set[] = {"num_beams=1"};
    progress_lines = 0;
    lyricmt_call call = {set, 1, NULL, on_progress, &progress_lines};
    lyricmt_results *r = NULL;
    lyricmt_error err = {{0}};
    int rc = lyricmt_translate(t, lines, 5, &call, &r, &err);
    CHECK(rc == LYRICMT_OK && r && r->n == 5, "mixed lines: %d %s", rc, err.message);
    if (r) {
        CHECK(r->translations[1].n_hypotheses == 0 && r->translations[1].flags == LYRICMT_BLANK, "an empty line: no model, flagged blank");
        CHECK(r->translations[2].n_hypotheses == 0 && r->translations[2].flags == LYRICMT_BLANK, "a whitespace line: flagged blank");
        CHECK(r->translations[3].n_hypotheses == 1 && r->translations[3].flags == LYRICMT_INVALID_UTF8, "invalid UTF-8: repaired and translated");
        CHECK(r->translations[0].n_hypotheses == 1 && r->translations[0].flags == 0 && r->translations[0].texts[0][0], "a plain line");
    }
    CHECK(progress_lines == 3, "progress counted the 3 lines the model ran (%ld)", progress_lines);
    lyricmt_results_free(r);

    const char *fail_utf8[] = {"num_beams=1", "input.bad_utf8=fail"};
    lyricmt_call strict = {fail_utf8, 2, NULL, NULL, NULL};
    rc = lyricmt_translate(t, lines, 5, &strict, &r, &err);
    CHECK(rc == LYRICMT_ERROR_RUNTIME && r == NULL && !strcmp(err.message, "line 4: invalid UTF-8 or NUL byte (input.bad_utf8 is fail)"),
          "input.bad_utf8=fail: %d %s", rc, err.message);
    const char *skip_utf8[] = {"num_beams=1", "input.bad_utf8=skip"};
    lyricmt_call skip = {skip_utf8, 2, NULL, NULL, NULL};
    rc = lyricmt_translate(t, lines, 5, &skip, &r, &err);
    CHECK(rc == LYRICMT_OK && r->translations[3].n_hypotheses == 0 && r->translations[3].flags == (LYRICMT_INVALID_UTF8 | LYRICMT_SKIPPED), "input.bad_utf8=skip");
    lyricmt_results_free(r);

    char *longline = malloc(400 * 6 + 1);
    for (int i = 0; i < 400; i++) memcpy(longline + 6 * i, "money ", 6);
    longline[400 * 6] = '\0';
    const char *one[] = {longline};
    rc = lyricmt_translate(t, one, 1, &call, &r, &err);
    CHECK(rc == LYRICMT_OK && r->translations[0].flags == LYRICMT_TOO_LONG && r->translations[0].n_hypotheses == 1, "a long line: truncated");
    lyricmt_results_free(r);
    const char *fail_long[] = {"input.too_long=fail"};
    lyricmt_call strict_len = {fail_long, 1, NULL, NULL, NULL};
    rc = lyricmt_translate(t, one, 1, &strict_len, &r, &err);
    CHECK(rc == LYRICMT_ERROR_RUNTIME && strstr(err.message, "line 1: longer than the model's"), "input.too_long=fail: %s", err.message);
    free(longline);

    /* a call's settings last for that call only */
    const char *nbest[] = {"num_return_sequences=2"};
    lyricmt_call two = {nbest, 1, NULL, NULL, NULL};
    rc = lyricmt_translate(t, lines, 1, &two, &r, &err);
    CHECK(rc == LYRICMT_OK && r->translations[0].n_hypotheses == 2, "n-best 2 for one call");
    lyricmt_results_free(r);
    rc = lyricmt_translate(t, lines, 1, NULL, &r, &err);
    CHECK(rc == LYRICMT_OK && r->translations[0].n_hypotheses == 1, "then 1 again without it");
    lyricmt_results_free(r);
    const char *opened[] = {"precision=int8"};
    lyricmt_call late = {opened, 1, NULL, NULL, NULL};
    rc = lyricmt_translate(t, lines, 1, &late, &r, &err);
    CHECK(rc == LYRICMT_ERROR_USAGE && strstr(err.message, "chosen when the model is opened"), "precision in a call: %s", err.message);
    const char *sample_beam[] = {"do_sample=true", "num_beams=3"};
    lyricmt_call sb = {sample_beam, 2, NULL, NULL, NULL};
    rc = lyricmt_translate(t, lines, 1, &sb, &r, &err);
    CHECK(rc != LYRICMT_OK && r == NULL && err.message[0], "beam sampling refused: %d %s", rc, err.message);

    volatile int stop = 1;
    lyricmt_call cancelled = {NULL, 0, &stop, NULL, NULL};
    rc = lyricmt_translate(t, lines, 5, &cancelled, &r, &err);
    CHECK(rc == LYRICMT_STOPPED && r == NULL, "a set cancel flag stops the call (%d)", rc);
    const char *with_null[] = {"a", NULL};
    CHECK(lyricmt_translate(t, with_null, 2, NULL, &r, &err) == LYRICMT_ERROR_USAGE && strstr(err.message, "lines[1] is NULL"), "a NULL line");
    CHECK(lyricmt_translate(t, NULL, 3, NULL, &r, &err) == LYRICMT_ERROR_USAGE, "NULL lines");
    CHECK(lyricmt_translate(t, lines, 1, NULL, NULL, &err) == LYRICMT_ERROR_USAGE, "a NULL out");
    CHECK(lyricmt_translate(NULL, lines, 1, NULL, &r, &err) == LYRICMT_ERROR_USAGE, "a NULL translator");
    rc = lyricmt_translate(t, lines, 0, NULL, &r, &err);
    CHECK(rc == LYRICMT_OK && r && r->n == 0, "no lines");
    lyricmt_results_free(r);
}

/* Several threads on one translator: each gets what a call alone gets. */
typedef struct {
    lyricmt_translator *t;
    const char *const *lines;
    int n;
    lyricmt_results *r;
    int rc;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    const char *set[] = {"num_beams=2"};
    lyricmt_call call = {set, 1, NULL, NULL, NULL};
    w->rc = lyricmt_translate(w->t, w->lines, (size_t)w->n, &call, &w->r, NULL);
    return NULL;
}

static void test_threads(lyricmt_translator *t) {
    static const char *const lines[] = {"I got money on my mind", "Cold nights in the city", "Fire on the mic", "never stop the grind",
                                        "we ride tonight", "gold chain light"};
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){t, lines, 6, NULL, -1};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    int same = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 6 && w[i].rc == 0 && w[0].rc == 0; k++)
            same += !strcmp(w[i].r->translations[k].texts[0], w[0].r->translations[k].texts[0]) &&
                    w[i].r->translations[k].scores[0] == w[0].r->translations[k].scores[0];
    CHECK(same == 24, "4 threads at once on one translator: the same translations (%d of 24)", same);
    for (int i = 0; i < 4; i++) lyricmt_results_free(w[i].r);
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_job(lyricmt_translator *t) {
    char dir[] = "/tmp/test_capi.XXXXXX", in[128], out[128];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(in, sizeof in, "%s/in.txt", dir);
    snprintf(out, sizeof out, "%s/out.tsv", dir);
    write_file(in, "money on my mind\n\nnever stop\n");
    const char *inputs[] = {in};
    const char *set[] = {"num_beams=1", "output.format=tsv"};
    lyricmt_call call = {set, 2, NULL, NULL, NULL};
    lyricmt_job job = {inputs, 1, out, NULL, 0, 0, LYRICMT_PROGRESS_NONE, 0};
    lyricmt_error err = {{0}};
    int rc = lyricmt_run_job(t, &job, &call, &err);
    char *got = read_file(out);
    CHECK(rc == LYRICMT_OK && got, "a bulk job: %d %s", rc, err.message);
    const char *lines[] = {"money on my mind", "never stop"};
    lyricmt_results *r = NULL;
    lyricmt_translate(t, lines, 2, &call, &r, &err);
    char want[1024];
    if (r)
        snprintf(want, sizeof want, "1\t%s\t%.4f\n2\t\t\n3\t%s\t%.4f\n", r->translations[0].texts[0], round(r->translations[0].scores[0] * 1e4) / 1e4,
                 r->translations[1].texts[0], round(r->translations[1].scores[0] * 1e4) / 1e4);
    CHECK(r && got && !strcmp(got, want), "the job's records are the library's translations:\n%s---\n%s", got ? got : "", r ? want : "");
    lyricmt_results_free(r);
    free(got);
    job.output = in;
    rc = lyricmt_run_job(t, &job, &call, &err);
    got = read_file(in);
    CHECK(rc == LYRICMT_ERROR_RUNTIME && strstr(err.message, "in.txt") && got && !strcmp(got, "money on my mind\n\nnever stop\n"),
          "an output that is the input is refused, the input untouched: %d %s", rc, err.message);
    free(got);
    /* a scoring job: TSV pairs in, lyricmt score's records out */
    char pairs[128], scored[128];
    snprintf(pairs, sizeof pairs, "%s/pairs.tsv", dir);
    snprintf(scored, sizeof scored, "%s/scored.tsv", dir);
    write_file(pairs, "money on my mind\t돈 생각\nnever stop\t\n");
    const char *pair_inputs[] = {pairs};
    lyricmt_job scoring = {pair_inputs, 1, scored, NULL, 1, 0, LYRICMT_PROGRESS_NONE, 0};
    rc = lyricmt_run_job(t, &scoring, NULL, &err);
    got = read_file(scored);
    const char *src[] = {"money on my mind", "never stop"}, *tgt[] = {"돈 생각", ""};
    lyricmt_score(t, src, tgt, 2, NULL, &r, &err);
    if (r)
        snprintf(want, sizeof want, "1\t%.6f\t%.6f\t%d\n2\t%.6f\t%.6f\t%d\n", r->scores[0].score, r->scores[0].normalized,
                 r->scores[0].tokens, r->scores[1].score, r->scores[1].normalized, r->scores[1].tokens);
    CHECK(rc == LYRICMT_OK && r && got && !strcmp(got, want), "a scoring job writes lyricmt_score's numbers: %d %s\n%s---\n%s", rc, err.message,
          got ? got : "", r ? want : "");
    lyricmt_results_free(r);
    free(got);
    unlink(pairs);
    unlink(scored);
    job.output = out;
    const char *text_score[] = {"input.format=text"};
    lyricmt_call bad = {text_score, 1, NULL, NULL, NULL};
    job.score = 1;
    rc = lyricmt_run_job(t, &job, &bad, &err);
    CHECK(rc == LYRICMT_ERROR_USAGE && strstr(err.message, "score reads and writes tsv or jsonl"), "the job's rules: %s", err.message);
    job.score = 0;
    job.n_inputs = 0;
    CHECK(lyricmt_run_job(t, &job, &call, &err) == LYRICMT_ERROR_USAGE, "a job without inputs");
    unlink(in);
    unlink(out);
    rmdir(dir);
}

int main(void) {
    test_errors();
    lyricmt_translator *t = NULL;
    lyricmt_error err = {{0}};
    const char *set[] = {"threads=2"};
    int rc = lyricmt_open(MODEL, set, 1, &t, &err);
    CHECK(rc == LYRICMT_OK && t, "open %s: %d %s", MODEL, rc, err.message);
    if (t) {
        test_goldens(t);
        test_scores(t);
        test_policies_and_calls(t);
        test_threads(t);
        test_job(t);
        lyricmt_close(t);
    }
    printf("test_capi: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
