/*
 * test_units: small pieces checked on their own: UTF-8 validation, half
 * floats, the sinusoidal table, log-softmax, the search's top-k and greedy
 * pick against an independent reference, packed products, engine config keys,
 * the backend contract's checks and the KV cache's slot plan.
 */
#include "testing.h"
#include "config/engine_config.h"
#include "config/engine_flags.h"
#include "model/model.h"
#include "cpu/packed_gemm.h"
#include "backend/backend.h"
#include "engine/sched.h"
#include "engine/search.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Packed products: close to a double-precision reference, and each row's
 * result bit-identical whether it is computed alone or inside any batch. */
static void check_packed_gemm(void) {
    if (!lm_packed_supported()) {
        printf("test_units: packed products skipped: this CPU has no AVX-512 (BLAS is used instead)\n");
        return;
    }
    int n = 77, k = 45, m = 25; /* odd: partial panels, partial row tiles */
    float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k), *y = malloc(sizeof(float) * m * n),
          *one = malloc(sizeof(float) * n), *row = malloc(sizeof(float) * k);
    srand(3);
    for (int i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < m * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    lm_packed p;
    lm_err err;
    CHECK(lm_packed_init(&p, w, n, k, &err) == 0, "pack");
    lm_packed_gemm(&p, m, x, NULL, false, y, 0, n);
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = 0;
            for (int kk = 0; kk < k; kk++) ref += (double)x[i * k + kk] * w[j * k + kk];
            worst = fmax(worst, fabs(ref - y[i * n + j]));
        }
    CHECK(worst < 1e-5, "packed product matches the reference (worst %g)", worst);
    bool invariant = true;
    for (int i = 0; i < m; i++) {
        lm_packed_gemm(&p, 1, x + i * k, NULL, false, one, 0, n);
        invariant &= memcmp(one, y + i * n, sizeof(float) * n) == 0;
    }
    CHECK(invariant, "a row alone gives the same bits as inside the batch");
    float *part = malloc(sizeof(float) * m * n);
    lm_packed_gemm(&p, m, x, NULL, false, part, 32, n); /* a column range, as a thread computes it */
    bool cols = true;
    for (int i = 0; i < m; i++) cols &= memcmp(part + i * n + 32, y + i * n + 32, sizeof(float) * (n - 32)) == 0;
    CHECK(cols, "a column range gives the same bits");
    lm_packed_row(&p, 70, row);
    CHECK(memcmp(row, w + 70 * k, sizeof(float) * k) == 0, "a row read back from the packed layout");
    /* every tile size (1 .. 12 rows and their combinations up to 2 full tiles
     * and 1 row) against the scalar definition: one fmaf chain over k in order,
     * then + bias, then v > 0 ? v : 0; with and without each */
    float *bias = malloc(sizeof(float) * n);
    for (int j = 0; j < n; j++) bias[j] = (float)rand() / RAND_MAX - 0.5f;
    bias[1] = -0.0f;
    bool exact = true, inside = true;
    for (int rows = 1; rows <= m; rows++)
        for (int mode = 0; mode < 4; mode++) {
            const float *b = mode & 1 ? bias : NULL;
            bool relu = mode & 2;
            for (int i = 0; i < m * n; i++) part[i] = NAN;
            lm_packed_gemm(&p, rows, x, b, relu, part, 0, 56); /* columns [0, 56): a full panel and 24 of one */
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    if (i >= rows || j >= 56) { inside &= isnan(part[i * n + j]); continue; }
                    float acc = 0;
                    for (int kk = 0; kk < k; kk++) acc = fmaf(x[i * k + kk], w[j * k + kk], acc);
                    if (b) acc += b[j];
                    if (relu) acc = acc > 0 ? acc : 0;
                    exact &= memcmp(&acc, part + i * n + j, sizeof acc) == 0;
                }
        }
    free(bias);
    CHECK(exact, "every tile size, with and without bias and relu, gives the scalar definition's bits");
    CHECK(inside, "a product writes only its rows and columns");
    lm_packed_free(&p);
    free(w); free(x); free(y); free(one); free(row); free(part);

    /* k = 1024: 600 rows of x (2.4 MB) are worked through in three blocks of
     * 204, 204 and 192 rows (packed_gemm.c's BLOCK_X_BYTES), the next panel
     * prefetched across a block's tiles, and every output must still be the
     * scalar definition's bits */
    n = 77, k = 1024, m = 600;
    w = malloc(sizeof(float) * n * k), x = malloc(sizeof(float) * m * k), y = malloc(sizeof(float) * m * n);
    for (int i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < m * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    CHECK(lm_packed_init(&p, w, n, k, &err) == 0, "pack 77 x 1024");
    lm_packed_gemm(&p, m, x, NULL, false, y, 0, n);
    exact = true;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0;
            for (int kk = 0; kk < k; kk++) acc = fmaf(x[(size_t)i * k + kk], w[(size_t)j * k + kk], acc);
            exact &= memcmp(&acc, y + (size_t)i * n + j, sizeof acc) == 0;
        }
    CHECK(exact, "600 rows in row blocks give the scalar definition's bits");
    lm_packed_free(&p);
    free(w); free(x); free(y);
}

/*
 * An independent reference for the search's per-row work, written from
 * transformers' definitions with none of the engine's helpers (lm_log_softmax,
 * lm_logits_edits, lm_rank_insert, logit_rules.h): log_softmax, then the
 * processors in transformers' order (repetition penalty on each distinct
 * earlier token, no-repeat n-gram bans, min-length ban of </s>), then a full
 * sort by value, ties to the lower token.
 */
typedef struct {
    float v;
    int32_t t;
} ref_cand;

/* A log-prob's error against a reference that sums its exponentials in
 * another order (and with libm's expf, which the engine's AVX-512 exp matches
 * within 2 ulp per term): the log of the sum moves by a few float epsilons,
 * then the value's own rounding adds half an ulp of it. */
#define LOGPROB_TOL(v) (8 * FLT_EPSILON * (1 + fabs(v)))

static int ref_cand_order(const void *a, const void *b) {
    const ref_cand *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->t > y->t) - (x->t < y->t);
}

/* transformers' processors on one row of scores (log-probs or raw logits) */
static void ref_process(float *s, const lm_gen_config *g, int eos, const int32_t *seq, int cur_len) {
    if (g->repetition_penalty != 1.0f) {
        bool *seen = calloc((size_t)cur_len, sizeof *seen);
        float *orig = malloc((size_t)cur_len * sizeof *orig);
        for (int i = 0; i < cur_len; i++) orig[i] = s[seq[i]]; /* gather, then scatter: once per token */
        for (int i = 0; i < cur_len; i++) {
            for (int j = 0; j < i; j++) seen[i] |= seq[j] == seq[i];
            if (!seen[i]) s[seq[i]] = orig[i] < 0 ? orig[i] * g->repetition_penalty : orig[i] / g->repetition_penalty;
        }
        free(seen);
        free(orig);
    }
    int n = g->no_repeat_ngram_size;
    if (n > 0 && cur_len + 1 >= n)
        for (int start = 0; start + n <= cur_len; start++) {
            bool same = true;
            for (int j = 0; j < n - 1; j++) same &= seq[start + j] == seq[cur_len - n + 1 + j];
            if (same) s[seq[start + n - 1]] = -INFINITY;
        }
    if (cur_len < g->min_length) s[eos] = -INFINITY;
}

static void ref_log_softmax(float *x, int V) {
    float mx = x[0], sum = 0;
    for (int t = 1; t < V; t++) mx = fmaxf(mx, x[t]);
    for (int t = 0; t < V; t++) sum += expf(x[t] - mx);
    float lse = logf(sum);
    for (int t = 0; t < V; t++) x[t] = x[t] - mx - lse;
}

static void reference_topk(const float *x, int V, const lm_gen_config *g, int eos, const int32_t *seq, int cur_len, int k,
                           int32_t *ids, float *vals) {
    float *row = malloc((size_t)V * sizeof *row);
    ref_cand *c = malloc((size_t)V * sizeof *c);
    memcpy(row, x, (size_t)V * sizeof *row);
    ref_log_softmax(row, V);
    ref_process(row, g, eos, seq, cur_len);
    for (int t = 0; t < V; t++) c[t] = (ref_cand){row[t], t};
    qsort(c, (size_t)V, sizeof *c, ref_cand_order);
    for (int i = 0; i < k; i++) {
        ids[i] = i < V ? c[i].t : 0;
        vals[i] = i < V ? c[i].v : -INFINITY;
    }
    free(row);
    free(c);
}

/* greedy: the processors on the raw logits, the first maximum, its log-softmax */
static void reference_greedy(const float *x, int V, const lm_gen_config *g, int eos, const int32_t *seq, int cur_len,
                             int32_t *id, float *logprob) {
    float *row = malloc((size_t)V * sizeof *row);
    memcpy(row, x, (size_t)V * sizeof *row);
    ref_process(row, g, eos, seq, cur_len);
    int best = 0;
    for (int t = 1; t < V; t++)
        if (row[t] > row[best]) best = t;
    ref_log_softmax(row, V);
    *id = best;
    *logprob = row[best];
    free(row);
}

/* Random rows (odd sizes, repeated values for ties) with random processor
 * settings: the engine's fused top-k and greedy pick against the references. */
static void check_fused_topk(void) {
    srand(7);
    int bad_ids = 0, bad_vals = 0, bad_greedy = 0, runs = 0;
    double worst = 0;
    for (int trial = 0; trial < 300; trial++) {
        int V = 1 + rand() % 700, k = 1 + rand() % 12;
        float *x = malloc((size_t)V * sizeof *x), *y = malloc((size_t)V * sizeof *y);
        for (int t = 0; t < V; t++) x[t] = (float)(rand() % 40) * 0.25f - 5.0f; /* coarse: many ties */
        int32_t seq[24];
        int cur_len = 1 + rand() % 24;
        for (int i = 0; i < cur_len; i++) seq[i] = rand() % (V < 30 ? V : 30); /* a few tokens: repeats and n-grams */
        lm_gen_config g;
        lm_gen_config_defaults(&g);
        g.repetition_penalty = trial % 3 ? 1.3f : 1.0f;
        g.no_repeat_ngram_size = trial % 4;
        g.min_length = trial % 5 ? 0 : 30;
        int eos = rand() % V;
        lm_edit edits[LM_MAX_EDITS(24)];
        int ne = lm_logits_edits(&g, eos, seq, cur_len, edits);
        int32_t id1[12], id2[12], gid1, gid2;
        float v1[12], v2[12], glp1, glp2;
        lm_logprob_topk(x, V, edits, ne, g.repetition_penalty, k, id1, v1);
        reference_topk(x, V, &g, eos, seq, cur_len, k, id2, v2);
        memcpy(y, x, (size_t)V * sizeof *y);
        int picked = lm_greedy_pick(y, V, edits, ne, g.repetition_penalty, &gid1, &glp1);
        reference_greedy(x, V, &g, eos, seq, cur_len, &gid2, &glp2);
        runs++;
        int kk = k < V ? k : V;
        bad_ids += memcmp(id1, id2, (size_t)kk * sizeof *id1) != 0;
        for (int i = 0; i < kk; i++) {
            double e = isinf(v2[i]) ? (v1[i] == v2[i] ? 0 : INFINITY) : fabs(v1[i] - v2[i]);
            worst = fmax(worst, e);
            bad_vals += e > LOGPROB_TOL(v2[i]);
        }
        /* a row whose every token is banned (V 1) has nothing to pick: the engine refuses it */
        bool unpickable = isnan(glp2) || glp2 == -INFINITY;
        bad_greedy += picked != 0 ? !unpickable : unpickable || gid1 != gid2 || !(fabsf(glp1 - glp2) <= LOGPROB_TOL(glp2));
        free(x);
        free(y);
    }
    CHECK(bad_ids == 0, "fused log-softmax + top-k: ids equal the reference (%d of %d rows differ)", bad_ids, runs);
    CHECK(bad_vals == 0, "fused log-softmax + top-k: values within 1e-6 of the reference (%d differ, worst %g)", bad_vals, worst);
    CHECK(bad_greedy == 0, "greedy pick equals the reference (%d of %d rows differ)", bad_greedy, runs);
}

/* The scheduler encoding ahead (sched.h), on a stub backend that only counts
 * the sentences it is given to encode: the first group joins at once; later
 * ones are encoded by lm_sched_prefetch once room is free and join at the
 * next admission, a second prefetch encoding nothing until then; a group
 * that would join an empty decode joins at once. Without encode_async,
 * admission encodes and joins and prefetch does nothing. */
static int stub_encoded;
static int stub_encode(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    (void)b, (void)tokens, (void)lens, (void)err;
    stub_encoded += n;
    return 0;
}

/* A scheduler over 8 sentences of 2 tokens, 4 live at most, on the stub
 * backend with encode_async as `ahead`. */
static int stub_sched(lm_sched *q, bool ahead, const volatile int *stop, lm_err *err) {
    static const lm_backend_ops ops[2] = {{.name = "stub", .encode = stub_encode, .encode_more = stub_encode, .encode_async = false},
                                          {.name = "stub", .encode = stub_encode, .encode_more = stub_encode, .encode_async = true}};
    static lm_backend be[2] = {{&ops[0], NULL}, {&ops[1], NULL}};
    static const int32_t tokens[16] = {0}, lens[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    static const lm_budget limit = {4, 1000, 1};
    stub_encoded = 0;
    return lm_sched_init(q, &be[ahead], 1, 8, tokens, lens, 8, &limit, stop, err);
}

static void check_sched_ahead(void) {
    for (int ahead = 1; ahead >= 0; ahead--) {
        lm_sched q;
        lm_err err;
        int first = -1, count = -1, rc = stub_sched(&q, ahead, NULL, &err);
        rc |= lm_sched_admit(&q, &first, &count, &err);
        CHECK(rc == 0 && first == 0 && count == 4 && stub_encoded == 4, "sched ahead %d: the first group joins at once (%d + %d)", ahead, first,
              count);
        rc |= lm_sched_prefetch(&q, &err);
        CHECK(stub_encoded == 4, "sched ahead %d: no room, nothing encoded ahead", ahead);
        lm_sched_done(&q, 0);
        lm_sched_done(&q, 1);
        rc |= lm_sched_prefetch(&q, &err);
        rc |= lm_sched_prefetch(&q, &err);
        CHECK(stub_encoded == (ahead ? 6 : 4), "sched ahead %d: prefetch, twice, encoded %d sentences", ahead, stub_encoded - 4);
        rc |= lm_sched_admit(&q, &first, &count, &err);
        CHECK(rc == 0 && first == 4 && count == 2 && stub_encoded == 6 && q.n_live == 4,
              "sched ahead %d: the next two join at the admission (%d + %d, %d encoded)", ahead, first, count, stub_encoded);
        for (int s = 2; s < 6; s++) lm_sched_done(&q, s);
        rc |= lm_sched_admit(&q, &first, &count, &err);
        CHECK(rc == 0 && first == 6 && count == 2 && stub_encoded == 8, "sched ahead %d: with nothing live the last join at once (%d + %d)",
              ahead, first, count);
        lm_sched_free(&q);
    }
    /* stopped with a group encoded ahead: it never starts, and the scheduler
     * counts it as not started (the search then reports the job stopped) */
    volatile int stop = 0;
    lm_sched q;
    lm_err err;
    int first, count, rc = stub_sched(&q, true, &stop, &err);
    rc |= lm_sched_admit(&q, &first, &count, &err);
    lm_sched_done(&q, 0);
    rc |= lm_sched_prefetch(&q, &err);
    stop = 1;
    rc |= lm_sched_admit(&q, &first, &count, &err);
    CHECK(rc == 0 && count == 0 && q.next == 4 && q.n_live == 3, "sched ahead, stopped: the group encoded ahead starts (%d), next %d", count,
          q.next);
    lm_sched_free(&q);
}

/* The batch budget (sched.c): sentences join while longest x count x rows
 * stays within max_tokens and count within max_sentences; the first always
 * joins, however long. */
static void check_budget(void) {
    lm_budget b = {4, 60, 3}; /* 4 sentences, 60 tokens, 3 rows each */
    int longest = 0, n = 0;
    int lens[] = {5, 4, 6, 2, 2};
    while (n < 5 && lm_budget_admits(&b, n, &longest, lens[n])) n++;
    /* 5x1x3 = 15, 5x2x3 = 30, 6x3x3 = 54, 6x4x3 = 72 > 60 */
    CHECK(n == 3 && longest == 6, "budget: three sentences of up to 6 tokens fit 60 tokens at 3 rows (got %d, longest %d)", n, longest);
    longest = 0;
    CHECK(lm_budget_admits(&b, 0, &longest, 500) && longest == 500, "budget: a sentence over budget alone still runs");
    CHECK(!lm_budget_admits(&b, 1, &longest, 1), "budget: nothing joins a sentence over budget");
    lm_budget wide = {2, 1000000, 1};
    longest = 0;
    CHECK(lm_budget_admits(&wide, 1, &longest, 3) && !lm_budget_admits(&wide, 2, &longest, 3), "budget: at most max_sentences");
    longest = 20;
    lm_budget exact = {8, 60, 1};
    CHECK(lm_budget_admits(&exact, 2, &longest, 1), "budget: 20 x 3 x 1 = 60 fits exactly");
    CHECK(!lm_budget_admits(&exact, 3, &longest, 1), "budget: 20 x 4 x 1 = 80 does not");
    CHECK(lm_budget_most(&b, 5) == 4 && lm_budget_most(&b, 10) == 2 && lm_budget_most(&b, 100) == 1,
          "budget: the most sentences at a shortest of 5, 10, 100 tokens: 4, 2, 1");

    /* the GPU's limits from free memory: SMaLL-100's row (16-bit KV of 3
     * layers x 256 tokens, fp32 logits, work) and source token, an H100 */
    size_t row = (size_t)2 * 3 * 256 * 1024 * 2 + 128112 * 4 + 64 * 1024, token = 40 * 1024;
    lm_batch_limits g;
    lm_budget_for_memory((size_t)78 << 30, row, token, 1, &g);
    CHECK(g.max_sentences == LM_GPU_ROWS && g.max_tokens >= 10000 && g.window_lines >= 3 * g.max_sentences,
          "GPU limits, greedy on an H100: %d sentences, %d tokens, window %d", g.max_sentences, g.max_tokens, g.window_lines);
    lm_budget_for_memory((size_t)78 << 30, row, token, 5, &g);
    CHECK(g.max_sentences == LM_GPU_ROWS / 5 && g.max_tokens == g.max_sentences * 5 * LM_GPU_SOURCE_TOKENS,
          "GPU limits, beam 5 on an H100: hundreds of sentences (%d), tokens x beams (%d)", g.max_sentences, g.max_tokens);
    lm_budget_for_memory((size_t)1 << 30, row, token, 5, &g);
    CHECK(g.max_sentences >= 1 && g.max_sentences < LM_GPU_ROWS / 5 &&
              (double)g.max_sentences * (5.0 * row + LM_GPU_SOURCE_TOKENS * token) <= (double)((size_t)1 << 29),
          "GPU limits, 1 GiB free: within half of it (%d sentences)", g.max_sentences);
    lm_budget_for_memory(0, row, token, 5, &g);
    CHECK(g.max_sentences == 1 && g.max_tokens >= 1 && g.window_lines >= 1, "GPU limits, nothing free: one sentence at a time");

    /* auto settings: the CPU's limits unchanged; bf16 and the GPU's on cuda; a given value kept */
    lm_engine_config e;
    lm_engine_config_defaults(&e);
    lm_engine_config_resolve(&e, &g);
    CHECK(e.precision == LM_PREC_FP32 && e.max_batch_sentences == 32 && e.max_batch_tokens == 4096 && e.window_lines == 512,
          "auto on the CPU: fp32, 32 sentences, 4096 tokens, 512 lines");
    lm_engine_config_defaults(&e);
    e.device = LM_DEVICE_CUDA;
    lm_batch_limits big = {256, 81920, 1024};
    lm_err err;
    CHECK(lm_engine_config_set(&e, "batch.max_tokens", "9000", "t", &err) == 0, "set max_tokens");
    lm_engine_config_resolve(&e, &big);
    CHECK(e.precision == LM_PREC_BF16 && e.max_batch_sentences == 256 && e.max_batch_tokens == 9000 && e.window_lines == 1024,
          "auto on cuda: bf16, the GPU's limits, a given max_tokens kept");
    lm_engine_config_defaults(&e);
    e.device = LM_DEVICE_CUDA;
    CHECK(lm_engine_config_set(&e, "precision", "fp32", "t", &err) == 0, "set precision");
    lm_engine_config_resolve(&e, NULL);
    CHECK(e.precision == LM_PREC_FP32 && !strcmp(lm_precision_name(e.precision), "fp32"), "fp32 asked on cuda stays fp32");
}

/* The backend contract's checks (backend.c), the same for every backend. */
static void check_backend_contract(void) {
    lm_model_config mc = {0};
    mc.vocab_size = 100;
    mc.max_positions = 10;
    lm_err err;
    int total;
    int32_t toks[] = {1, 2, 99, 3}, lens[] = {3, 1};
    CHECK(lm_backend_check_sources(&mc, 0, toks, lens, 2, &total, &err) == 0 && total == 4, "contract: good sources pass");
    toks[2] = 100;
    CHECK(lm_backend_check_sources(&mc, 0, toks, lens, 2, &total, &err) != 0 && strstr(err.msg, "token id 100 outside"),
          "contract: a token id of the vocabulary's size is refused");
    toks[2] = -1;
    CHECK(lm_backend_check_sources(&mc, 0, toks, lens, 2, &total, &err) != 0, "contract: a negative token id is refused");
    toks[2] = 5;
    int32_t long_lens[] = {3, 11}, none[] = {0};
    CHECK(lm_backend_check_sources(&mc, 7, toks, long_lens, 2, &total, &err) != 0 && strstr(err.msg, "sentence 8 has 11 tokens"),
          "contract: a source past the positions is refused, numbered from `first`");
    CHECK(lm_backend_check_sources(&mc, 0, toks, none, 1, &total, &err) != 0, "contract: an empty source is refused");
    int32_t sent_len[] = {3, 0, 2};
    CHECK(lm_backend_sentence_known(sent_len, 3, 2) && !lm_backend_sentence_known(sent_len, 3, 1) &&
              !lm_backend_sentence_known(sent_len, 3, 3) && !lm_backend_sentence_known(sent_len, 3, -1),
          "contract: a sentence is known when held and not dropped");
    CHECK(lm_backend_check_steps(&mc, 10, &err) == 0 && lm_backend_check_steps(&mc, 11, &err) != 0, "contract: steps within the positions");
    int32_t rows_ok[] = {0, 2, 0}, rows_bad[] = {0, 1};
    CHECK(lm_backend_check_rows(sent_len, 3, rows_ok, 3, &err) == 0, "contract: rows of known sentences pass");
    CHECK(lm_backend_check_rows(sent_len, 3, rows_bad, 2, &err) != 0 && strstr(err.msg, "row 1 refers to no sentence"),
          "contract: a row of a dropped sentence is refused");
    int32_t feed[] = {5, 6}, row_len[] = {2, 3};
    CHECK(lm_backend_check_feed(&mc, feed, 4, 4, row_len, 2, 4, &err) == 0, "contract: a step in order with room passes");
    CHECK(lm_backend_check_feed(&mc, feed, 5, 4, row_len, 2, 4, &err) != 0 && strstr(err.msg, "step 5 out of order"),
          "contract: a step out of order is refused");
    feed[1] = 100;
    CHECK(lm_backend_check_feed(&mc, feed, 4, 4, row_len, 2, 4, &err) != 0 && strstr(err.msg, "token id 100"),
          "contract: a fed token outside the vocabulary is refused");
    feed[1] = 6;
    row_len[1] = 4;
    CHECK(lm_backend_check_feed(&mc, feed, 4, 4, row_len, 2, 4, &err) != 0 && strstr(err.msg, "row 1 is past the 4"),
          "contract: a row with no room left is refused");
    int32_t parent[] = {1, -1, 0}, psent[] = {0, 2, 0};
    CHECK(lm_backend_check_reorder(parent, psent, 3, 2, 3, sent_len, 3, &err) == 0, "contract: a good reorder passes");
    CHECK(lm_backend_check_reorder(parent, psent, 3, 2, 2, sent_len, 3, &err) != 0 && strstr(err.msg, "decoding started with 2"),
          "contract: a reorder past the rows decoding started with is refused");
    parent[0] = 2;
    CHECK(lm_backend_check_reorder(parent, psent, 3, 2, 3, sent_len, 3, &err) != 0 && strstr(err.msg, "row 0"),
          "contract: a parent past the running rows is refused");
    /* decode_forced: rows of known sentences, 1 to max_positions tokens each, tokens and labels in the vocabulary */
    int32_t fsent[] = {2, 0}, ftok[] = {2, 7, 8, 2, 9}, fwant[] = {7, 8, 2, 9, 2}, flens[] = {3, 2};
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, flens, 2, fwant, &total, &err) == 0 && total == 5,
          "contract: a good teacher-forced batch passes, its positions counted");
    fsent[1] = 1;
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, flens, 2, fwant, &total, &err) != 0 && strstr(err.msg, "row 1 refers"),
          "contract: a teacher-forced row of a dropped sentence is refused");
    fsent[1] = 0;
    int32_t flong[] = {3, 11}, fnone[] = {3, 0};
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, flong, 2, fwant, &total, &err) != 0 && strstr(err.msg, "row 1 is fed 11"),
          "contract: a teacher-forced row past the positions is refused");
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, fnone, 2, fwant, &total, &err) != 0 && strstr(err.msg, "row 1 is fed 0"),
          "contract: a teacher-forced row of no tokens is refused");
    ftok[4] = 100;
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, flens, 2, fwant, &total, &err) != 0 && strstr(err.msg, "token id 100"),
          "contract: a teacher-forced token outside the vocabulary is refused");
    ftok[4] = 9;
    fwant[4] = 100;
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, flens, 2, fwant, &total, &err) != 0 && strstr(err.msg, "label id 100"),
          "contract: a label outside the vocabulary is refused");
    fwant[4] = -1;
    CHECK(lm_backend_check_forced(&mc, sent_len, 3, fsent, ftok, flens, 2, fwant, &total, &err) != 0 && strstr(err.msg, "label id -1"),
          "contract: a negative label is refused");
}

/* The KV cache's slot plan (backend.c), on random reorders of every kind
 * (repeated parents, fresh rows, rows shrinking and growing back to the
 * most), each slot a row of token ids: the forks, run in place in the order
 * given, must leave every row's slot holding what a naive copy of its
 * parent's row holds, with no more copies than the rows that fork. */
static void check_kv_slots(void) {
    enum { MAX_ROWS = 9, STEPS = 24 };
    int32_t cache[MAX_ROWS][STEPS], row[MAX_ROWS][STEPS], row_new[MAX_ROWS][STEPS];
    int32_t len[MAX_ROWS], len_new[MAX_ROWS], parent[MAX_ROWS], old_slot[MAX_ROWS], src[MAX_ROWS], dst[MAX_ROWS], n[MAX_ROWS];
    int bad_slot = 0, bad_kept = 0, bad_fork = 0, bad_count = 0, bad_content = 0, grew = 0, fresh = 0, forked = 0, token = 1;
    lm_kv_slots s = {0};
    lm_err err;
    srand(11);
    for (int decode = 0; decode < 40; decode++) {
        int max_rows = 1 + rand() % MAX_ROWS, rows = max_rows;
        CHECK(lm_kv_slots_start(&s, max_rows, &err) == 0, "kv slots: start");
        memset(len, 0, sizeof len);
        for (int step = 0; step + 1 < STEPS; step++) {
            for (int r = 0; r < rows; r++) { /* a step: every row's next token */
                cache[s.slot[r]][len[r]] = row[r][len[r]] = token++;
                len[r]++;
            }
            int next = step % 5 == 4 ? max_rows : 1 + rand() % max_rows;
            grew += next > rows;
            bool first_child[MAX_ROWS], seen[MAX_ROWS] = {false};
            int want_forks = 0;
            for (int r = 0; r < next; r++) {
                parent[r] = rand() % 6 == 0 ? -1 : rand() % rows;
                first_child[r] = parent[r] >= 0 && !seen[parent[r]];
                if (parent[r] >= 0) seen[parent[r]] = true;
                want_forks += parent[r] >= 0 && !first_child[r];
                fresh += parent[r] < 0;
            }
            memcpy(old_slot, s.slot, (size_t)rows * sizeof *old_slot);
            int forks = lm_kv_slots_reorder(&s, parent, next, len, src, dst, n);
            forked += forks;
            bad_count += forks != want_forks;
            bool taken[MAX_ROWS] = {false}, kept[MAX_ROWS] = {false};
            for (int r = 0; r < next; r++) {
                int sl = s.slot[r];
                if (sl < 0 || sl >= max_rows || taken[sl]) { bad_slot++; continue; }
                taken[sl] = true;
                if (first_child[r]) {
                    kept[sl] = true;
                    bad_kept += sl != old_slot[parent[r]];
                }
            }
            for (int f = 0; f < forks && !bad_slot; f++) {
                int from = -1; /* the old row whose slot the fork reads */
                for (int p = 0; p < rows; p++) from = old_slot[p] == src[f] ? p : from;
                bad_fork += !kept[src[f]] || kept[dst[f]] || from < 0 || n[f] != len[from];
            }
            if (bad_slot || bad_fork) break;
            for (int f = 0; f < forks; f++) memcpy(cache[dst[f]], cache[src[f]], (size_t)n[f] * sizeof cache[0][0]);
            for (int r = 0; r < next; r++) {
                len_new[r] = parent[r] >= 0 ? len[parent[r]] : 0;
                if (len_new[r]) memcpy(row_new[r], row[parent[r]], (size_t)len_new[r] * sizeof row[0][0]);
                bad_content += memcmp(cache[s.slot[r]], row_new[r], (size_t)len_new[r] * sizeof row[0][0]) != 0;
            }
            memcpy(row, row_new, sizeof row);
            memcpy(len, len_new, sizeof len);
            rows = next;
        }
    }
    lm_kv_slots_free(&s);
    CHECK(bad_slot == 0, "kv slots: every row has its own slot within the rows decoding started with (%d rows wrong)", bad_slot);
    CHECK(bad_kept == 0, "kv slots: a parent's first child keeps its slot (%d rows wrong)", bad_kept);
    CHECK(bad_count == 0, "kv slots: one fork for each child but the first (%d reorders wrong)", bad_count);
    CHECK(bad_fork == 0, "kv slots: a fork copies its parent's length from a kept slot into one no row keeps (%d wrong)", bad_fork);
    CHECK(bad_content == 0, "kv slots: after the forks every row's slot holds its parent's tokens (%d rows wrong)", bad_content);
    CHECK(grew > 0 && fresh > 0 && forked > 0, "kv slots: the random reorders grew rows back (%d), started fresh ones (%d) and forked (%d)", grew,
          fresh, forked);
}

/* The flag table (engine_flags.c): which command a flag is offered to. */
static void check_flags(void) {
    lm_engine_config c;
    lm_err err;
    lm_engine_config_defaults(&c);
    CHECK(lm_engine_flag(&c, LM_FLAGS_TRANSLATE, "--n-best", "2", &err) == 1, "--n-best is a translate flag");
    CHECK(lm_engine_flag(&c, LM_FLAGS_COMPARE, "--n-best", "2", &err) == 0, "--n-best is not offered to compare");
    CHECK(lm_engine_flag(&c, LM_FLAGS_COMPARE, "--beam", "3", &err) == 1, "--beam is offered to compare");
    CHECK(lm_engine_flag(&c, LM_FLAGS_SCORE, "--beam", "x", &err) == -1 && strstr(err.msg, "--beam"), "a bad value is a config error naming the flag");
    CHECK(lm_engine_flag(&c, LM_FLAGS_SCORE, "--set", "novalue", &err) == -2, "--set without = is a usage error");
    CHECK(lm_engine_flag(&c, LM_FLAGS_SCORE, "--set", "batch.max_tokens=77", &err) == 1 && c.max_batch_tokens == 77, "--set sets a key");
    CHECK(lm_engine_flag(&c, LM_FLAGS_SCORE, "--model", "x", &err) == 0, "--model is the command's own flag");
}

/* Runs lm_read_file (map false) or lm_mmap_open on path in a child with an
 * alarm, so a call that blocks fails the check rather than the suite:
 * whether it was refused (in time) with a message containing `want`. */
static bool refused_in_child(const char *path, bool map, uint64_t max_bytes, const char *want) {
    int fd[2];
    if (pipe(fd) != 0) return false;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        alarm(10);
        lm_err err = {{0}};
        char *text = NULL;
        lm_mmap m;
        int rc = map ? lm_mmap_open(path, max_bytes, &m, &err) : lm_read_file(path, (size_t)max_bytes, &text, NULL, &err);
        bool ok = rc == -1 && strstr(err.msg, want) && strstr(err.msg, path);
        _exit(write(fd[1], &ok, 1) == 1 ? 0 : 3);
    }
    close(fd[1]);
    bool ok = false;
    if (read(fd[0], &ok, 1) != 1) ok = false;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* What every reader of a model or input file relies on (issue 26): a FIFO
 * refused at once rather than waited on, a sparse file over the cap refused
 * before it is read or mapped, an absent file told apart. */
static void check_file_refusals(void) {
    char dir[] = "/tmp/lyricmt-units-XXXXXX", fifo[64], big[64], absent[128];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(big, sizeof big, "%s/big", dir);
    snprintf(absent, sizeof absent, "%s/absent", dir);
    CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
    FILE *f = fopen(big, "wb");
    CHECK(f && ftruncate(fileno(f), (off_t)2 << 20) == 0, "a 2 MiB sparse file");
    if (f) fclose(f);
    CHECK(refused_in_child(fifo, false, 1 << 20, "not a regular file"), "lm_read_file refuses a FIFO without waiting for a writer");
    CHECK(refused_in_child(fifo, true, 1 << 20, "not a regular file"), "lm_mmap_open refuses a FIFO without waiting for a writer");
    CHECK(refused_in_child(big, false, 1 << 20, "file is 2097152 bytes, more than the 1048576 allowed"), "lm_read_file refuses a file over its cap");
    CHECK(refused_in_child(big, true, 1 << 20, "file is 2097152 bytes, more than the 1048576 allowed"), "lm_mmap_open refuses a file over its cap");
    lm_err err = {{0}};
    bool exists = true;
    CHECK(lm_file_check(absent, 1, &exists, &err) == 0 && !exists, "lm_file_check: an absent file is no error");
    snprintf(absent, sizeof absent, "%s/config.json", big); /* --model naming a file */
    CHECK(lm_file_check(absent, 1, &exists, &err) == 0 && !exists, "lm_file_check: a file under a non-directory is absent");
    CHECK(lm_file_check(fifo, 1 << 20, &exists, &err) == -1 && exists && strstr(err.msg, "not a regular file"), "lm_file_check refuses a FIFO");
    CHECK(lm_file_check(big, 1 << 20, &exists, &err) == -1 && strstr(err.msg, "more than the 1048576 allowed"), "lm_file_check refuses a file over its cap");
    CHECK(lm_file_check(big, 2 << 20, &exists, &err) == 0 && exists, "lm_file_check takes a file at its cap");
    unlink(fifo);
    unlink(big);
    rmdir(dir);
}

int main(void) {
    check_budget();
    check_sched_ahead();
    check_flags();
    check_backend_contract();
    check_kv_slots();
    check_file_refusals();
    CHECK(lm_utf8_invalid_at("abc", 3) == -1, "ascii is valid");
    CHECK(lm_utf8_invalid_at("\xea\xb0\x80", 3) == -1, "hangul is valid");
    CHECK(lm_utf8_invalid_at("a\xff", 2) == 1, "0xff is invalid");
    CHECK(lm_utf8_invalid_at("\xea\xb0", 2) == 0, "truncated sequence");
    CHECK(lm_utf8_invalid_at("\xc0\x80", 2) == 0, "overlong NUL");
    CHECK(lm_utf8_invalid_at("\xed\xa0\x80", 3) == 0, "surrogate");
    CHECK(lm_f16_to_f32(0x3c00) == 1.0f && lm_f16_to_f32(0xc000) == -2.0f, "f16 normals");
    CHECK(lm_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 subnormal");
    CHECK(isinf(lm_f16_to_f32(0x7c00)), "f16 inf");
    CHECK(lm_bf16_to_f32(0x3f80) == 1.0f, "bf16");

    float tab[6 * 8];
    lm_sinusoidal_table(tab, 6, 8, 1);
    CHECK(tab[8 + 3] == 0 && tab[8 + 7] == 0, "padding row is zero");
    CHECK(tab[0] == 0 && tab[4] == 1, "row 0 is sin 0 then cos 0");
    CHECK(fabsf(tab[2 * 8 + 0] - sinf(2)) < 1e-6, "row 2 col 0 is sin(2)");

    float x[4] = {1, 2, 3, 4};
    lm_log_softmax(x, 4);
    float s = 0;
    for (int i = 0; i < 4; i++) s += expf(x[i]);
    CHECK(fabsf(s - 1) < 1e-6, "log_softmax normalises");

    check_fused_topk();
    check_packed_gemm();

    lm_engine_config c;
    lm_err err;
    lm_engine_config_defaults(&c);
    CHECK(lm_engine_config_set(&c, "num_beams", "4", "t", &err) == 0, "set num_beams");
    CHECK(lm_engine_config_set(&c, "decoding.top_p", "1.5", "t", &err) != 0 && strstr(err.msg, "top_p"), "top_p range");
    CHECK(lm_engine_config_set(&c, "decoding.max_length", "3.5", "t", &err) != 0, "integer required");
    CHECK(lm_engine_config_set(&c, "nonsense", "1", "t", &err) != 0 && strstr(err.msg, "unknown key 'nonsense'"), "unknown key");
    lm_gen_config g;
    lm_gen_config_defaults(&g);
    lm_engine_config_apply(&c, &g);
    CHECK(g.num_beams == 4, "override applied");
    CHECK(lm_engine_config_load_yaml(&c, "configs/default.yaml", &err) == 0, "default.yaml loads: %s", err.msg);
    CHECK(lm_engine_config_load_yaml(&c, "configs/augment.yaml", &err) == 0 && c.seed == 1234, "augment.yaml loads");
    return lm_test_summary("test_units");
}
