/* bench: see bench.h. The sweep; the reports are in bench_report.c. */
#include "tools/bench.h"

#include "cuda/cuda_backend.h"
#include "engine/translator.h"
#include "simd/cpu_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the lyric-like corpus (benchmarks/make_corpus.py's shape and words) ---- */

static const char *const words[] = {
    "money", "mind", "grind", "bottom", "top", "city", "lights", "night", "dream", "gold", "chain", "real", "deal", "flow",
    "rhyme", "beat", "street", "block", "corner", "hustle", "pressure", "crown", "king", "queen", "heart", "cold", "fire",
    "ice", "smoke", "mirror", "window", "rain", "sun", "moon", "stars", "never", "always", "still", "ready", "steady",
    "running", "chasing", "falling", "rising", "shining", "counting", "living", "dying", "riding", "I", "you", "we", "they",
    "my", "your", "our", "love", "hate", "trust", "pain", "fame", "game", "name", "frame", "came", "back", "home", "road",
    "with", "from", "into", "over", "under", "through", "for", "the", "a", "an", "and", "but", "so", "yeah", "uh", "oh",
    "no", "yes", "what", "why", "how"};
static const char *const adlibs[] = {"yeah", "uh", "okay", "let's go", "woo", "ayy"};
static const char *const ends[] = {",", "!", "?", "..."};

static uint64_t next_random(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}
static int pick(uint64_t *s, int n) { return (int)(next_random(s) % (uint64_t)n); }

static char *lyric_line(uint64_t *s, lm_err *err) {
    int r = pick(s, 100);
    int n = r < 88 ? 4 + pick(s, 13) : r < 93 ? 1 + pick(s, 3) : 17 + pick(s, 14);
    lm_strbuf b = {0};
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const char *w = words[pick(s, (int)(sizeof words / sizeof *words))];
        bad |= (i && lm_strbuf_add(&b, " ", 1)) || lm_strbuf_add(&b, w, strlen(w));
    }
    if (pick(s, 100) < 15) {
        const char *a = adlibs[pick(s, (int)(sizeof adlibs / sizeof *adlibs))];
        bad |= lm_strbuf_add(&b, ", ", 2) || lm_strbuf_add(&b, a, strlen(a));
    }
    if (pick(s, 100) < 30) {
        const char *e = ends[pick(s, 4)];
        bad |= lm_strbuf_add(&b, e, strlen(e));
    }
    if (bad) { free(b.data); lm_fail(err, "out of memory"); return NULL; }
    if (b.data[0] >= 'a' && b.data[0] <= 'z') b.data[0] -= 'a' - 'A';
    return b.data;
}

int lm_bench_lyrics(int n, uint64_t seed, char ***out, lm_err *err) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    char **lines = lm_calloc((size_t)n + 1, sizeof *lines, err);
    if (!lines) return -1;
    /* songs: verses, and a hook of 2 to 4 lines sung after each */
    char *hook[4] = {0};
    int n_hook = 0, left_in_verse = 0;
    for (int i = 0; i < n;) {
        if (left_in_verse == 0 && n_hook) {
            for (int h = 0; h < n_hook && i < n; h++)
                if (!(lines[i++] = strdup(hook[h]))) goto oom;
            left_in_verse = -1;
            continue;
        }
        if (left_in_verse <= 0) {
            if (left_in_verse < 0 && pick(&s, 3) == 0) { /* a new song, a new hook */
                for (int h = 0; h < n_hook; h++) free(hook[h]);
                n_hook = 0;
            }
            if (!n_hook) {
                n_hook = 2 + pick(&s, 3);
                for (int h = 0; h < n_hook; h++)
                    if (!(hook[h] = lyric_line(&s, err))) { n_hook = h; goto fail; }
            }
            left_in_verse = 4 + pick(&s, 9);
        }
        if (!(lines[i++] = lyric_line(&s, err))) goto fail;
        left_in_verse--;
    }
    for (int h = 0; h < n_hook; h++) free(hook[h]);
    *out = lines;
    return 0;
oom:
    lm_fail(err, "out of memory");
fail:
    for (int h = 0; h < n_hook; h++) free(hook[h]);
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines);
    return -1;
}

/* ---- the machine ---- */

/* Peak resident memory, reset per setting where the kernel allows it
 * (clear_refs "5" restarts VmHWM from the current RSS). */
static bool reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static double proc_kb(const char *file, const char *key) {
    FILE *f = fopen(file, "r");
    char line[256];
    double kb = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) kb = atof(line + n);
    if (f) fclose(f);
    return kb;
}

static void describe_machine(char *buf, size_t cap, const char *gpus) {
    char cpu[160] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    if (f) fclose(f);
    unsigned feat = lm_cpu_features();
    snprintf(buf, cap, "%s, %ld cores (%s%s%s), %.1f GB memory; %s", cpu, sysconf(_SC_NPROCESSORS_ONLN),
             feat & LM_CPU_AVX512 ? "AVX-512" : feat & LM_CPU_AVX2 ? "AVX2" : "no AVX2", feat & LM_CPU_VNNI ? ", VNNI" : "",
             feat & LM_CPU_BF16 ? ", BF16" : "", proc_kb("/proc/meminfo", "MemTotal:") / 1048576.0, gpus);
}

/* ---- the plan: every row before any runs, so that each gets its share of the time ---- */

static const int cpu_precisions[] = {LM_PREC_FP32, LM_PREC_INT8, LM_PREC_BF16};
static const int gpu_precisions[] = {LM_PREC_FP32, LM_PREC_FP16, LM_PREC_BF16};
static const int cpu_budgets[] = {512, 1024, 2048, 4096, 8192, 16384};
static const int gpu_budgets[] = {1024, 2048, 4096, 8192, 16384, 32768, 65536};

typedef struct {
    const lm_bench_opts *o;
    lm_bench *b;
    int cap;
    int32_t **ids;
    int *lens;
    double mean_len;
    int beams[LM_BENCH_MAX_LIST], n_beams;
    char **ref[LM_BENCH_MAX_LIST]; /* fp32's translation of each line, per beam */
    double start, deadline, avail_mb;
    int done;
} sweep;

static lm_bench_row *add_row(sweep *s, const char *device, int precision, int beams, int budget, int threads, int workers) {
    if (s->b->n_rows == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        lm_bench_row *rows = realloc(s->b->rows, (size_t)cap * sizeof *rows);
        if (!rows) return NULL;
        s->b->rows = rows;
        s->cap = cap;
    }
    lm_bench_row *r = &s->b->rows[s->b->n_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->device, sizeof r->device, "%s", device);
    r->precision = (lm_precision)precision;
    r->beams = beams;
    r->budget = budget;
    r->threads = threads;
    r->workers = workers;
    r->status = LM_BENCH_NOT_RUN;
    return r;
}

/* The precisions a device's list asks for, or its own list. */
static int precisions_for(const lm_bench_opts *o, bool gpu, int *out) {
    const int *own = gpu ? gpu_precisions : cpu_precisions;
    if (!o->n_precisions) { memcpy(out, own, 3 * sizeof *out); return 3; }
    int n = 0;
    out[n++] = LM_PREC_FP32; /* the reference every agreement is measured against */
    for (int i = 0; i < o->n_precisions; i++)
        if (o->precisions[i] != LM_PREC_FP32) out[n++] = o->precisions[i];
    return n;
}

static int plan_device(sweep *s, const char *device, bool gpu, int cores) {
    const lm_bench_opts *o = s->o;
    int precs[5], np = precisions_for(o, gpu, precs);
    const int *budgets = o->n_budgets ? o->budgets : gpu ? gpu_budgets : cpu_budgets;
    int nb = o->n_budgets ? o->n_budgets : gpu ? 7 : 6;
    for (int p = 0; p < np; p++)
        for (int k = 0; k < s->n_beams; k++)
            for (int j = 0; j < nb; j++)
                if (!add_row(s, device, precs[p], s->beams[k], budgets[j], gpu ? 0 : cores, 1)) return -1;
    if (gpu || !o->threads) return 0;
    /* threads and workers at each precision's and beam's fastest budget (filled in when known) */
    int variants[3][2], nv = 0;
    if (cores > 1) variants[nv][0] = 1, variants[nv++][1] = 1;
    if (cores >= 4) variants[nv][0] = cores / 2, variants[nv++][1] = 1;
    if (cores > 1) variants[nv][0] = cores, variants[nv++][1] = 2;
    for (int v = 0; v < nv; v++)
        for (int p = 0; p < np; p++)
            for (int k = 0; k < s->n_beams; k++)
                if (!add_row(s, device, precs[p], s->beams[k], 0, variants[v][0], variants[v][1])) return -1;
    return 0;
}

/* ---- running one row ---- */

static int beam_index(const sweep *s, int beams) {
    for (int k = 0; k < s->n_beams; k++)
        if (s->beams[k] == beams) return k;
    return -1;
}

static void progress(const sweep *s, const lm_bench_row *r) {
    if (s->o->quiet) return;
    int total = s->b->n_rows;
    double used = lm_now() - s->start;
    char what[200];
    snprintf(what, sizeof what, "%s %s beam %d budget %d, %d thread%s%s", r->device, lm_precision_name(r->precision), r->beams, r->budget,
             r->threads, r->threads == 1 ? "" : "s", r->workers > 1 ? " as 2 workers" : "");
    if (s->o->bar) {
        char bar[31];
        int fill = total ? 30 * s->done / total : 30;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[Klyricmt bench [%s] %d/%d, %.0f of %.0f s: %s", bar, s->done, total, used, s->o->seconds, what);
    } else {
        fprintf(stderr, "lyricmt bench: %d/%d (%.0f of %.0f s): %s\n", s->done + 1, total, used, s->o->seconds, what);
    }
    fflush(stderr);
}

/* Translates chunks of the corpus from its first line until the row's share
 * of the time is spent. */
static int measure(sweep *s, lm_translator *t, lm_bench_row *r, lm_err *err) {
    lm_engine_config e = t->engine;
    char beams[16];
    snprintf(beams, sizeof beams, "%d", r->beams);
    e.max_batch_tokens = r->budget;
    e.max_batch_sentences = r->budget; /* the token budget is the limit that binds */
    if (lm_engine_config_set(&e, "num_beams", beams, "bench", err) != 0 || lm_translator_configure(t, &e, err) != 0) return -1;
    int remaining = s->b->n_rows - s->done;
    /* a tenth kept back for what a row costs besides its chunks (opening the model, the last chunk's overrun) */
    double slice = 0.9 * (s->deadline - lm_now()) / (remaining > 0 ? remaining : 1);
    long chunk = lround(2.0 * r->budget / (r->beams * s->mean_len));
    chunk = chunk < 16 ? 16 : chunk > 1024 ? 1024 : chunk;
    int k = beam_index(s, r->beams), kd = beam_index(s, s->b->default_beams);
    lm_translation *res = lm_calloc((size_t)chunk, sizeof *res, err);
    if (!res) return -1;
    lm_run_hooks hooks = {s->o->cancel, NULL, NULL};
    int rc = 0;
    bool own_peak = reset_peak();
    double began = lm_now();
    /* from the first line on, round again after the last, until the slice is spent */
    for (long done = 0; rc == 0 && (done == 0 || lm_now() - began < slice);) {
        int at = (int)(done % s->o->n_lines), n = (int)(s->o->n_lines - at < chunk ? s->o->n_lines - at : chunk);
        rc = lm_translator_run(t, s->ids + at, s->lens + at, n, res, &hooks, err);
        if (rc != 0) { /* stopped: the lines finished before the stop have their translations */
            for (int i = 0; i < n; i++) lm_translation_free(&res[i]);
            break;
        }
        for (int i = 0; i < n; i++) {
            const char *text = res[i].n_hyps ? res[i].texts[0] : "";
            char **ref = s->ref[k], **def = kd >= 0 ? s->ref[kd] : NULL;
            if (done < s->o->n_lines) { /* the first round is compared */
                if (r->precision == LM_PREC_FP32 && !ref[at + i] && !(ref[at + i] = strdup(text))) rc = lm_fail(err, "out of memory");
                if (ref[at + i]) { r->same += !strcmp(text, ref[at + i]); r->same_of++; }
                if (def && def[at + i]) { r->as_default += !strcmp(text, def[at + i]); r->default_of++; }
            }
            r->tokens += res[i].n_tokens;
            lm_translation_free(&res[i]);
        }
        r->lines += n;
        done += n;
    }
    r->seconds = lm_now() - began;
    r->peak_mb = proc_kb("/proc/self/status", "VmHWM:") / 1024;
    s->b->peak_is_process |= !own_peak;
    free(res);
    return rc;
}

/* The budget of the row that ran fastest with r's device, precision and beams at all threads. */
static int best_budget(const lm_bench *b, const lm_bench_row *r) {
    int best = -1;
    for (int i = 0; i < b->n_rows; i++) {
        const lm_bench_row *x = &b->rows[i];
        if (x->status != LM_BENCH_RAN || x->workers != 1 || x->threads != b->rows[0].threads || strcmp(x->device, r->device) ||
            x->precision != r->precision || x->beams != r->beams)
            continue;
        if (best < 0 || x->lines / x->seconds > b->rows[best].lines / b->rows[best].seconds) best = i;
    }
    return best < 0 ? 0 : b->rows[best].budget;
}

/* Opens the model as r needs it (device, precision, threads, workers): 0;
 * -1 when it fails; -2 when this hardware cannot run r as it is (err says why). */
static int open_for(sweep *s, lm_translator *t, const lm_bench_row *r, lm_err *err) {
    lm_engine_config e = s->o->base;
    e.device = strncmp(r->device, "cuda", 4) ? LM_DEVICE_CPU : LM_DEVICE_CUDA;
    e.precision = r->precision;
    e.threads = e.device == LM_DEVICE_CPU ? r->threads : e.threads;
    e.workers = r->workers;
    if (e.device == LM_DEVICE_CUDA) snprintf(e.devices, sizeof e.devices, "%s", r->device + 5);
    int opened = lm_translator_open(t, s->o->model_dir, &e, err);
    if (opened != 0) return opened; /* -2: settings this device cannot honour (int8 on a GPU, fp16 on the CPU) */
    if (e.device == LM_DEVICE_CPU && t->cpu_weights.precision != r->precision) {
        lm_fail(err, "this CPU has no %s kernel: it would run in %s", lm_precision_name(r->precision), lm_precision_name(t->cpu_weights.precision));
        lm_translator_close(t);
        return -2;
    }
    return 0;
}

static bool same_open(const lm_bench_row *a, const lm_bench_row *b) {
    return !strcmp(a->device, b->device) && a->precision == b->precision && a->threads == b->threads && a->workers == b->workers;
}

#define SMALLER "a smaller budget "

/* Budgets grow along a setting's rows: after one that failed (out of memory)
 * or used half the memory available, the larger ones are not tried. */
static bool skip_larger(const lm_bench *b, int i, double avail_mb, char *note, size_t cap) {
    const lm_bench_row *r = &b->rows[i], *prev = i ? &b->rows[i - 1] : NULL;
    if (!prev || !same_open(prev, r) || prev->beams != r->beams || prev->budget >= r->budget) return false;
    if (prev->status == LM_BENCH_FAILED || (prev->status == LM_BENCH_NOT_RUN && !strncmp(prev->note, SMALLER, strlen(SMALLER))))
        snprintf(note, cap, SMALLER "did not run");
    else if (prev->status == LM_BENCH_RAN && prev->peak_mb > avail_mb / 2)
        snprintf(note, cap, SMALLER "used %.0f MB, over half the %.0f MB available", prev->peak_mb, avail_mb);
    else
        return false;
    return true;
}

/* Tokenises the corpus once, with the first model opened (the ids depend on the tokenizer alone). */
static int tokenise(sweep *s, lm_translator *t, lm_err *err) {
    int n = s->o->n_lines;
    s->ids = lm_calloc((size_t)n + 1, sizeof *s->ids, err);
    s->lens = lm_calloc((size_t)n + 1, sizeof *s->lens, err);
    for (int k = 0; k < s->n_beams; k++)
        if (!(s->ref[k] = lm_calloc((size_t)n + 1, sizeof **s->ref, err))) return -1;
    if (!s->ids || !s->lens) return -1;
    long total = 0;
    for (int i = 0; i < n; i++) {
        bool cut;
        if (lm_translator_source_ids(t, s->o->lines[i], strlen(s->o->lines[i]), &s->ids[i], &s->lens[i], &cut, err) != 0) return -1;
        total += s->lens[i];
    }
    s->mean_len = n ? (double)total / n : 1;
    return 0;
}

/* What the model is, and its default beams under the base settings. */
static int inspect_model(sweep *s, lm_err *err) {
    lm_translator t;
    lm_engine_config e = s->o->base;
    e.device = LM_DEVICE_CPU;
    e.precision = LM_PREC_FP32;
    int rc = lm_translator_open(&t, s->o->model_dir, &e, err);
    if (rc != 0) return rc;
    const lm_model_config *m = &t.model.cfg.model;
    s->b->default_beams = t.search.gen.num_beams;
    snprintf(s->b->model, sizeof s->b->model, "%s (M2M100 family: %.1f M parameters, d_model %d, %d+%d layers; default beam %d)",
             s->o->model_dir, t.model.n_params / 1e6, m->d_model, m->encoder_layers, m->decoder_layers, s->b->default_beams);
    /* the default output (fp32 at the default beams) is the reference of every
     * row's "same as default": measured whatever the list, and first */
    s->beams[s->n_beams++] = s->b->default_beams;
    if (!s->o->n_beams && s->b->default_beams != 1) s->beams[s->n_beams++] = 1;
    for (int k = 0; k < s->o->n_beams; k++)
        if (beam_index(s, s->o->beams[k]) < 0) s->beams[s->n_beams++] = s->o->beams[k];
    rc = tokenise(s, &t, err);
    lm_translator_close(&t);
    return rc;
}

int lm_bench_run(const lm_bench_opts *o, lm_bench *b, lm_err *err) {
    memset(b, 0, sizeof *b);
    sweep s = {.o = o, .b = b};
    s.start = lm_now();
    s.deadline = s.start + o->seconds;
    s.avail_mb = proc_kb("/proc/meminfo", "MemAvailable:") / 1024;
    b->seconds_limit = o->seconds;
    snprintf(b->corpus, sizeof b->corpus, "%s", o->corpus);
    snprintf(b->version, sizeof b->version, "%s", o->version ? o->version : "");
    snprintf(b->given, sizeof b->given, "%s", o->given ? o->given : "");
    int rc = -1;
    if (inspect_model(&s, err) != 0) goto done;
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN), gpus = 0;
    char gpu_note[LM_ERR_LEN + 16] = "GPUs: not swept (--device cpu)";
    if (o->cuda) {
#ifdef LM_WITH_CUDA
        lm_err why = {{0}};
        gpus = lm_cuda_device_count(&why);
        if (gpus > 0) snprintf(gpu_note, sizeof gpu_note, "%d CUDA GPU%s", gpus, gpus > 1 ? "s" : "");
        else snprintf(gpu_note, sizeof gpu_note, "no GPU: %s", gpus < 0 ? why.msg : "no CUDA device on this machine");
#else
        snprintf(gpu_note, sizeof gpu_note, "no GPU: this lyricmt was built without CUDA (nvcc was not found at build time)");
#endif
    }
    describe_machine(b->machine, sizeof b->machine, gpu_note);
    if (o->cpu && plan_device(&s, "cpu", false, cores) != 0) goto oom;
    for (int g = 0; g < gpus; g++) {
        char dev[24];
        snprintf(dev, sizeof dev, "cuda:%d", g);
        if (plan_device(&s, dev, true, cores) != 0) goto oom;
    }
    if (o->cuda && gpus <= 0) {
        lm_bench_row *r = add_row(&s, "cuda", LM_PREC_FP32, 0, 0, 0, 0);
        if (!r) goto oom;
        snprintf(r->note, sizeof r->note, "%s", gpu_note);
    }

    lm_translator t;
    const lm_bench_row *opened = NULL;
    int open_rc = 0;
    char open_why[LM_ERR_LEN] = "";
    for (int i = 0; i < b->n_rows; i++, s.done++) {
        lm_bench_row *r = &b->rows[i];
        if (!strcmp(r->device, "cuda")) continue; /* the row that says why no GPU ran */
        if (o->cancel && *o->cancel) { b->stopped = true; snprintf(r->note, sizeof r->note, "stopped"); continue; }
        if (lm_now() >= s.deadline) { snprintf(r->note, sizeof r->note, "time limit (--seconds %g) reached", o->seconds); continue; }
        if (!r->budget && !(r->budget = best_budget(b, r))) { snprintf(r->note, sizeof r->note, "no budget ran with all threads"); continue; }
        if (!opened || !same_open(opened, r)) {
            if (opened && open_rc == 0) lm_translator_close(&t);
            opened = r;
            lm_err why = {{0}};
            open_rc = open_for(&s, &t, r, &why);
            snprintf(open_why, sizeof open_why, "%s", why.msg);
        }
        if (open_rc != 0) {
            r->status = open_rc == -1 ? LM_BENCH_FAILED : LM_BENCH_NOT_RUN;
            snprintf(r->note, sizeof r->note, "%s", open_why);
            continue;
        }
        if (skip_larger(b, i, s.avail_mb, r->note, sizeof r->note)) continue;
        progress(&s, r);
        lm_err why = {{0}};
        int ran = measure(&s, &t, r, &why);
        if (ran == 1) { b->stopped = true; snprintf(r->note, sizeof r->note, "stopped"); continue; }
        r->status = ran == 0 ? LM_BENCH_RAN : LM_BENCH_FAILED;
        if (ran != 0) snprintf(r->note, sizeof r->note, "%s", why.msg);
    }
    if (opened && open_rc == 0) lm_translator_close(&t);
    if (o->bar && !o->quiet) fputs("\n", stderr);
    b->seconds_used = lm_now() - s.start;
    rc = b->stopped ? 1 : 0;
    goto done;
oom:
    lm_fail(err, "out of memory");
done:
    for (int i = 0; i < o->n_lines && s.ids; i++) free(s.ids[i]);
    for (int k = 0; k < s.n_beams; k++) {
        for (int i = 0; i < o->n_lines && s.ref[k]; i++) free(s.ref[k][i]);
        free(s.ref[k]);
    }
    free(s.ids);
    free(s.lens);
    return rc;
}

void lm_bench_free(lm_bench *b) {
    free(b->rows);
    memset(b, 0, sizeof *b);
}

int lm_bench_pick(const lm_bench *b, double min_share) {
    int best = -1;
    for (int i = 0; i < b->n_rows; i++) {
        const lm_bench_row *r = &b->rows[i];
        if (r->status != LM_BENCH_RAN || !r->default_of || r->as_default < min_share * r->default_of || r->seconds <= 0) continue;
        if (best < 0 || r->lines / r->seconds > b->rows[best].lines / b->rows[best].seconds) best = i;
    }
    return best;
}
