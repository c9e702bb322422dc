/*
 * test_demo_golden: the engine against transformers on the trained demo model
 * and on the tokenizer-file kinds (both recorded by tests/make_demo_goldens.py).
 *
 * - samples/model (stops on its own, outputs of 5 to 13 tokens): source ids,
 *   greedy and beam-5 3-best ids exact, scores within 2e-5 relative (the
 *   tolerance of test_golden), decoded texts exact; all lines batched and one
 *   at a time.
 * - tests/fixtures/special-tokens/KIND: tiny-a's vocabulary with that kind's
 *   tokenizer_config.json / special_tokens_map.json: decode(skip_special_tokens)
 *   texts and the ids of texts with literal special tokens, exact. The hf4 kind
 *   (language tokens listed, as in the real checkpoints) drops __ko__; the
 *   v5_fresh kind (what transformers 5.x's save_pretrained writes) keeps it.
 */
#include "testing.h"
#include "engine/translator.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCORE_RTOL 2e-5

static const cJSON *item(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static bool same_ids(const int32_t *a, int n, const cJSON *b) {
    if (n != cJSON_GetArraySize(b)) return false;
    int i = 0;
    for (const cJSON *v = b->child; v; v = v->next, i++)
        if (a[i] != v->valueint) return false;
    return true;
}

static int ids_from_json(const cJSON *arr, int32_t *out) {
    int n = 0;
    for (const cJSON *v = arr->child; v; v = v->next) out[n++] = v->valueint;
    return n;
}

static bool score_close(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1.0) <= SCORE_RTOL; }

/* Runs the cases in batches of `batch` with beams (1 = greedy) and checks ids,
 * scores and texts against the golden keys. */
static void check_search(lm_translator *t, const cJSON *cases, int beams, int batch) {
    const char *ids_key = beams == 1 ? "greedy_ids" : "beam_ids", *sc_key = beams == 1 ? "greedy_score" : "beam_scores";
    const char *text_key = beams == 1 ? "greedy_text" : "beam_text";
    int n_cases = cJSON_GetArraySize(cases), checked = 0;
    for (int first = 0; first < n_cases; first += batch) {
        int32_t tokens[4096], lens[64];
        int n = 0, at = 0;
        for (int i = first; i < n_cases && n < batch; i++, n++) {
            lens[n] = ids_from_json(item(cJSON_GetArrayItem(cases, i), "input_ids"), tokens + at);
            at += lens[n];
        }
        lm_search_opts o = t->search;
        o.gen.num_beams = beams;
        o.gen.num_return_sequences = beams == 1 ? 1 : 3;
        lm_search_result res[64];
        lm_err err;
        if (lm_search_run(t->backend, &o, tokens, lens, n, res, &err) != 0) { CHECK(0, "search failed: %s", err.msg); return; }
        for (int k = 0; k < n; k++) {
            const cJSON *c = cJSON_GetArrayItem(cases, first + k);
            const char *src = item(c, "text")->valuestring;
            const cJSON *want = item(c, ids_key), *score = item(c, sc_key), *texts = item(c, text_key);
            int nh = beams == 1 ? 1 : cJSON_GetArraySize(want);
            CHECK(res[k].n_hyps == nh, "beam %d: %d hypotheses for '%s', transformers %d", beams, res[k].n_hyps, src, nh);
            for (int j = 0; j < nh && j < res[k].n_hyps; j++) {
                const lm_hypothesis *h = &res[k].hyps[j];
                const cJSON *w = beams == 1 ? want : cJSON_GetArrayItem(want, j);
                double ws = beams == 1 ? score->valuedouble : cJSON_GetArrayItem(score, j)->valuedouble;
                const char *wt = beams == 1 ? texts->valuestring : cJSON_GetArrayItem(texts, j)->valuestring;
                CHECK(same_ids(h->ids, h->n, w), "beam %d: hypothesis %d of '%s' differs from transformers'", beams, j, src);
                CHECK(score_close(h->score, ws), "beam %d: hypothesis %d of '%s' scores %.9g, transformers %.9g", beams, j, src, h->score, ws);
                char *text = NULL;
                CHECK(lm_tokenizer_decode(t->tok, h->ids, h->n, &text, &err) == 0 && !strcmp(text, wt),
                      "beam %d: '%s' decodes to '%s', transformers '%s'", beams, src, text ? text : "?", wt);
                free(text);
                checked++;
            }
            lm_search_result_free(&res[k]);
        }
    }
    CHECK(checked >= n_cases, "beam %d batch %d: only %d hypotheses checked", beams, batch, checked);
}

static void check_demo(void) {
    char *json = lm_test_read("tests/fixtures/demo/golden.json");
    cJSON *root = cJSON_Parse(json);
    const cJSON *cases = item(root, "cases");
    lm_engine_config e;
    lm_engine_config_defaults(&e);
    e.threads = 1;
    lm_translator t;
    lm_err err;
    if (lm_translator_open(&t, "samples/model", &e, &err) != 0) {
        CHECK(0, "samples/model: %s", err.msg);
        return;
    }
    int n = 0, ended = 0;
    for (const cJSON *c = cases->child; c; c = c->next, n++) {
        const char *text = item(c, "text")->valuestring;
        int32_t *ids;
        int len;
        bool cut;
        CHECK(lm_translator_source_ids(&t, text, strlen(text), &ids, &len, &cut, &err) == 0 && same_ids(ids, len, item(c, "input_ids")),
              "source ids of '%s' differ from transformers'", text);
        free(ids);
        const cJSON *g = item(c, "greedy_ids");
        ended += cJSON_GetArrayItem(g, cJSON_GetArraySize(g) - 1)->valueint == 2;
    }
    CHECK(n >= 30 && ended == n, "%d demo cases, %d of whose greedy outputs end with </s>", n, ended);
    check_search(&t, cases, 1, 64);
    check_search(&t, cases, 1, 1);
    check_search(&t, cases, 5, 64);
    check_search(&t, cases, 5, 1);
    lm_translator_close(&t);
    cJSON_Delete(root);
    free(json);
}

static void check_kind(const char *kind, int model_vocab, const char *tmp) {
    char path[2048], dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, kind);
    snprintf(path, sizeof path, "mkdir -p %s && cp tests/fixtures/tiny-a/vocab.json tests/fixtures/tiny-a/sentencepiece.bpe.model "
                                "tests/fixtures/special-tokens/%s/*.json %s/", dir, kind, dir);
    CHECK(system(path) == 0, "%s: cannot assemble the directory", kind);
    lm_tokenizer *tok;
    lm_err err;
    if (lm_tokenizer_load(dir, model_vocab, &tok, &err) != 0) { CHECK(0, "%s: %s", kind, err.msg); return; }
    snprintf(path, sizeof path, "%s/golden.json", dir);
    char *json = lm_test_read(path);
    cJSON *root = cJSON_Parse(json);
    int n_dec = 0, n_enc = 0;
    for (const cJSON *c = item(root, "decode")->child; c; c = c->next, n_dec++) {
        int32_t ids[512];
        int n = ids_from_json(item(c, "ids"), ids);
        char *text = NULL;
        const char *want = item(c, "text")->valuestring;
        CHECK(lm_tokenizer_decode(tok, ids, n, &text, &err) == 0 && !strcmp(text, want), "%s: decode %d gives '%s', transformers '%s'",
              kind, n_dec, text ? text : err.msg, want);
        free(text);
    }
    for (const cJSON *c = item(root, "encode")->child; c; c = c->next, n_enc++) {
        const char *text = item(c, "text")->valuestring;
        int32_t *ids = NULL;
        int n = 0;
        CHECK(lm_tokenizer_encode(tok, text, strlen(text), &ids, &n, &err) == 0 && same_ids(ids, n, item(c, "ids")),
              "%s: '%s' encodes differently from transformers", kind, text);
        free(ids);
    }
    CHECK(n_dec >= 20 && n_enc >= 5, "%s: %d decode and %d encode cases", kind, n_dec, n_enc);
    cJSON_Delete(root);
    free(json);
    lm_tokenizer_free(tok);
}

int main(void) {
    check_demo();
    char *cfg = lm_test_read("tests/fixtures/tiny-a/config.json");
    cJSON *c = cJSON_Parse(cfg);
    int vocab = item(c, "vocab_size")->valueint;
    cJSON_Delete(c);
    free(cfg);
    char tmp[] = "/tmp/lyricmt-special-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    const char *kinds[] = {"hf4", "v5_fresh", "v5_resaved", "map_only", "none", "subset"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) check_kind(kinds[i], vocab, tmp);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", tmp);
    CHECK(system(rm) == 0, "cleanup");
    return lm_test_summary("test_demo_golden");
}
