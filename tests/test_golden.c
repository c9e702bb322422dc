/*
 * test_golden: the engine against transformers' own outputs.
 *
 * For each fixture model (tests/fixtures/<name>/golden.json, recorded by
 * tests/make_fixtures.py) and both input conventions, checks:
 *   - token ids of every input (exact)
 *   - encoder states and the first decoder steps' logits (1e-4 relative)
 *   - greedy, beam, n-best and option-laden (min_length, no_repeat_ngram,
 *     repetition_penalty, length_penalty, early_stopping) outputs (exact ids)
 *   - detokenised strings (exact)
 * Beam runs batch all inputs together, so batching is exercised as well.
 *
 * With a CUDA build on a machine with a GPU, the same checks run on the CUDA
 * backend in fp32; in fp16 and bf16 the states are held to a looser tolerance
 * (LOGIT_RTOL_F16, _BF16) and the share of identical outputs must reach a
 * bound (MIN_SAME_F16, _BF16).
 */
#include "testing.h"
#include "translator.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOGIT_RTOL_F32 1e-4
#define LOGIT_RTOL_F16 1e-2
#define LOGIT_RTOL_BF16 5e-2

static double logit_rtol = LOGIT_RTOL_F32; /* of the backend under test */

static int ids_from_json(const cJSON *arr, int32_t *out, int cap) {
    int n = 0;
    for (const cJSON *v = arr->child; v && n < cap; v = v->next) out[n++] = (int32_t)v->valueint;
    return n;
}

static bool same_ids(const int32_t *a, int na, const cJSON *b) {
    int32_t tmp[4096];
    int nb = ids_from_json(b, tmp, 4096);
    return na == nb && memcmp(a, tmp, (size_t)na * sizeof *a) == 0;
}

/* max |a-b| / (|b| + scale) where scale is the reference's RMS: a relative
 * tolerance that does not blow up on values near zero */
static double compare_floats(const float *a, const cJSON *ref, int n) {
    double rms = 0, worst = 0;
    int i = 0;
    for (const cJSON *v = ref->child; v && i < n; v = v->next, i++) rms += v->valuedouble * v->valuedouble;
    rms = sqrt(rms / (n ? n : 1));
    i = 0;
    for (const cJSON *v = ref->child; v && i < n; v = v->next, i++) {
        double e = fabs(a[i] - v->valuedouble) / (fabs(v->valuedouble) + rms);
        worst = e > worst ? e : worst;
    }
    return i == n ? worst : INFINITY;
}

static void check_tokenizer(lm_translator *t, const cJSON *golden, const char *name) {
    const cJSON *cases = cJSON_GetObjectItem(golden, "tokenizer");
    for (const cJSON *c = cases->child; c; c = c->next) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int32_t *ids;
        int n;
        bool cut;
        lm_err err;
        CHECK(lm_translator_source_ids(t, text, strlen(text), &ids, &n, &cut, &err) == 0, "%s: encode failed", name);
        CHECK(same_ids(ids, n, cJSON_GetObjectItem(c, "ids")), "%s: token ids differ for '%s'", name, text);
        free(ids);
    }
}

/* Runs the search over all cases of one convention with the given settings
 * and checks the expected ids (key) of each case that has them. */
static void check_search(lm_translator *t, const cJSON *cases, int n_cases, const lm_gen_config *gen, const char *key,
                         const char *what) {
    int32_t *tokens = calloc(4096 * 16, sizeof(int32_t)), lens[64] = {0};
    int at = 0, n = 0;
    for (const cJSON *c = cases->child; c && n < n_cases; c = c->next) {
        if (!cJSON_GetObjectItem(c, key)) continue;
        lens[n] = ids_from_json(cJSON_GetObjectItem(c, "input_ids"), tokens + at, 4096);
        at += lens[n++];
    }
    lm_search_opts o = t->search;
    o.gen = *gen;
    lm_search_result res[64];
    lm_err err;
    int rc = lm_search_run(t->backend, &o, tokens, lens, n, res, &err);
    CHECK(rc == 0, "%s: search failed: %s", what, err.msg);
    if (rc != 0) { free(tokens); return; }
    int i = 0;
    for (const cJSON *c = cases->child; c && i < n; c = c->next) {
        const cJSON *want = cJSON_GetObjectItem(c, key);
        if (!want) continue;
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        if (cJSON_IsArray(want->child)) { /* a list of hypotheses, best first */
            int j = 0;
            for (const cJSON *h = want->child; h && j < res[i].n_hyps; h = h->next, j++)
                CHECK(same_ids(res[i].hyps[j].ids, res[i].hyps[j].n, h), "%s: hypothesis %d differs for '%s'", what, j, text);
            CHECK(j == cJSON_GetArraySize(want), "%s: %d hypotheses, expected %d", what, res[i].n_hyps, cJSON_GetArraySize(want));
        } else {
            CHECK(same_ids(res[i].hyps[0].ids, res[i].hyps[0].n, want), "%s: ids differ for '%s'", what, text);
        }
        lm_search_result_free(&res[i]);
        i++;
    }
    free(tokens);
}

static void check_beam_scores(lm_translator *t, const cJSON *cases, const char *what) {
    /* scores of the recorded n-best, to 1e-4 relative */
    lm_gen_config g = t->search.gen;
    g.num_beams = 5;
    g.num_return_sequences = 3;
    for (const cJSON *c = cases->child; c; c = c->next) {
        int32_t tok[4096];
        int32_t len = ids_from_json(cJSON_GetObjectItem(c, "input_ids"), tok, 4096);
        lm_search_opts o = t->search;
        o.gen = g;
        lm_search_result r;
        lm_err err;
        if (lm_search_run(t->backend, &o, tok, &len, 1, &r, &err) != 0) { CHECK(0, "%s: %s", what, err.msg); continue; }
        int j = 0;
        for (const cJSON *s = cJSON_GetObjectItem(c, "beam_scores")->child; s && j < r.n_hyps; s = s->next, j++)
            CHECK(fabs(r.hyps[j].score - s->valuedouble) <= 1e-4 * fabs(s->valuedouble) + 1e-6, "%s: beam score %d is %g, transformers %g",
                  what, j, r.hyps[j].score, s->valuedouble);
        lm_search_result_free(&r);
    }
}

static void check_states(lm_translator *t, const cJSON *cases, const char *what) {
    int d = t->model.cfg.model.d_model, V = t->model.cfg.model.vocab_size;
    for (const cJSON *c = cases->child; c; c = c->next) {
        const cJSON *enc = cJSON_GetObjectItem(c, "encoder_out");
        if (!enc) continue;
        int32_t tok[4096], dec[8];
        int32_t len = ids_from_json(cJSON_GetObjectItem(c, "input_ids"), tok, 4096);
        lm_backend *be = t->backend;
        lm_err err;
        float *out = malloc(sizeof(float) * (size_t)len * d), *logits = malloc(sizeof(float) * V * 3);
        CHECK(be->ops->encode(be, tok, &len, 1, &err) == 0, "%s: encode: %s", what, err.msg);
        CHECK(be->ops->encoder_output(be, 0, out, &err) == 0, "%s: encoder_output", what);
        double e = compare_floats(out, enc, len * d);
        CHECK(e < logit_rtol, "%s: encoder states differ by %g (relative)", what, e);
        int n_dec = ids_from_json(cJSON_GetObjectItem(c, "greedy_ids"), dec, 3);
        int32_t sent = 0;
        CHECK(be->ops->decode_start(be, &sent, 1, 8, &err) == 0, "%s: decode_start", what);
        for (int s = 0; s < n_dec; s++) CHECK(be->ops->decode_step(be, &dec[s], s, logits + (size_t)s * V, &err) == 0, "%s: step", what);
        e = compare_floats(logits, cJSON_GetObjectItem(c, "decoder_logits"), n_dec * V);
        CHECK(e < logit_rtol, "%s: decoder logits differ by %g (relative)", what, e);
        free(out);
        free(logits);
    }
}

/* Translates every case's text (greedy or beam 5) and counts the outputs equal
 * to transformers' (key); with `require`, each difference is a failure. */
static int same_texts(lm_translator *t, const cJSON *cases, const char *key, bool beam, bool require, const char *what) {
    int n = cJSON_GetArraySize(cases), i = 0, same = 0;
    const char **lines = calloc((size_t)n, sizeof *lines);
    char **out = calloc((size_t)n, sizeof *out);
    for (const cJSON *c = cases->child; c; c = c->next) lines[i++] = cJSON_GetObjectItem(c, "text")->valuestring;
    lm_translator tt = *t;
    tt.search.gen.num_beams = beam ? 5 : 1;
    tt.search.gen.num_return_sequences = 1;
    lm_err err;
    int rc = lm_translator_translate(&tt, lines, n, out, &err);
    CHECK(rc == 0, "%s: translate: %s", what, err.msg);
    i = 0;
    for (const cJSON *c = cases->child; c && rc == 0; c = c->next, i++) {
        const cJSON *want = cJSON_GetObjectItem(c, key);
        if (cJSON_IsArray(want)) want = want->child;
        bool equal = strcmp(out[i], want->valuestring) == 0;
        same += equal;
        if (require) CHECK(equal, "%s: '%s' -> '%s', transformers '%s'", what, lines[i], out[i], want->valuestring);
        free(out[i]);
    }
    free(lines);
    free(out);
    return same;
}

static void check_texts(lm_translator *t, const cJSON *cases, const char *key, bool beam, const char *what) {
    same_texts(t, cases, key, beam, true, what);
}

static int texts_same, texts_total; /* over a 16-bit run, for check_cuda's bound */

/* The share of cases whose greedy and beam texts equal transformers' (16-bit runs). */
static void report_same_texts(lm_translator *t, const cJSON *cases, const char *what) {
    int n = cJSON_GetArraySize(cases);
    int greedy = same_texts(t, cases, "greedy_text", false, false, what), beam = same_texts(t, cases, "beam_text", true, false, what);
    printf("%s: identical to transformers: greedy %d/%d, beam %d/%d\n", what, greedy, n, beam, n);
    texts_same += greedy + beam;
    texts_total += 2 * n;
}

static void check_model(const char *name, lm_device device, lm_precision precision) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    char *text = lm_test_read(path);
    cJSON *golden = cJSON_Parse(text);
    free(text);
    const char *convs[2] = {"m2m100", "small100"};
    for (int ci = 0; ci < 2; ci++) {
        lm_engine_config engine;
        lm_engine_config_defaults(&engine);
        engine.convention = ci;
        engine.max_batch_sentences = 5; /* several batches of mixed lengths */
        engine.device = device;
        engine.precision = precision;
        lm_translator t;
        lm_err err;
        if (lm_translator_open(&t, dir, &engine, &err) != 0) { CHECK(0, "%s: %s", name, err.msg); continue; }
        char what[160];
        const cJSON *cases = cJSON_GetObjectItem(cJSON_GetObjectItem(golden, "conventions"), convs[ci]);
        int n = cJSON_GetArraySize(cases);
        if (ci == 0) check_tokenizer(&t, golden, name);
        snprintf(what, sizeof what, "%s/%s/%s-%s states", name, convs[ci], lm_device_name(device), lm_precision_name(precision));
        check_states(&t, cases, what);
        if (precision != LM_PREC_FP32) { /* 16-bit: outputs may differ where candidates nearly tie */
            report_same_texts(&t, cases, what);
            lm_translator_close(&t);
            continue;
        }

        lm_gen_config g = t.search.gen;
        g.num_beams = 1;
        g.num_return_sequences = 1;
        snprintf(what, sizeof what, "%s/%s greedy", name, convs[ci]);
        check_search(&t, cases, n, &g, "greedy_ids", what);

        g.num_beams = 5;
        g.num_return_sequences = 3;
        snprintf(what, sizeof what, "%s/%s beam n-best", name, convs[ci]);
        check_search(&t, cases, n, &g, "beam_ids", what);
        check_beam_scores(&t, cases, what);

        g.num_beams = 4; g.num_return_sequences = 2; g.min_length = 6; g.no_repeat_ngram_size = 2;
        g.repetition_penalty = 1.3f; g.length_penalty = 0.7f; g.early_stopping = true;
        snprintf(what, sizeof what, "%s/%s beam with options", name, convs[ci]);
        check_search(&t, cases, n, &g, "options_ids", what);

        g = t.search.gen;
        g.num_beams = 1; g.num_return_sequences = 1; g.min_length = 6; g.no_repeat_ngram_size = 2; g.repetition_penalty = 1.3f;
        snprintf(what, sizeof what, "%s/%s greedy with options", name, convs[ci]);
        check_search(&t, cases, n, &g, "options_greedy_ids", what);

        snprintf(what, sizeof what, "%s/%s greedy text", name, convs[ci]);
        check_texts(&t, cases, "greedy_text", false, what);
        snprintf(what, sizeof what, "%s/%s beam text", name, convs[ci]);
        check_texts(&t, cases, "beam_text", true, what);
        lm_translator_close(&t);
    }
    cJSON_Delete(golden);
}

#ifdef LM_WITH_CUDA
#include "cuda_testing.h"

/* 16-bit runs must keep at least this share of the greedy and beam outputs
 * identical to transformers' fp32 ones, over both fixtures and conventions.
 * Provisional until a GPU run measures ours: transformers itself, run wholly
 * in 16 bits on these fixtures (CPU, torch 2.15), keeps 104/104 in fp16 and
 * 98/104 (94%) in bf16; this backend rounds less (weights and product inputs
 * only; residual stream, norms and softmaxes in fp32), and the bounds leave
 * room for other rounding order in the tensor cores. */
#define MIN_SAME_F16 0.90
#define MIN_SAME_BF16 0.80

static void check_cuda(void) {
    if (!lm_cuda_gate("test_golden: CUDA backend")) return;
    const double tol[3] = {LOGIT_RTOL_F32, LOGIT_RTOL_F16, LOGIT_RTOL_BF16}, min_same[3] = {1.0, MIN_SAME_F16, MIN_SAME_BF16};
    const char *precision = getenv("LYRICMT_GOLDEN_PRECISION"); /* scripts/gpu-check.sh runs each alone */
    for (int p = LM_PREC_FP32; p <= LM_PREC_BF16; p++) {
        if (precision && *precision && strcmp(precision, lm_precision_name((lm_precision)p)) != 0) continue;
        logit_rtol = tol[p];
        texts_same = texts_total = 0;
        check_model("tiny-a", LM_DEVICE_CUDA, (lm_precision)p);
        check_model("tiny-b", LM_DEVICE_CUDA, (lm_precision)p);
        if (p != LM_PREC_FP32) {
            double share = texts_total ? (double)texts_same / texts_total : 0;
            printf("test_golden: CUDA %s: %d/%d outputs identical to transformers (%.0f%%; at least %.0f%% required)\n",
                   lm_precision_name((lm_precision)p), texts_same, texts_total, 100 * share, 100 * min_same[p]);
            CHECK(share >= min_same[p], "CUDA %s: only %d/%d outputs identical to transformers, below the %.0f%% bound",
                  lm_precision_name((lm_precision)p), texts_same, texts_total, 100 * min_same[p]);
        }
    }
    logit_rtol = LOGIT_RTOL_F32;
}
#endif

int main(void) {
    check_model("tiny-a", LM_DEVICE_CPU, LM_PREC_FP32);
    check_model("tiny-b", LM_DEVICE_CPU, LM_PREC_FP32);
#ifdef LM_WITH_CUDA
    check_cuda();
#endif
    return lm_test_summary("test_golden");
}
