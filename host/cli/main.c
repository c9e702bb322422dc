/*
 * lyricmt: command-line entry point.
 *
 *   lyricmt translate --model DIR [options]   translate lines (stdin -> stdout)
 *   lyricmt score --model DIR [options]       log-probabilities of (source, target) pairs
 *   lyricmt split-pairs -i PAIRS -o PREFIX    a pairs corpus as PREFIX.en + PREFIX.ko
 *   lyricmt info --model DIR                  describe a model directory
 *   lyricmt eval --hyp FILE --ref FILE        chrF and BLEU as sacreBLEU computes them
 *   lyricmt compare --model A --model B -i F  the same lines through several models, side by side
 *
 * Exit codes: 0 success; 1 a runtime failure (bad model, bad input file, I/O);
 * 2 a usage error (unknown flag, bad value, bad config file).
 */
#include "cli/evaluate.h"
#include "engine/mpi_link.h"
#include "job/launch.h"
#include "tools/split_pairs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LM_VERSION "0.4.0"
#define EXIT_RUNTIME LM_EXIT_RUNTIME
#define EXIT_USAGE LM_EXIT_USAGE

static const char *translate_help =
    "usage: lyricmt translate --model DIR [options]\n"
    "\n"
    "Translates one segment per input line and writes exactly one output record\n"
    "per input line, in input order. Empty or whitespace-only lines give empty\n"
    "records without calling the model. Repeated lines are translated once.\n"
    "\n"
    "  --model DIR          Hugging Face model directory (config.json, weights, tokenizer)\n"
    "  -i PATH              input file or directory of files (repeatable; - or none: stdin)\n"
    "  -o PATH              output file (default: stdout), or a directory (existing, or\n"
    "                       written with a trailing /) for one output per input file.\n"
    "                       Written as .partial files with a journal beside them; run the\n"
    "                       same command after a crash or Ctrl-C to resume.\n"
    "  --restart            ignore an existing journal and start over\n"
    "  --format F           input: text | tsv (id<TAB>text) | jsonl     (input.format)\n"
    "  --id-field NAME      JSONL id field (default id)                (input.id_field)\n"
    "  --text-field NAME    JSONL text field (default text)            (input.text_field)\n"
    "  --output-format F    text | tsv (id, translation, score) | jsonl (output.format)\n"
    "                       | pairs: a parallel corpus, one JSONL line per hypothesis:\n"
    "                       id, sample, source, target, score (as lyricmt score's normalized)\n"
    "  --dedup-hypotheses   drop a line's hypotheses that repeat an earlier one's text\n"
    "                                                     (output.dedup_hypotheses)\n"
    "  --min-score X        drop hypotheses whose model score (lyricmt score's normalized,\n"
    "                       a log-prob per label) is below X   (output.min_score)\n"
    "  --bad-utf8 P         replace (U+FFFD, default) | skip | fail    (input.bad_utf8)\n"
    "  --too-long P         truncate (default) | skip | fail           (input.too_long)\n"
    "  --report FILE        write every bad-input event (file, line, kind) as TSV\n"
    "  --quiet              no progress display or summary (warnings still print)\n"
    "  --progress MODE      auto | bar | plain | none (default auto: bar on a terminal)\n"
    "  --src LANG           source language code (default: tokenizer_config.json, else en)\n"
    "  --tgt LANG           target language code (default: tokenizer_config.json, else ko)\n"
    "  --beam N             beam size (default: generation_config.json)\n"
    "  --n-best N           hypotheses per line (num_return_sequences), with scores\n"
    "  --max-length N       maximum output length in tokens, decoder start included\n"
    "  --convention C       auto | m2m100 (src tag, forced target tag) | small100 (target tag on the source)\n"
    "  --config FILE.yaml   engine settings (see configs/); flags override the file\n"
    "  --threads N          CPU threads (0 = all cores)\n"
    "  --device cpu|cuda    compute backend (cuda needs a build with nvcc and a GPU)\n"
    "  --precision P        fp32 (default); int8 or bf16 on the CPU; fp16 or bf16 on the GPU\n"
    "  --inflight BOOL      in-flight batching: lines join a running batch as others finish\n"
    "                       (batch.inflight, default true; same output either way)\n"
    "  --workers N          CPU model workers sharing --threads (default 1; workers)\n"
    "  --devices LIST       CUDA devices, one worker each: 0,1,2,3 or all (devices)\n"
    "  --weights-from W     disk | broadcast: later GPUs get the weights by NCCL from the first\n"
    "  --set KEY=VALUE      any config key, e.g. --set batch.max_tokens=8192\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit codes: 0 ok, 1 runtime error (model, input, I/O), 2 usage error,\n"
    "130/143 stopped by SIGINT/SIGTERM (a journaled job keeps what was done for a resume).\n";

static const char *score_help =
    "usage: lyricmt score --model DIR [options]\n"
    "\n"
    "Force-decodes (source, target) pairs and writes, per pair and in input order,\n"
    "how likely the model finds the target: the summed log-probability of its\n"
    "labels, that sum divided by the number of labels, and the number of labels.\n"
    "Labels are the target as the model was trained on it: [__tgt__] pieces </s>\n"
    "(m2m100 convention) or pieces </s> (small100), so the sum is the negative of\n"
    "transformers' loss times the labels. Blank lines give empty records.\n"
    "\n"
    "  --model DIR          Hugging Face model directory\n"
    "  -i PATH, -o PATH     inputs and output, as for translate (journaled, resumable)\n"
    "  --format F           tsv (source<TAB>target, the default) | jsonl  (input.format)\n"
    "  --src-field NAME     JSONL source field (default source)        (input.source_field)\n"
    "  --tgt-field NAME     JSONL target field (default target)        (input.target_field)\n"
    "  --id-field NAME      JSONL id field (default id; absent: the line number)\n"
    "  --output-format F    tsv (id, score, normalized, tokens; the default) | jsonl\n"
    "  --bad-utf8, --too-long, --report, --progress, --quiet, --restart, --src, --tgt,\n"
    "  --convention, --config, --set, --threads, --device, --precision: as for translate\n"
    "\n"
    "Exit codes: as for translate.\n";

static const char *split_help =
    "usage: lyricmt split-pairs -i PAIRS.jsonl -o PREFIX [--src en] [--tgt ko]\n"
    "\n"
    "Writes a pairs corpus (translate --output-format pairs) as two line-aligned\n"
    "files, PREFIX.SRC and PREFIX.TGT (default PREFIX.en and PREFIX.ko): line k of\n"
    "one translates line k of the other. Both are written as .partial files and\n"
    "renamed once both are complete. A line that is not a pair stops it, named\n"
    "by file and line.\n"
    "\n"
    "  --src-field NAME, --tgt-field NAME   JSONL fields (default source, target)\n"
    "\n"
    "Exit codes: 0 ok, 1 runtime error (input, I/O, a line that is not a pair), 2 usage error.\n";

static const char *info_help =
    "usage: lyricmt info --model DIR\n"
    "\n"
    "Prints the architecture, parameter count, stored dtype, tokenizer convention\n"
    "and generation defaults of a model directory, after validating it fully.\n"
    "\n"
    "Exit codes: 0 ok, 1 the model does not load, 2 usage error.\n";

static const char *main_help =
    "usage: lyricmt <command> [options]   (lyricmt --version)\n"
    "\n"
    "commands:\n"
    "  translate   translate text lines with an M2M100 / SMaLL-100 model\n"
    "  score       log-probabilities of given (source, target) pairs under the model\n"
    "  split-pairs a pairs corpus (translate --output-format pairs) as FILE.en + FILE.ko\n"
    "  info        describe and validate a model directory\n"
    "  eval        chrF and BLEU of translations against references (as sacreBLEU)\n"
    "  compare     the same lines through several models, side by side, with scores\n"
    "\n"
    "Run 'lyricmt <command> --help' for a command's options.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "lyricmt: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see --help)\n");
    return EXIT_USAGE;
}

static int config_error(const lm_err *err) {
    fprintf(stderr, "lyricmt: %s\n", err->msg);
    return EXIT_USAGE;
}

static bool is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* translate, and score (the same bulk job over pairs, force-decoded). */
static int cmd_translate(int argc, char **argv, bool score) {
    const char *model_dir = NULL, *progress = "auto";
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    lm_job_opts job = {.summary = true};
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    if (score) engine.input_format = engine.output_format = LM_FORMAT_TSV;
    lm_err err = {{0}};
    int rc = EXIT_USAGE;
    if (!inputs) return EXIT_RUNTIME;
    job.inputs = inputs;
    /* the config file is read first so that flags override it, wherever they stand */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc && argv[i + 1][0] && lm_engine_config_load_yaml(&engine, argv[i + 1], &err) != 0) {
            rc = config_error(&err);
            goto out;
        }
    static const struct { const char *flag, *key; } aliases[] = {
        {"--src", "tokenizer.src"}, {"--tgt", "tokenizer.tgt"}, {"--beam", "num_beams"}, {"--n-best", "num_return_sequences"},
        {"--max-length", "max_length"}, {"--convention", "tokenizer.convention"}, {"--threads", "threads"},
        {"--format", "input.format"}, {"--output-format", "output.format"}, {"--id-field", "input.id_field"},
        {"--text-field", "input.text_field"}, {"--bad-utf8", "input.bad_utf8"}, {"--too-long", "input.too_long"},
        {"--device", "device"}, {"--precision", "precision"}, {"--src-field", "input.source_field"},
        {"--tgt-field", "input.target_field"}, {"--min-score", "output.min_score"}, {"--inflight", "batch.inflight"},
        {"--workers", "workers"}, {"--devices", "devices"}, {"--weights-from", "weights_from"},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(score ? score_help : translate_help, stdout); rc = 0; goto out; }
        if (!strcmp(a, "--quiet")) { progress = "none"; job.summary = false; continue; }
        if (!strcmp(a, "--restart")) { job.restart = true; continue; }
        if (!strcmp(a, "--dedup-hypotheses") && !score) { engine.dedup_hypotheses = true; continue; }
        if (i + 1 >= argc) { rc = usage_error("option '%s' needs a value or is unknown", a); goto out; }
        const char *v = argv[++i];
        /* an empty path would put .partial, journal and lock files in the working directory */
        if (!v[0] && (!strcmp(a, "-o") || !strcmp(a, "-i") || !strcmp(a, "--report") || !strcmp(a, "--model") || !strcmp(a, "--config"))) {
            rc = usage_error("option '%s' needs a non-empty path", a);
            goto out;
        }
        bool done = false;
        for (size_t k = 0; k < sizeof aliases / sizeof *aliases && !done; k++)
            if (!strcmp(a, aliases[k].flag)) {
                if (lm_engine_config_set(&engine, aliases[k].key, v, a, &err) != 0) { rc = config_error(&err); goto out; }
                done = true;
            }
        if (done || !strcmp(a, "--config")) continue;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "-i")) inputs[job.n_inputs++] = v;
        else if (!strcmp(a, "-o")) job.output = v;
        else if (!strcmp(a, "--report")) job.report = v;
        else if (!strcmp(a, "--progress")) progress = v;
        else if (!strcmp(a, "--set")) {
            char key[128];
            const char *eq = strchr(v, '=');
            if (!eq || (size_t)(eq - v) >= sizeof key) { rc = usage_error("--set needs KEY=VALUE, got '%s'", v); goto out; }
            memcpy(key, v, (size_t)(eq - v));
            key[eq - v] = '\0';
            if (lm_engine_config_set(&engine, key, eq + 1, "--set", &err) != 0) { rc = config_error(&err); goto out; }
        } else {
            rc = usage_error("unknown option '%s'", a);
            goto out;
        }
    }
    if (!model_dir) { rc = usage_error("%s", score ? "score needs --model DIR" : "translate needs --model DIR"); goto out; }
    if (score && (engine.input_format == LM_FORMAT_TEXT || engine.output_format == LM_FORMAT_TEXT)) {
        rc = usage_error("%s", "score reads and writes tsv or jsonl (--format, --output-format), not text");
        goto out;
    }
    /* a repeat's score is taken from its twin in the same window only: the
     * earlier windows' batches could round its last bit differently, and a
     * resumed job must write the bytes an uninterrupted one would */
    if (score) engine.cache_lines = 0;
    job.score = score;
    /* the same for translations rescored by augmentation (augment.h) */
    if (engine.has_min_score || engine.output_format == LM_FORMAT_PAIRS) engine.cache_lines = 0;
    if (score && (engine.has_min_score || engine.dedup_hypotheses)) {
        rc = usage_error("%s", "--min-score and --dedup-hypotheses are for translate (score writes every pair's score)");
        goto out;
    }
    if (score && engine.output_format == LM_FORMAT_PAIRS) { rc = usage_error("%s", "score writes tsv or jsonl, not pairs"); goto out; }
    if (!strcmp(progress, "auto")) job.progress = isatty(STDERR_FILENO) ? LM_PROGRESS_BAR : LM_PROGRESS_PLAIN;
    else if (!strcmp(progress, "bar")) job.progress = LM_PROGRESS_BAR;
    else if (!strcmp(progress, "plain")) job.progress = LM_PROGRESS_PLAIN;
    else if (!strcmp(progress, "none")) job.progress = LM_PROGRESS_NONE;
    else { rc = usage_error("--progress must be auto, bar, plain or none, got '%s'", progress); goto out; }
    if (job.output) {
        size_t n = strlen(job.output);
        job.per_file = (n && job.output[n - 1] == '/') || is_directory(job.output);
        if (job.per_file && job.n_inputs == 0) { rc = usage_error("output %s is a directory, which needs input files (-i)", job.output); goto out; }
    }
    job.model_dir = model_dir;

    rc = lm_job_launch(model_dir, &engine, &job);
out:
    free(inputs);
    return rc;
}

static int cmd_split_pairs(int argc, char **argv) {
    const char *input = NULL, *prefix = NULL, *src = "en", *tgt = "ko";
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    lm_err err = {{0}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(split_help, stdout); return 0; }
        if (i + 1 >= argc || !argv[i + 1][0]) return usage_error("option '%s' needs a value or is unknown", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-i")) input = v;
        else if (!strcmp(a, "-o")) prefix = v;
        else if (!strcmp(a, "--src")) src = v;
        else if (!strcmp(a, "--tgt")) tgt = v;
        else if (!strcmp(a, "--src-field") || !strcmp(a, "--tgt-field")) {
            if (lm_engine_config_set(&engine, a[2] == 's' ? "input.source_field" : "input.target_field", v, a, &err) != 0) return config_error(&err);
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (!input || !prefix) return usage_error("%s", "split-pairs needs -i PAIRS.jsonl and -o PREFIX");
    if (strchr(src, '/') || strchr(tgt, '/')) return usage_error("%s", "--src and --tgt are file name endings, not paths");
    long pairs;
    if (lm_split_pairs(input, prefix, src, tgt, &engine, &pairs, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "lyricmt: %ld pairs written to %s.%s and %s.%s\n", pairs, prefix, src, prefix, tgt);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    const char *model_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(info_help, stdout); return 0; }
        if (!strcmp(argv[i], "--model") && i + 1 < argc && argv[i + 1][0]) model_dir = argv[++i];
        else if (!strcmp(argv[i], "--model")) return usage_error("option '%s' needs a model directory", argv[i]);
        else return usage_error("unknown option '%s'", argv[i]);
    }
    if (!model_dir) return usage_error("%s", "info needs --model DIR");
    lm_model m;
    lm_tokenizer *tok = NULL;
    lm_err err = {{0}};
    if (lm_model_load(model_dir, &m, &err) != 0 || lm_tokenizer_load(model_dir, m.cfg.model.vocab_size, &tok, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    const lm_model_config *c = &m.cfg.model;
    const lm_gen_config *g = &m.cfg.gen;
    const lm_tok_config *tc = &m.cfg.tok;
    printf("model:          %s\n", model_dir);
    printf("architecture:   M2M100 encoder-decoder (pre-LayerNorm), %s\n", c->activation == LM_ACT_RELU ? "relu" : "gelu");
    printf("encoder:        %d layers, %d heads, d_model %d, ffn %d\n", c->encoder_layers, c->encoder_heads, c->d_model, c->encoder_ffn);
    printf("decoder:        %d layers, %d heads, d_model %d, ffn %d\n", c->decoder_layers, c->decoder_heads, c->d_model, c->decoder_ffn);
    printf("vocabulary:     %d (vocab.json %d + 100 languages + %d madeup)\n", c->vocab_size, lm_tokenizer_vocab_size(tok), tc->num_madeup_words);
    printf("positions:      %d (sinusoidal, offset 2)\n", c->max_positions);
    printf("embeddings:     %s, scale %g\n", m.lm_head == m.embed ? "tied (encoder, decoder, output)" : "output head untied", m.embed_scale);
    printf("parameters:     %llu (%.1f M)\n", (unsigned long long)m.n_params, m.n_params / 1e6);
    printf("weights:        %s (stored %s, computed in f32)\n", m.weights_path, lm_dtype_name(m.stored_dtype));
    printf("tokenizer:      %s convention, src %s, tgt %s\n", tc->convention == LM_CONV_M2M100 ? "m2m100 (source tag __src__, forced __tgt__)" : "small100 (source tag __tgt__, nothing forced)",
           tc->src_lang[0] ? tc->src_lang : "-", tc->tgt_lang[0] ? tc->tgt_lang : "-");
    printf("generation:     num_beams %d, max_length %d, min_length %d, length_penalty %g, early_stopping %s,\n"
           "                no_repeat_ngram_size %d, repetition_penalty %g, do_sample %s\n",
           g->num_beams, g->max_length, g->min_length, g->length_penalty, g->early_stopping ? "true" : "false",
           g->no_repeat_ngram_size, g->repetition_penalty, g->do_sample ? "true" : "false");
    lm_tokenizer_free(tok);
    lm_model_free(&m);
    return 0;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(main_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        char nccl[256] = "not built (no CUDA)";
#ifdef LM_WITH_CUDA
        lm_cuda_nccl_describe(nccl, sizeof nccl);
#endif
        printf("lyricmt %s (OpenBLAS kernels: %s; CUDA backend: %s; NCCL: %s; MPI: %s)\n", LM_VERSION, lm_blas_core(),
#ifdef LM_WITH_CUDA
               "built",
#else
               "not built",
#endif
               nccl, lm_mpi_build());
        return 0;
    }
    if (!strcmp(argv[1], "translate")) return cmd_translate(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "score")) return cmd_translate(argc - 1, argv + 1, true);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "split-pairs")) return cmd_split_pairs(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return lm_eval_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "compare")) return lm_compare_main(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", argv[1]);
}

/* Two runtime libraries read their settings only once, as they load, before
 * main runs, so the program restarts itself once with them set, unless the
 * user chose them:
 * - libgomp's idle workers spin (300,000 rounds by default) before they sleep.
 *   With other processes on the cores the spinning workers take the time the
 *   busy ones need: a 400-line job took 12.5 s instead of 0.5 s with a fuzzer
 *   beside it, 35 s with two busy loops. Passive waiting costs 2.6% when idle
 *   (benchmarks/NOTES.md, attempt 5).
 * - OpenBLAS falls back to SSE3 kernels on CPUs it does not recognise, even
 *   with AVX-512 there: twice slower (host/cpu/blas_core.c). */
static void prepare_runtime(char **argv) {
    bool again = false;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) again |= setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : lm_blas_core_override();
    if (core) again |= setenv("OPENBLAS_CORETYPE", core, 1) == 0;
    if (again) execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
}

int main(int argc, char **argv) {
    prepare_runtime(argv);
    int rc = dispatch(argc, argv);
    /* a full disk or closed pipe on standard output must not end in "success" */
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        fprintf(stderr, "lyricmt: error writing standard output: %s\n", strerror(errno));
        if (rc == 0) rc = EXIT_RUNTIME;
    }
    return rc;
}
