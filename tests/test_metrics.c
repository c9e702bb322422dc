/*
 * test_metrics: metrics.c against sacreBLEU's own numbers
 * (tests/fixtures/sacrebleu/expected.json, recorded by
 * tests/make_sacrebleu_fixtures.py): for every case and both BLEU tokenizers,
 * the raw chrF and BLEU scores within 1e-9 (relative), BLEU's precisions,
 * brevity penalty and lengths, and the text its command line printed; the
 * whitespace set against Python's str.isspace().
 */
#include "tools/lines.h"
#include "tools/metrics.h"
#include "testing.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIR "tests/fixtures/sacrebleu"
#define RTOL 1e-9

static double worst;

static bool close_to(double got, double want) {
    double err = fabs(got - want) / (fabs(want) > 1 ? fabs(want) : 1);
    if (err > worst) worst = err;
    return err <= RTOL;
}

static const cJSON *item(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static void check_case(const char *name, const cJSON *c) {
    char hp[512], rp[512];
    snprintf(hp, sizeof hp, DIR "/%s.hyp", name);
    snprintf(rp, sizeof rp, DIR "/%s.ref", name);
    lm_lines h, r;
    lm_err err = {{0}};
    if (lm_lines_load(hp, true, &h, &err) != 0 || lm_lines_load(rp, true, &r, &err) != 0) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    CHECK(h.n == item(c, "lines")->valueint && r.n == h.n, "%s: read %d and %d lines, sacreBLEU %d", name, h.n, r.n,
          item(c, "lines")->valueint);
    lm_chrf_stats cs;
    memset(&cs, 0, sizeof cs);
    for (int i = 0; i < h.n && i < r.n; i++) lm_chrf_add(&cs, h.line[i], strlen(h.line[i]), r.line[i], strlen(r.line[i]), &err);
    double chrf = lm_chrf_score(&cs), want = item(c, "chrf")->valuedouble;
    CHECK(close_to(chrf, want), "%s: chrF %.12f, sacreBLEU %.12f", name, chrf, want);
    for (int t = 0; t < 2; t++) {
        const char *tname = t == 0 ? "char" : "none";
        const cJSON *e = item(c, tname);
        lm_bleu_stats bs;
        memset(&bs, 0, sizeof bs);
        for (int i = 0; i < h.n && i < r.n; i++)
            lm_bleu_add(&bs, t == 0 ? LM_BLEU_TOK_CHAR : LM_BLEU_TOK_NONE, h.line[i], strlen(h.line[i]), r.line[i],
                        strlen(r.line[i]), &err);
        lm_bleu_result b;
        lm_bleu_score(&bs, &b);
        CHECK(close_to(b.score, item(e, "bleu")->valuedouble), "%s/%s: BLEU %.12f, sacreBLEU %.12f", name, tname, b.score,
              item(e, "bleu")->valuedouble);
        CHECK(close_to(b.bp, item(e, "bp")->valuedouble), "%s/%s: BP %.12f, sacreBLEU %.12f", name, tname, b.bp,
              item(e, "bp")->valuedouble);
        CHECK(b.sys_len == item(e, "sys_len")->valueint && b.ref_len == item(e, "ref_len")->valueint,
              "%s/%s: lengths %lld/%lld, sacreBLEU %d/%d", name, tname, (long long)b.sys_len, (long long)b.ref_len,
              item(e, "sys_len")->valueint, item(e, "ref_len")->valueint);
        const cJSON *p = item(e, "precisions");
        for (int n = 0; n < LM_BLEU_ORDER; n++)
            CHECK(close_to(b.precisions[n], cJSON_GetArrayItem(p, n)->valuedouble), "%s/%s: precision %d %.12f, sacreBLEU %.12f",
                  name, tname, n + 1, b.precisions[n], cJSON_GetArrayItem(p, n)->valuedouble);
        for (int w = 1; w <= 6; w += 5) {
            char key[32], *text = NULL;
            size_t len = 0;
            snprintf(key, sizeof key, "cli_w%d", w);
            FILE *f = open_memstream(&text, &len);
            lm_metrics_print(f, &b, t == 0 ? LM_BLEU_TOK_CHAR : LM_BLEU_TOK_NONE, chrf, w);
            fclose(f);
            CHECK(!strcmp(text, item(e, key)->valuestring), "%s/%s -w %d: printed\n%s, sacreBLEU printed\n%s", name, tname, w,
                  text, item(e, key)->valuestring);
            free(text);
        }
    }
    lm_lines_free(&h);
    lm_lines_free(&r);
}

int main(void) {
    char *json = lm_test_read(DIR "/expected.json");
    cJSON *root = cJSON_Parse(json);
    CHECK(!strcmp(item(root, "sacrebleu")->valuestring, LM_SACREBLEU_VERSION), "fixtures from sacreBLEU %s, metrics.h says %s",
          item(root, "sacrebleu")->valuestring, LM_SACREBLEU_VERSION);
    int cases = 0;
    for (const cJSON *c = item(root, "cases")->child; c; c = c->next, cases++) check_case(c->string, c);
    CHECK(cases >= 30, "only %d recorded cases found", cases);
    /* every code point: whitespace exactly where Python says */
    const cJSON *ws = item(root, "py_whitespace");
    int k = 0, n_ws = cJSON_GetArraySize(ws), wrong = 0;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        bool py = k < n_ws && (uint32_t)cJSON_GetArrayItem(ws, k)->valueint == cp;
        if (py) k++;
        wrong += py != lm_py_isspace(cp);
    }
    CHECK(n_ws > 20 && wrong == 0, "%d code points disagree with Python's str.isspace() (%d listed)", wrong, n_ws);
    printf("test_metrics: %d sacreBLEU cases, worst relative error %.3g\n", cases, worst);
    cJSON_Delete(root);
    free(json);
    return lm_test_summary("test_metrics");
}
