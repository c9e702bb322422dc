/*
 * test_units: small pieces checked on their own: UTF-8 validation, half
 * floats, the sinusoidal table, log-softmax, engine config keys.
 */
#include "testing.h"
#include "engine_config.h"
#include "model.h"
#include "packed_gemm.h"
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Packed products: close to a double-precision reference, and each row's
 * result bit-identical whether it is computed alone or inside any batch. */
static void check_packed_gemm(void) {
    if (!lm_packed_supported()) {
        printf("test_units: packed products skipped: this CPU has no AVX-512 (BLAS is used instead)\n");
        return;
    }
    int n = 77, k = 45, m = 19; /* odd: partial panels, partial row tiles */
    float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k), *y = malloc(sizeof(float) * m * n),
          *one = malloc(sizeof(float) * n), *row = malloc(sizeof(float) * k);
    srand(3);
    for (int i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < m * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    lm_packed p;
    lm_err err;
    CHECK(lm_packed_init(&p, w, n, k, &err) == 0, "pack");
    lm_packed_gemm(&p, m, x, y, 0, n);
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
        lm_packed_gemm(&p, 1, x + i * k, one, 0, n);
        invariant &= memcmp(one, y + i * n, sizeof(float) * n) == 0;
    }
    CHECK(invariant, "a row alone gives the same bits as inside the batch");
    float *part = malloc(sizeof(float) * m * n);
    lm_packed_gemm(&p, m, x, part, 32, n); /* a column range, as a thread computes it */
    bool cols = true;
    for (int i = 0; i < m; i++) cols &= memcmp(part + i * n + 32, y + i * n + 32, sizeof(float) * (n - 32)) == 0;
    CHECK(cols, "a column range gives the same bits");
    lm_packed_row(&p, 70, row);
    CHECK(memcmp(row, w + 70 * k, sizeof(float) * k) == 0, "a row read back from the packed layout");
    lm_packed_free(&p);
    free(w); free(x); free(y); free(one); free(row); free(part);
}

/* The whole-row path: log_softmax, edits, then a scan keeping the first of equals. */
static void reference_topk(const float *x, int V, const lm_edit *e, int ne, float pen, int k, int32_t *ids, float *vals) {
    float *row = malloc((size_t)V * sizeof *row);
    memcpy(row, x, (size_t)V * sizeof *row);
    lm_log_softmax(row, V);
    lm_logits_apply(row, e, ne, pen);
    int have = 0;
    for (int t = 0; t < V; t++) lm_rank_insert(ids, vals, &have, k, t, row[t]);
    for (int i = have; i < k; i++) { ids[i] = 0; vals[i] = -INFINITY; }
    free(row);
}

/* Random rows (odd sizes, repeated values for ties) with random edits. */
static void check_fused_topk(void) {
    srand(7);
    int bad = 0, runs = 0;
    for (int trial = 0; trial < 200; trial++) {
        int V = 1 + rand() % 700, k = 1 + rand() % 12;
        float *x = malloc((size_t)V * sizeof *x);
        for (int t = 0; t < V; t++) x[t] = (float)(rand() % 40) * 0.25f - 5.0f; /* coarse: many ties */
        int32_t seq[24];
        int cur_len = 1 + rand() % 24;
        for (int i = 0; i < cur_len; i++) seq[i] = rand() % V;
        lm_gen_config g;
        lm_gen_config_defaults(&g);
        g.repetition_penalty = trial % 3 ? 1.3f : 1.0f;
        g.no_repeat_ngram_size = trial % 4;
        g.min_length = trial % 5 ? 0 : 30;
        lm_edit edits[LM_MAX_EDITS(24)];
        int ne = lm_logits_edits(&g, rand() % V, seq, cur_len, edits);
        int32_t id1[12], id2[12];
        float v1[12], v2[12];
        lm_logprob_topk(x, V, edits, ne, g.repetition_penalty, k, id1, v1);
        reference_topk(x, V, edits, ne, g.repetition_penalty, k, id2, v2);
        runs++;
        if (memcmp(id1, id2, (size_t)k * sizeof *id1) != 0 || memcmp(v1, v2, (size_t)k * sizeof *v1) != 0) bad++;
        free(x);
    }
    CHECK(bad == 0, "fused log-softmax + top-k equals the whole-row path bit for bit (%d of %d differ)", bad, runs);
}

int main(void) {
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
