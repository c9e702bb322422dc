/*
 * test_score: force-decoded pair scores against transformers' loss
 * (tests/make_score_goldens.py, recorded on the committed tiny models):
 *   - source ids and labels exact, in both conventions (language token, </s>,
 *     empty target, literal special tokens, a target cut at the positions);
 *   - every pair's summed log-probability within SCORE_RTOL of -loss x labels,
 *     and every prefix sum within the same of the recorded per-token values
 *     (so a wrong position, label shift or token is caught where it happens);
 *   - batch invariance: a pair alone, in length-sorted batches of 5, and all
 *     unsorted in one batch gives the same float, bit for bit;
 *   - on the CPU through both decoder paths (packed AVX-512 and OpenBLAS);
 *   - decode_forced's one pass against the step loop, and augmentation's
 *     record of sampled hypotheses (search.h, label_logprobs) against both,
 *     bit for bit (check_recorded).
 */
#include "engine/score.h"
#include "cpu/packed_gemm.h"
#include "testing.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Relative error bound: the logits are fp32 in both (products summed in
 * different orders), and each label's log-sum-exp is row_stats' float sum
 * of 16 lanes; the measured worst, 1.5e-5 on the packed path (1.2e-5 when
 * that sum was taken in double; the worst case is a short prefix, e.g. one
 * label of -0.51), is printed each run. */
#define SCORE_RTOL 3e-5
/* Alone and in batches: the encoder's OpenBLAS products may round the last
 * bit differently for a different number of rows (the packed decoder
 * products do not): measured 2e-7 relative, one float ulp of the sum. */
#define BATCH_RTOL 1e-6

static double worst, worst_batch;

static const cJSON *item(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static bool same_ids(const cJSON *arr, const int32_t *ids, int n) {
    if (cJSON_GetArraySize(arr) != n) return false;
    for (int i = 0; i < n; i++)
        if (cJSON_GetArrayItem(arr, i)->valueint != ids[i]) return false;
    return true;
}

static double rel(double x, double ref) { return fabs(x - ref) / (fabs(ref) > 1e-3 ? fabs(ref) : 1e-3); }

/* Runs all pairs through lm_translator_run (scoring) and returns their sums. */
static int run_all(lm_translator *t, int32_t **ids, int *lens, int n, float *sums, int *counts, lm_err *err) {
    lm_translation *out = calloc((size_t)n, sizeof *out);
    int rc = lm_translator_run(t, ids, lens, n, out, NULL, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        sums[i] = out[i].n_hyps == 1 ? out[i].scores[0] : NAN;
        counts[i] = out[i].n_tokens;
    }
    for (int i = 0; i < n; i++) lm_translation_free(&out[i]);
    free(out);
    return rc;
}

/* Every prefix of every pair's labels, scored in one batch: prefix k's sum is
 * the recorded per-token values summed up to k. */
static void check_prefixes(lm_translator *t, const cJSON *cases, const char *what) {
    int n_cases = cJSON_GetArraySize(cases), checked = 0, bad = 0;
    for (int c = 0; c < n_cases; c++) {
        const cJSON *cs = cJSON_GetArrayItem(cases, c), *lp = item(cs, "token_logprobs"), *src = item(cs, "input_ids"),
                    *lab = item(cs, "labels");
        int nl = cJSON_GetArraySize(lab), ns = cJSON_GetArraySize(src);
        if (nl > 24) nl = 24; /* the long target: its first positions are enough here */
        int32_t *s = malloc((size_t)ns * sizeof *s), *l = malloc((size_t)nl * sizeof *l), *lens = calloc(1, sizeof *lens),
                *zeros = calloc((size_t)nl, sizeof *zeros);
        const int32_t **labels = malloc((size_t)nl * sizeof *labels);
        int *counts = malloc((size_t)nl * sizeof *counts);
        double *sums = malloc((size_t)nl * sizeof *sums);
        for (int i = 0; i < nl; i++) l[i] = cJSON_GetArrayItem(lab, i)->valueint;
        for (int i = 0; i < ns; i++) s[i] = cJSON_GetArrayItem(src, i)->valueint;
        lens[0] = ns;
        for (int k = 0; k < nl; k++) { /* one source, encoded once, under every prefix */
            labels[k] = l;
            counts[k] = k + 1;
        }
        lm_err err;
        int rc = lm_score_forced(t->backend, t->search.decoder_start_id, t->search.vocab_size, s, lens, 1, zeros, labels, counts, nl, sums, &err);
        CHECK(rc == 0, "%s: prefixes of pair %d: %s", what, c, rc ? err.msg : "");
        double ref = 0;
        for (int k = 0; rc == 0 && k < nl; k++) {
            ref += cJSON_GetArrayItem(lp, k)->valuedouble;
            double e = rel(sums[k], ref);
            worst = e > worst ? e : worst;
            checked++;
            if (e > SCORE_RTOL && bad++ < 3)
                fprintf(stderr, "%s: pair %d, first %d labels: %.8g, transformers %.8g\n", what, c, k + 1, sums[k], ref);
        }
        free(s); free(l); free(lens); free(zeros); free(labels); free(counts); free(sums);
    }
    CHECK(bad == 0 && checked > 80, "%s: %d of %d prefix sums off by more than %g relative", what, bad, checked, SCORE_RTOL);
}

static void check_model(const char *name, const char *gemm) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(path, sizeof path, "%s/golden_score.json", dir);
    char *text = lm_test_read(path);
    cJSON *golden = cJSON_Parse(text);
    free(text);
    CHECK(golden != NULL, "%s: golden_score.json does not parse", name);
    if (!golden) return;
    int positions = item(golden, "positions")->valueint;
    const char *convs[2] = {"m2m100", "small100"};
    for (int ci = 0; ci < 2; ci++) {
        char what[128];
        snprintf(what, sizeof what, "%s/%s/%s", name, convs[ci], gemm);
        lm_engine_config engine;
        lm_engine_config_defaults(&engine);
        engine.convention = ci;
        engine.max_batch_sentences = 5; /* several batches of mixed lengths */
        lm_translator t;
        lm_err err;
        if (lm_translator_open(&t, dir, &engine, &err) != 0) { CHECK(0, "%s: %s", what, err.msg); continue; }
        lm_score_attach(&t);
        const cJSON *cases = item(item(golden, "conventions"), convs[ci]);
        int n = cJSON_GetArraySize(cases);
        CHECK(n >= 14, "%s: %d golden pairs", what, n);
        int32_t **ids = calloc((size_t)n, sizeof *ids);
        int *lens = calloc((size_t)n, sizeof *lens), *counts = calloc((size_t)n, sizeof *counts), cuts = 0, ids_ok = 0;
        float *batched = calloc((size_t)n, sizeof *batched), *alone = calloc((size_t)n, sizeof *alone),
              *unsorted = calloc((size_t)n, sizeof *unsorted);
        for (int c = 0; c < n; c++) {
            const cJSON *cs = cJSON_GetArrayItem(cases, c);
            const char *src = item(cs, "source")->valuestring, *tgt = item(cs, "target")->valuestring;
            bool cut;
            if (lm_score_pair_ids(&t, src, strlen(src), tgt, strlen(tgt), &ids[c], &lens[c], &cut, &err) != 0) {
                CHECK(0, "%s: pair %d: %s", what, c, err.msg);
                continue;
            }
            int ns = ids[c][0], nl = lens[c] - 1 - ns;
            bool ok = same_ids(item(cs, "input_ids"), ids[c] + 1, ns) && same_ids(item(cs, "labels"), ids[c] + 1 + ns, nl);
            ids_ok += ok;
            if (!ok) fprintf(stderr, "%s: pair %d ('%s' -> '%s'): ids differ from transformers'\n", what, c, src, tgt);
            CHECK(cut == (nl == positions), "%s: pair %d cut %d with %d labels of %d positions", what, c, cut, nl, positions);
            cuts += cut;
        }
        CHECK(ids_ok == n, "%s: %d of %d pairs with transformers' source ids and labels", what, ids_ok, n);
        CHECK(cuts == 1, "%s: %d targets cut at the positions (the golden set has one)", what, cuts);

        CHECK(run_all(&t, ids, lens, n, batched, counts, &err) == 0, "%s: batched: %s", what, err.msg);
        int bad = 0;
        for (int c = 0; c < n; c++) {
            const cJSON *cs = cJSON_GetArrayItem(cases, c);
            double ref = item(cs, "score")->valuedouble, e = rel(batched[c], ref);
            worst = e > worst ? e : worst;
            if (e > SCORE_RTOL || counts[c] != item(cs, "tokens")->valueint) {
                bad++;
                fprintf(stderr, "%s: pair %d: %.8g over %d labels, transformers %.8g over %d\n", what, c, batched[c], counts[c], ref,
                        item(cs, "tokens")->valueint);
            }
        }
        CHECK(bad == 0, "%s: %d of %d pair scores differ from transformers' loss by more than %g relative", what, bad, n, SCORE_RTOL);

        int diff = 0;
        for (int c = 0; c < n; c++) {
            int cnt;
            CHECK(run_all(&t, &ids[c], &lens[c], 1, &alone[c], &cnt, &err) == 0, "%s: alone: %s", what, err.msg);
            double e = rel(alone[c], batched[c]);
            worst_batch = e > worst_batch ? e : worst_batch;
            diff += e > BATCH_RTOL;
        }
        CHECK(diff == 0, "%s: %d of %d pairs score differently alone than in batches", what, diff, n);
        t.engine.sort_by_length = false;
        t.engine.max_batch_sentences = 64;
        CHECK(run_all(&t, ids, lens, n, unsorted, counts, &err) == 0, "%s: unsorted: %s", what, err.msg);
        diff = 0;
        for (int c = 0; c < n; c++) {
            double e = rel(unsorted[c], batched[c]);
            worst_batch = e > worst_batch ? e : worst_batch;
            diff += e > BATCH_RTOL;
        }
        CHECK(diff == 0, "%s: %d pairs differ in one unsorted batch from sorted batches", what, diff);

        check_prefixes(&t, cases, what);
        for (int c = 0; c < n; c++) free(ids[c]);
        free(ids); free(lens); free(counts); free(batched); free(alone); free(unsorted);
        lm_translator_close(&t);
    }
    cJSON_Delete(golden);
}

/* lm_score_forced through the step loop: the backend without decode_forced. */
static int forced_by_steps(lm_backend *be, int start, int V, const int32_t *src, const int32_t *src_lens, int n_src,
                           const int32_t *pair_src, const int32_t *const *labels, const int *n_labels, int n, double *sums, lm_err *err) {
    const lm_backend_ops *ops = be->ops;
    lm_backend_ops steps = *ops;
    steps.decode_forced = NULL;
    be->ops = &steps;
    int rc = lm_score_forced(be, start, V, src, src_lens, n_src, pair_src, labels, n_labels, n, sums, err);
    be->ops = ops;
    return rc;
}

static const char *const LYRICS[] = {
    "I got money on my mind, never stop the grind", "Started from the bottom now we here", "Cold nights in the city, dreams made of gold",
    "yeah", "Fire on the mic", "We ride tonight under the city lights and we never look back", "Never give up", "real love",
    "Counting stars on the roof while the beat keeps falling", "Money, power, respect", "Midnight on the block", "oh",
    "Shining like a crown on the king of the street", "Trust nobody but the mirror", "Back to the top, back to the game", "grind",
};
#define N_LYRICS (int)(sizeof LYRICS / sizeof *LYRICS)

/*
 * Augmentation's rescoring reads each sample's label log-probs off the
 * sampling's own rows (search.h, label_logprobs). That record must be the
 * score `lyricmt score` gives the same labels, bit for bit: every hypothesis
 * force-decoded as the pair (source, ids[1..] + </s> when it stopped at
 * max_length), through decode_forced's one pass and through the step loop,
 * gives label_sum exactly, in every precision and both conventions; with the
 * processors' edits (the record is of the row before them) and with samples
 * cut at max_length (the extra step for </s>); and recording changes no
 * sample. On OpenBLAS a row's last bits depend on its batch: within 1e-6.
 */
static void check_recorded(const char *name, int convention, lm_precision precision, bool blas) {
    char dir[256], what[160];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(what, sizeof what, "%s/%s/%s%s", name, convention ? "small100" : "m2m100", lm_precision_name(precision), blas ? "/blas" : "");
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    engine.convention = convention;
    engine.precision = precision;
    lm_translator t;
    lm_err err;
    if (lm_translator_open(&t, dir, &engine, &err) != 0) { CHECK(0, "%s: %s", what, err.msg); return; }
    int32_t *tokens = malloc(4096 * sizeof *tokens), lens[N_LYRICS];
    int at = 0;
    for (int i = 0; i < N_LYRICS; i++) {
        int32_t *ids;
        int n;
        bool cut;
        CHECK(lm_translator_source_ids(&t, LYRICS[i], strlen(LYRICS[i]), &ids, &n, &cut, &err) == 0, "%s: %s", what, err.msg);
        memcpy(tokens + at, ids, (size_t)n * sizeof *ids);
        lens[i] = n;
        at += n;
        free(ids);
    }
    for (int setting = 0; setting < 3; setting++) {
        lm_search_opts o = t.search;
        o.gen.do_sample = true;
        o.gen.num_beams = 1;
        o.gen.num_return_sequences = 5;
        o.gen.temperature = 0.9f;
        o.gen.top_k = 50;
        o.gen.top_p = 0.95f;
        o.seed = 1234 + (uint64_t)setting;
        if (setting == 1) { /* edits on every row: the record is of the row before them */
            o.gen.repetition_penalty = 1.3f;
            o.gen.no_repeat_ngram_size = 2;
            o.gen.min_length = 6;
        }
        if (setting == 2) o.gen.max_length = 9; /* most samples stop at max_length: their </s> takes one more step */
        lm_search_result plain[N_LYRICS] = {{0}}, rec[N_LYRICS] = {{0}};
        int rc = lm_search_run(t.backend, &o, tokens, lens, N_LYRICS, plain, &err);
        o.label_logprobs = true;
        rc |= lm_search_run(t.backend, &o, tokens, lens, N_LYRICS, rec, &err);
        CHECK(rc == 0, "%s: %s", what, err.msg);
        if (rc != 0) continue;
        /* every pair twice, so that the pairs take more than one pass of
         * decode_forced and each is scored in two places of the batch */
        int n = N_LYRICS * 5, p = 0, same_ids = 0, counted = 0, tails = 0, positions = 0;
        const int32_t **labels = calloc((size_t)2 * n, sizeof *labels);
        int32_t *pair_src = calloc((size_t)2 * n, sizeof *pair_src), **owned = calloc((size_t)n, sizeof *owned);
        int *n_labels = calloc((size_t)2 * n, sizeof *n_labels);
        double *forced = calloc((size_t)2 * n, sizeof *forced), *stepped = calloc((size_t)2 * n, sizeof *stepped);
        for (int i = 0; i < N_LYRICS; i++)
            for (int h = 0; h < rec[i].n_hyps; h++, p++) {
                const lm_hypothesis *a = &plain[i].hyps[h], *b = &rec[i].hyps[h];
                same_ids += a->n == b->n && !memcmp(a->ids, b->ids, (size_t)a->n * sizeof *a->ids) && a->score == b->score;
                bool eos = b->ids[b->n - 1] == t.search.eos_id;
                counted += b->n_labels == b->n - 1 + !eos;
                tails += !eos;
                owned[p] = malloc((size_t)b->n * sizeof **owned);
                memcpy(owned[p], b->ids + 1, (size_t)(b->n - 1) * sizeof **owned);
                if (!eos) owned[p][b->n - 1] = t.search.eos_id;
                labels[p] = owned[p];
                n_labels[p] = b->n - 1 + !eos;
                pair_src[p] = i;
                positions += 2 * n_labels[p];
                labels[n + p] = labels[p];
                n_labels[n + p] = n_labels[p];
                pair_src[n + p] = i;
            }
        CHECK(p == n && same_ids == n, "%s, setting %d: recording changes no sample (%d of %d the same)", what, setting, same_ids, n);
        CHECK(counted == n && (setting < 2 || tails > n / 2), "%s, setting %d: labels counted with </s> after max_length (%d of %d; %d tails)",
              what, setting, counted, n, tails);
        CHECK(positions > 1024, "%s, setting %d: %d positions, more than one decode_forced pass", what, setting, positions);
        rc = lm_score_forced(t.backend, t.search.decoder_start_id, t.search.vocab_size, tokens, lens, N_LYRICS, pair_src, labels, n_labels,
                             2 * n, forced, &err);
        rc |= forced_by_steps(t.backend, t.search.decoder_start_id, t.search.vocab_size, tokens, lens, N_LYRICS, pair_src, labels, n_labels,
                              2 * n, stepped, &err);
        CHECK(rc == 0, "%s: %s", what, err.msg);
        int equal = 0, steps_equal = 0;
        for (int q = 0; q < 2 * n && rc == 0; q++) {
            const lm_hypothesis *b = &rec[pair_src[q]].hyps[q % n % 5];
            if (blas) {
                equal += rel(b->label_sum, forced[q]) < BATCH_RTOL;
                steps_equal += rel(stepped[q], forced[q]) < BATCH_RTOL;
            } else {
                equal += !memcmp(&b->label_sum, &forced[q], sizeof forced[q]);
                steps_equal += !memcmp(&stepped[q], &forced[q], sizeof forced[q]);
            }
        }
        CHECK(equal == 2 * n, "%s, setting %d: the sampling's record is lyricmt score's sum %s (%d of %d)", what, setting,
              blas ? "within 1e-6" : "to the bit", equal, 2 * n);
        CHECK(steps_equal == 2 * n, "%s, setting %d: decode_forced's one pass is the step loop's sum %s (%d of %d)", what, setting,
              blas ? "within 1e-6" : "to the bit", steps_equal, 2 * n);
        for (int q = 0; q < n; q++) free(owned[q]);
        free(labels); free(pair_src); free(owned); free(n_labels); free(forced); free(stepped);
        for (int i = 0; i < N_LYRICS; i++) { lm_search_result_free(&plain[i]); lm_search_result_free(&rec[i]); }
    }
    free(tokens);
    lm_translator_close(&t);
}

/* A pair with no labels is refused, not scored as 0. */
static void check_refusals(void) {
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    lm_translator t;
    lm_err err;
    if (lm_translator_open(&t, "tests/fixtures/tiny-a", &engine, &err) != 0) { CHECK(0, "%s", err.msg); return; }
    int32_t src[3] = {t.src_prefix_id, 5, 2}, lens[1] = {3};
    const int32_t *labels[1] = {src};
    int n_labels[1] = {0};
    double sum;
    CHECK(lm_score_forced(t.backend, 2, t.search.vocab_size, src, lens, 1, NULL, labels, n_labels, 1, &sum, &err) == -1 && strstr(err.msg, "no labels"),
          "a pair without labels is refused");
    lm_translator_close(&t);
}

int main(void) {
    const char *paths[2] = {"packed", "blas"};
    for (int i = 0; i < 2; i++) {
        if (i == 0 && !lm_packed_supported()) {
            printf("test_score: packed decoder path skipped: this CPU has no AVX-512 (the BLAS path runs below)\n");
            continue;
        }
        setenv("LYRICMT_CPU_GEMM", paths[i], 1);
        worst = worst_batch = 0;
        check_model("tiny-a", paths[i]);
        check_model("tiny-b", paths[i]);
        printf("test_score: CPU %s: worst error vs transformers' loss %.2g relative (bound %g); alone vs batched %.2g (bound %g)\n",
               paths[i], worst, SCORE_RTOL, worst_batch, BATCH_RTOL);
        for (int conv = 0; conv < 2; conv++) {
            check_recorded("tiny-b", conv, LM_PREC_FP32, i == 1);
            check_recorded("tiny-a", conv, LM_PREC_FP32, i == 1);
        }
    }
    unsetenv("LYRICMT_CPU_GEMM");
    check_recorded("tiny-b", 0, LM_PREC_INT8, false);
    check_recorded("tiny-b", 1, LM_PREC_BF16, false);
    check_refusals();
    return lm_test_summary("test_score");
}
