/*
 * test_sample: sampling's draws.
 *
 * Pinned sequences: tests/fixtures/sample_pins.tsv holds the sampled
 * hypotheses (token ids and summed log-probs) of two small models under a
 * table of settings, recorded with `build/test_sample --record FILE` from
 * the sampler as it was before the fast path (main at f52ec70, which sorted
 * every row with qsort). Any change of a drawn token fails here; scores may
 * differ by the rounding of the row's sum of exponentials.
 */
#include "testing.h"
#include "engine/translator.h"

#include <math.h>
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

/* Every setting on every model, all lines in one batch: the pins' lines. */
static char *run_all(void) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    for (int m = 0; m < N_MODELS; m++) {
        lm_engine_config e;
        lm_engine_config_defaults(&e);
        e.threads = 1;
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
            if (lm_search_run(t.backend, &o, src.tokens, src.lens, src.n, res, &err) != 0) {
                CHECK(0, "%s %s: %s", MODELS[m], SETTINGS[i].name, err.msg);
                continue;
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
 * Scores: a sampled token's log-prob takes the log of the row's sum of
 * exponentials, which the sampler before the fast path summed one float at a
 * time and the search's row statistics sum in 16 lanes (row_stats.h): each
 * sum is within about V * 2^-24 relative of the exact one in the worst case,
 * so a step's log-prob may move by up to about 1e-4 at V = 1309 and 8e-5 at
 * 524; a hypothesis sums up to 48 steps. Measured, the largest change is
 * printed; the bound below is the worst case, not a fit to it.
 */
static double score_tolerance(const pin *p) {
    int steps = 1;
    for (const char *c = p->ids; *c; c++) steps += *c == ' ';
    return steps * 1310 * 0x1p-24;
}

static void check_pins(void) {
    char *want_text = lm_test_read(PINS), *got_text = run_all();
    pin *want, *got;
    int nw = parse_pins(want_text, &want), ng = parse_pins(got_text, &got);
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
    free(want);
    free(got);
    free(want_text);
    free(got_text);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--record")) {
        char *text = run_all();
        FILE *f = fopen(argv[2], "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) return 1;
        free(text);
        return 0;
    }
    check_pins();
    return lm_test_summary("test_sample");
}
