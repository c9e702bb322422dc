/* cmd_bench: `lyricmt bench`, how fast a model runs here and with which
 * settings (tools/bench.h): its flags, its corpus, and its files, each
 * written as NAME.partial and renamed, never over an input or the model's. */
#include "cli/cli.h"
#include "base/outfile.h"
#include "config/engine_flags.h"
#include "include/lyricmt.h"
#include "tools/bench.h"
#include "model/model_files.h"
#include "tools/lines.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bench_help =
    "usage: lyricmt bench --model DIR [options]\n"
    "\n"
    "Measures how fast the model translates on this machine, sweeping what changes\n"
    "the speed: precision (what each device runs), beam (1 and the model's default),\n"
    "batch budget (batch.max_tokens, small to large) and, on the CPU, threads and\n"
    "workers; on each GPU of a CUDA build too. For every setting: lines/s, generated\n"
    "tokens/s, peak memory, and the share of lines identical to fp32's output. Writes\n"
    "PREFIX.md and PREFIX.json (the table; the Markdown also to stdout), PREFIX.svg\n"
    "(the plot, drawn by gnuplot) and PREFIX.yaml: the fastest setting whose\n"
    "translations match the default output (fp32, the model's beam) on at least\n"
    "--min-agreement of lines, as a config that translate --config reads.\n"
    "\n"
    "  --model DIR          Hugging Face model directory\n"
    "  -i FILE              lines to translate (blank ones left out); default: generated\n"
    "                       lyric-like lines\n"
    "  --lines N            use the first N lines (default 1000)\n"
    "  --seed N             seed of the generated lines (default 1)\n"
    "  --seconds S          time limit of the whole sweep (default 180); every setting\n"
    "                       runs at least two batches' worth of lines\n"
    "  --device D           all (default: the CPU and each GPU) | cpu | cuda\n"
    "  --precisions LIST    e.g. int8,bf16 (fp32, the reference, is always run);\n"
    "                       default: fp32,int8,bf16 on the CPU, fp32,fp16,bf16 on a GPU\n"
    "  --beams LIST         default: 1 and the model's default\n"
    "  --budgets LIST       batch.max_tokens values; default 512..16384 (CPU),\n"
    "                       1024..65536 (GPU), doubling\n"
    "  --no-threads         skip the CPU's thread and worker variants\n"
    "  --min-agreement P    percent of lines the YAML's setting must share with the\n"
    "                       default output (default 95)\n"
    "  -o PREFIX            output files' prefix (default lyricmt-bench)\n"
    "  --plot svg|png|none  the plot's format (default svg)\n"
    "  --progress MODE      auto | bar | plain | none (default auto: bar on a terminal)\n"
    "  --config FILE.yaml, --set KEY=VALUE, --src, --tgt, --convention, --max-length:\n"
    "                       settings the sweep leaves alone (what it sweeps is its own)\n"
    "  -h, --help           this help\n"
    "\n"
    "Ctrl-C or SIGTERM stops it: the table so far goes to stdout, no file is written.\n"
    "Exit codes: 0 ok, 1 runtime error (model, writing, gnuplot, no setting within the\n"
    "agreement), 2 usage error, 130/143 stopped.\n";

static volatile int stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

/* A comma-separated list of positive integers into out. */
static int parse_ints(const char *text, int *out, int cap, int lo, int hi) {
    int n = 0;
    for (const char *p = text; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || (*end && *end != ',') || n == cap) return -1;
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n ? n : -1;
}

static int parse_precisions(const char *text, int *out) {
    static const char *const names[] = {"fp32", "fp16", "bf16", "int8"}; /* lm_precision's order */
    int n = 0;
    char buf[64];
    if (snprintf(buf, sizeof buf, "%s", text) >= (int)sizeof buf) return -1;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < 4 && strcmp(tok, names[k])) k++;
        if (k == 4 || n == 4) return -1;
        out[n++] = k;
    }
    return n ? n : -1;
}

/* The outputs: PREFIX.md, .json, .yaml and the plot, opened as every
 * command's are (base/outfile.h) once the sweep is done, and renamed into
 * place together. */
enum { OUT_MD, OUT_JSON, OUT_YAML, OUT_PLOT, N_OUTS };
static const char *const out_ext[N_OUTS] = {"md", "json", "yaml", NULL};

static int out_name(char *buf, size_t cap, const char *prefix, const char *ext, lm_err *err) {
    return snprintf(buf, cap, "%s.%s", prefix, ext) >= (int)cap ? lm_fail(err, "%s: path too long", prefix) : 0;
}

/* Every name checked before the sweep, so that a refusal costs nothing. */
static int check_outputs(const char *prefix, const char *plot_ext, const lm_protect *keep, lm_err *err) {
    for (int k = 0; k < N_OUTS; k++) {
        const char *ext = k == OUT_PLOT ? plot_ext : out_ext[k];
        char path[4200], *final;
        bool direct;
        if (!ext) continue;
        if (out_name(path, sizeof path, prefix, ext, err) != 0 || lm_outfile_resolve(path, &final, &direct, err) != 0) return -1;
        int rc = lm_protect_check(keep, final, err);
        if (rc == 0 && final && !direct) {
            char partial[4300];
            snprintf(partial, sizeof partial, "%s.partial", final);
            rc = lm_protect_check(keep, partial, err);
        }
        free(final);
        if (rc != 0) return -1;
    }
    return 0;
}

/* gnuplot reads the script on its standard input and draws into o's file. */
static int draw_plot(lm_outfile *o, const lm_bench *b, bool png, lm_err *err) {
    const char *into = o->partial ? o->partial : o->path;
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN); /* a gnuplot that dies must not take us with it */
    FILE *g = popen("exec gnuplot", "w");
    int rc = g ? lm_bench_plot_script(b, into, png, g, err) : lm_fail(err, "cannot start gnuplot: %s", strerror(errno));
    int status = g ? pclose(g) : -1;
    signal(SIGPIPE, old_pipe);
    struct stat st;
    if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
        rc = lm_fail(err, "gnuplot not found (Debian: apt-get install gnuplot-nox): the plot %s was not drawn", o->path);
    else if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || (o->partial && (stat(o->partial, &st) != 0 || st.st_size == 0))))
        rc = lm_fail(err, "gnuplot failed (status %d): the plot %s was not drawn", status, o->path);
    return rc;
}

/* Writes the three reports, together or not at all, then the plot: a sweep
 * of minutes keeps its tables when only gnuplot fails. */
static int write_outputs(const char *prefix, const char *plot_ext, bool png, const lm_protect *keep, const lm_bench *b, int pick,
                         double min_share, lm_err *err) {
    typedef int (*report_fn)(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err);
    static const report_fn write[OUT_PLOT] = {lm_bench_markdown, lm_bench_json, lm_bench_yaml};
    lm_outfile o[N_OUTS];
    char path[4200];
    int n = 0, rc = 0;
    for (; n < OUT_PLOT && rc == 0; n += rc == 0)
        rc = out_name(path, sizeof path, prefix, out_ext[n], err) != 0 || lm_outfile_open(&o[n], path, keep, err) != 0 ? -1 : 0;
    for (int k = 0; k < n && rc == 0; k++) rc = write[k](b, pick, min_share, o[k].f, err);
    if (rc == 0 && lm_outfile_commit(o, n, err) == 0) {
        fprintf(stderr, "lyricmt: bench wrote %s.md, %s.json and %s.yaml\n", prefix, prefix, prefix);
        if (!plot_ext) return 0;
        if (out_name(path, sizeof path, prefix, plot_ext, err) != 0 || lm_outfile_open(&o[OUT_PLOT], path, keep, err) != 0) return -1;
        if (draw_plot(&o[OUT_PLOT], b, png, err) != 0) { lm_outfile_abandon(&o[OUT_PLOT]); return -1; }
        if (lm_outfile_commit(&o[OUT_PLOT], 1, err) != 0) return -1;
        fprintf(stderr, "lyricmt: bench wrote %s\n", path);
        return 0;
    }
    for (int k = 0; rc != 0 && k < n; k++) lm_outfile_abandon(&o[k]);
    return -1;
}

/* ---- the command ---- */

typedef struct {
    lm_bench_opts o;
    const char *input, *prefix, *plot, *progress;
    int n_lines;
    long seed;
    double min_share;
    char given[512];
} bench_args;

/* Bench's own flags: 1 taken, 0 not one, -1 a bad value (usage printed). */
static int own_flag(bench_args *a, const char *f, const char *v) {
    lm_bench_opts *o = &a->o;
    char *end;
    if (!strcmp(f, "-i")) a->input = v;
    else if (!strcmp(f, "-o")) a->prefix = v;
    else if (!strcmp(f, "--plot")) a->plot = v;
    else if (!strcmp(f, "--progress")) a->progress = v;
    else if (!strcmp(f, "--lines")) {
        if (parse_ints(v, &a->n_lines, 1, 1, 1 << 24) != 1) return lm_cli_usage("bench", "--lines must be a number of lines, got '%s'", v), -1;
    } else if (!strcmp(f, "--seed")) {
        a->seed = strtol(v, &end, 10);
        if (*end || end == v || a->seed < 0) return lm_cli_usage("bench", "--seed must be a number, got '%s'", v), -1;
    } else if (!strcmp(f, "--seconds")) {
        o->seconds = strtod(v, &end);
        if (*end || end == v || !(o->seconds > 0 && o->seconds <= 7 * 86400)) return lm_cli_usage("bench", "--seconds must be a positive number, got '%s'", v), -1;
    } else if (!strcmp(f, "--min-agreement")) {
        a->min_share = strtod(v, &end) / 100;
        if (*end || end == v || !(a->min_share >= 0 && a->min_share <= 1)) return lm_cli_usage("bench", "--min-agreement must be a percent, got '%s'", v), -1;
    } else if (!strcmp(f, "--device")) {
        o->cpu = !strcmp(v, "all") || !strcmp(v, "cpu");
        o->cuda = !strcmp(v, "all") || !strcmp(v, "cuda");
        if (!o->cpu && !o->cuda) return lm_cli_usage("bench", "--device must be all, cpu or cuda, got '%s'", v), -1;
    } else if (!strcmp(f, "--precisions")) {
        if ((o->n_precisions = parse_precisions(v, o->precisions)) < 0) return lm_cli_usage("bench", "--precisions must list fp32, int8, bf16, fp16, got '%s'", v), -1;
    } else if (!strcmp(f, "--beams")) {
        if ((o->n_beams = parse_ints(v, o->beams, LM_BENCH_MAX_LIST - 1, 1, 64)) < 0) return lm_cli_usage("bench", "--beams must list beam sizes (1 to 64), got '%s'", v), -1;
    } else if (!strcmp(f, "--budgets")) {
        if ((o->n_budgets = parse_ints(v, o->budgets, LM_BENCH_MAX_LIST, 1, 1 << 24)) < 0) return lm_cli_usage("bench", "--budgets must list token counts, got '%s'", v), -1;
    } else return 0;
    return 1;
}

/* The corpus: -i FILE's non-blank lines, or generated ones. */
static int load_corpus(bench_args *a, lm_lines *file, char ***generated, lm_err *err) {
    if (!a->input) {
        if (lm_bench_lyrics(a->n_lines, (uint64_t)a->seed, generated, err) != 0) return -1;
        a->o.lines = (const char *const *)*generated;
        a->o.n_lines = a->n_lines;
        snprintf(a->o.corpus, sizeof a->o.corpus, "%d generated lyric-like lines (seed %ld)", a->n_lines, a->seed);
        return 0;
    }
    if (lm_lines_load(a->input, false, file, err) != 0) return -1;
    int kept = 0, blank = 0;
    for (int i = 0; i < file->n && kept < a->n_lines; i++) {
        if (lm_is_blank(file->line[i], strlen(file->line[i]))) blank++;
        else file->line[kept++] = file->line[i];
    }
    if (!kept) return lm_fail(err, "%s: no line to translate", a->input);
    a->o.lines = (const char *const *)file->line;
    a->o.n_lines = kept;
    snprintf(a->o.corpus, sizeof a->o.corpus, "%d lines of %s%s", kept, a->input, blank ? " (blank lines left out)" : "");
    return 0;
}

int lm_cmd_bench(int argc, char **argv) {
    bench_args a = {.prefix = "lyricmt-bench", .plot = "svg", .progress = "auto", .n_lines = 1000, .seed = 1, .min_share = 0.95};
    a.o.seconds = 180;
    a.o.cpu = a.o.cuda = true;
    a.o.threads = true;
    a.o.cancel = &stop_requested;
    lm_engine_config_defaults(&a.o.base);
    lm_err err = {{0}};
    const char *model_dir = NULL;
    if (lm_engine_flags_config(&a.o.base, argc, argv, &err) != 0) return lm_cli_fail(&err, LM_EXIT_USAGE);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) { fputs(bench_help, stdout); return 0; }
        if (!strcmp(f, "--no-threads")) { a.o.threads = false; continue; }
        if (i + 1 >= argc) return lm_cli_usage("bench", "option '%s' needs a value or is unknown", f);
        const char *v = argv[++i];
        if (!v[0]) return lm_cli_usage("bench", "option '%s' needs a non-empty value", f);
        int own = own_flag(&a, f, v);
        if (own < 0) return LM_EXIT_USAGE;
        if (own) continue;
        if (!strcmp(f, "--model")) { model_dir = v; continue; }
        /* the settings bench sweeps are its own flags' */
        if (!strcmp(f, "--beam") || !strcmp(f, "--threads") || !strcmp(f, "--precision"))
            return lm_cli_usage("bench", "'%s' is swept by bench: use --beams, --precisions (threads are swept)", f);
        int taken = lm_engine_flag(&a.o.base, LM_FLAGS_COMPARE, f, v, &err);
        if (taken == -2) return lm_cli_usage("bench", "%s", err.msg);
        if (taken < 0) return lm_cli_fail(&err, LM_EXIT_USAGE);
        if (!taken) return lm_cli_usage("bench", "unknown option '%s'", f);
        size_t at = strlen(a.given);
        snprintf(a.given + at, sizeof a.given - at, "%s%s %s", at ? " " : "", f, v);
    }
    if (!model_dir) return lm_cli_usage("bench", "%s", "needs --model DIR");
    bool png = !strcmp(a.plot, "png"), plot = strcmp(a.plot, "none") != 0;
    if (plot && !png && strcmp(a.plot, "svg")) return lm_cli_usage("bench", "--plot must be svg, png or none, got '%s'", a.plot);
    if (!strcmp(a.progress, "auto")) a.o.bar = isatty(STDERR_FILENO);
    else if (!strcmp(a.progress, "bar")) a.o.bar = true;
    else if (!strcmp(a.progress, "none")) a.o.quiet = true;
    else if (strcmp(a.progress, "plain")) return lm_cli_usage("bench", "--progress must be auto, bar, plain or none, got '%s'", a.progress);
    a.o.model_dir = model_dir;
    a.o.version = lyricmt_version();
    a.o.given = a.given;

    /* every file is checked before the sweep, so that a refusal costs nothing */
    const char *plot_ext = plot ? (png ? "png" : "svg") : NULL;
    lm_protect keep = {0};
    char label[4200];
    snprintf(label, sizeof label, "the input %s", a.input ? a.input : "");
    if ((a.input && lm_protect_path(&keep, a.input, label, &err) != 0) ||
        lm_model_protect(&keep, model_dir, &err) != 0 || check_outputs(a.prefix, plot_ext, &keep, &err) != 0) {
        lm_protect_free(&keep);
        return lm_cli_fail(&err, LM_EXIT_RUNTIME);
    }

    lm_lines file = {0};
    char **generated = NULL;
    int rc = LM_EXIT_RUNTIME;
    lm_bench b = {0};
    struct sigaction act = {0}, old_int, old_term;
    act.sa_handler = on_signal;
    act.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills */
    sigemptyset(&act.sa_mask);
    sigaction(SIGINT, &act, &old_int);
    sigaction(SIGTERM, &act, &old_term);
    if (load_corpus(&a, &file, &generated, &err) != 0) { lm_cli_fail(&err, LM_EXIT_RUNTIME); goto done; }
    int ran = lm_bench_run(&a.o, &b, &err);
    if (ran < 0) { rc = lm_cli_fail(&err, LM_EXIT_RUNTIME); goto done; }
    int pick = lm_bench_pick(&b, a.min_share);
    if (lm_bench_markdown(&b, pick, a.min_share, stdout, &err) != 0) { lm_cli_fail(&err, LM_EXIT_RUNTIME); goto done; }
    if (ran == 1) {
        fprintf(stderr, "lyricmt: bench stopped by signal %d: the table so far is above; no file was written\n", stop_requested);
        rc = 128 + stop_requested;
        goto done;
    }
    if (write_outputs(a.prefix, plot_ext, png, &keep, &b, pick, a.min_share, &err) != 0) {
        lm_cli_fail(&err, LM_EXIT_RUNTIME);
        goto done;
    }
    rc = 0;
done:
    lm_protect_free(&keep);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    lm_bench_free(&b);
    lm_lines_free(&file);
    for (int i = 0; generated && i < a.n_lines; i++) free(generated[i]);
    free(generated);
    return rc;
}
