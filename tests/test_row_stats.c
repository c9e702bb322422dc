/*
 * test_row_stats: the search's one pass over a row of logits (row_stats.c)
 * and the picks built on it (logits.c), on both paths: AVX-512 where the CPU
 * has it, and the fallback (LYRICMT_CPU_FEATURES=noavx512). Rows of 1, 15,
 * 16, 17 (partial vectors), 1000 and 128,112 values (SMaLL-100's vocabulary)
 * against a double-precision reference; rows with known exact answers (ties,
 * -inf, -FLT_MAX); refused rows; top-k and greedy bit-identical to
 * lm_log_softmax; and the two paths against each other.
 */
#include "testing.h"
#include "simd/cpu_features.h"
#include "backend/logits.h"
#include "simd/row_stats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const int sizes[] = {1, 15, 16, 17, 1000, 128112};
#define N_SIZES (int)(sizeof sizes / sizeof *sizes)

/* See test_units.c: a log-prob against a sum taken in another order. */
#define LOGPROB_TOL(v) (8 * FLT_EPSILON * (1 + fabs(v)))

static uint64_t rng = 88172645463325252ull;
static float uniform(float lo, float hi) { /* xorshift64: the same rows on every machine */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

static const char *path_name(void) { return lm_cpu_features() & LM_CPU_AVX512 ? "avx512" : "fallback"; }

/* The sum's error against double: each of a lane's m terms can add a rounding
 * of the running sum (m eps / 2 relative at worst for positive terms), each
 * rescale one more, and exp itself is within 2 ulp. */
static double sum_tol(int n) { return (n / 16.0 + 8) * FLT_EPSILON / 2 + 2 * FLT_EPSILON; }

static void check_random_stats(void) {
    for (int si = 0; si < N_SIZES; si++) {
        int n = sizes[si], blk = lm_row_block(n), nb = (n + blk - 1) / blk;
        float *x = malloc(sizeof(float) * n), bm[LM_ROW_BLOCKS_MAX];
        for (int trial = 0; trial < 4; trial++) {
            float spread = trial == 3 ? 80.0f : 12.0f; /* wide: terms far below the max underflow to 0 */
            for (int t = 0; t < n; t++) x[t] = uniform(-spread, spread);
            if (trial == 1) for (int t = 1; t < n; t += 3) x[t] = -INFINITY;
            lm_row_stats st;
            lm_row_stats_of(x, n, bm, &st);
            double mx = -INFINITY, sum = 0;
            int at = 0;
            for (int t = 0; t < n; t++)
                if (x[t] > mx) { mx = x[t]; at = t; }
            for (int t = 0; t < n; t++) sum += exp((double)x[t] - mx);
            CHECK(st.max == mx && st.argmax == at, "%s n %d: max %g at %d, want %g at %d", path_name(), n, st.max, st.argmax, mx, at);
            double e = fabs(st.sum - sum) / sum;
            CHECK(e <= sum_tol(n), "%s n %d: sum %.9g, want %.9g (relative error %g, bound %g)", path_name(), n, st.sum, sum, e,
                  sum_tol(n));
            bool blocks = true;
            for (int b = 0; b < nb; b++) {
                float want = -INFINITY;
                for (int t = b * blk; t < n && t < (b + 1) * blk; t++) want = x[t] > want ? x[t] : want;
                blocks &= bm[b] == want;
            }
            CHECK(blocks, "%s n %d: block maxima", path_name(), n);
        }
        free(x);
    }
    CHECK(lm_row_block(128112) == 64 && lm_row_block(1) == 64 && lm_row_block(64 * LM_ROW_BLOCKS_MAX + 1) == 128,
          "block lengths: 64, wider only past %d blocks", LM_ROW_BLOCKS_MAX);
}

/* Rows whose statistics are exact in float. */
static void check_exact_rows(void) {
    int n = 128112;
    float *x = malloc(sizeof(float) * n);
    lm_row_stats st;
    float one = 2.5f;
    lm_row_stats_of(&one, 1, NULL, &st);
    CHECK(st.max == 2.5f && st.sum == 1 && st.argmax == 0, "%s: one value", path_name());
    for (int t = 0; t < n; t++) x[t] = 0.75f;
    lm_row_stats_of(x, n, NULL, &st);
    CHECK(st.sum == (float)n && st.argmax == 0, "%s: all equal: sum %g (want %d), argmax %d", path_name(), st.sum, n, st.argmax);
    /* ties for the max in one lane and across lanes: the lowest index */
    x[70001] = 3; x[70001 + 16] = 3; x[50003] = 3; x[90000] = 3;
    lm_row_stats_of(x, n, NULL, &st);
    CHECK(st.max == 3 && st.argmax == 50003, "%s: tied max at %d, want 50003", path_name(), st.argmax);
    /* -inf everywhere but three zeros (one in the partial last vector) */
    for (int t = 0; t < n; t++) x[t] = -INFINITY;
    x[5] = 0; x[77777] = 0; x[n - 1] = 0;
    lm_row_stats_of(x, n, NULL, &st);
    CHECK(st.max == 0 && st.sum == 3 && st.argmax == 5, "%s: three zeros among -inf: sum %g, argmax %d", path_name(), st.sum, st.argmax);
    /* the lowest finite value among -inf: a row, not a refusal */
    x[5] = x[77777] = x[n - 1] = -INFINITY;
    x[99] = -FLT_MAX; x[100] = -FLT_MAX;
    lm_row_stats_of(x, n, NULL, &st);
    CHECK(st.max == -FLT_MAX && st.sum == 2 && st.argmax == 99, "%s: -FLT_MAX among -inf: sum %g, argmax %d", path_name(), st.sum,
          st.argmax);
    /* refused: nothing above -inf, a NaN or +inf anywhere (the last one in a partial vector) */
    int spots[] = {0, 16, 70000, n - 1};
    for (int i = 0; i < 4; i++)
        for (int kind = 0; kind < 2; kind++) {
            for (int t = 0; t < n; t++) x[t] = (float)(t % 13);
            x[spots[i]] = kind ? INFINITY : NAN;
            lm_row_stats_of(x, n, NULL, &st);
            CHECK(isnan(st.sum), "%s: %s at %d: refused", path_name(), kind ? "+inf" : "NaN", spots[i]);
            lm_row_stats_of(x + n - 17, 17, NULL, &st);
            CHECK(isnan(st.sum) == (spots[i] == n - 1), "%s: 17 values, %s at the end: %s", path_name(), kind ? "+inf" : "NaN",
                  spots[i] == n - 1 ? "refused" : "kept");
        }
    for (int t = 0; t < n; t++) x[t] = -INFINITY;
    lm_row_stats_of(x, n, NULL, &st);
    CHECK(isnan(st.sum), "%s: every value -inf: refused", path_name());
    free(x);
}

typedef struct {
    float v;
    int32_t t;
} cand;

static int cand_order(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->t > y->t) - (x->t < y->t);
}

/* Random rows, some coarse (many ties), with penalties and bans: top-k's
 * values are bit-identical to lm_log_softmax and lm_logits_apply, in a full
 * sort's order; greedy's pick is the first max of the edited raw row and its
 * log-prob that row's log_softmax at the pick; both near a double reference. */
static void check_picks(void) {
    for (int si = 0; si < N_SIZES; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * n), *ls = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
        cand *c = malloc(sizeof(cand) * n);
        int bad_bits = 0, bad_ref = 0, bad_greedy = 0, runs = 0;
        for (int trial = 0; trial < 6; trial++) {
            bool coarse = trial % 2;
            for (int t = 0; t < n; t++) x[t] = coarse ? (float)(int)uniform(0, 24) * 0.5f - 6 : uniform(-10, 10);
            lm_edit e[6];
            int ne = 0;
            if (trial >= 2) {
                e[ne++] = (lm_edit){(int32_t)uniform(0, (float)n), LM_EDIT_PENALIZE};
                e[ne++] = (lm_edit){(int32_t)uniform(0, (float)n), LM_EDIT_BAN};
                e[ne++] = (lm_edit){e[0].token, LM_EDIT_PENALIZE}; /* twice: both edits in order */
                e[ne++] = (lm_edit){0, LM_EDIT_PENALIZE};
            }
            int ks[] = {1, 5, 10, 16};
            for (int ki = 0; ki < 4; ki++) {
                int k = ks[ki];
                int32_t ids[16];
                float vals[16];
                runs++;
                if (lm_logprob_topk(x, n, e, ne, 1.3f, k, ids, vals) != 0) { bad_bits++; continue; }
                memcpy(ls, x, sizeof(float) * n);
                lm_log_softmax(ls, n);
                lm_logits_apply(ls, e, ne, 1.3f);
                for (int t = 0; t < n; t++) c[t] = (cand){ls[t], t};
                qsort(c, (size_t)n, sizeof *c, cand_order);
                for (int j = 0; j < k; j++) {
                    bool have = j < n;
                    bad_bits += ids[j] != (have ? c[j].t : 0) || memcmp(&vals[j], have ? &c[j].v : &(float){-INFINITY}, sizeof(float));
                }
            }
            /* the double reference, on the fine rows: no ties near the top */
            if (!coarse) {
                double mx = -INFINITY, z = 0;
                for (int t = 0; t < n; t++) mx = x[t] > mx ? x[t] : mx;
                for (int t = 0; t < n; t++) z += exp((double)x[t] - mx);
                double lse = log(z);
                int32_t ids[16];
                float vals[16];
                lm_logprob_topk(x, n, e, ne, 1.3f, 16, ids, vals);
                for (int j = 0; j < 16 && j < n; j++) {
                    double want = x[ids[j]] - mx - lse;
                    for (int i = 0; i < ne; i++)
                        if (e[i].token == ids[j]) want = e[i].kind == LM_EDIT_BAN ? -INFINITY : want < 0 ? want * 1.3f : want / 1.3f;
                    bad_ref += !(vals[j] == want || fabs(vals[j] - want) <= LOGPROB_TOL(want));
                }
            }
            /* greedy */
            memcpy(g, x, sizeof(float) * n);
            int32_t id;
            float lp;
            int rc = lm_greedy_pick(g, n, e, ne, 1.3f, &id, &lp);
            int first = 0;
            for (int t = 1; t < n; t++)
                if (g[t] > g[first]) first = t;
            memcpy(ls, g, sizeof(float) * n);
            lm_log_softmax(ls, n);
            bool all_banned = g[first] == -INFINITY;
            bad_greedy += all_banned ? rc == 0 : rc != 0 || id != first || memcmp(&lp, &ls[first], sizeof lp) != 0;
        }
        CHECK(bad_bits == 0, "%s n %d: top-k equals lm_log_softmax + edits + a full sort, bit for bit (%d of %d differ)", path_name(),
              n, bad_bits, runs);
        CHECK(bad_ref == 0, "%s n %d: top-k values near the double reference (%d differ)", path_name(), n, bad_ref);
        CHECK(bad_greedy == 0, "%s n %d: greedy picks the first max, log-prob bit-equal to lm_log_softmax (%d rows differ)",
              path_name(), n, bad_greedy);
        /* every token banned (edits cost n_edits per token: not on the widest row) */
        int32_t id, ids[4];
        float lp, vals[4];
        if (n <= 1000) {
            lm_edit *all = malloc(sizeof(lm_edit) * n);
            for (int t = 0; t < n; t++) all[t] = (lm_edit){t, LM_EDIT_BAN};
            memcpy(g, x, sizeof(float) * n);
            CHECK(lm_greedy_pick(g, n, all, n, 1.0f, &id, &lp) != 0, "%s n %d: every token banned: greedy refuses", path_name(), n);
            CHECK(lm_logprob_topk(x, n, all, n, 1.0f, 4, ids, vals) == 0 && vals[0] == -INFINITY && ids[0] == 0,
                  "%s n %d: every token banned: top-k's candidates are -inf", path_name(), n);
            free(all);
        }
        /* a NaN hidden by a ban is still refused by greedy (judged on the raw row) */
        memcpy(g, x, sizeof(float) * n);
        g[n - 1] = NAN;
        lm_edit ban = {n - 1, LM_EDIT_BAN};
        CHECK(lm_greedy_pick(g, n, &ban, 1, 1.0f, &id, &lp) != 0, "%s n %d: banned NaN: greedy refuses", path_name(), n);
        g[n - 1] = INFINITY;
        CHECK(lm_logprob_topk(g, n, NULL, 0, 1.0f, 4, ids, vals) != 0, "%s n %d: +inf: top-k refuses", path_name(), n);
        free(x); free(ls); free(g); free(c);
    }
}

/* The two paths sum in the same order; only exp differs (within 2 ulp per
 * term), so their sums agree to a few eps and their picks are the same. */
static void check_paths_agree(void) {
    if (!(lm_cpu_features() & LM_CPU_AVX512)) {
        printf("test_row_stats: paths compared: skipped (this CPU has no AVX-512; the fallback was tested alone)\n");
        return;
    }
    int n = 128112, differ = 0;
    float *x = malloc(sizeof(float) * n);
    double worst = 0;
    for (int trial = 0; trial < 8; trial++) {
        for (int t = 0; t < n; t++) x[t] = uniform(-15, 15);
        lm_row_stats a, b;
        int32_t ia[10], ib[10];
        float va[10], vb[10];
        lm_row_stats_of(x, n, NULL, &a);
        lm_logprob_topk(x, n, NULL, 0, 1.0f, 10, ia, va);
        setenv("LYRICMT_CPU_FEATURES", "noavx512", 1);
        lm_row_stats_of(x, n, NULL, &b);
        lm_logprob_topk(x, n, NULL, 0, 1.0f, 10, ib, vb);
        unsetenv("LYRICMT_CPU_FEATURES");
        double e = fabs((double)a.sum - b.sum) / b.sum;
        worst = e > worst ? e : worst;
        differ += a.max != b.max || a.argmax != b.argmax || memcmp(ia, ib, sizeof ia) != 0;
    }
    CHECK(worst <= 4 * FLT_EPSILON, "paths: sums differ by %g relative (bound %g)", worst, 4 * FLT_EPSILON);
    CHECK(differ == 0, "paths: %d of 8 rows pick differently", differ);
    free(x);
}

static void run_all(void) {
    check_random_stats();
    check_exact_rows();
    check_picks();
}

int main(void) {
    unsetenv("LYRICMT_CPU_FEATURES");
    run_all();
    check_paths_agree();
    setenv("LYRICMT_CPU_FEATURES", "noavx512", 1);
    CHECK(!(lm_cpu_features() & LM_CPU_AVX512), "LYRICMT_CPU_FEATURES=noavx512 selects the fallback");
    run_all();
    return lm_test_summary("test_row_stats");
}
