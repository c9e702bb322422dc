/*
 * test_logit_rows: what the host does with rows of logits that no token can
 * be picked from, the policy the CUDA kernel mirrors (logits.h): a row holding
 * NaN or +inf, or no finite logit, is refused by the top-k and greedy picks,
 * and the search fails the batch with one error naming step and row, in
 * greedy, beam and sampling alike; -inf logits are fine. Also greedy's score
 * when the token that holds nearly all the probability is banned: finite and
 * equal to the double-precision value (the CUDA kernel's cancellation bug).
 * Runs without a GPU.
 */
#include "testing.h"
#include "engine/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V 50

static void test_picks(void) {
    float x[V], row[V], vals[4];
    int32_t ids[4], id;
    float lp;
    lm_edit ban0 = {0, LM_EDIT_BAN};
    for (int kind = 0; kind < 5; kind++) {
        for (int t = 0; t < V; t++) x[t] = (float)(t % 7) * 0.5f;
        const char *what[] = {"a NaN", "+inf", "every logit -inf", "-inf entries", "a banned NaN"};
        if (kind == 0) x[17] = NAN;
        if (kind == 1) x[3] = INFINITY;
        if (kind == 2) for (int t = 0; t < V; t++) x[t] = -INFINITY;
        if (kind == 3) for (int t = 0; t < V; t += 3) x[t] = -INFINITY;
        if (kind == 4) x[0] = NAN; /* banned below: still refused, judged on the raw row like the device */
        bool usable = kind == 3;
        int ne = kind == 4 ? 1 : 0;
        CHECK((lm_logprob_topk(x, V, &ban0, ne, 1.0f, 4, ids, vals) == 0) == usable, "top-k with %s: %s", what[kind],
              usable ? "refused" : "not refused");
        memcpy(row, x, sizeof row);
        CHECK((lm_greedy_pick(row, V, &ban0, ne, 1.0f, &id, &lp) == 0) == usable, "greedy with %s: %s", what[kind],
              usable ? "refused" : "not refused");
        if (usable) CHECK(isfinite(vals[0]) && isfinite(lp) && id != 0, "-inf entries: a finite pick");
    }
    /* every token banned: greedy refuses */
    lm_edit all[V];
    for (int t = 0; t < V; t++) { x[t] = 1.0f; all[t] = (lm_edit){t, LM_EDIT_BAN}; }
    CHECK(lm_greedy_pick(x, V, all, V, 1.0f, &id, &lp) != 0, "greedy with every token banned is refused");
}

/* p(dominant) = 1 - 1e-7 on a 128,112-token row, dominant banned: greedy's
 * log-prob is log(1 / (V - 1)) for any of the others. */
static void test_dominant_banned(void) {
    int n = 128112;
    float *x = calloc((size_t)n, sizeof *x);
    x[777] = 27.9f;
    lm_edit ban = {777, LM_EDIT_BAN};
    int32_t id;
    float lp;
    CHECK(lm_greedy_pick(x, n, &ban, 1, 1.0f, &id, &lp) == 0, "dominant banned: a pick");
    double want = -log((double)(n - 1));
    CHECK(id == 0 && fabs(lp - want) < 1e-5 * fabs(want), "dominant banned: token %d at %g, want 0 at %g", id, lp, want);
    free(x);
}

/* A backend whose row 1 turns NaN at step 2. */
typedef struct {
    lm_backend base;
    int rows;
} nan_backend;

static int nb_encode(lm_backend *b, const int32_t *t, const int32_t *l, int n, lm_err *e) { (void)b; (void)t; (void)l; (void)n; (void)e; return 0; }
static int nb_start(lm_backend *b, const int32_t *rs, int rows, int steps, lm_err *e) {
    (void)rs; (void)steps; (void)e;
    ((nan_backend *)b)->rows = rows;
    return 0;
}
static int nb_step(lm_backend *b, const int32_t *tokens, int step, float *logits, lm_err *e) {
    (void)tokens; (void)e;
    int rows = ((nan_backend *)b)->rows;
    if (!logits) return 0;
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < V; t++) logits[(size_t)r * V + t] = t == 5 + r ? 3.0f : (float)(t % 5) * 0.1f;
    if (step == 2 && rows > 1) logits[(size_t)1 * V + 9] = NAN;
    return 0;
}
static int nb_reorder(lm_backend *b, const int32_t *p, const int32_t *rs, int rows, lm_err *e) {
    (void)p; (void)rs; (void)e;
    ((nan_backend *)b)->rows = rows;
    return 0;
}
static void nb_destroy(lm_backend *b) { (void)b; }

static const lm_backend_ops nb_ops = {.name = "nan", .encode = nb_encode, .decode_start = nb_start, .decode_step = nb_step,
                                      .reorder = nb_reorder, .destroy = nb_destroy};

static void test_search_refuses(int beams, bool sample) {
    nan_backend nb = {{&nb_ops, NULL}, 0};
    lm_search_opts o;
    memset(&o, 0, sizeof o);
    lm_gen_config_defaults(&o.gen);
    o.gen.num_beams = beams;
    o.gen.max_length = 8;
    o.gen.do_sample = sample;
    o.decoder_start_id = 2;
    o.eos_id = 2;
    o.vocab_size = V;
    int32_t tokens[4] = {7, 8, 9, 2}, lens[2] = {2, 2};
    lm_search_result res[2];
    lm_err err = {0};
    int rc = lm_search_run(&nb.base, &o, tokens, lens, 2, res, &err);
    CHECK(rc != 0 && strstr(err.msg, "NaN") && strstr(err.msg, "step 2"), "search (beams %d, sample %d) on a NaN row: rc %d, '%s'", beams,
          sample, rc, err.msg);
    if (rc == 0) for (int i = 0; i < 2; i++) lm_search_result_free(&res[i]);
}

int main(void) {
    test_picks();
    test_dominant_banned();
    test_search_refuses(1, false);
    test_search_refuses(3, false);
    test_search_refuses(1, true);
    return lm_test_summary("test_logit_rows");
}
