/* cmd_translate: `lyricmt translate` and `lyricmt score` (the same bulk job
 * over pairs, force-decoded): their flags, checked and handed to the job. */
#include "cli/cli.h"
#include "config/engine_flags.h"
#include "job/job_rules.h"
#include "job/launch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "  --precision P        CPU: fp32 (default), int8 or bf16; GPU: bf16 (default), fp16 or fp32\n"
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

/* translate, and score (the same bulk job over pairs, force-decoded). */
int lm_cmd_translate(int argc, char **argv, bool score) {
    const char *model_dir = NULL, *progress = "auto";
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    lm_job_opts job = {.summary = true};
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    lm_job_defaults(&engine, score);
    lm_err err = {{0}};
    lm_cli_seen seen = {0};
    int rc = LM_EXIT_USAGE;
    if (!inputs) return LM_EXIT_RUNTIME;
    job.inputs = inputs;
    if (lm_engine_flags_config(&engine, argc, argv, &err) != 0) { rc = lm_cli_fail(&err, LM_EXIT_USAGE); goto out; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(score ? score_help : translate_help, stdout); rc = 0; goto out; }
        if (!strcmp(a, "--quiet")) { progress = "none"; job.summary = false; continue; }
        if (!strcmp(a, "--restart")) { job.restart = true; continue; }
        if (!strcmp(a, "--dedup-hypotheses") && !score) { engine.dedup_hypotheses = true; continue; }
        if (i + 1 >= argc) { rc = lm_cli_usage(NULL, "option '%s' needs a value or is unknown", a); goto out; }
        const char *v = argv[++i];
        /* an empty path would put .partial, journal and lock files in the working directory */
        if (!v[0] && (!strcmp(a, "-o") || !strcmp(a, "-i") || !strcmp(a, "--report") || !strcmp(a, "--model") || !strcmp(a, "--config"))) {
            rc = lm_cli_usage(NULL, "option '%s' needs a non-empty path", a);
            goto out;
        }
        /* an engine setting given again overrides, as it overrides the config file */
        int taken = lm_engine_flag(&engine, score ? LM_FLAGS_SCORE : LM_FLAGS_TRANSLATE, a, v, &err);
        if (taken == -2) { rc = lm_cli_usage(NULL, "%s", err.msg); goto out; }
        if (taken < 0) { rc = lm_cli_fail(&err, LM_EXIT_USAGE); goto out; }
        if (taken) continue;
        if (lm_cli_repeated(&seen, NULL, a, "-i --progress")) goto out; /* a path given twice: which one was meant? */
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "-i")) inputs[job.n_inputs++] = v;
        else if (!strcmp(a, "-o")) job.output = strcmp(v, "-") ? v : NULL; /* "-": standard output, as -i - is standard input */
        else if (!strcmp(a, "--report")) job.report = v;
        else if (!strcmp(a, "--progress")) progress = v;
        else {
            rc = lm_cli_usage(NULL, "unknown option '%s'", a);
            goto out;
        }
    }
    if (!model_dir) { rc = lm_cli_usage(NULL, "%s", score ? "score needs --model DIR" : "translate needs --model DIR"); goto out; }
    job.score = score;
    if (lm_job_settle(&engine, &job, &err) != 0) { rc = lm_cli_usage(NULL, "%s", err.msg); goto out; }
    if (!strcmp(progress, "auto")) job.progress = isatty(STDERR_FILENO) ? LM_PROGRESS_BAR : LM_PROGRESS_PLAIN;
    else if (!strcmp(progress, "bar")) job.progress = LM_PROGRESS_BAR;
    else if (!strcmp(progress, "plain")) job.progress = LM_PROGRESS_PLAIN;
    else if (!strcmp(progress, "none")) job.progress = LM_PROGRESS_NONE;
    else { rc = lm_cli_usage(NULL, "--progress must be auto, bar, plain or none, got '%s'", progress); goto out; }
    job.model_dir = model_dir;

    rc = lm_job_launch(model_dir, &engine, &job);
out:
    free(inputs);
    return rc;
}
