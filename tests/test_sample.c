/*
 * test_sample: sampling's draws.
 *
 * Pinned sequences: tests/fixtures/sample_pins.tsv holds the sampled
 * hypotheses (token ids and summed log-probs) of two small models under a
 * table of settings, recorded with `build/test_sample --record FILE` from
 * the sampler as it was before the fast path (main at f52ec70, which sorted
 * every row with qsort). Any change of a drawn token fails here; scores may
 * differ by the rounding of the row's sum of exponentials. The same runs on
 * two threads, and each line alone, must give the same bits.
 *
 * The fast path (lm_sample_token) against the reference (lm_sample_reference,
 * the full sort) on random rows: sizes from 1 to the real vocabulary, ties,
 * -0, banned (-inf) tokens, all but one banned, values that the temperature
 * takes to +-inf; top-k 0, 1, past the vocabulary; top-p 0 to 1;
 * temperatures at the config's bounds; many draws per row. The same token
 * and the same count of draws taken, every time.
 */
#include "testing.h"
#include "backend/logits.h"
#include "backend/sample.h"
#include "engine/translator.h"
#include "simd/row_stats.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define PINS "tests/fixtures/sample_pins.tsv"
#define MAX_LINES 16

typedef struct {
    const char *name;
    float temperature;
    int top_k;
    float top_p;
    unsigned seed;
    int max_length; /* 0: the model's */
    float repetition_penalty;
    int no_repeat_ngram, min_length;
} setting;

/* configs/augment.yaml's recipe, the plain distribution, the settings of
 * test_golden's distribution check, and the limits: top-k 1 and past the
 * vocabulary, a nucleus of one token, temperatures at the config's bounds
 * (1e6 flattens the row, so hypotheses run to max_length), and processors
 * that ban tokens (-inf logits). */
static const setting SETTINGS[] = {
    {"recipe", 0.9f, 50, 0.95f, 1234, 0, 1, 0, 0},
    {"recipe-seed7", 0.9f, 50, 0.95f, 7, 0, 1, 0, 0},
    {"plain", 1.0f, 0, 1.0f, 1234, 0, 1, 0, 0},
    {"plain-seed3", 1.0f, 0, 1.0f, 3, 0, 1, 0, 0},
    {"t1.5-k5", 1.5f, 5, 1.0f, 99, 0, 1, 0, 0},
    {"t1.3-p0.8", 1.3f, 0, 0.8f, 99, 0, 1, 0, 0},
    {"k1", 1.0f, 1, 1.0f, 5, 0, 1, 0, 0},
    {"k-past-vocab-p0.9", 1.0f, 100000, 0.9f, 5, 0, 1, 0, 0},
    {"tiny-p", 1.0f, 0, 1e-4f, 11, 0, 1, 0, 0},
    {"p0", 0.7f, 20, 0.0f, 11, 0, 1, 0, 0},
    {"cold", 1e-6f, 0, 1.0f, 13, 0, 1, 0, 0},
    {"warm-p0.98", 2.5f, 0, 0.98f, 31, 0, 1, 0, 0},
    {"warm-k200", 2.0f, 200, 1.0f, 37, 0, 1, 0, 0},
    {"hot", 1e6f, 0, 1.0f, 13, 0, 1, 0, 0},
    {"hot-k3-p0.5", 1e6f, 3, 0.5f, 17, 0, 1, 0, 0},
    {"processors", 0.9f, 50, 0.95f, 1234, 0, 1.3f, 2, 6},
    {"processors-plain", 1.2f, 0, 1.0f, 21, 12, 2.0f, 1, 4},
};
#define N_SETTINGS (int)(sizeof SETTINGS / sizeof *SETTINGS)

static const char *MODELS[] = {"tests/fixtures/tiny-b", "samples/model"};
#define N_MODELS 2
#define PER_LINE 5

typedef struct {
    int32_t *tokens;
    int32_t lens[MAX_LINES];
    int n;
} sources;

/* samples/lyrics.txt's non-empty lines, tokenised by the model's tokenizer. */
static int load_sources(lm_translator *t, sources *s) {
    char *text = lm_test_read("samples/lyrics.txt");
    s->tokens = NULL;
    s->n = 0;
    int at = 0;
    for (char *line = strtok(text, "\n"); line && s->n < MAX_LINES; line = strtok(NULL, "\n")) {
        int32_t *ids;
        int len;
        bool cut;
        lm_err err;
        if (lm_translator_source_ids(t, line, strlen(line), &ids, &len, &cut, &err) != 0) { free(text); return -1; }
        s->tokens = realloc(s->tokens, (size_t)(at + len) * sizeof *s->tokens);
        memcpy(s->tokens + at, ids, (size_t)len * sizeof *ids);
        free(ids);
        s->lens[s->n++] = len;
        at += len;
    }
    free(text);
    return 0;
}

static lm_search_opts opts_for(const lm_translator *t, const setting *st) {
    lm_search_opts o = t->search;
    o.gen.do_sample = true;
    o.gen.num_beams = 1;
    o.gen.num_return_sequences = PER_LINE;
    o.gen.temperature = st->temperature;
    o.gen.top_k = st->top_k;
    o.gen.top_p = st->top_p;
    if (st->max_length) o.gen.max_length = st->max_length;
    o.gen.repetition_penalty = st->repetition_penalty;
    o.gen.no_repeat_ngram_size = st->no_repeat_ngram;
    o.gen.min_length = st->min_length;
    o.seed = st->seed;
    return o;
}

static void print_hyp(FILE *f, const char *model, const char *setting, int line, int k, const lm_hypothesis *h) {
    fprintf(f, "%s\t%s\t%d\t%d\t%.9g\t", model, setting, line, k, h->score);
    for (int i = 0; i < h->n; i++) fprintf(f, i ? " %d" : "%d", h->ids[i]);
    fputc('\n', f);
}

/* Every setting on every model: the pins' lines. All lines in one batch, or
 * each line alone. */
static char *run_all(int threads, bool alone) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    for (int m = 0; m < N_MODELS; m++) {
        lm_engine_config e;
        lm_engine_config_defaults(&e);
        e.threads = threads;
        lm_translator t;
        lm_err err;
        sources src;
        if (lm_translator_open(&t, MODELS[m], &e, &err) != 0 || load_sources(&t, &src) != 0) {
            CHECK(0, "%s: %s", MODELS[m], err.msg);
            continue;
        }
        for (int i = 0; i < N_SETTINGS; i++) {
            lm_search_opts o = opts_for(&t, &SETTINGS[i]);
            lm_search_result res[MAX_LINES];
            int at = 0, step = alone ? 1 : src.n;
            for (int l = 0; l < src.n; l += step) {
                if (lm_search_run(t.backend, &o, src.tokens + at, src.lens + l, step, res + l, &err) != 0) {
                    CHECK(0, "%s %s: %s", MODELS[m], SETTINGS[i].name, err.msg);
                    fclose(f);
                    return buf;
                }
                for (int j = l; j < l + step; j++) at += src.lens[j];
            }
            for (int l = 0; l < src.n; l++) {
                for (int k = 0; k < res[l].n_hyps; k++) print_hyp(f, MODELS[m], SETTINGS[i].name, l, k, &res[l].hyps[k]);
                lm_search_result_free(&res[l]);
            }
        }
        free(src.tokens);
        lm_translator_close(&t);
    }
    fclose(f);
    return buf;
}

/* One pinned or computed hypothesis: the key columns, the score, the ids. */
typedef struct {
    char key[256], ids[4096];
    double score;
} pin;

static int parse_pins(char *text, pin **out) {
    int n = 0, cap = 0;
    *out = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab[5], *p = line;
        int cols = 0;
        while (cols < 5 && (p = strchr(p, '\t'))) tab[cols++] = p++;
        if (cols != 5) return -1;
        if (n == cap) *out = realloc(*out, (size_t)(cap = cap ? 2 * cap : 256) * sizeof **out);
        pin *q = &(*out)[n++];
        snprintf(q->key, sizeof q->key, "%.*s", (int)(tab[3] - line), line);
        q->score = strtod(tab[3] + 1, NULL);
        snprintf(q->ids, sizeof q->ids, "%s", tab[4] + 1);
    }
    return n;
}

/*
 * Scores: a step's log-prob takes the log of the row's sum of exponentials,
 * which the sampler before the fast path added one float at a time and the
 * row statistics add in 16 lanes (row_stats.h); the two sums differ by their
 * rounding, and the score adds up to 48 such log-probs in float. Measured,
 * the largest change is 2 float ulps of the score (6.1e-5 at -380, 48 steps);
 * 1e-6 x (|score| + steps) allows several times that.
 */
static double score_tolerance(const pin *p) {
    int steps = 1;
    for (const char *c = p->ids; *c; c++) steps += *c == ' ';
    return 1e-6 * (fabs(p->score) + steps);
}

static void check_pins(void) {
    char *want_text = lm_test_read(PINS), *got_text = run_all(1, false), *got_copy = strdup(got_text);
    pin *want, *got;
    int nw = parse_pins(want_text, &want), ng = parse_pins(got_copy, &got);
    CHECK(nw > 0 && nw == ng, "%d pinned hypotheses, %d computed", nw, ng);
    int same = 0, lines = 0, at_max = 0;
    double worst = 0;
    for (int i = 0; i < nw && i < ng; i++) {
        bool ok = !strcmp(want[i].key, got[i].key) && !strcmp(want[i].ids, got[i].ids);
        if (!ok) fprintf(stderr, "pinned:   %s\t%s\ncomputed: %s\t%s\n", want[i].key, want[i].ids, got[i].key, got[i].ids);
        same += ok;
        double d = fabs(got[i].score - want[i].score);
        if (isinf(want[i].score) || isinf(got[i].score)) d = want[i].score == got[i].score ? 0 : INFINITY;
        CHECK(d <= score_tolerance(&want[i]), "%s: score %.9g, pinned %.9g", want[i].key, got[i].score, want[i].score);
        if (d > worst) worst = d;
        lines++;
        size_t n = strlen(want[i].ids);
        at_max += n < 2 || strcmp(want[i].ids + n - 2, " 2") != 0; /* </s> is 2 in both models */
    }
    CHECK(same == nw, "%d of %d pinned sampled hypotheses drawn again token for token", same, nw);
    printf("test_sample: %d pinned hypotheses (%d not ending with </s>), worst score change %.3g\n", lines, at_max, worst);
    char *two = run_all(2, false), *alone = run_all(1, true);
    CHECK(!strcmp(two, got_text), "two threads draw what one draws, to the bit");
    CHECK(!strcmp(alone, got_text), "each line alone draws what the batch draws, to the bit");
    free(two);
    free(alone);
    free(want);
    free(got);
    free(want_text);
    free(got_text);
    free(got_copy);
}

/* ---- the fast path against the reference, on random rows ---- */

static uint64_t rng_state = 42;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int below(int n) { return (int)(next_u64() % (uint64_t)n); }
static float unit_float(void) { return (float)(next_u64() >> 40) * 0x1p-24f; }

/* Kinds of rows: spread values, coarse values (many ties), one value
 * everywhere, zeros of both signs, values the temperature takes past the
 * float range, and each with banned tokens or all but one token banned. */
enum { SPREAD, COARSE, FLAT, ZEROS, HUGE, N_KINDS };

static void fill_row(float *x, int V, int kind, int banned_share) {
    float scale = (float)(1 << below(6));
    for (int t = 0; t < V; t++) {
        switch (kind) {
        case SPREAD: x[t] = (unit_float() - 0.5f) * 4 * scale; break;
        case COARSE: x[t] = (float)below(12) * 0.5f - 3; break;
        case FLAT: x[t] = 1.25f; break;
        case ZEROS: x[t] = below(2) ? 0.0f : -0.0f; if (below(4) == 0) x[t] = unit_float() - 0.5f; break;
        default: x[t] = (unit_float() - 0.5f) * 3e38f; break; /* x / 1e-6 overflows both ways */
        }
        if (banned_share && below(100) < banned_share) x[t] = -INFINITY;
    }
    if (banned_share == 100) x[below(V)] = kind == HUGE ? -2e38f : 0.5f; /* one token left */
}

static void check_against_reference(void) {
    static const int sizes[] = {1, 2, 3, 17, 63, 64, 65, 127, 129, 1000, 4097, 20011};
    static const float temps[] = {1.0f, 0.9f, 1.5f, 0.05f, 1e-6f, 1e6f};
    static const float top_ps[] = {1.0f, 0.95f, 0.5f, 1e-6f, 0.0f};
    lm_sampler s = {0};
    int rows = 0, draws = 0, differ = 0, counts_differ = 0, edge_rows = 0;
    float *x = malloc(128112 * sizeof *x), block_max[LM_ROW_BLOCKS_MAX];
    for (int trial = 0; trial < 700; trial++) {
        bool big = trial % 100 == 99; /* the real vocabulary now and then: the reference's qsort is slow */
        int V = big ? 128112 : sizes[below((int)(sizeof sizes / sizeof *sizes))];
        int kind = below(N_KINDS), banned = (int[]){0, 0, 30, 99, 100}[below(5)];
        fill_row(x, V, kind, banned);
        lm_gen_config g;
        lm_gen_config_defaults(&g);
        g.temperature = temps[below(6)];
        g.top_p = top_ps[below(5)];
        int k_choice = below(8);
        g.top_k = k_choice == 0 ? 0 : k_choice == 1 ? 1 : k_choice == 2 ? 50 : k_choice == 3 ? V - 1 : k_choice == 4 ? V
                : k_choice == 5 ? V + 5 : k_choice == 6 ? 1 << 24 : 1 + below(V);
        lm_row_stats st;
        lm_row_stats_of(x, V, block_max, &st);
        edge_rows += banned == 100 || kind == HUGE || kind == FLAT;
        rows++;
        for (int d = 0; d < (big ? 3 : 12); d++) {
            uint64_t key = next_u64(), n_fast = (uint64_t)below(1000), n_ref = n_fast;
            int32_t fast = lm_sample_token(&g, x, V, block_max, key, &n_fast, &s);
            int32_t ref = lm_sample_reference(&g, x, V, key, &n_ref);
            draws++;
            if (fast != ref && differ++ < 5)
                fprintf(stderr, "V %d kind %d banned %d%% T %g top_k %d top_p %g: fast %d, reference %d\n", V, kind, banned,
                        g.temperature, g.top_k, g.top_p, fast, ref);
            counts_differ += n_fast != n_ref;
        }
    }
    CHECK(differ == 0, "fast sampler draws the reference's token: %d of %d draws differ (%d rows)", differ, draws, rows);
    CHECK(counts_differ == 0, "fast sampler takes the reference's draws: %d of %d differ", counts_differ, draws);
    printf("test_sample: %d draws on %d random rows (%d flat, huge or all but one banned) as the reference draws them\n", draws,
           rows, edge_rows);
    free(x);
    lm_sampler_free(&s);
}

/* Top-k's ties, seen in the draws: a row of 7 values repeating, under a hot
 * temperature (the draw nearly uniform over what top-k keeps), top-k below
 * the count of the highest value. Every token of that value must be drawn
 * and no other. */
static void check_ties_by_frequency(void) {
    enum { V = 300 };
    int counts[V] = {0}, tied = 0;
    float x[V], block_max[LM_ROW_BLOCKS_MAX];
    for (int t = 0; t < V; t++) {
        x[t] = (float)(t % 7);
        tied += t % 7 == 6;
    }
    lm_row_stats st;
    lm_row_stats_of(x, V, block_max, &st);
    lm_gen_config g;
    lm_gen_config_defaults(&g);
    g.temperature = 1e6f; /* 6e-6 and 5e-6 stay apart */
    g.top_p = 1.0f;
    g.top_k = tied - 3;
    lm_sampler s = {0};
    uint64_t n = 0;
    for (int d = 0; d < 100 * tied; d++) counts[lm_sample_token(&g, x, V, block_max, 77, &n, &s)]++;
    int drawn_tied = 0, drawn_other = 0;
    for (int t = 0; t < V; t++)
        if (counts[t]) t % 7 == 6 ? drawn_tied++ : drawn_other++;
    CHECK(drawn_tied == tied && drawn_other == 0 && n == (uint64_t)(100 * tied),
          "top-k %d of %d tied tokens keeps them all (%d drawn) and nothing else (%d)", g.top_k, tied, drawn_tied, drawn_other);
    lm_sampler_free(&s);
}

/* The search's step on a row: the edits, the refusals of logits.h, and the
 * log-prob lm_log_softmax gives the drawn token, to the bit. */
static void check_sample_row(void) {
    enum { V = 700 };
    float x[V], y[V], block_max[LM_ROW_BLOCKS_MAX];
    lm_sampler s = {0};
    lm_gen_config g;
    lm_gen_config_defaults(&g);
    g.temperature = 0.9f;
    g.top_k = 50;
    g.top_p = 0.95f;
    g.repetition_penalty = 1.3f;
    int same = 0, runs = 0, raw_same = 0, drew_edited = 0;
    for (int trial = 0; trial < 80; trial++, runs++) {
        fill_row(x, V, SPREAD, trial % 2 ? 20 : 0);
        lm_row_stats top;
        lm_row_stats_of(x, V, NULL, &top);
        /* from trial 50 on the best token is penalized twice, so that the
         * draw often takes a token the edits changed */
        int32_t hot = trial < 50 ? below(V) : top.argmax;
        if (trial >= 50) x[hot] = fabsf(top.max) + 10; /* still the likeliest after two penalties */
        lm_edit edits[] = {{hot, LM_EDIT_PENALIZE}, {below(V), LM_EDIT_BAN}, {hot, LM_EDIT_PENALIZE}};
        memcpy(y, x, sizeof y);
        float raw_row[V];
        memcpy(raw_row, x, sizeof raw_row);
        uint64_t n_row = 5, n_tok = 5;
        int32_t token, want;
        float logprob, raw = 0;
        int rc = lm_sample_row(x, V, edits, trial % 3 ? 3 : 0, &g, 99, &n_row, &s, &token, &logprob, &raw);
        lm_logits_apply(y, edits, trial % 3 ? 3 : 0, g.repetition_penalty);
        lm_row_stats st;
        lm_row_stats_of(y, V, block_max, &st);
        want = lm_sample_token(&g, y, V, block_max, 99, &n_tok, &s);
        lm_log_softmax(y, V);
        same += rc == 0 && token == want && n_row == n_tok && !memcmp(&logprob, &y[token], sizeof logprob);
        /* and the log-prob `lyricmt score` reads off the row as it came, before the edits */
        float score_lp = lm_label_logprob(raw_row, V, token);
        raw_same += rc == 0 && !memcmp(&raw, &score_lp, sizeof raw);
        drew_edited += rc == 0 && trial % 3 && token == hot;
    }
    CHECK(same == runs, "a row's step: the edited row's draw and its log_softmax value to the bit (%d of %d)", same, runs);
    CHECK(raw_same == runs && drew_edited >= 5,
          "a row's step: the drawn token's log-prob under the row before the edits, as lm_label_logprob gives it, to the bit "
          "(%d of %d; %d draws of a penalized token)", raw_same, runs, drew_edited);
    int32_t token;
    float logprob;
    uint64_t n = 0;
    lm_edit ban0 = {0, LM_EDIT_BAN};
    int refused = 0;
    for (int bad = 0; bad < 3; bad++) {
        for (int t = 0; t < V; t++) x[t] = bad == 2 ? -INFINITY : 0.5f;
        if (bad < 2) x[V / 2] = bad ? INFINITY : NAN;
        refused += lm_sample_row(x, V, NULL, 0, &g, 1, &n, &s, &token, &logprob, NULL) == -1;
    }
    CHECK(refused == 3 && n == 0, "rows with NaN, +inf or every token banned are refused, no draw taken (%d of 3)", refused);
    x[0] = NAN;
    for (int t = 1; t < V; t++) x[t] = t == 9 ? 0.25f : -INFINITY;
    float raw = 0;
    int rc = lm_sample_row(x, V, &ban0, 1, &g, 1, &n, &s, &token, &logprob, &raw);
    CHECK(rc == 0 && token == 9 && logprob == 0 && n == 1, "a NaN banned by an edit is no NaN; the one token left is drawn (rc %d, token %d)",
          rc, token);
    CHECK(isnan(raw), "... but the row as it came holds the NaN: its log-prob for `lyricmt score` is NaN (%g)", raw);
    lm_sampler_free(&s);
}

/* The draw's exp (sample_rules.h), which the CUDA kernel shares: within 2 ulp
 * of the C library's over the range it serves, exact at 0, and its edges. */
static void check_exp(void) {
    int64_t worst = 0;
    double at = 0;
    for (int i = 0; i <= 400000; i++) {
        double a = i < 200000 ? -707.0 * i / 200000 : -(double)(next_u64() >> 11) * 0x1p-53 * (i % 2 ? 707.0 : 1.0);
        double got = lm_sample_exp(a), want = exp(a);
        int64_t g, w;
        memcpy(&g, &got, 8);
        memcpy(&w, &want, 8);
        int64_t ulps = g > w ? g - w : w - g;
        if (ulps > worst) { worst = ulps; at = a; }
    }
    CHECK(worst <= 2, "lm_sample_exp within 2 ulp of exp on [-707, 0]: %lld ulp at %.17g", (long long)worst, at);
    CHECK(lm_sample_exp(0.0) == 1.0 && lm_sample_exp(-0.0) == 1.0, "lm_sample_exp(0) is 1");
    CHECK(lm_sample_exp(-INFINITY) == 0.0 && lm_sample_exp(-708.0) == 0.0 && lm_sample_exp(-1e300) == 0.0, "lm_sample_exp's flush to 0");
    CHECK(isnan(lm_sample_exp(NAN)) && isnan(lm_sample_exp(INFINITY - INFINITY)), "lm_sample_exp(NaN) is NaN");
    CHECK(lm_sample_exp(1.0) == exp(1.0) || fabs(lm_sample_exp(1.0) - exp(1.0)) < 1e-15, "lm_sample_exp(1)");
}

/* lm_sample_rows (the CPU backend's decode_step_sample) is lm_sample_row per
 * row: skipped rows untouched, the first refused row named. */
static void check_sample_rows(void) {
    enum { V = 300, ROWS = 9 };
    static float x[ROWS * V], y[V];
    lm_edit edits[ROWS];
    int32_t start[ROWS + 1], ids[ROWS], want;
    float lps[ROWS], lp;
    uint64_t keys[ROWS], draws[ROWS], d;
    bool skip[ROWS];
    for (int r = 0; r < ROWS; r++) {
        fill_row(x + r * V, V, SPREAD, r % 3 ? 0 : 30);
        start[r] = r;
        edits[r] = (lm_edit){below(V), r % 2 ? LM_EDIT_BAN : LM_EDIT_PENALIZE};
        keys[r] = next_u64();
        draws[r] = (uint64_t)r * 3;
        skip[r] = r == 4;
        ids[r] = -7;
    }
    start[ROWS] = ROWS;
    x[4 * V + 1] = NAN; /* skipped, so not refused */
    lm_sampler sp[64] = {{0}};
    lm_sample_request req = {0.8f, 40, 0.9f, 1.2f, edits, start, keys, draws, skip, NULL};
    lm_gen_config g = {0};
    g.temperature = 0.8f, g.top_k = 40, g.top_p = 0.9f, g.repetition_penalty = 1.2f;
    int n_threads = omp_get_max_threads() < 64 ? omp_get_max_threads() : 64;
    omp_set_num_threads(n_threads);
    lm_err err;
    int same = 0;
    float orig[ROWS * V];
    memcpy(orig, x, sizeof orig);
    CHECK(lm_sample_rows(x, ROWS, V, 3, &req, sp, n_threads, ids, lps, NULL, &err) == 0, "lm_sample_rows: %s", err.msg);
    for (int r = 0; r < ROWS; r++) {
        memcpy(y, orig + r * V, sizeof y);
        d = (uint64_t)r * 3;
        if (skip[r]) { same += ids[r] == -7 && draws[r] == d; continue; }
        lm_sample_row(y, V, edits + r, 1, &g, keys[r], &d, &sp[0], &want, &lp, NULL);
        same += ids[r] == want && draws[r] == d && !memcmp(&lp, &lps[r], sizeof lp);
    }
    CHECK(same == ROWS, "lm_sample_rows draws as lm_sample_row row by row (%d of %d)", same, ROWS);
    /* rescoring's raw log-probs: each drawn row's lm_sample_row raw_logprob, a
     * skipped row's label's lm_label_logprob (NaN on row 4's NaN), and without
     * labels the skipped rows' left as they were */
    int32_t labels[ROWS];
    float raws[ROWS], raw;
    skip[7] = true;
    for (int pass = 0; pass < 2; pass++) {
        bool with_labels = pass == 0;
        req.skip_label = with_labels ? labels : NULL;
        for (int r = 0; r < ROWS; r++) {
            labels[r] = below(V);
            draws[r] = (uint64_t)r * 3;
            raws[r] = -7.0f;
        }
        memcpy(x, orig, sizeof orig);
        CHECK(lm_sample_rows(x, ROWS, V, 3, &req, sp, n_threads, ids, lps, raws, &err) == 0, "lm_sample_rows, raw: %s", err.msg);
        same = 0;
        int apart = 0;
        for (int r = 0; r < ROWS; r++) {
            memcpy(y, orig + r * V, sizeof y);
            d = (uint64_t)r * 3;
            if (skip[r]) {
                float w = with_labels ? lm_label_logprob(y, V, labels[r]) : -7.0f;
                same += with_labels && r == 4 ? isnan(raws[r]) : !memcmp(&w, &raws[r], sizeof w);
                continue;
            }
            lm_sample_row(y, V, edits + r, 1, &g, keys[r], &d, &sp[0], &want, &lp, &raw);
            same += ids[r] == want && !memcmp(&raw, &raws[r], sizeof raw);
            apart += raw != lp; /* the edit moved the row */
        }
        CHECK(same == ROWS, "lm_sample_rows' raw log-probs (%s labels): %d of %d rows right", with_labels ? "with" : "without", same, ROWS);
        CHECK(apart >= 3, "lm_sample_rows' raw log-probs: only %d of the edited rows' differ from their log-probs", apart);
    }
    skip[7] = false;
    req.skip_label = NULL;
    memcpy(x, orig, sizeof orig);
    x[6 * V + 2] = INFINITY;
    x[8 * V] = NAN;
    CHECK(lm_sample_rows(x, ROWS, V, 3, &req, sp, n_threads, ids, lps, NULL, &err) == -1 && strstr(err.msg, "row 6"), "the first refused row is named: %s",
          err.msg);
    for (int i = 0; i < 64; i++) lm_sampler_free(&sp[i]);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--record")) {
        char *text = run_all(1, false);
        FILE *f = fopen(argv[2], "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) return 1;
        free(text);
        return 0;
    }
    check_against_reference();
    check_ties_by_frequency();
    check_sample_row();
    check_exp();
    check_sample_rows();
    check_pins();
    return lm_test_summary("test_sample");
}
